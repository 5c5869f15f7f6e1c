//! Running a pipeline's plugin stages for one request.
//!
//! Plugin calls are synchronous and CPU-bound; [`off_executor`] moves them to
//! Tokio's blocking pool so they never stall the async executor's threads.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::plugin::PluginError;
use crate::types::{Audio, ChunkPosition, RequestContext, StageKind, StyleOutcome};

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

fn failure(stage: &Arc<Stage>, error: PluginError) -> StageFailure {
    StageFailure {
        stage: stage.clone(),
        error,
    }
}

/// A span per stage call, named and tagged so traces show every plugin call.
fn stage_span(stage: &Stage, p: &PluginStage) -> tracing::Span {
    tracing::info_span!(
        "stage",
        stage.name = %stage.name,
        stage.kind = stage.kind.as_str(),
        stage.index = stage.index,
        plugin.name = %p.plugin.id.name,
        plugin.version = %p.plugin.id.version,
        plugin.sha256 = %p.plugin.id.sha256,
    )
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
        let mut text = text;
        for (stage, p) in self.plugin_stages(StageKind::Text) {
            let _span = stage_span(stage, p).entered();
            let started = Instant::now();
            let out = p.plugin.call_text(&p.limits, ctx, &p.config, &text);
            observe(stage, started.elapsed());
            text = out.map_err(|e| failure(stage, e))?;
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
        let _span = stage_span(stage, p).entered();
        let started = Instant::now();
        let out = p.plugin.call_style(&p.limits, ctx, &p.config, instruct);
        observe(stage, started.elapsed());
        out.map(Some).map_err(|e| failure(stage, e))
    }

    /// Run every audio stage in order on one chunk.
    pub fn run_audio(
        &self,
        ctx: &RequestContext,
        audio: Audio,
        position: ChunkPosition,
    ) -> Result<Audio, StageFailure> {
        self.run_audio_observed(ctx, audio, position, false, &mut |_, _| {})
    }

    /// Run every audio stage on `audio`, telling `observe` how long each took.
    ///
    /// With `per_sentence`, `audio` is one sentence of a streamed response:
    /// streamable stages see its real `position`, and the others see it as a
    /// whole utterance ([`ChunkPosition::WHOLE`]) — a sentence is complete
    /// speech, which is all a non-streamable stage needs (loudness is then
    /// normalized per sentence).
    pub fn run_audio_observed(
        &self,
        ctx: &RequestContext,
        audio: Audio,
        position: ChunkPosition,
        per_sentence: bool,
        observe: &mut dyn FnMut(&Stage, Duration),
    ) -> Result<Audio, StageFailure> {
        let mut audio = audio;
        for (stage, p) in self.plugin_stages(StageKind::Audio) {
            let _span = stage_span(stage, p).entered();
            let position = if per_sentence && !p.plugin.streamable {
                ChunkPosition::WHOLE
            } else {
                position
            };
            let started = Instant::now();
            let out = p
                .plugin
                .call_audio(&p.limits, ctx, &p.config, audio, position);
            observe(stage, started.elapsed());
            audio = out.map_err(|e| failure(stage, e))?;
        }
        Ok(audio)
    }

    /// True when every audio stage accepts chunk-by-chunk processing.
    pub fn audio_streamable(&self) -> bool {
        self.plugin_stages(StageKind::Audio)
            .all(|(_, p)| p.plugin.streamable)
    }
}

/// Run blocking work (plugin calls) on Tokio's blocking pool, inside the
/// caller's tracing span. A panic in `f` is resumed in the caller.
pub async fn off_executor<R, F>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(f)).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
