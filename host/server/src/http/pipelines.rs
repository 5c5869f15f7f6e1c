//! `GET /v1/pipelines` and `GET /readyz`.

use std::time::UNIX_EPOCH;

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::Access;
use super::reply::Exchange;
use super::AppState;
use crate::pipeline::Pipeline;
use crate::tts::Timings;

fn pipeline_json(p: &Pipeline) -> Value {
    json!({
        "name": p.name,
        "version": p.version,
        "file": p.source,
        "description": p.description,
        "voice": p.voice,
        "language": p.language,
        "loaded_at_unix": p.loaded_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "audio_streamable": p.audio_streamable(),
        "stages": p.stages.iter().map(|s| json!({
            "index": s.index,
            "name": s.name,
            "kind": s.kind,
            "plugin": s.plugin.as_ref().map(|ps| json!({
                "name": ps.plugin.id.name,
                "version": ps.plugin.id.version,
                "sha256": ps.plugin.id.sha256,
                "streamable": ps.plugin.streamable,
                "applies": ps.plugin.applies,
                "wit": ps.plugin.wit_version,
            })),
            "limits": s.plugin.as_ref().map(|ps| ps.limits),
        })).collect::<Vec<_>>(),
        "routes": p.routes,
        "on_unhonored": p.on_unhonored,
    })
}

/// Every current pipeline, and every file whose latest edit was refused.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = state.auth.check(&headers, Access::Admin) {
        return Exchange::new(&headers).error(e, &Timings::default());
    }
    let all = state.registry.all();
    let (accepted, refused) = state.registry.reload_counts();
    Json(json!({
        "default": state.default_pipeline,
        "pipelines": all.values().map(|p| pipeline_json(p)).collect::<Vec<_>>(),
        "errors": state.registry.errors(),
        "reloads": { "accepted": accepted, "refused": refused },
    }))
    .into_response()
}

/// Ready when the default pipeline is loaded, its voice is loaded, and the
/// server is not shutting down.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let not_ready = |kind: &str, message: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "error": { "type": kind, "message": message } })),
        )
    };
    if state.shutting_down.load(Ordering::Relaxed) {
        return not_ready("shutting_down", "the server is shutting down".into());
    }
    let Some(p) = state.registry.get(&state.default_pipeline) else {
        return not_ready(
            "not_ready",
            format!(
                "default pipeline `{}` is not loaded; see GET /v1/pipelines for reload errors",
                state.default_pipeline
            ),
        );
    };
    if state.service.voices.loaded_voice(&p.voice).is_none() {
        return not_ready(
            "not_ready",
            format!("voice `{}` of the default pipeline is not loaded", p.voice),
        );
    }
    let a = &state.service.admission;
    (
        StatusCode::OK,
        Json(json!({
            "ready": true,
            "default_pipeline": p.name,
            "version": p.version,
            "voice": p.voice,
            "device": voxpipe_engine::device::device_label(state.service.voices.device()),
            "queue": { "running": a.running(), "queued": a.queued(), "concurrency": a.concurrency(), "capacity": a.queue_capacity() },
        })),
    )
}
