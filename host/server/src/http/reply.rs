//! Building responses: every one, audio or error, carries the trace
//! (`X-Trace-Id`, `traceparent`) and `Server-Timing`; errors are
//! `{"error": {"type", "message", …}}` with the status of their type.

use std::time::{Duration, Instant};

use super::error::{ApiError, ErrorBody};
use super::trace::TraceContext;
use crate::telemetry::metrics::{self, Outcome, RequestLabels};
use crate::tts::{StyleReport, Timings};
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

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
        set(h, "server-timing", &server_timing(timings, self.elapsed()));
        // Let the page's script read them on cross-origin setups too.
        set(
            h,
            "access-control-expose-headers",
            "x-trace-id, traceparent, server-timing, x-style-mapped, x-style-unmapped, x-style-unhonored, x-cache",
        );
    }

    /// The error response of `err`.
    pub fn error(&self, err: impl Into<ApiError>, timings: &Timings) -> Response {
        let err = err.into();
        let body = ErrorBody::new(&err, &self.trace.trace_id);
        let status =
            StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(error.type = err.kind(), error = %err, "request failed");
        } else {
            tracing::info!(error.type = err.kind(), error = %err, "request refused");
        }
        self.count(if err.is_cancelled() {
            Outcome::Cancelled
        } else {
            Outcome::Failed(err.kind())
        });
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = Response::new(Body::from(body));
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
        if let Some(u) = &style.unhonored {
            set_utf8(h, "x-style-unhonored", u);
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

/// The `Server-Timing` value of `timings`:
/// `name;desc="…";dur=12.3, …, total;dur=…` (milliseconds, as the spec says).
pub fn server_timing(timings: &Timings, total: Duration) -> String {
    let mut parts: Vec<String> = timings
        .entries
        .iter()
        .map(|t| {
            let dur = t.duration.as_secs_f64() * 1e3;
            let name = token(&t.name);
            match &t.desc {
                Some(d) => format!("{name};desc=\"{}\";dur={dur:.2}", quote(d)),
                None => format!("{name};dur={dur:.2}"),
            }
        })
        .collect();
    parts.push(format!("total;dur={:.2}", total.as_secs_f64() * 1e3));
    parts.join(", ")
}

/// A header token: stage names are free text in pipeline files.
fn token(name: &str) -> String {
    let t: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() {
        "stage".into()
    } else {
        t
    }
}

fn quote(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .map(|c| if c == '"' || c == '\\' { '\'' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sums_repeats_and_escapes() {
        let mut t = Timings::default();
        t.add(
            "normalize",
            Some("text en-normalize".into()),
            Duration::from_micros(410),
        );
        t.add("model", None, Duration::from_millis(100));
        t.add("model", None, Duration::from_millis(50));
        t.add(
            "my stage",
            Some("a \"quoted\" 说".into()),
            Duration::from_millis(1),
        );
        assert_eq!(t.get("model"), Some(Duration::from_millis(150)));
        assert_eq!(
            server_timing(&t, Duration::from_millis(200)),
            "normalize;desc=\"text en-normalize\";dur=0.41, model;dur=150.00, \
             my_stage;desc=\"a 'quoted' \";dur=1.00, total;dur=200.00"
        );
    }
}
