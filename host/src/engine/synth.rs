//! A loaded voice ready to speak: its config, its model, and text → audio
//! sentence by sentence (each sentence is synthesized on its own, as Piper
//! does, so callers can stream them as they finish).

use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::Device;

use super::onnx::{self, OnnxError};
use super::phonemize::{PhonemizeError, Phonemizer};
use super::vits::{VitsError, Voice};
use super::voice::{self, VoiceEntry, VoiceError};

/// Why synthesis failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Voice(#[from] VoiceError),
    #[error("unknown voice `{name}`; available: {available}")]
    UnknownVoice { name: String, available: String },
    #[error("reading the voice's weights: {0}")]
    Weights(#[from] OnnxError),
    #[error("phonemizing: {0}")]
    Phonemize(#[from] PhonemizeError),
    #[error("the voice model: {0}")]
    Model(#[from] VitsError),
    #[error("the text has nothing to say")]
    NothingToSay,
}

/// Synthesis knobs; `None` takes the voice's default from its config.
#[derive(Debug, Clone, Copy, Default)]
pub struct SynthOptions {
    pub noise_scale: Option<f32>,
    pub length_scale: Option<f32>,
    pub noise_w: Option<f32>,
    /// Seed of the model's noise: the same seed and text give the same audio.
    pub seed: u64,
}

/// One synthesized sentence.
#[derive(Debug, Clone)]
pub struct SentenceAudio {
    /// Mono samples at the voice's sample rate.
    pub samples: Vec<f32>,
    pub phonemes: usize,
    /// Wall time of the model for this sentence.
    pub model_time: Duration,
    /// The same, per module of the model.
    pub timings: super::vits::ModuleTimings,
}

/// A voice loaded into memory.
pub struct LoadedVoice {
    pub entry: VoiceEntry,
    pub model: Voice,
    pub load_time: Duration,
}

impl LoadedVoice {
    /// Load voice `name` from `dir` onto the CPU.
    pub fn load(dir: &Path, name: &str) -> Result<LoadedVoice, EngineError> {
        let started = Instant::now();
        let (voices, _) = voice::scan(dir)?;
        let available = voices
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let Some(entry) = voices.iter().find(|v| v.name == name).cloned() else {
            return Err(EngineError::UnknownVoice {
                name: name.to_string(),
                available: if available.is_empty() {
                    format!("none in {}", dir.display())
                } else {
                    available
                },
            });
        };
        let weights = onnx::read_weights(&entry.model)?;
        let model = Voice::from_onnx(&weights, &Device::Cpu)?;
        Ok(LoadedVoice {
            entry,
            model,
            load_time: started.elapsed(),
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.entry.config.audio.sample_rate
    }

    /// The phoneme ids of each sentence of `text`. Phonemes the voice does
    /// not know are skipped with a warning.
    pub fn sentence_ids(
        &self,
        phonemizer: &Phonemizer,
        text: &str,
    ) -> Result<Vec<Vec<i64>>, EngineError> {
        let config = &self.entry.config;
        let sentences = phonemizer.phonemize(text, &config.espeak.voice)?;
        let mut out = Vec::new();
        for phonemes in sentences.iter().filter(|s| !s.is_empty()) {
            let (ids, unknown) = Phonemizer::to_ids(phonemes, &config.phoneme_id_map);
            if !unknown.is_empty() {
                tracing::warn!(voice = %self.entry.name, ?unknown, "phonemes the voice does not know were skipped");
            }
            out.push(ids);
        }
        if out.is_empty() {
            return Err(EngineError::NothingToSay);
        }
        Ok(out)
    }

    /// Synthesize one sentence's ids.
    pub fn synthesize(
        &self,
        ids: &[i64],
        options: &SynthOptions,
    ) -> Result<SentenceAudio, EngineError> {
        let defaults = self.entry.config.inference;
        let started = Instant::now();
        let out = self.model.synthesize(
            ids,
            options.noise_scale.unwrap_or(defaults.noise_scale),
            options.length_scale.unwrap_or(defaults.length_scale),
            options.noise_w.unwrap_or(defaults.noise_w),
            options.seed,
        )?;
        Ok(SentenceAudio {
            samples: out.audio,
            phonemes: ids.len(),
            model_time: started.elapsed(),
            timings: out.timings,
        })
    }
}
