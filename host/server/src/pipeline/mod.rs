//! Pipelines: named, versioned TOML definitions of a voice and its ordered
//! stages. This module loads and validates them ([`load`]), keeps the current
//! version of each and swaps in edits atomically ([`registry`], [`watch`]),
//! and runs their plugin stages ([`run`]; audio stages block by block,
//! [`blocks`]).
//!
//! A request takes an `Arc<Pipeline>` once and runs entirely on it, so a
//! reload never tears a request.

pub mod blocks;
mod definition;
pub mod load;
pub mod registry;
pub mod routes;
pub mod run;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use voxpipe_plugin::{LoadedPlugin, PluginLimits, StageConfig};
use voxpipe_types::StageKind;

pub use blocks::{AudioChain, ChainError, End, WholeCapacity};
pub use load::{load_pipeline, resolve_plugin, LoadContext, PipelineError, PipelineErrors};
pub use registry::{PipelineRegistry, RegistryOptions, ReloadError, ScanReport};
pub use routes::{OnUnhonored, Route};
pub use run::StageFailure;
pub use watch::{watch, Watcher};

/// One version of a pipeline. Immutable once loaded.
pub struct Pipeline {
    pub name: String,
    pub description: Option<String>,
    /// The voice the model stage speaks with, unless a style or request overrides it.
    pub voice: String,
    /// Default language of requests (BCP 47).
    pub language: Option<String>,
    pub source: PathBuf,
    /// Numbered by the registry, from 1, per pipeline name.
    pub version: u64,
    pub loaded_at: SystemTime,
    /// The pipeline-wide default limits of plugin stages.
    pub limits: PluginLimits,
    pub stages: Vec<Arc<Stage>>,
    /// `[[routes]]`: the voice for a style, first match wins.
    pub routes: Vec<Route>,
    /// What to do with a style that has fields nothing applies.
    pub on_unhonored: OnUnhonored,
}

/// One stage of a pipeline.
#[derive(Debug)]
pub struct Stage {
    /// Position in the pipeline, from 0.
    pub index: usize,
    pub name: String,
    pub kind: StageKind,
    /// `None` for the native model stage.
    pub plugin: Option<PluginStage>,
}

/// The plugin of a plugin stage, with its config and limits.
#[derive(Debug)]
pub struct PluginStage {
    pub plugin: Arc<LoadedPlugin>,
    pub config: StageConfig,
    pub limits: PluginLimits,
    /// A 0.1/0.2 audio stage that takes whole utterances: the longest one
    /// it was measured to take with these limits and config (at load).
    pub whole_capacity: Option<WholeCapacity>,
}

impl Pipeline {
    /// Plugin stages of one kind, in order.
    pub fn plugin_stages(
        &self,
        kind: StageKind,
    ) -> impl Iterator<Item = (&Arc<Stage>, &PluginStage)> {
        self.stages
            .iter()
            .filter(move |s| s.kind == kind)
            .filter_map(|s| s.plugin.as_ref().map(|p| (s, p)))
    }
}
