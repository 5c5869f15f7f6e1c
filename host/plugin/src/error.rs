//! Typed errors of the plugin runtime: what went wrong loading a plugin, and
//! what went wrong in one call.

use std::path::PathBuf;
use std::time::Duration;

/// Why one plugin call failed. The runtime is unharmed in every case: the
/// call's store is thrown away and the next call starts fresh.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PluginError {
    /// The plugin refused the input (its `invalid-input`): the caller's fault.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The plugin refused its config table (its `invalid-config`).
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The plugin reported a fault of its own (its `plugin-fault`).
    #[error("plugin fault: {0}")]
    Fault(String),
    /// The plugin trapped: a panic, a stack overflow, an out-of-bounds access.
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The call ran past its deadline and was interrupted.
    #[error("plugin call exceeded its deadline of {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The call tried to grow its memory past the limit.
    #[error("plugin call exceeded its memory limit of {} MiB", .0 >> 20)]
    MemoryLimit(usize),
    /// The call returned more than the output limit.
    #[error("plugin output of {size} bytes exceeds the limit of {limit} bytes")]
    OutputTooLarge { size: usize, limit: usize },
    /// The call returned something the host cannot use: a number out of its
    /// documented range, an audio format the host does not support, a name
    /// with control characters, a malformed value, or it called `exit`.
    #[error("plugin returned an unusable result: {0}")]
    BadOutput(String),
    /// No instance slot was free: too many concurrent plugin calls.
    #[error("too many concurrent plugin calls")]
    Overloaded,
    /// Something failed in the host itself (a bug on our side).
    #[error("plugin runtime error: {0}")]
    Internal(String),
}

impl PluginError {
    /// A stable, low-cardinality name of the error kind, for metrics labels,
    /// span attributes and API error types.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::InvalidInput(_) => "invalid_input",
            PluginError::InvalidConfig(_) => "invalid_config",
            PluginError::Fault(_) => "plugin_fault",
            PluginError::Trap(_) => "trap",
            PluginError::Timeout(_) => "timeout",
            PluginError::MemoryLimit(_) => "memory_limit",
            PluginError::OutputTooLarge { .. } => "output_too_large",
            PluginError::BadOutput(_) => "bad_output",
            PluginError::Overloaded => "overloaded",
            PluginError::Internal(_) => "internal",
        }
    }

    /// True when the plugin (not the caller, not the host) is to blame.
    pub fn is_plugin_fault(&self) -> bool {
        matches!(
            self,
            PluginError::Fault(_)
                | PluginError::Trap(_)
                | PluginError::Timeout(_)
                | PluginError::MemoryLimit(_)
                | PluginError::OutputTooLarge { .. }
                | PluginError::BadOutput(_)
        )
    }
}

/// Why a plugin file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a WebAssembly file", .0.display())]
    NotWasm(PathBuf),
    #[error("{} is {} MiB; plugins may be at most {} MiB", path.display(), size >> 20, limit >> 20)]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: usize,
    },
    #[error("{}: compiling took longer than {} s (the limit); the plugin is not loaded", path.display(), limit.as_secs_f64())]
    CompileTimeout { path: PathBuf, limit: Duration },
    #[error("{}: compiling needed more than {} MiB of memory (the limit); the plugin is not loaded", path.display(), limit >> 20)]
    CompileMemory { path: PathBuf, limit: usize },
    #[error("{}: compiling failed: {reason}", path.display())]
    Compile { path: PathBuf, reason: String },
    #[error("{} is a core module without a component type: build it with wit-bindgen (see docs/plugins.md) or wrap it with `wasm-tools component new`: {reason}", path.display())]
    NotAComponent { path: PathBuf, reason: String },
    #[error("{} is not a valid component: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("{} implements no voxpipe stage world (it exports: {exports}); expected `normalize` (text-stage), `map-instruct` (style-stage) or `process` (audio-stage)", path.display())]
    NoStageWorld { path: PathBuf, exports: String },
    #[error("{} does not match the voxpipe:stages@0.1 {world} world: {reason}", path.display())]
    WorldMismatch {
        path: PathBuf,
        world: &'static str,
        reason: String,
    },
    #[error("{} needs imports the host does not provide: {reason}", path.display())]
    Imports { path: PathBuf, reason: String },
    #[error("{}: `describe` failed: {source}", path.display())]
    Describe { path: PathBuf, source: PluginError },
    #[error("{}: describe() returned an unusable {field}: it {problem}", path.display())]
    BadInfo {
        path: PathBuf,
        field: &'static str,
        problem: String,
    },
    #[error("{}: describe() says kind {said}, but the component exports the {world} world", path.display())]
    KindMismatch {
        path: PathBuf,
        said: &'static str,
        world: &'static str,
    },
}
