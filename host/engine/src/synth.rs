//! A loaded voice ready to speak: its config, its model, and text → audio
//! sentence by sentence (each sentence is synthesized on its own, as Piper
//! does, so callers can stream them as they finish).

use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::Device;

use super::device::{self, DeviceError};
use super::onnx::{self, OnnxError};
use super::phonemize::{PhonemizeError, Phonemizer};
use super::split;
use super::vits::{DecoderChunks, Params, VitsError, Voice};
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
    /// The caller stopped the synthesis (its deadline passed or its client left).
    #[error("synthesis stopped by the caller")]
    Stopped,
    /// The text makes more phoneme ids than the caller takes in all.
    #[error("the text makes more than {limit} phoneme ids")]
    TooManyIds { limit: usize },
}

impl From<VitsError> for EngineError {
    fn from(e: VitsError) -> Self {
        match e {
            VitsError::Candle(c) if device::is_out_of_memory(&c) => EngineError::OutOfMemory {
                device: "gpu".into(),
                detail: c.to_string(),
            },
            VitsError::Stopped => EngineError::Stopped,
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
            EngineError::Stopped => "stopped",
            EngineError::TooManyIds { .. } => "request_too_large",
        }
    }
}

/// Most phoneme ids one model call takes by default; a longer sentence is cut
/// into pieces (see `split`). The text encoder's attention costs memory with
/// the square of it (the 24 000 ids of one unpunctuated 12 000-character
/// sentence took 3.9 GB). 400 ids are about 200 phonemes, 12–15 s of speech:
/// longer than almost every punctuated sentence (the bench's longest, 620 ids,
/// is one long sentence of 15.6 s), so ordinary text is synthesized as before,
/// while an unpunctuated paragraph becomes calls of bounded size.
pub const DEFAULT_MAX_CALL_PHONEMES: usize = 400;
/// Most phoneme ids of a stream's first model call by default: its first
/// audio waits only for this much (measured with `voxpipe-bench bounded`: a
/// ~120-id call takes ~100 ms here), and the rest of a long first sentence
/// is made while that plays.
pub const DEFAULT_FIRST_CALL_PHONEMES: usize = 120;
/// Most phoneme ids one model call may have when a caller gives no cap: a
/// piece longer than this is refused, not synthesized.
pub const DEFAULT_MAX_SENTENCE_PHONEMES: usize = 2048;
/// Longest audio one sentence may produce by default, in seconds: the flow
/// and the decoder cost memory in proportion (≈ 17 MB per second of speech).
pub const DEFAULT_MAX_SENTENCE_SECONDS: f32 = 60.0;

/// How the decoder runs over a sentence whose audio is wanted whole (a file, a
/// sentence an audio stage measures before it answers, a Wyoming `synthesize`
/// kept until `audio-stop`). A sentence of up to 280 latent frames (3.3 s at
/// 22.05 kHz) is decoded whole; a longer one in windows of 256 frames, each with
/// 12 frames of context on both sides. Measured (tests/engine_model.rs, joe and
/// the ResBlock1 test voice): an overlap of 8 frames gives 55–65 dB SNR against
/// the whole decode, 10 gives > 120 dB, 12 the same samples as the whole decode
/// (HiFi-GAN's receptive field is under 12 frames). The decoder's working memory
/// is then that of a 280-frame window whatever the sentence's length, and the
/// extra work is 24/256 ≈ 9 % of the decoder on long sentences only. (Windows
/// that start small, for an early first audio, are for a listener who plays the
/// audio as it comes: [`LoadedVoice::paced_decoder_chunks`].)
pub const DEFAULT_DECODER_CHUNKS: DecoderChunks = DecoderChunks {
    first: 256,
    frames: 256,
    overlap: 12,
    paced: None,
};

