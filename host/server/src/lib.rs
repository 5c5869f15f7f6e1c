//! voxpipe: a text-to-speech server whose pipelines chain sandboxed Wasm
//! stage plugins around a native neural voice. See docs/ARCHITECTURE.md.
//!
//! This crate is the server: configuration, pipelines (plugins and the voice in
//! the order a TOML file gives), the synthesis service, its two front ends (HTTP and
//! the Wyoming protocol) and telemetry. The voice ([`voxpipe_engine`]), the plugin runtime
//! ([`voxpipe_plugin`]) and the audio formats ([`voxpipe_codec`]) are crates of
//! their own so that their boundaries are enforced by the compiler.

pub mod blocking;
pub mod config;
pub mod http;
pub mod oci;
pub mod pipeline;
pub mod plugin_build;
pub mod telemetry;
pub mod tts;
pub mod wyoming;

#[cfg(test)]
mod suite;
