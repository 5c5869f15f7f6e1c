//! The HTTP service (axum): synthesis (`POST /v1/tts`, the OpenAI-compatible
//! `POST /v1/audio/speech`), voices, pipelines, health, readiness, and the web
//! page at `/`. docs/api.md documents every endpoint and error.

mod auth;
mod cache;
mod error;
mod observe;
mod openai;
mod page;
mod pipelines;
mod reply;
pub mod trace;
mod tts;
mod voices;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

pub use auth::Auth;
pub use cache::{job_key, AudioCache, CachedAudio};
pub use error::ApiError;

use crate::pipeline::PipelineRegistry;
use crate::tts::TtsService;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<PipelineRegistry>,
    /// The pipeline used when a request names none.
    pub default_pipeline: String,
    pub service: Arc<TtsService>,
    /// Encoded responses of whole (not streamed) syntheses.
    pub cache: Arc<AudioCache>,
    pub auth: Arc<Auth>,
    /// Set when shutdown begins: `/readyz` turns 503 so balancers stop sending.
    pub shutting_down: Arc<AtomicBool>,
    /// The Prometheus recorder's handle (`None`: `/metrics` answers 404).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The `instance` label of the gauges.
    pub instance: String,
}

/// Request bodies larger than this are refused before parsing (the text
/// limit is checked after; this only stops abuse).
const MAX_BODY_BYTES: usize = 4 << 20;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(pipelines::readyz))
        .route("/v1/pipelines", get(pipelines::list))
        .route("/v1/voices", get(voices::list))
        .route("/v1/tts", post(tts::synthesize))
        .route("/v1/audio/speech", post(openai::speech))
        .route("/metrics", get(observe::metrics_text))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(observe::server_span))
        .with_state(state)
}