/// The first decoder window for a listener who plays the audio as it comes
/// ([`LoadedVoice::paced_decoder_chunks`]): 32 latent frames, 0.37 s of speech at
/// 22.05 kHz.
pub const PACED_FIRST_FRAMES: usize = 32;

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
    /// How the decoder runs over long sentences [default: DEFAULT_DECODER_CHUNKS].
    pub decoder_chunks: Option<DecoderChunks>,
}

/// What [`LoadedVoice::synthesize_streaming`] reports once the audio is out.
#[derive(Debug, Clone)]
pub struct SentenceRun {
    pub phonemes: usize,
    /// Wall time of the model for this sentence (without the caller's time).
    pub model_time: Duration,
    /// The same, per module of the model.
    pub timings: super::vits::ModuleTimings,
    /// Frames per id, as the decoder made them (see [`LoadedVoice::seconds_per_frame`]).
    pub durations: Vec<u32>,
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
    /// Frames per id (see [`LoadedVoice::spoken_words`]).
    pub durations: Vec<u32>,
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

    /// The phoneme ids of each sentence of `text`, long sentences cut into
    /// pieces of at most [`DEFAULT_MAX_CALL_PHONEMES`] ids. Phonemes the voice
    /// does not know are skipped with a warning.
    pub fn sentence_ids(
        &self,
        phonemizer: &Phonemizer,
        text: &str,
    ) -> Result<Vec<Vec<i64>>, EngineError> {
        let cap = DEFAULT_MAX_CALL_PHONEMES;
        self.sentence_ids_with(phonemizer, text, cap, cap, usize::MAX, &|| false)
    }

