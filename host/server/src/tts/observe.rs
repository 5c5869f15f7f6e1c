//! How a synthesis is observed: its span (`tts.synthesize`, with the outcome
//! recorded at the end), and each part's duration, added to the request's
//! [`Timings`] and to the per-stage metrics at once so the two agree.

use std::time::Duration;

use tracing::field::Empty;

use crate::pipeline::Stage;
use crate::telemetry::metrics;

use super::{Job, Timings, TtsError};

/// Adds a host part (`phonemize`, `model`, `resample`, …) to the timings and metrics.
pub(super) fn record_host(timings: &mut Timings, name: &str, desc: Option<String>, d: Duration) {
    timings.add(name, desc, d);
    metrics::stage(name, "host", d);
}

/// A plugin stage's duration under its name, described as `<kind> <plugin>`.
pub(super) fn record_stage(timings: &mut Timings, stage: &Stage, d: Duration) {
    let plugin = stage
        .plugin
        .as_ref()
        .map_or("", |p| p.plugin.id.name.as_str());
    timings.add(&stage.name, Some(format!("{} {plugin}", stage.kind)), d);
    metrics::stage(&stage.name, plugin, d);
}

/// The span of one synthesis; its outcome is recorded by [`finish_span`] or
/// [`fail_span`].
pub(super) fn synthesis_span(job: &Job, stream: bool) -> tracing::Span {
    let language = job
        .language
        .as_deref()
        .or(job.pipeline.language.as_deref())
        .unwrap_or("");
    tracing::info_span!(
        "tts.synthesize",
        tts.language = language,
        tts.mode = if job.instruct.is_some() { "instruct" } else { "plain" },
        tts.voice = Empty,
        tts.stream = stream,
        pipeline.name = %job.pipeline.name,
        pipeline.version = job.pipeline.version as i64,
        style.route = Empty,
        style.unhonored = Empty,
        tts.sentences = Empty,
        tts.audio_seconds = Empty,
        tts.rtf = Empty,
        error.type = Empty,
        otel.status_code = Empty,
    )
}

pub(super) fn finish_span(
    span: &tracing::Span,
    sentences: usize,
    audio_seconds: f64,
    busy: Duration,
) {
    span.record("tts.sentences", sentences as i64);
    span.record("tts.audio_seconds", audio_seconds);
    if audio_seconds > 0.0 {
        span.record("tts.rtf", busy.as_secs_f64() / audio_seconds);
    }
}

/// Style fields nothing applied: on the request's span (attribute and
/// event, both `style.unhonored`, a label like `dialect=sichuanese`) and
/// counted per field.
pub(super) fn record_unhonored(pipeline: &str, fields: &[super::honored::UnhonoredField]) {
    let label = super::honored::label(fields);
    tracing::Span::current().record("style.unhonored", label.as_str());
    tracing::warn!(
        style.unhonored = %label,
        "style unhonored"
    );
    for f in fields {
        crate::telemetry::metrics::style_unhonored(pipeline, f.field.as_str());
    }
}

/// Marks `span` failed with the API error type of `e`. A client that went
/// away is not the server's error: the type is recorded, the status is not.
pub(super) fn fail_span(span: &tracing::Span, e: &TtsError) {
    span.record("error.type", e.kind());
    if !matches!(e, TtsError::Cancelled(_)) {
        span.record("otel.status_code", "ERROR");
    }
}
