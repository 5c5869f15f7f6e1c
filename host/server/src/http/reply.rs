//! Building responses: every one, audio or error, carries the trace
//! (`X-Trace-Id`, `traceparent`) and `Server-Timing`; errors are
//! `{"error": {"type", "message", …}}` with the status of their type.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::trace::TraceContext;
use crate::telemetry::metrics::{self, Outcome, RequestLabels};
use crate::tts::{StyleReport, Timings, TtsError};

/// The per-request facts every response repeats.
pub struct Exchange {
    pub trace: TraceContext,
    pub started: Instant,
    /// Set on synthesis requests: their outcome is counted in the metrics
    /// under these labels (known once the request names a pipeline).
    pub synthesis: Option<RequestLabels>,
}

impl Exchange {
    pub fn new(headers: &axum::http::HeaderMap) -> Exchange {
        Exchange {
            trace: TraceContext::current(headers),
            started: Instant::now(),
            synthesis: None,
        }
    }

    /// An exchange whose outcome counts as a synthesis request.
    pub fn synthesis(headers: &axum::http::HeaderMap) -> Exchange {
        Exchange {
            synthesis: Some(RequestLabels::default()),
            ..Exchange::new(headers)
        }
    }

    /// Counts this request's outcome (synthesis requests only).
    pub fn count(&self, outcome: Outcome<'_>) {
        if let Some(labels) = &self.synthesis {
            metrics::request_finished(labels, outcome);
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Adds the trace and timing headers.
    pub fn decorate(&self, response: &mut Response, timings: &Timings) {
        let h = response.headers_mut();
        set(h, "x-trace-id", &self.trace.trace_id);
        set(h, "traceparent", &self.trace.traceparent());
        set(h, "server-timing", &timings.header(self.elapsed()));
        // Let the page's script read them on cross-origin setups too.
        set(
            h,
            "access-control-expose-headers",
            "x-trace-id, traceparent, server-timing, x-style-mapped, x-style-unmapped, x-cache",
        );
    }

    /// The error response of `err`.
    pub fn error(&self, err: &TtsError, timings: &Timings) -> Response {
        let mut body = json!({
            "error": {
                "type": err.kind(),
                "message": err.to_string(),
                "trace_id": self.trace.trace_id,
            }
        });
        if let Some(f) = err.stage() {
            body["error"]["stage"] = json!({
                "index": f.stage.index,
                "name": f.stage.name,
                "kind": f.stage.kind,
                "plugin": f.stage.plugin.as_ref().map(|p| format!("{}@{}", p.plugin.id.name, p.plugin.id.version)),
                "error": f.error.kind(),
            });
        }
        let status =
            StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(error.type = err.kind(), error = %err, "request failed");
        } else {
            tracing::info!(error.type = err.kind(), error = %err, "request refused");
        }
        self.count(match err {
            TtsError::Cancelled(_) => Outcome::Cancelled,
            e => Outcome::Failed(e.kind()),
        });
        let mut response = Response::new(Body::from(body.to_string()));
        *response.status_mut() = status;
        set(response.headers_mut(), "content-type", "application/json");
        if let Some(secs) = err.retry_after() {
            set(response.headers_mut(), "retry-after", &secs.to_string());
        }
        response
            .extensions_mut()
            .insert(super::observe::ErrorType(err.kind()));
        if status == StatusCode::UNAUTHORIZED {
            set(response.headers_mut(), "www-authenticate", "Bearer");
        }
        self.decorate(&mut response, timings);
        response
    }

    /// A successful response with `body`.
    pub fn audio(
        &self,
        body: Body,
        content_type: &str,
        timings: &Timings,
        style: &StyleReport,
    ) -> Response {
        let mut response = Response::new(body);
        let h = response.headers_mut();
        set(h, "content-type", content_type);
        set(h, "cache-control", "no-store");
        if let Some(m) = &style.mapped {
            set_utf8(h, "x-style-mapped", m);
        }
        if let Some(u) = &style.unmapped {
            set_utf8(h, "x-style-unmapped", u);
        }
        self.decorate(&mut response, timings);
        response
    }
}

pub fn set(h: &mut axum::http::HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

/// Header values may carry UTF-8 bytes (the page decodes them); control
/// characters are dropped and long values cut.
fn set_utf8(h: &mut axum::http::HeaderMap, name: &'static str, value: &str) {
    let clean: String = value
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if let Ok(v) = HeaderValue::from_bytes(clean.as_bytes()) {
        h.insert(HeaderName::from_static(name), v);
    }
}
