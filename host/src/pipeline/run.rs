//! Running a pipeline's plugin stages for one request.
//!
//! Plugin calls are synchronous and CPU-bound; [`off_executor`] moves them to
//! Tokio's blocking pool so they never stall the async executor's threads.

use crate::plugin::{PluginError, PluginId};
use crate::types::{Audio, ChunkPosition, RequestContext, StageKind, StyleOutcome};

use super::{Pipeline, PluginStage, Stage};

/// A stage that failed, and how.
#[derive(Debug, Clone, thiserror::Error)]
#[error("stage {} \"{stage}\" ({kind}, plugin {}@{}): {error}", index + 1, plugin.name, plugin.version)]
pub struct StageFailure {
    /// Position in the pipeline, from 0.
    pub index: usize,
    pub stage: String,
    pub kind: StageKind,
    pub plugin: PluginId,
    pub error: PluginError,
}

fn failure(stage: &Stage, p: &PluginStage, error: PluginError) -> StageFailure {
    StageFailure {
        index: stage.index,
        stage: stage.name.clone(),
        kind: stage.kind,
        plugin: p.plugin.id.clone(),
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
        let mut text = text;
        for (stage, p) in self.plugin_stages(StageKind::Text) {
            let _span = stage_span(stage, p).entered();
            text = p
                .plugin
                .call_text(&p.limits, ctx, &p.config, &text)
                .map_err(|e| failure(stage, p, e))?;
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
        let Some((stage, p)) = self.plugin_stages(StageKind::Style).next() else {
            return Ok(None);
        };
        let _span = stage_span(stage, p).entered();
        p.plugin
            .call_style(&p.limits, ctx, &p.config, instruct)
            .map(Some)
            .map_err(|e| failure(stage, p, e))
    }

    /// Run every audio stage in order on one chunk.
    pub fn run_audio(
        &self,
        ctx: &RequestContext,
        audio: Audio,
        position: ChunkPosition,
    ) -> Result<Audio, StageFailure> {
        let mut audio = audio;
        for (stage, p) in self.plugin_stages(StageKind::Audio) {
            let _span = stage_span(stage, p).entered();
            audio = p
                .plugin
                .call_audio(&p.limits, ctx, &p.config, &audio, position)
                .map_err(|e| failure(stage, p, e))?;
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
