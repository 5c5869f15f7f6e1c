//! The HTTP service (axum). Today it serves health, readiness and the state
//! of the pipelines (versions, stages, plugin ids, refused reloads); the
//! synthesis endpoints build on the same router.

mod pipelines;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;

use crate::pipeline::PipelineRegistry;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<PipelineRegistry>,
    /// The pipeline used when a request names none.
    pub default_pipeline: String,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(pipelines::readyz))
        .route("/v1/pipelines", get(pipelines::list))
        .with_state(state)
}
