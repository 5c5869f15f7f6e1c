//! How a Wyoming synthesis is observed, as HTTP requests are: one trace per
//! synthesis (a `wyoming.synthesize` server span whose children are the
//! service's `tts.synthesize` spans with their per-stage spans), one log line
//! at its end with the peer address (the trace id comes from the span), and
//! the request metrics counted once with `frontend="wyoming"`.

use std::time::Instant;

use opentelemetry::trace::TraceContextExt;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::telemetry::metrics::{self, Outcome, RequestLabels};
use crate::tts::{Job, TtsError};

/// The root span of one synthesis (a whole `synthesize` or a whole stream).
pub fn synthesis_span(streaming: bool) -> tracing::Span {
    tracing::info_span!(
        parent: None,
        "wyoming.synthesize",
        otel.name = if streaming { "wyoming synthesize-stream" } else { "wyoming synthesize" },
        otel.kind = "server",
        tts.stream = streaming,
        error.type = Empty,
        otel.status_code = Empty,
    )
}

/// The trace id of `span` (32 hex digits), or a fresh one when no
/// OpenTelemetry layer is installed.
pub fn trace_id(span: &tracing::Span) -> String {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        return sc.trace_id().to_string();
    }
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).expect("the OS random source");
    buf[0] |= 1;
    hex::encode(buf)
}

/// The request metrics of one synthesis, counted once: at the end, or (if
/// dropped unfinished, the client gone) as cancelled.
pub struct Tally {
    labels: RequestLabels,
    started: Instant,
    first_audio: bool,
    counted: bool,
    pub audio_seconds: f64,
    span: tracing::Span,
    peer: String,
}

impl Tally {
    pub fn new(span: tracing::Span, peer: &str) -> Tally {
        Tally {
            labels: RequestLabels {
                frontend: "wyoming",
                ..RequestLabels::default()
            },
            started: Instant::now(),
            first_audio: false,
            counted: false,
            audio_seconds: 0.0,
            span,
            peer: peer.to_string(),
        }
    }

    /// The labels of the job's voice and pipeline language (first job wins).
    pub fn label(&mut self, job: &Job) {
        if self.labels.model == "unknown" {
            self.labels.model = job
                .voice
                .clone()
                .unwrap_or_else(|| job.pipeline.voice.clone());
            self.labels.language = job
                .pipeline
                .language
                .clone()
                .unwrap_or_else(|| "unknown".into());
        }
    }

    pub fn first_audio(&mut self) {
        if !self.first_audio {
            self.first_audio = true;
            metrics::first_audio(&self.labels, self.started.elapsed());
        }
    }

    pub fn succeeded(&mut self, cached: bool) {
        let outcome = if cached {
            Outcome::Cached
        } else {
            Outcome::Synthesized {
                elapsed: self.started.elapsed(),
                audio_seconds: self.audio_seconds,
            }
        };
        self.count(outcome, if cached { "cached" } else { "success" }, None);
    }

    pub fn failed(&mut self, e: &TtsError) {
        self.span.record("error.type", e.kind());
        if !matches!(e, TtsError::Cancelled(_)) {
            self.span.record("otel.status_code", "ERROR");
        }
        let outcome = match e {
            TtsError::Cancelled(_) => Outcome::Cancelled,
            e => Outcome::Failed(e.kind()),
        };
        self.count(outcome, "error", Some(e));
    }

    fn count(&mut self, outcome: Outcome<'_>, status: &str, e: Option<&TtsError>) {
        if self.counted {
            return;
        }
        self.counted = true;
        metrics::request_finished(&self.labels, outcome);
        let _in_span = self.span.enter();
        let seconds = self.started.elapsed().as_secs_f64();
        match e {
            Some(e) => tracing::info!(
                peer = %self.peer, status, error.type = e.kind(), error = %e, seconds,
                "wyoming synthesis failed"
            ),
            None => tracing::info!(
                peer = %self.peer, status, voice = %self.labels.model,
                audio_seconds = self.audio_seconds, seconds, "wyoming synthesis"
            ),
        }
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        if !self.counted {
            self.failed(&TtsError::Cancelled("the client went away".into()));
        }
    }
}
