//! `POST /v1/audio/speech`, compatible with OpenAI's speech API as its SDKs
//! send it. `model` names a pipeline (OpenAI's own model names mean the default
//! pipeline), `voice` a voxpipe voice (OpenAI's voice names mean the pipeline's
//! voice), `instructions` go to the style stage.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use super::auth::Access;
use super::error::{ApiError, SynthesisErrors};
use super::reply::Exchange;
use super::tts::{deliver, parse_format, parse_json, Delivery};
use super::AppState;
use crate::tts::{ssml, InputFormat, SynthesisRequest, Timings, TtsError};
use voxpipe_codec::AudioFormat;

/// OpenAI's model names; they select the default pipeline.
const OPENAI_MODELS: &[&str] = &["tts-1", "tts-1-hd", "gpt-4o-mini-tts"];
/// OpenAI's voice names; they select the pipeline's own voice.
const OPENAI_VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
    "marin", "cedar",
];

/// `stream_format`'s values and how each delivers the audio.
const STREAM_FORMATS: [(&str, Delivery); 2] = [("audio", Delivery::Stream), ("sse", Delivery::Sse)];

// The OpenAPI document's `SpeechRequest` is this type.
/// The body of `POST /v1/audio/speech`. Unknown fields are ignored, as newer
/// SDKs may send more.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = SpeechRequest, examples(json!({"model": "tts-1", "input": "Hello from voxpipe.", "voice": "alloy"})))]
pub(super) struct SpeechBody {
    /// `tts-1`, `tts-1-hd`, `gpt-4o-mini-tts`: the server's default pipeline; any other
    /// value must be a pipeline name (`404 unknown_pipeline`).
    #[schema(examples("tts-1"))]
    model: String,
    /// The text to speak; the same rules as `text` of `POST /v1/tts` (this server's
    /// limit is `maxLength`).
    #[schema(min_length = 1)]
    input: String,
    /// An OpenAI voice name (the pipeline's own voice) or a voxpipe voice (`404 unknown_voice`).
    voice: Option<VoiceField>,
    /// A style instruction for the pipeline's style stage; NUL is refused (`422`).
    instructions: Option<String>,
    /// Speaking rate; above 1 is faster.
    #[schema(minimum = 0.25, maximum = 4.0)]
    speed: Option<f32>,
    #[schema(schema_with = response_format_schema)]
    response_format: Option<String>,
    #[schema(schema_with = stream_format_schema)]
    stream_format: Option<String>,
    /// `text` or `ssml` (docs/ssml.md); absent: `ssml` when `input` starts with
    /// `<speak>` (after an optional XML declaration), else `text`.
    #[schema(schema_with = super::tts::input_format_schema)]
    input_format: Option<String>,
    /// voxpipe's extension: `true` says when each word is heard (docs/api.md, "Word
    /// timestamps"): a whole response is JSON (`TimestampedAudio`), `stream_format: sse`
    /// adds `speech.words` events; with `stream_format: audio` it is `422 invalid_input`.
    timestamps: Option<bool>,
}

/// `"voice": "alloy"` or `"voice": {"id": "…"}` (custom voices).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = SpeechVoice)]
#[serde(untagged)]
enum VoiceField {
    Name(String),
    Object { id: String },
}

/// `response_format`: OpenAI's default is mp3.
fn response_format_schema() -> utoipa::openapi::Object {
    super::tts::formats(AudioFormat::Mp3)
}

fn stream_format_schema() -> utoipa::openapi::Object {
    let mut names: Vec<serde_json::Value> = STREAM_FORMATS
        .iter()
        .map(|(name, _)| (*name).into())
        .collect();
    names.push(serde_json::Value::Null);
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(names))
        .description(Some(
            "Absent: the whole file; `audio`: chunked audio; `sse`: server-sent events. \
             Other values: `422 invalid_input`.",
        ))
        .build()
}

/// The `200` of `POST /v1/audio/speech`: audio, or server-sent events.
struct SpeechAudio;

impl utoipa::IntoResponses for SpeechAudio {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        super::tts::audio_responses()
    }
}

/// `POST /v1/audio/speech`.
#[utoipa::path(
    post,
    path = "/v1/audio/speech",
    operation_id = "speech",
    tag = "synthesis",
    summary = "Speak a text, OpenAI-compatible",
    description = "What OpenAI's SDKs send to their speech API (`base_url` = this server's `/v1`). \
        `model` names a pipeline, `voice` a voxpipe voice (OpenAI's names mean the pipeline's \
        voice), `instructions` go to the style stage. Unknown fields are ignored.",
    request_body(content = SpeechBody, content_type = "application/json"),
    responses(SpeechAudio, SynthesisErrors),
    security((), ("api_key" = []))
)]
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
        Some(name) => match STREAM_FORMATS.iter().find(|(n, _)| *n == name) {
            Some((_, delivery)) => *delivery,
            None => {
                return Err(TtsError::InvalidInput(format!(
                    "`stream_format` {name:?} is not `audio` or `sse`"
                ))
                .into())
            }
        },
    };
    // A leading <speak> is SSML unless the client says otherwise.
    let timestamps = b.timestamps.unwrap_or(false);
    if timestamps && delivery == Delivery::Stream {
        return Err(TtsError::InvalidInput(
            "`timestamps` need a whole response or `stream_format: sse`: a raw audio stream \
             cannot carry them"
                .into(),
        )
        .into());
    }
    let input_format = match b.input_format.as_deref().filter(|f| !f.is_empty()) {
        Some(name) => InputFormat::parse(name)?,
        None if ssml::looks_like_ssml(&b.input) => InputFormat::Ssml,
        None => InputFormat::Text,
    };
    Ok((
        SynthesisRequest {
            text: b.input,
            input_format,
            pipeline: Some(pipeline),
            voice,
            instruct: b.instructions,
            speed: b.speed,
            timestamps,
            ..SynthesisRequest::default()
        },
        format,
        delivery,
    ))
}
