//! `POST /v1/audio/speech`, compatible with OpenAI's speech API as its SDKs
//! send it. `model` names a pipeline (OpenAI's own model names mean the default
//! pipeline), `voice` a voxpipe voice (OpenAI's voice names mean the pipeline's
//! voice), `instructions` go to the style stage.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::auth::Access;
use super::error::ApiError;
use super::reply::Exchange;
use super::tts::{deliver, parse_format, parse_json, Delivery};
use super::AppState;
use crate::tts::{SynthesisRequest, Timings, TtsError};
use voxpipe_codec::AudioFormat;

/// OpenAI's model names; they select the default pipeline.
const OPENAI_MODELS: &[&str] = &["tts-1", "tts-1-hd", "gpt-4o-mini-tts"];
/// OpenAI's voice names; they select the pipeline's own voice.
const OPENAI_VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
    "marin", "cedar",
];

/// The request body. Unknown fields are ignored, as newer SDKs may send more.
#[derive(Debug, Deserialize)]
struct SpeechBody {
    model: String,
    input: String,
    voice: Option<VoiceField>,
    instructions: Option<String>,
    speed: Option<f32>,
    response_format: Option<String>,
    stream_format: Option<String>,
}

/// `"voice": "alloy"` or `"voice": {"id": "…"}` (custom voices).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum VoiceField {
    Name(String),
    Object { id: String },
}

pub async fn speech(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let ex = Exchange::synthesis(&headers);
    let prepared = state
        .auth
        .check(&headers, Access::Api)
        .and_then(|()| parse_json::<SpeechBody>(&body))
        .and_then(|b| to_request(&state, b));
    match prepared {
        Ok((request, format, delivery)) => deliver(&state, ex, request, format, delivery).await,
        Err(e) => ex.error(e, &Timings::default()),
    }
}

fn to_request(
    state: &AppState,
    b: SpeechBody,
) -> Result<(SynthesisRequest, AudioFormat, Delivery), ApiError> {
    let pipeline = if OPENAI_MODELS.contains(&b.model.as_str()) {
        state.default_pipeline.clone()
    } else if state.registry.get(&b.model).is_some() {
        b.model
    } else {
        let mut names: Vec<String> = state.registry.all().keys().cloned().collect();
        names.extend(OPENAI_MODELS.iter().map(|m| m.to_string()));
        return Err(TtsError::UnknownPipeline {
            name: b.model,
            available: names.join(", "),
        }
        .into());
    };
    let voice = match b.voice {
        Some(VoiceField::Name(v)) | Some(VoiceField::Object { id: v }) => {
            if OPENAI_VOICES.contains(&v.as_str()) {
                None
            } else {
                Some(v)
            }
        }
        None => None,
    };
    // OpenAI's default response format is mp3.
    let format = parse_format(b.response_format.as_deref(), AudioFormat::Mp3)?;
    let delivery = match b.stream_format.as_deref() {
        None => Delivery::Whole,
        Some("audio") => Delivery::Stream,
        Some("sse") => Delivery::Sse,
        Some(other) => {
            return Err(TtsError::InvalidInput(format!(
                "`stream_format` {other:?} is not `audio` or `sse`"
            ))
            .into())
        }
    };
    Ok((
        SynthesisRequest {
            text: b.input,
            pipeline: Some(pipeline),
            voice,
            instruct: b.instructions,
            speed: b.speed,
            ..SynthesisRequest::default()
        },
        format,
        delivery,
    ))
}
