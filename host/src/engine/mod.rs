//! The native engine: Piper voices (VITS in candle) and their phonemizer.
//! This module knows nothing about pipelines, plugins or HTTP.
//!
//! Present so far: the voice catalog ([`voice`]) and the reader of a voice's
//! weights straight from its ONNX file ([`onnx`]). The model and phonemizer
//! arrive with the rest of issue #4.

pub mod onnx;
pub mod voice;