    /// [`LoadedVoice::sentence_ids`] with the cap on ids per model call
    /// (`max_ids`; a longer sentence is cut, see `split`), a cap for the very
    /// first call (`first_max_ids`: a stream's first audio waits only for it),
    /// `stop` asked between espeak's clauses ([`EngineError::Stopped`]), and
    /// at most `max_total_ids` ids in all: a text that makes more is refused
    /// as soon as phonemization passes the mark ([`EngineError::TooManyIds`]).
    pub fn sentence_ids_with(
        &self,
        phonemizer: &Phonemizer,
        text: &str,
        max_ids: usize,
        first_max_ids: usize,
        max_total_ids: usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<Vec<i64>>, EngineError> {
        let config = &self.entry.config;
        // Two ids per phoneme (the phoneme and a pad), plus a few per sentence.
        let budget = max_total_ids / 2;
        let sentences = phonemizer
            .phonemize_marked(text, &config.espeak.voice, budget, stop)
            .map_err(|e| match e {
                PhonemizeError::Stopped => EngineError::Stopped,
                PhonemizeError::TooManyPhonemes { .. } => EngineError::TooManyIds {
                    limit: max_total_ids,
                },
                e => e.into(),
            })?;
        let max_phonemes = split::phonemes_for_ids(max_ids);
        let first_phonemes = split::phonemes_for_ids(first_max_ids.min(max_ids));
        let mut out = Vec::new();
        for sentence in sentences.iter().filter(|s| !s.phonemes.is_empty()) {
            let first = if out.is_empty() {
                first_phonemes
            } else {
                max_phonemes
            };
            for piece in split::split_first_smaller(sentence, first, max_phonemes) {
                let (ids, unknown) = Phonemizer::to_ids(&piece, &config.phoneme_id_map);
                if !unknown.is_empty() {
                    tracing::warn!(voice = %self.entry.name, ?unknown, "phonemes the voice does not know were skipped");
                }
                out.push(ids);
            }
        }
        if out.is_empty() {
            return Err(EngineError::NothingToSay);
        }
        Ok(out)
    }

    /// Synthesizes one sentence's ids; the audio comes back whole.
    pub fn synthesize(
        &self,
        ids: &[i64],
        options: &SynthOptions,
    ) -> Result<SentenceAudio, EngineError> {
        let mut samples = Vec::new();
        let run = self.synthesize_streaming(ids, options, &|| false, &mut |audio, _| {
            samples.extend_from_slice(audio);
            true
        })?;
        Ok(SentenceAudio {
            samples,
            phonemes: run.phonemes,
            model_time: run.model_time,
            timings: run.timings,
            durations: run.durations,
        })
    }

    /// The model's parameters for `options`.
    fn params(&self, options: &SynthOptions) -> Params {
        let defaults = self.entry.config.inference;
        let seconds = options
            .max_seconds
            .unwrap_or(DEFAULT_MAX_SENTENCE_SECONDS)
            .max(0.0);
        let max_frames = (seconds * self.frames_per_second()) as usize;
        Params {
            noise_scale: options.noise_scale.unwrap_or(defaults.noise_scale),
            length_scale: options.length_scale.unwrap_or(defaults.length_scale),
            noise_w: options.noise_w.unwrap_or(defaults.noise_w),
            speaker: options.speaker,
            seed: options.seed,
            max_phonemes: options
                .max_phonemes
                .unwrap_or(DEFAULT_MAX_SENTENCE_PHONEMES),
            max_frames,
        }
    }

    /// How long one frame of [`SentenceRun::durations`] lasts.
    pub fn seconds_per_frame(&self) -> f64 {
        self.model.hop_length().max(1) as f64 / f64::from(self.sample_rate().max(1))
    }

    /// The words of one model call in its audio (see [`crate::words`]).
    pub fn spoken_words(&self, ids: &[i64], durations: &[u32]) -> Vec<crate::words::SpokenWord> {
        let separators = crate::words::Separators::new(&self.entry.config.phoneme_id_map);
        crate::words::spoken_words(ids, durations, self.seconds_per_frame(), &separators)
    }

    /// The decoder windows for audio a listener plays as it comes (a
    /// stream whose audio goes out window by window): the default windows,
    /// paced at this voice's frame rate, so that a short sentence's first
    /// audio too comes after the first window (see [`DecoderChunks::paced`]).
    pub fn paced_decoder_chunks(&self) -> DecoderChunks {
        DecoderChunks {
            first: PACED_FIRST_FRAMES,
            paced: Some(self.seconds_per_frame()),
            ..DEFAULT_DECODER_CHUNKS
        }
    }

    fn frames_per_second(&self) -> f32 {
        self.sample_rate() as f32 / self.model.hop_length().max(1) as f32
    }

    /// How long one sentence's audio will be, in seconds, without making
    /// it: the text encoder and duration predictor only (a few per cent of
    /// the synthesis), with the durations the synthesis will then use.
    pub fn predict_seconds(
        &self,
        ids: &[i64],
        options: &SynthOptions,
        stop: &dyn Fn() -> bool,
    ) -> Result<f64, EngineError> {
        let frames = self
            .model
            .predict_frames(ids, &self.params(options), stop)?;
        Ok(frames as f64 / f64::from(self.frames_per_second()))
    }

    /// Synthesizes one sentence's ids, handing the audio to `on_audio` window
    /// by window as the decoder makes it (see [`DEFAULT_DECODER_CHUNKS`]), with
    /// whether it is the sentence's last piece; `on_audio` returns false to
    /// stop. `stop` is asked between the model's modules and windows. Stopped
    /// either way, the error is [`EngineError::Stopped`]. Out of memory on a
    /// GPU, the sentence is retried once with windows half as large (the
    /// audio already handed out is not repeated).
    pub fn synthesize_streaming(
        &self,
        ids: &[i64],
        options: &SynthOptions,
        stop: &dyn Fn() -> bool,
        on_audio: &mut dyn FnMut(&[f32], bool) -> bool,
    ) -> Result<SentenceRun, EngineError> {
        let params = self.params(options);
        let _busy = crate::memory::Busy::enter();
        let started = Instant::now();
        // Time spent in `on_audio` (the caller's audio stages, a slow reader) is
        // not the model's.
        let mut outside = Duration::ZERO;
        // Samples handed out so far: a retry skips them.
        let mut handed = 0usize;
        let chunks = options.decoder_chunks.unwrap_or(DEFAULT_DECODER_CHUNKS);
        let run = with_oom_retry(chunks, |chunks| {
            let mut skip = handed;
            self.model
                .synthesize_chunked(ids, &params, Some(chunks), stop, &mut |audio, last| {
                    let fresh = &audio[skip.min(audio.len())..];
                    skip -= audio.len() - fresh.len();
                    if fresh.is_empty() && !last {
                        return true;
                    }
                    handed += fresh.len();
                    let clock = Instant::now();
                    let more = on_audio(fresh, last);
                    outside += clock.elapsed();
                    more
                })
                .map_err(|e| match EngineError::from(e) {
                    EngineError::OutOfMemory { detail, .. } => EngineError::OutOfMemory {
                        device: device::device_label(self.device()),
                        detail,
                    },
                    other => other,
                })
        })?;
        Ok(SentenceRun {
            phonemes: ids.len(),
            model_time: started.elapsed().saturating_sub(outside),
            timings: run.timings,
            durations: run.durations,
        })
    }
}

/// Runs `attempt` with `chunks`; when it runs out of (GPU) memory, once more
/// with windows half as large before the error stands.
fn with_oom_retry<T>(
    chunks: DecoderChunks,
    mut attempt: impl FnMut(DecoderChunks) -> Result<T, EngineError>,
) -> Result<T, EngineError> {
    match attempt(chunks) {
        Err(EngineError::OutOfMemory { device, detail }) => {
            let smaller = DecoderChunks {
                first: (chunks.first / 2).max(8),
                frames: (chunks.frames / 2).max(16),
                overlap: chunks.overlap,
                paced: chunks.paced,
            };
            tracing::warn!(%device, %detail, frames = smaller.frames, "out of memory; retrying the sentence with smaller decoder windows");
            attempt(smaller)
        }
        other => other,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn oom() -> EngineError {
        EngineError::OutOfMemory {
            device: "cuda:0".into(),
            detail: "CUDA_ERROR_OUT_OF_MEMORY".into(),
        }
    }

    #[test]
    fn out_of_memory_retries_once_with_smaller_windows() {
        // Fails once: the retry uses half the window and succeeds.
        let mut tried = Vec::new();
        let r = with_oom_retry(DEFAULT_DECODER_CHUNKS, |c| {
            tried.push(c);
            if tried.len() == 1 {
                Err(oom())
            } else {
                Ok(c.frames)
            }
        });
        assert_eq!(r.unwrap(), DEFAULT_DECODER_CHUNKS.frames / 2);
        assert_eq!(tried[1].first, DEFAULT_DECODER_CHUNKS.first / 2);
        assert_eq!(tried[1].overlap, DEFAULT_DECODER_CHUNKS.overlap);
        // Fails twice: the second error stands, and there is no third try.
        let mut attempts = 0;
        let r: Result<(), _> = with_oom_retry(DEFAULT_DECODER_CHUNKS, |_| {
            attempts += 1;
            Err(oom())
        });
        assert_eq!(r.unwrap_err().kind(), "oom");
        assert_eq!(attempts, 2);
        // Other errors are not retried.
        let mut attempts = 0;
        let r: Result<(), _> = with_oom_retry(DEFAULT_DECODER_CHUNKS, |_| {
            attempts += 1;
            Err(EngineError::NothingToSay)
        });
        assert!(r.is_err());
        assert_eq!(attempts, 1);
        // Windows never shrink below a useful size.
        let tiny = DecoderChunks {
            first: 8,
            frames: 16,
            overlap: 12,
            paced: None,
        };
        let mut seen = Vec::new();
        let _ = with_oom_retry(tiny, |c| {
            seen.push(c);
            Err::<(), _>(oom())
        });
        assert_eq!((seen[1].first, seen[1].frames), (8, 16));
    }
}
