//! `GET /v1/voices`: every voice in the voices folder, with what a client
//! needs to pick one (language, quality, rate, speakers) and whether it is
//! loaded.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Access;
use super::error::KeyErrors;
use super::reply::Exchange;
use super::AppState;
use crate::tts::Timings;

/// The body of `GET /v1/voices`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct VoiceList {
    /// The default pipeline's voice (null when that pipeline is not loaded).
    default: Option<String>,
    voices: Vec<VoiceInfo>,
}

/// One voice of the voices folder.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct VoiceInfo {
    /// What `voice` fields name, e.g. `en_US-joe-medium`.
    name: String,
    /// Language tag, e.g. `en-US`.
    language: Option<String>,
    /// The espeak-ng voice that phonemizes it.
    espeak_voice: String,
    /// Piper's quality tier (`x_low`, `low`, `medium`, `high`).
    quality: Option<String>,
    /// The voice's own rate, in Hz.
    sample_rate: u32,
    /// Speaker names ordered by id, or `"0"`…`"N-1"` when the voice has no name map.
    speakers: Vec<String>,
    /// Size of the model file.
    model_bytes: u64,
    /// Whether the voice is in memory (voices load on first use).
    loaded: bool,
}

/// `GET /v1/voices`.
#[utoipa::path(
    get,
    path = "/v1/voices",
    operation_id = "voices",
    tag = "catalog",
    summary = "The voices this server can speak with",
    description = "Every voice in the voices folder, loaded or not.",
    responses((status = 200, description = "The voices.", body = VoiceList), KeyErrors),
    security((), ("api_key" = []))
)]
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = state.auth.check(&headers, Access::Api) {
        return Exchange::new(&headers).error(e, &Timings::default());
    }
    let default_voice = state
        .registry
        .get(&state.default_pipeline)
        .map(|p| p.voice.clone());
    let voices = state
        .service
        .voices
        .catalog()
        .into_iter()
        .map(|v| {
            let c = &v.config;
            VoiceInfo {
                language: c.language_tag(),
                espeak_voice: c.espeak.voice.clone(),
                quality: c.audio.quality.clone(),
                sample_rate: c.audio.sample_rate,
                speakers: c.speaker_names(),
                model_bytes: v.model_bytes,
                loaded: state.service.voices.loaded_voice(&v.name).is_some(),
                name: v.name,
            }
        })
        .collect();
    Json(VoiceList {
        default: default_voice,
        voices,
    })
    .into_response()
}
