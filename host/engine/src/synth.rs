//! A loaded voice ready to speak: its config, its model, and text → audio
//! sentence by sentence (each sentence is synthesized on its own, as Piper
//! does, so callers can stream them as they finish).

use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::Device;

use super::device::{self, DeviceError};
use super::onnx::{self, OnnxError};
use super::phonemize::{PhonemizeError, Phonemizer};
use super::vits::{Params, VitsError, Voice};
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
    Model(VitsError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The GPU ran out of memory for this request; the voice stays loaded and
    /// later (or smaller) requests can succeed.
    #[error("out of GPU memory on {device} while synthesizing: {detail}")]
    OutOfMemory { device: String, detail: String },
    #[error("the text has nothing to say")]
    NothingToSay,
}

impl From<VitsError> for EngineError {
    fn from(e: VitsError) -> Self {
        match e {
            VitsError::Candle(c) if device::is_out_of_memory(&c) => EngineError::OutOfMemory {
                device: "gpu".into(),
                detail: c.to_string(),
            },
            other => EngineError::Model(other),
        }
    }
}

impl EngineError {
    /// A stable snake_case name for this error, used in API errors, metrics and spans.
    pub fn kind(&self) -> &'static str {
        match self {
            EngineError::Voice(_) | EngineError::Weights(_) => "voice_load",
            EngineError::UnknownVoice { .. } => "unknown_voice",
            // A NUL never gets here through the service (refused as input or
            // as a plugin's output), but a library caller may pass one.
            EngineError::Phonemize(PhonemizeError::TextNul(_)) => "invalid_input",
            EngineError::Phonemize(_) => "phonemize",
            EngineError::Model(VitsError::PhonemeIdOutOfRange { .. })
            | EngineError::Model(VitsError::InvalidScale { .. })
            | EngineError::Model(VitsError::SpeakerOutOfRange { .. })
            | EngineError::Model(VitsError::EmptyInput)
            | EngineError::NothingToSay => "invalid_input",
            EngineError::Model(VitsError::TooManyPhonemes { .. })
            | EngineError::Model(VitsError::TooManyFrames { .. }) => "sentence_too_long",
            EngineError::Model(_) => "model",
            EngineError::Device(_) => "device",
            EngineError::OutOfMemory { .. } => "oom",
        }
    }
}

/// Most phoneme ids one sentence may have by default (~50 s of speech): the
/// text encoder's attention costs memory with the square of it (2048 ids:
/// ~35 MB; the 24 000 ids of one unpunctuated 12 000-character sentence
/// took 3.9 GB).
pub const DEFAULT_MAX_SENTENCE_PHONEMES: usize = 2048;
/// Longest audio one sentence may produce by default, in seconds: the flow
/// and the decoder cost memory in proportion (≈ 17 MB per second of speech).
pub const DEFAULT_MAX_SENTENCE_SECONDS: f32 = 60.0;

/// Synthesis knobs; `None` takes the voice's default from its config.
#[derive(Debug, Clone, Copy, Default)]
pub struct SynthOptions {
    pub noise_scale: Option<f32>,
    pub length_scale: Option<f32>,
    pub noise_w: Option<f32>,
    /// Speaker id of a multi-speaker voice (0 for single-speaker voices); see
    /// [`super::voice::VoiceConfig::speaker_id`] for names.
    pub speaker: u32,
    /// Seed of the model's noise: the same seed and text give the same audio.
    pub seed: u64,
    /// Most phoneme ids per sentence [default: DEFAULT_MAX_SENTENCE_PHONEMES].
    pub max_phonemes: Option<usize>,
    /// Longest audio per sentence, in seconds [default: DEFAULT_MAX_SENTENCE_SECONDS].
    pub max_seconds: Option<f32>,
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
        Self::load_on(dir, name, &Device::Cpu)
    }

    /// Load voice `name` from `dir` onto `device`.
    pub fn load_on(dir: &Path, name: &str, device: &Device) -> Result<LoadedVoice, EngineError> {
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
        let model = Voice::from_onnx(&weights, device)?;
        drop(weights);
        // The file's bytes and the unpacked copies are freed; give them back rather
        // than keep them for reuse (see crate::memory).
        crate::memory::release_free_memory();
        // The config's speaker map must address rows the model has.
        let speakers = entry.config.num_speakers.max(1) as usize;
        if speakers != model.n_speakers() {
            return Err(VoiceError::Invalid {
                path: entry.model.with_extension("onnx.json"),
                reason: format!(
                    "num_speakers is {speakers} but the model has {} speaker embeddings",
                    model.n_speakers()
                ),
            }
            .into());
        }
        Ok(LoadedVoice {
            entry,
            model,
            load_time: started.elapsed(),
        })
    }

    /// Where the model runs.
    pub fn device(&self) -> &Device {
        self.model.device()
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
        let seconds = options
            .max_seconds
            .unwrap_or(DEFAULT_MAX_SENTENCE_SECONDS)
            .max(0.0);
        let frames_per_second = self.sample_rate() as f32 / self.model.hop_length().max(1) as f32;
        let max_frames = (seconds * frames_per_second) as usize;
        let _busy = crate::memory::Busy::enter();
        let started = Instant::now();
        let out = self
            .model
            .synthesize(
                ids,
                &Params {
                    noise_scale: options.noise_scale.unwrap_or(defaults.noise_scale),
                    length_scale: options.length_scale.unwrap_or(defaults.length_scale),
                    noise_w: options.noise_w.unwrap_or(defaults.noise_w),
                    speaker: options.speaker,
                    seed: options.seed,
                    max_phonemes: options
                        .max_phonemes
                        .unwrap_or(DEFAULT_MAX_SENTENCE_PHONEMES),
                    max_frames,
                },
            )
            .map_err(|e| match EngineError::from(e) {
                EngineError::OutOfMemory { detail, .. } => EngineError::OutOfMemory {
                    device: device::device_label(self.device()),
                    detail,
                },
                other => other,
            })?;
        Ok(SentenceAudio {
            samples: out.audio,
            phonemes: ids.len(),
            model_time: started.elapsed(),
            timings: out.timings,
        })
    }
}

impl LoadedVoice {
    /// Synthesizes `text` sentence by sentence, yielding each as soon as it is done
    /// (what streaming responses send). Phonemizing happens up front; a failure in
    /// one sentence ends the stream with that error.
    pub fn stream<'a>(
        &'a self,
        phonemizer: &Phonemizer,
        text: &str,
        options: SynthOptions,
    ) -> Result<impl Iterator<Item = Result<SentenceAudio, EngineError>> + 'a, EngineError> {
        let sentences = self.sentence_ids(phonemizer, text)?;
        let mut failed = false;
        Ok(sentences.into_iter().map_while(move |ids| {
            if failed {
                return None;
            }
            let out = self.synthesize(&ids, &options);
            failed = out.is_err();
            Some(out)
        }))
    }
}
