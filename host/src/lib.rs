//! voxpipe: a text-to-speech server whose pipelines chain sandboxed Wasm
//! stage plugins around a native neural voice. See docs/ARCHITECTURE.md.

pub mod config;
pub mod encode;
pub mod engine;
pub mod http;
pub mod memory;
pub mod pipeline;
pub mod plugin;
pub mod telemetry;
pub mod tts;
pub mod types;
pub mod wav;
