//! W3C trace context on the wire: every response names its trace
//! (`X-Trace-Id`, `traceparent`) so a user can hand it to support, and an
//! incoming `traceparent` continues the caller's trace.

use axum::http::HeaderMap;

/// The trace a request belongs to and this server's span in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits, never all zeros.
    pub trace_id: String,
    /// This server's span: 16 hex digits.
    pub span_id: String,
    /// The caller's span, when the trace came in with the request.
    pub parent_span_id: Option<String>,
    pub sampled: bool,
}

impl TraceContext {
    /// The trace of the current span (the request's server span, see
    /// `observe.rs`), so headers, logs and exported spans share one id; from
    /// the headers alone when no OpenTelemetry span is current.
    pub fn current(headers: &HeaderMap) -> TraceContext {
        let cx = opentelemetry::Context::current();
        let span = opentelemetry::trace::TraceContextExt::span(&cx);
        let sc = span.span_context();
        if !sc.is_valid() {
            return TraceContext::from_headers(headers);
        }
        TraceContext {
            trace_id: sc.trace_id().to_string(),
            span_id: sc.span_id().to_string(),
            parent_span_id: headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_traceparent)
                .map(|(_, parent, _)| parent),
            sampled: sc.is_sampled(),
        }
    }

    /// Continues the caller's trace from `traceparent`, or starts a new one.
    /// A malformed header is ignored (the spec says: start a new trace).
    pub fn from_headers(headers: &HeaderMap) -> TraceContext {
        headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent)
            .map(|(trace_id, parent, sampled)| TraceContext {
                trace_id,
                span_id: random_hex(8),
                parent_span_id: Some(parent),
                sampled,
            })
            .unwrap_or_else(|| TraceContext {
                trace_id: random_hex(16),
                span_id: random_hex(8),
                parent_span_id: None,
                sampled: true,
            })
    }

    /// `00-<trace>-<span>-<flags>` naming this server's span.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{}",
            self.trace_id,
            self.span_id,
            if self.sampled { "01" } else { "00" }
        )
    }
}

/// (trace id, parent span id, sampled) of a valid version-00 `traceparent`.
pub(super) fn parse_traceparent(v: &str) -> Option<(String, String, bool)> {
    let parts: Vec<&str> = v.trim().split('-').collect();
    let [version, trace, span, flags] = parts.as_slice() else {
        // Future versions may append fields; version 00 has exactly four.
        return None;
    };
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    if !hex(version, 2) || *version == "ff" || !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
        return None;
    }
    if trace.bytes().all(|b| b == b'0') || span.bytes().all(|b| b == b'0') {
        return None;
    }
    let sampled = u8::from_str_radix(flags, 16).ok()? & 1 == 1;
    Some((trace.to_string(), span.to_string(), sampled))
}

/// `bytes` random bytes as hex (never all zeros).
fn random_hex(bytes: usize) -> String {
    loop {
        let mut buf = vec![0u8; bytes];
        getrandom::fill(&mut buf).expect("the OS random source");
        if buf.iter().any(|&b| b != 0) {
            return hex::encode(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_a_valid_traceparent() {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let t = TraceContext::from_headers(&h);
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_ne!(t.span_id, "00f067aa0ba902b7");
        assert!(t
            .traceparent()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(t.traceparent().ends_with("-01"));
    }

    #[test]
    fn starts_a_new_trace_on_bad_input() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            let mut h = HeaderMap::new();
            h.insert("traceparent", bad.parse().unwrap());
            let t = TraceContext::from_headers(&h);
            assert!(t.parent_span_id.is_none(), "{bad}");
            assert_eq!(t.trace_id.len(), 32);
            assert_eq!(t.span_id.len(), 16);
        }
    }
}
