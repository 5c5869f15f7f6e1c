//! The synthesis service, independent of HTTP: request validation, admission
//! (bounded queue + concurrency), the audio cache, per-stage timings, and the
//! run of one request through a pipeline's stages and the voice.

pub mod admission;
pub mod cache;
mod error;
pub mod service;
pub mod timings;

pub use admission::Admission;
pub use cache::AudioCache;
pub use error::TtsError;
pub use service::{
    Job, ServiceOptions, StreamEvent, StyleReport, Synthesis, SynthesisRequest, TtsService,
    VoiceStore,
};
pub use timings::Timings;
