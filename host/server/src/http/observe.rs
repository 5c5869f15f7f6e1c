//! The HTTP side of telemetry: one server span per request (OpenTelemetry
//! semantic conventions, continuing an incoming W3C `traceparent`), and
//! `GET /metrics` for Prometheus.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing::field::Empty;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::trace::parse_traceparent;
use super::AppState;
use crate::telemetry::metrics;

/// The API error type of an error response, left in its extensions by
/// `Exchange::error` so the server span can name it (4xx included).
#[derive(Debug, Clone, Copy)]
pub struct ErrorType(pub &'static str);

/// Routes probed every few seconds: tracing them would bury real requests.
const UNTRACED: [&str; 3] = ["/metrics", "/healthz", "/readyz"];

/// Wraps every request in its server span.
pub async fn server_span(matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let route = matched.as_ref().map(|m| m.as_str().to_string());
    if route.as_deref().is_some_and(|r| UNTRACED.contains(&r)) {
        return next.run(request).await;
    }
    let method = request.method().as_str().to_string();
    let name = match &route {
        Some(r) => format!("{method} {r}"),
        None => method.clone(),
    };
    let span = tracing::info_span!(
        "http.server",
        otel.name = %name,
        otel.kind = "server",
        http.request.method = %method,
        url.scheme = "http",
        // Only matched routes: an unmatched path is whatever the client typed.
        url.path = route.as_ref().map(|_| request.uri().path()),
        http.route = route.as_deref(),
        http.response.status_code = Empty,
        error.type = Empty,
        otel.status_code = Empty,
    );
    if let Some(parent) = remote_parent(request.headers()) {
        let _ = span.set_parent(parent);
    }
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    match response.extensions().get::<ErrorType>() {
        Some(ErrorType(kind)) => {
            span.record("error.type", *kind);
        }
        // Semantic conventions: the status code when nothing better is known.
        None if status.is_client_error() || status.is_server_error() => {
            span.record("error.type", status.as_str());
        }
        None => {}
    }
    // Only server errors are the server's failures (semantic conventions).
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    response
}

/// The caller's span from a valid `traceparent`, as an OpenTelemetry context.
fn remote_parent(headers: &HeaderMap) -> Option<opentelemetry::Context> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    let (trace, span, sampled) = parse_traceparent(value)?;
    let sc = SpanContext::new(
        TraceId::from_hex(&trace).ok()?,
        SpanId::from_hex(&span).ok()?,
        if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        TraceState::default(),
    );
    Some(opentelemetry::Context::new().with_remote_span_context(sc))
}

/// `GET /metrics`: the Prometheus text format. Gauges are sampled now.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    responses(
        (status = 200, description = "The Prometheus text format.", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 404, description = "Metrics are not enabled on this server.", content_type = "text/plain; charset=utf-8", body = String),
    )
)]
pub async fn metrics_text(State(state): State<AppState>) -> Response {
    let Some(handle) = &state.metrics else {
        return (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response();
    };
    let admission = &state.service.admission;
    let gpu = voxpipe_engine::device::gpu_memory(state.service.voices.device());
    metrics::sample_gauges(
        &state.instance,
        admission.queued(),
        admission.running(),
        gpu,
    );
    handle.run_upkeep();
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        handle.render(),
    )
        .into_response()
}
