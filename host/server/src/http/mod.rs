//! The HTTP service (axum): synthesis (`POST /v1/tts`, the OpenAI-compatible
//! `POST /v1/audio/speech`), voices, pipelines, health, readiness, and the web
//! page at `/`, and `GET /openapi.json`, the OpenAPI document of all of them.
//! docs/api.md documents every endpoint and error.

mod auth;
mod cache;
mod error;
mod observe;
mod openai;
mod openapi;
mod page;
mod pipelines;
mod reply;
pub mod trace;
mod tts;
mod voices;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::body::Bytes;
use axum::{Extension, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

/// Every route with its OpenAPI operation (`#[utoipa::path]` on the
/// handler): the router and `GET /openapi.json` are made from this one list,
/// so add routes here with `routes!`, never with a plain `.route`.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(page::index))
        .routes(routes!(healthz))
        .routes(routes!(pipelines::readyz))
        .routes(routes!(pipelines::list))
        .routes(routes!(voices::list))
        .routes(routes!(tts::synthesize))
        .routes(routes!(openai::speech))
        .routes(routes!(observe::metrics_text))
        .routes(routes!(openapi::document))
}

/// The OpenAPI document of the API as a server with this `max_text_chars`
/// serves it at `GET /openapi.json`.
pub fn openapi_document(max_text_chars: usize) -> utoipa::openapi::OpenApi {
    let (_, mut doc) = routes().split_for_parts();
    openapi::finish(&mut doc, max_text_chars);
    doc
}

pub fn router(state: AppState) -> Router {
    let (router, mut doc) = routes().split_for_parts();
    openapi::finish(&mut doc, state.service.options.max_text_chars);
    let json = doc.to_json().expect("the OpenAPI document serializes");
    router
        .layer(Extension(openapi::Document(Bytes::from(json))))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(observe::server_span))
        .with_state(state)
}

/// `GET /healthz`.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "health",
    tag = "operations",
    summary = "Liveness: the process answers",
    responses((status = 200, description = "`ok`", content_type = "text/plain; charset=utf-8", body = String))
)]
async fn healthz() -> &'static str {
    "ok\n"
}
