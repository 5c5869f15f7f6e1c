//! The synthesis service, independent of any front end: request validation
//! ([`request`]), admission (bounded queue + concurrency, [`admission`]),
//! voices ([`voices`]), the run of one request through a pipeline's stages and
//! the voice ([`run`]; long streamed texts a few sentences at a time,
//! [`sentences`]), and how it is observed ([`observe`], [`timings`]).
//! The HTTP API (`http/`) is one front end over [`TtsService`].

pub mod admission;
mod error;
pub mod estimate;
pub mod honored;
mod mixed;
mod observe;
mod request;
mod run;
pub mod sentences;
mod service;
pub mod ssml;
pub mod timings;
mod voices;
pub mod words;

pub use admission::Admission;
pub use error::TtsError;
pub use request::{
    InputFormat, Job, ServiceOptions, SynthesisRequest, LANGUAGE_MAX_CHARS, SAMPLE_RATE_RANGE,
    SPEED_RANGE,
};
pub use service::{StreamEvent, StyleReport, Synthesis, TtsService};
pub use timings::Timings;
pub use voices::VoiceStore;
pub use words::{webvtt, WordTiming};
