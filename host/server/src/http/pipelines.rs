//! `GET /v1/pipelines` and `GET /readyz`.

use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Access;
use super::error::KeyErrors;
use super::reply::Exchange;
use super::AppState;
use crate::pipeline::{OnUnhonored, Pipeline, ReloadError, Route};
use crate::tts::Timings;
use voxpipe_plugin::PluginLimits;
use voxpipe_types::StageKind;

/// The body of `GET /v1/pipelines`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PipelineList {
    /// The pipeline requests get when they name none.
    default: String,
    pipelines: Vec<PipelineInfo>,
    /// Pipeline files whose latest edit was refused (their previous version keeps serving).
    errors: Vec<ReloadErrorInfo>,
    reloads: ReloadCounts,
}

/// One loaded pipeline.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PipelineInfo {
    name: String,
    /// Counts up with each accepted edit.
    version: u64,
    #[schema(value_type = String)]
    file: PathBuf,
    description: Option<String>,
    voice: String,
    language: Option<String>,
    loaded_at_unix: u64,
    /// No audio stage holds back a whole utterance (in a stream, a
    /// sentence): a stream's audio goes out window by window.
    audio_per_window: bool,
    stages: Vec<StageInfo>,
    /// Voice routes, first match wins (docs/pipelines.md).
    #[schema(value_type = Vec<Object>)]
    routes: Vec<Route>,
    /// What a request with style fields nothing applies gets.
    #[schema(value_type = String, pattern = "^(warn|refuse)$")]
    on_unhonored: OnUnhonored,
}

/// One stage of a pipeline.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct StageInfo {
    index: usize,
    name: String,
    #[schema(value_type = String, pattern = "^(text|style|model|audio)$")]
    kind: StageKind,
    /// Null for the voice model stage.
    plugin: Option<PluginInfo>,
    /// The per-call limits of the stage's plugin: `memory_bytes`, `deadline_ms`,
    /// `max_output_bytes`, `max_text_kb`.
    #[schema(value_type = Option<Object>)]
    limits: Option<PluginLimits>,
}

/// The plugin of a stage.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PluginInfo {
    name: String,
    version: String,
    sha256: String,
    /// Audio plugins: how they take an utterance — `one-pass` or
    /// `two-pass` (blocks, WIT 0.3+), `chunks` or `whole` (0.1/0.2).
    #[schema(value_type = Option<String>)]
    audio_mode: Option<&'static str>,
    /// `whole` audio plugins: the longest utterance (seconds) they were
    /// measured to take with this stage's limits.
    whole_capacity_s: Option<f64>,
    /// What the plugin declares it applies: the style fields of an audio
    /// plugin, or `say-as` for a text plugin that reads SSML `say-as` hints.
    applies: Vec<String>,
    /// The WIT version the plugin was built against.
    wit: &'static str,
}

/// A refused edit of a pipeline file.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ReloadErrorInfo {
    #[schema(value_type = String)]
    file: PathBuf,
    fingerprint: String,
    /// Every problem, one per line, each with file:line:column.
    message: String,
    at_unix: u64,
}

/// Reloads since the server started.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ReloadCounts {
    accepted: u64,
    refused: u64,
}

fn pipeline_info(p: &Pipeline) -> PipelineInfo {
    PipelineInfo {
        name: p.name.clone(),
        version: p.version,
        file: p.source.clone(),
        description: p.description.clone(),
        voice: p.voice.clone(),
        language: p.language.clone(),
        loaded_at_unix: p
            .loaded_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        audio_per_window: p.audio_per_window(),
        stages: p
            .stages
            .iter()
            .map(|s| StageInfo {
                index: s.index,
                name: s.name.clone(),
                kind: s.kind,
                plugin: s.plugin.as_ref().map(|ps| PluginInfo {
                    name: ps.plugin.id.name.clone(),
                    version: ps.plugin.id.version.clone(),
                    sha256: ps.plugin.id.sha256.clone(),
                    audio_mode: (ps.plugin.kind == voxpipe_types::StageKind::Audio)
                        .then(|| ps.plugin.mode.as_str()),
                    whole_capacity_s: ps.whole_capacity.map(|c| c.seconds),
                    applies: ps.plugin.declared_applies(),
                    wit: ps.plugin.wit_version,
                }),
                limits: s.plugin.as_ref().map(|ps| ps.limits),
            })
            .collect(),
        routes: p.routes.clone(),
        on_unhonored: p.on_unhonored,
    }
}

/// Every current pipeline, and every file whose latest edit was refused.
#[utoipa::path(
    get,
    path = "/v1/pipelines",
    operation_id = "pipelines",
    tag = "catalog",
    summary = "The loaded pipelines, their stages and plugins, and refused edits",
    responses((status = 200, description = "The pipelines.", body = PipelineList), KeyErrors),
    security((), ("admin_key" = []))
)]
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = state.auth.check(&headers, Access::Admin) {
        return Exchange::new(&headers).error(e, &Timings::default());
    }
    let all = state.registry.all();
    let (accepted, refused) = state.registry.reload_counts();
    Json(PipelineList {
        default: state.default_pipeline.clone(),
        pipelines: all.values().map(|p| pipeline_info(p)).collect(),
        errors: state
            .registry
            .errors()
            .into_iter()
            .map(|e: ReloadError| ReloadErrorInfo {
                file: e.file,
                fingerprint: e.fingerprint,
                message: e.message,
                at_unix: e.at_unix,
            })
            .collect(),
        reloads: ReloadCounts { accepted, refused },
    })
    .into_response()
}

/// `GET /readyz` when ready.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Ready {
    /// Always true here.
    ready: bool,
    default_pipeline: String,
    version: u64,
    voice: String,
    /// `cpu` or `cuda:N`.
    device: String,
    queue: QueueInfo,
}

/// Admission: syntheses running and waiting, and the limits of both.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct QueueInfo {
    running: usize,
    queued: usize,
    concurrency: usize,
    capacity: usize,
}

/// `GET /readyz` when not ready.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct NotReady {
    /// Always false here.
    ready: bool,
    error: NotReadyReason,
}

/// Why the server is not ready.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct NotReadyReason {
    /// `shutting_down` or `not_ready`.
    #[serde(rename = "type")]
    #[schema(pattern = "^(shutting_down|not_ready)$")]
    kind: &'static str,
    message: String,
}

/// Ready when the default pipeline is loaded, its voice is loaded, and the
/// server is not shutting down.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readiness",
    tag = "operations",
    summary = "Readiness, for load balancers",
    responses(
        (status = 200, description = "Ready: the default pipeline and its voice are loaded.", body = Ready),
        (status = 503, description = "Not ready, or shutting down.", body = NotReady),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let not_ready = |kind: &'static str, message: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(NotReady {
                ready: false,
                error: NotReadyReason { kind, message },
            }),
        )
            .into_response()
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
    Json(Ready {
        ready: true,
        default_pipeline: p.name.clone(),
        version: p.version,
        voice: p.voice.clone(),
        device: voxpipe_engine::device::device_label(state.service.voices.device()),
        queue: QueueInfo {
            running: a.running(),
            queued: a.queued(),
            concurrency: a.concurrency(),
            capacity: a.queue_capacity(),
        },
    })
    .into_response()
}
