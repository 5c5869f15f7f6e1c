//! Guest-side SDK for voxpipe stage plugins.
//!
//! A plugin is a type implementing one of [`TextStage`], [`StyleStage`] or
//! [`AudioStage`], exported with the `export!` macro of the matching world
//! crate (`voxpipe-plugin-text`, `voxpipe-plugin-style`,
//! `voxpipe-plugin-audio`). Those crates hold the generated Wasm bindings;
//! this one holds the plain Rust types, so plugin logic can be unit-tested
//! natively with `cargo test`.
//!
//! Every call runs in a fresh instance: keep no state between calls. An audio
//! stage that must remember something from one block to the next returns it
//! as the block's `state` ([`state`] has a small encoding for it); the host
//! hands it to the next call.

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod alloc;
mod config;
pub mod drive;
pub mod log;
pub mod say_as;
pub mod state;
mod types;

#[doc(hidden)]
pub mod wit_glue;

pub use config::Config;
pub use say_as::{SayAs, SAY_AS_KEY};
pub use types::*;

/// The trait of a `text` stage: text in, text out.
pub trait TextStage {
    /// Name, version and description of the plugin.
    fn info() -> PluginInfo;
    /// Check the stage's config table when a pipeline is loaded.
    fn check_config(_config: &Config) -> Result<(), StageError> {
        Ok(())
    }
    /// Transform the request's text.
    fn normalize(ctx: &Context, config: &Config, text: String) -> Result<String, StageError>;
}

/// The trait of a `style` stage: an instruction in, a style out.
pub trait StyleStage {
    /// Name, version and description of the plugin.
    fn info() -> PluginInfo;
    /// Check the stage's config table when a pipeline is loaded.
    fn check_config(_config: &Config) -> Result<(), StageError> {
        Ok(())
    }
    /// Map an instruction to a style, or say why it cannot be mapped.
    fn map_instruct(
        ctx: &Context,
        config: &Config,
        instruct: &str,
    ) -> Result<StyleOutcome, StageError>;
}

/// The trait of an `audio` stage: samples in, samples out, block by block.
pub trait AudioStage {
    /// Name, version and description of the plugin. Call
    /// [`PluginInfo::two_pass`] for a stage that measures the utterance
    /// before it applies anything.
    fn info() -> PluginInfo;
    /// Check the stage's config table when a pipeline is loaded.
    fn check_config(_config: &Config) -> Result<(), StageError> {
        Ok(())
    }
    /// Process one block of an utterance (`process-block` in the WIT):
    /// `block.state` is what the previous call returned, empty at first.
    /// [`drive::run_blocks`] runs a stage over a whole utterance as the host
    /// does, for tests.
    fn process_block(
        ctx: &Context,
        config: &Config,
        block: Block,
    ) -> Result<BlockOutput, StageError>;
}
