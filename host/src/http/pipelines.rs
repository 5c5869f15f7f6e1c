//! `GET /v1/pipelines` and `GET /readyz`.

use std::time::UNIX_EPOCH;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;
use crate::pipeline::Pipeline;

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
            })),
            "limits": s.plugin.as_ref().map(|ps| ps.limits),
        })).collect::<Vec<_>>(),
    })
}

/// Every current pipeline, and every file whose latest edit was refused.
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let all = state.registry.all();
    let (accepted, refused) = state.registry.reload_counts();
    Json(json!({
        "default": state.default_pipeline,
        "pipelines": all.values().map(|p| pipeline_json(p)).collect::<Vec<_>>(),
        "errors": state.registry.errors(),
        "reloads": { "accepted": accepted, "refused": refused },
    }))
}

/// Ready when the default pipeline is loaded.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.registry.get(&state.default_pipeline) {
        Some(p) => (
            StatusCode::OK,
            Json(json!({ "ready": true, "default_pipeline": p.name, "version": p.version })),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "ready": false,
                "error": {
                    "type": "not_ready",
                    "message": format!("default pipeline `{}` is not loaded; see GET /v1/pipelines for reload errors", state.default_pipeline),
                }
            })),
        ),
    }
}
