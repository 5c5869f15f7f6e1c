//! The plugin runtime: loads stage plugins (Wasm components), checks them
//! against the stage worlds of `wit/stages.wit`, and runs each call in a
//! fresh sandboxed instance under the stage's limits.
//!
//! Nothing here knows about voices, pipelines or HTTP.

mod bindings;
mod cache;
mod compile;
mod config;
mod error;
mod limits;
mod loaded;
mod output;
mod runtime;
mod sanitize;
mod store;
mod wasi;

pub use cache::default_cache_dir;
pub use compile::{wrap_core_module, CompileOptions, WORKER_COMMAND};
pub use config::StageConfig;
pub use error::{LoadError, PluginError};
pub use limits::PluginLimits;
pub use loaded::{LoadedPlugin, Origin, PluginId};
pub use output::MAX_LABEL;
pub use runtime::{compile_worker, PluginRuntime, RuntimeOptions, RuntimeStats, EPOCH_TICK};
pub use sanitize::one_line;
pub use store::{MAX_LOG_LINE, MAX_LOG_LINES};
