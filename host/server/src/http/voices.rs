//! `GET /v1/voices`: every voice in the voices folder, with what a client
//! needs to pick one (language, quality, rate, speakers) and whether it is
//! loaded.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::auth::Access;
use super::reply::Exchange;
use super::AppState;
use crate::tts::Timings;

pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = state.auth.check(&headers, Access::Api) {
        return Exchange::new(&headers).error(e, &Timings::default());
    }
    let default_voice = state
        .registry
        .get(&state.default_pipeline)
        .map(|p| p.voice.clone());
    let voices: Vec<_> = state
        .service
        .voices
        .catalog()
        .into_iter()
        .map(|v| {
            let c = &v.config;
            json!({
                "name": v.name,
                "language": c.language_tag(),
                "espeak_voice": c.espeak.voice,
                "quality": c.audio.quality,
                "sample_rate": c.audio.sample_rate,
                "speakers": c.speaker_names(),
                "model_bytes": v.model_bytes,
                "loaded": state.service.voices.loaded_voice(&v.name).is_some(),
            })
        })
        .collect();
    Json(json!({ "default": default_voice, "voices": voices })).into_response()
}
