//! The native engine: Piper voices (VITS in candle) and their phonemizer.
//! This module knows nothing about pipelines, plugins or HTTP.
//!
//! Present so far: the voice catalog ([`voice`]), the reader of a voice's
//! weights straight from its ONNX file ([`onnx`]), and the espeak-ng
//! phonemizer that reproduces Piper's phoneme ids ([`phonemize`], with the
//! hand-written espeak-ng bindings inside it), and the VITS model in candle
//! ([`vits`]), which reproduces ONNX Runtime's output on the same voice;
//! [`synth`] ties them together (a loaded voice: text → sentences → audio);
//! [`device`] chooses where the model runs (CPU, or CUDA with the `cuda` feature).

pub mod device;
pub mod memory;
pub mod onnx;
pub mod phonemize;
mod split;
pub mod synth;
pub mod vits;
pub mod voice;
pub mod words;
