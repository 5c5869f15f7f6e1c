//! Running a pipeline's plugin stages for one request.
//!
//! Plugin calls are synchronous and CPU-bound: callers run them off the async
//! executor's threads ([`crate::blocking::off_executor`]).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing_opentelemetry::OpenTelemetrySpanExt;

use tracing::field::Empty;

use crate::telemetry::{metrics, privacy, truncate_chars};
use voxpipe_plugin::PluginError;
use voxpipe_types::{RequestContext, StageKind, StyleOutcome};

use super::{Pipeline, PluginStage, Stage};

/// A stage that failed, and how. `stage` names the stage, its kind, index
/// and plugin (name, version, sha256).
#[derive(Debug, Clone)]
pub struct StageFailure {
    pub stage: Arc<Stage>,
    pub error: PluginError,
}

impl fmt::Display for StageFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stage;
        write!(f, "stage {} \"{}\" ({}", s.index + 1, s.name, s.kind)?;
        if let Some(p) = &s.plugin {
            write!(f, ", plugin {}@{}", p.plugin.id.name, p.plugin.id.version)?;
        }
        write!(f, "): {}", self.error)
    }
}

impl std::error::Error for StageFailure {}

/// A span per stage call, named `stage <name>` and tagged so a trace shows
/// every plugin call, its sizes and its outcome (docs/observability.md).
pub(super) fn stage_span(stage: &Stage, p: &PluginStage, input_bytes: usize) -> tracing::Span {
    tracing::info_span!(
        "stage",
        otel.name = %format!("stage {}", stage.name),
        stage.name = %stage.name,
        stage.kind = stage.kind.as_str(),
        stage.index = stage.index as i64,
        plugin.name = %p.plugin.id.name,
        plugin.version = %p.plugin.id.version,
        plugin.sha256 = %p.plugin.id.sha256,
        stage.input_bytes = input_bytes as i64,
        stage.output_bytes = Empty,
        stage.outcome = Empty,
        instruct_raw = Empty,
        instruct_mapped = Empty,
        audio.pass = Empty,
        audio.block = Empty,
        error.type = Empty,
        otel.status_code = Empty,
    )
}

/// Records how a stage call ended on its span and in the metrics.
pub(super) fn finish<T>(
    span: &tracing::Span,
    stage: &Arc<Stage>,
    p: &PluginStage,
    out: Result<T, PluginError>,
    output_bytes: impl Fn(&T) -> usize,
) -> Result<T, StageFailure> {
    match out {
        Ok(v) => {
            span.record("stage.output_bytes", output_bytes(&v) as i64);
            span.record("stage.outcome", "ok");
            Ok(v)
        }
        Err(error) => {
            let kind = error.kind();
            span.record("stage.outcome", kind);
            span.record("error.type", kind);
            span.record("otel.status_code", "ERROR");
            metrics::plugin_fault(&p.plugin.id.name, kind);
            tracing::warn!(parent: span, stage = %stage.name, plugin = %p.plugin.id.name, error.type = kind, "plugin stage failed: {error}");
            Err(StageFailure {
                stage: stage.clone(),
                error,
            })
        }
    }
}

impl Pipeline {
    /// Run every text stage in order.
    pub fn run_text(&self, ctx: &RequestContext, text: String) -> Result<String, StageFailure> {
        self.run_text_observed(ctx, text, &mut |_, _| {})
    }

    /// [`Pipeline::run_text`], telling `observe` how long each stage took.
    pub fn run_text_observed(
        &self,
        ctx: &RequestContext,
        text: String,
        observe: &mut dyn FnMut(&Stage, Duration),
    ) -> Result<String, StageFailure> {
        self.run_text_hinted(ctx, text, None, observe)
    }

    /// Whether the first text stage takes SSML `say-as` hints (it declared
    /// `applies = ["say-as"]`).
    pub fn takes_say_as(&self) -> bool {
        self.plugin_stages(StageKind::Text)
            .next()
            .is_some_and(|(_, p)| p.plugin.say_as)
    }

    /// [`Pipeline::run_text_observed`], with SSML `say-as` hints (a JSON
    /// list over `text`) for the first text stage, in its config's `say_as`
    /// key, when it takes them ([`Pipeline::takes_say_as`]).
    pub fn run_text_hinted(
        &self,
        ctx: &RequestContext,
        text: String,
        say_as: Option<serde_json::Value>,
        observe: &mut dyn FnMut(&Stage, Duration),
    ) -> Result<String, StageFailure> {
        let mut text = text;
        let mut hints = say_as;
        for (stage, p) in self.plugin_stages(StageKind::Text) {
            let span = stage_span(stage, p, text.len());
            let started = Instant::now();
            let hinted = hints
                .take()
                .filter(|_| p.plugin.say_as)
                .map(|h| p.config.with("say_as", h));
            let config = hinted.as_ref().unwrap_or(&p.config);
            let out = span.in_scope(|| p.plugin.call_text(&p.limits, ctx, config, &text));
            observe(stage, started.elapsed());
            text = finish(&span, stage, p, out, String::len)?;
        }
        Ok(text)
    }

    /// Map an instruction with the style stage; `None` when the pipeline has
    /// no style stage.
    pub fn run_style(
        &self,
        ctx: &RequestContext,
        instruct: &str,
    ) -> Result<Option<StyleOutcome>, StageFailure> {
        self.run_style_observed(ctx, instruct, &mut |_, _| {})
    }

    /// [`Pipeline::run_style`], telling `observe` how long the stage took.
    pub fn run_style_observed(
        &self,
        ctx: &RequestContext,
        instruct: &str,
        observe: &mut dyn FnMut(&Stage, Duration),
    ) -> Result<Option<StyleOutcome>, StageFailure> {
        let Some((stage, p)) = self.plugin_stages(StageKind::Style).next() else {
            return Ok(None);
        };
        let span = stage_span(stage, p, instruct.len());
        // The instruction is user input: only its first characters, and only
        // as far as the operator allows (telemetry.instruct_max_chars).
        let max = privacy().instruct_max_chars;
        if max > 0 {
            span.record("instruct_raw", truncate_chars(instruct, max).as_str());
        }
        let started = Instant::now();
        let out = span.in_scope(|| p.plugin.call_style(&p.limits, ctx, &p.config, instruct));
        observe(stage, started.elapsed());
        let outcome = finish(&span, stage, p, out, |o| match o {
            StyleOutcome::Mapped { label, .. } => label.len(),
            StyleOutcome::Unmapped { reason } => reason.len(),
        })?;
        match &outcome {
            StyleOutcome::Mapped { label, .. } => {
                span.record("instruct_mapped", label.as_str());
            }
            StyleOutcome::Unmapped { reason } => {
                // Empty, not absent, so TraceQL `span.instruct_mapped = ""` finds them.
                span.record("instruct_mapped", "");
                // The reason may quote the instruction: the same limit applies.
                let attributes = if max > 0 {
                    vec![opentelemetry::KeyValue::new(
                        "instruct.reason",
                        truncate_chars(reason, max),
                    )]
                } else {
                    Vec::new()
                };
                span.add_event("instruct not mapped", attributes);
            }
        }
        Ok(Some(outcome))
    }

    /// True when no audio stage needs a whole utterance (in a stream, a
    /// sentence) before it answers, so a stream's audio can go out window
    /// by window as the decoder makes it.
    pub fn audio_per_window(&self) -> bool {
        !self
            .plugin_stages(StageKind::Audio)
            .any(|(_, p)| p.plugin.mode.buffers())
    }
}
