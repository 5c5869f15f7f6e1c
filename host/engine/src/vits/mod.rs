//! Native Piper/VITS voice inference in candle.
//!
//! Pipeline for one sentence of phoneme ids (batch 1, no padding):
//! text encoder → stochastic duration predictor (reverse) → length regulation →
//! prior sample → flow (reverse) → HiFi-GAN decoder. Multi-speaker voices condition the
//! last three on the speaker's `emb_g` row.
//!
//! Weights use the training checkpoint's names (`enc_p.emb.weight`, `dp.flows.0.logs`,
//! `flow.flows.6.enc.in_layers.0.weight`, …). Piper's ONNX export stores some under other
//! names; the loader that reads the ONNX file must rename them (see the module notes in
//! the repository).
//!
//! The architecture (layer and flow counts, attention heads and window, dilations, upsample
//! strides, resblock kind) comes from one place: the voice's [`Hyper`], inferred once from
//! the ONNX file by [`crate::onnx::hyperparameters`] when the voice is loaded. Each layer
//! takes the channel widths and kernel sizes from the shapes of the very tensors it loads.

mod attention;
#[doc(hidden)]
pub mod bench;
mod conv;
mod cpu;
mod decoder;
mod duration;
mod flow;
mod isa;
mod length;
mod math;
mod ops;
mod parallel;
mod roofline;
mod text_encoder;
mod weights;

use candle_core::{Device, Tensor};

use crate::onnx::{self, DecoderHyper, DurationHyper, FlowHyper, Hyper, ResBlockKind};

pub use isa::ISA_ENV;
pub use weights::Weights;

/// The CPU instruction set the native kernels use in this process: `"avx512"`,
/// `"avx2"` or `"scalar"` (the best the CPU has, or lower when [`ISA_ENV`] asks).
pub fn cpu_isa() -> &'static str {
    isa::Isa::detect().name()
}

/// The instruction sets this CPU can run the native kernels with, lowest first: the
/// values [`ISA_ENV`] takes effect with.
pub fn cpu_isa_levels() -> Vec<&'static str> {
    isa::Isa::available()
        .into_iter()
        .map(isa::Isa::name)
        .collect()
}

/// Which implementation the layers use.
///
/// On the CPU the model runs on hand-written kernels over plain buffers (`conv`, `cpu`,
/// `attention`, `math`): candle's CPU ops allocate a tensor per op and run mostly
/// on one thread, which made them about 1.5× slower than ONNX Runtime. On other
/// devices it runs on candle's ops. `Candle` forces candle's ops on the CPU too, so
/// the GPU's code path is tested against ONNX Runtime on machines without a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// Native kernels on the CPU, candle's ops elsewhere.
    #[default]
    Auto,
    /// candle's ops on every device.
    Candle,
    /// The native CPU kernels with the convolution weights and inputs of the flow
    /// and/or the decoder rounded to bfloat16, sums in f32 (the text encoder and the
    /// duration predictor stay f32, so durations are exact): what a bf16 path would
    /// compute, for measuring its fidelity on a CPU without bf16 units
    /// (`voxpipe-bench bf16`). No faster than f32; not a serving option.
    Bf16Emulated { flow: bool, decoder: bool },
}

/// Errors from loading or running a VITS voice.
#[derive(Debug, thiserror::Error)]
pub enum VitsError {
    /// A tensor the architecture needs is not in the weights.
    #[error("weight `{0}` is missing from the voice")]
    MissingWeight(String),
    /// A tensor has a shape the architecture cannot use.
    #[error("weight `{name}` has shape {got:?}, expected {expected}")]
    Shape {
        name: String,
        expected: String,
        got: Vec<usize>,
    },
    /// The voice uses a variant this implementation does not support.
    #[error("unsupported voice architecture: {0}")]
    Unsupported(String),
    /// The weights file could not be read.
    #[error("cannot load weights from {path}: {source}")]
    Load {
        path: String,
        #[source]
        source: candle_core::Error,
    },
    /// A phoneme id is negative or beyond the embedding table.
    #[error("phoneme id {id} out of range (voice has {n_symbols} symbols)")]
    PhonemeIdOutOfRange { id: i64, n_symbols: usize },
    /// No phoneme ids were given.
    #[error("empty phoneme id sequence")]
    EmptyInput,
    /// The speaker id is not below the voice's speaker count.
    #[error("speaker id {id} out of range (voice has {n_speakers} speakers)")]
    SpeakerOutOfRange { id: u32, n_speakers: usize },
    /// A scale is negative or not finite.
    #[error("invalid {name} {value}: must be finite and ≥ 0 (length_scale > 0)")]
    InvalidScale { name: &'static str, value: f32 },
    /// More phoneme ids than one call may take.
    #[error("a sentence of {count} phonemes is over the limit of {limit} per sentence")]
    TooManyPhonemes { count: usize, limit: usize },
    /// The predicted durations add up to more frames than one call may make.
    #[error("a sentence would last {frames} frames, over the limit of {limit}")]
    TooManyFrames { frames: u64, limit: usize },
    /// A tensor operation failed.
    /// The caller asked the synthesis to stop (deadline or hang-up).
    #[error("synthesis stopped by the caller")]
    Stopped,
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// An internal invariant was violated (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

/// How the decoder runs over a long sentence ([`Voice::synthesize_chunked`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecoderChunks {
    /// Frames of the first window (small for an early first audio). Each next
    /// window doubles, up to `frames`, unless [`Self::paced`].
    pub first: usize,
    /// Latent frames whose audio one decoder call delivers at most.
    pub frames: usize,
    /// Frames of context decoded on each side of a window, then dropped.
    pub overlap: usize,
    /// For audio that a listener plays as it comes (a stream that goes out
    /// window by window): the seconds one latent frame plays for. Then a
    /// sentence is windowed even when shorter than `frames` (its first audio
    /// comes after `first` frames, not after the whole sentence), and each
    /// later window is as large as half the audio not yet played covers at
    /// the speed the last window decoded (at least `first`, at most
    /// `frames`): few windows, so little context decoded twice, where the
    /// decoder is fast; `first`-sized ones where it is slow.
    pub paced: Option<f64>,
}

/// What [`Voice::synthesize_chunked`] reports besides the audio it handed out.
#[derive(Debug, Clone)]
pub struct SynthesisRun {
    /// Frames per phoneme id; `hop_length` samples each.
    pub durations: Vec<u32>,
    /// Where the time went, per module.
    pub timings: ModuleTimings,
}

/// Result of synthesizing one sentence.
#[derive(Debug, Clone)]
pub struct Synthesis {
    /// Mono samples in [−1, 1] at the voice's sample rate.
    pub audio: Vec<f32>,
    /// Frames per phoneme id (`ceil(exp(logw) · length_scale)`); `hop_length` samples each.
    pub durations: Vec<u32>,
    /// Where the time went, per module.
    pub timings: ModuleTimings,
}

/// Wall time of each part of the model for one sentence.
#[derive(Debug, Clone, Copy, Default)]
pub struct ModuleTimings {
    pub text_encoder: std::time::Duration,
    pub duration_predictor: std::time::Duration,
    pub flow: std::time::Duration,
    pub decoder: std::time::Duration,
    /// The multiply-adds each part ran, for achieved-throughput figures.
    pub macs: ModuleMacs,
}

/// Multiply-adds each part of the model ran in its convolutions and matrix products
/// (the native CPU kernels count them; candle's ops do not, so they read 0 on a GPU
/// and with [`Kernels::Candle`]). Elementwise passes are not counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct ModuleMacs {
    pub text_encoder: u64,
    pub duration_predictor: u64,
    pub flow: u64,
    pub decoder: u64,
}

/// Knobs of one synthesis. The defaults are Piper's (0.667, 1.0, 0.8; speaker 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Scales the prior's noise (variation of the voice).
    pub noise_scale: f32,
    /// Stretches durations: above 1 is slower.
    pub length_scale: f32,
    /// Scales the duration predictor's noise (variation of the rhythm).
    pub noise_w: f32,
    /// Row of `emb_g` for multi-speaker voices; single-speaker voices take only 0.
    pub speaker: u32,
    /// Seed of both noises. With both noise scales 0 the output is deterministic and
    /// the seed is irrelevant.
    pub seed: u64,
    /// Most phoneme ids one call takes: the text encoder's attention grows
    /// with its square. Longer input is refused before anything is allocated.
    pub max_phonemes: usize,
    /// Most frames one call may produce (the flow and the decoder grow with
    /// them); checked right after the duration predictor, before the frames
    /// are allocated.
    pub max_frames: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            noise_scale: 0.667,
            length_scale: 1.0,
            noise_w: 0.8,
            speaker: 0,
            seed: 0,
            max_phonemes: usize::MAX,
            max_frames: usize::MAX,
        }
    }
}

impl Params {
    /// Zero noise: the setting ONNX Runtime references are made with.
    pub fn deterministic() -> Self {
        Self {
            noise_scale: 0.0,
            noise_w: 0.0,
            ..Self::default()
        }
    }
}

/// A loaded VITS voice, single- or multi-speaker.
#[derive(Debug, Clone)]
pub struct Voice {
    /// `emb_g` `[n_speakers, gin]` of a multi-speaker voice: its rows condition the
    /// duration predictor, the flow and the decoder (not the text encoder).
    speakers: Option<Tensor>,
    enc_p: text_encoder::TextEncoder,
    dp: duration::DurationPredictor,
    flow: flow::Flow,
    dec: decoder::Decoder,
    device: Device,
}

impl Voice {
    /// Builds a voice from checkpoint-named weights and the hyperparameters inferred
    /// from them.
    pub fn from_weights(w: &Weights, hyper: &Hyper, device: &Device) -> Result<Self, VitsError> {
        Self::build(w, hyper, device, (false, false))
    }

    /// [`Self::from_weights`]; `bf16`: the flow and/or the decoder built for
    /// [`Kernels::Bf16Emulated`].
    fn build(
        w: &Weights,
        hyper: &Hyper,
        device: &Device,
        bf16: (bool, bool),
    ) -> Result<Self, VitsError> {
        let speakers = if w.contains("emb_g.weight") {
            Some(w.get_rank("emb_g.weight", 2)?)
        } else {
            None
        };
        // `hyper` read the same `emb_g` (0 without one).
        let gin = hyper.gin_channels;
        // The text encoder and duration predictor are built outside: the durations
        // (from the encoder's output) stay exact.
        let (bf16_flow, bf16_decoder) = bf16;
        let flow = conv::emulating_bf16(bf16_flow, || flow::Flow::load(w, &hyper.flow))?;
        let dec = conv::emulating_bf16(bf16_decoder, || decoder::Decoder::load(w, &hyper.decoder))?;
        let voice = Self {
            enc_p: text_encoder::TextEncoder::load(w, hyper)?,
            dp: duration::DurationPredictor::load(w, &hyper.duration)?,
            flow,
            dec,
            speakers,
            device: device.clone(),
        };
        // A voice is conditioned everywhere or nowhere: a missing or mis-sized `cond`
        // layer would otherwise surface as a shape error in the middle of a request.
        for (name, width) in [
            ("dp.cond", voice.dp.cond_width()),
            ("dec.cond", voice.dec.cond_width()),
        ]
        .into_iter()
        .chain(
            voice
                .flow
                .cond_widths()
                .map(|w| ("flow.flows.*.enc.cond_layer", w)),
        ) {
            if width != gin {
                return Err(VitsError::Shape {
                    name: format!("{name}.weight"),
                    expected: if gin == 0 {
                        "absent: the voice has no speaker embedding (emb_g)".into()
                    } else {
                        format!("{gin} input channels, the width of emb_g")
                    },
                    got: vec![width],
                });
            }
        }
        Ok(voice)
    }

    /// Number of speakers (1 for single-speaker voices).
    pub fn n_speakers(&self) -> usize {
        self.speakers.as_ref().map_or(1, |e| e.dims()[0])
    }

    /// The conditioning vector `g` `[1, gin, 1]` of `speaker`, or `None` for a
    /// single-speaker voice (which only has speaker 0).
    fn speaker_embedding(&self, speaker: u32) -> Result<Option<Tensor>, VitsError> {
        let out_of_range = || VitsError::SpeakerOutOfRange {
            id: speaker,
            n_speakers: self.n_speakers(),
        };
        match &self.speakers {
            None if speaker == 0 => Ok(None),
            None => Err(out_of_range()),
            Some(emb) => {
                if speaker as usize >= emb.dim(0)? {
                    return Err(out_of_range());
                }
                Ok(Some(emb.get(speaker as usize)?.unsqueeze(0)?.unsqueeze(2)?))
            }
        }
    }

    /// Builds a voice from the weights read out of its ONNX file, with the
    /// hyperparameters the ONNX graph carries (upsample strides, dilations).
    pub fn from_onnx(onnx: &onnx::Weights, device: &Device) -> Result<Self, VitsError> {
        Self::from_onnx_with(onnx, device, Kernels::Auto)
    }

    /// [`Self::from_onnx`] with a choice of kernels. This is where a voice's
    /// hyperparameters are inferred, once; every layer reads them from there.
    pub fn from_onnx_with(
        onnx: &onnx::Weights,
        device: &Device,
        kernels: Kernels,
    ) -> Result<Self, VitsError> {
        let hyper = onnx::hyperparameters(onnx)
            .map_err(|e| VitsError::Unsupported(format!("cannot read the voice's shape: {e}")))?;
        let mut weights = Weights::from_onnx(onnx, device)?;
        if kernels == Kernels::Candle {
            weights = weights.candle_only();
        }
        let bf16 = match kernels {
            Kernels::Bf16Emulated { flow, decoder } => (flow, decoder),
            _ => (false, false),
        };
        Self::build(&weights, &hyper, device, bf16)
    }

    /// Where the model's tensors live.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Samples per duration frame.
    pub fn hop_length(&self) -> usize {
        self.dec.hop_length()
    }

    /// Synthesizes one sentence of phoneme ids, the decoder over the whole
    /// sentence at once.
    pub fn synthesize(&self, ids: &[i64], params: &Params) -> Result<Synthesis, VitsError> {
        let mut audio = Vec::new();
        let run = self.synthesize_chunked(ids, params, None, &|| false, &mut |chunk, _| {
            audio.extend_from_slice(chunk);
            true
        })?;
        Ok(Synthesis {
            audio,
            durations: run.durations,
            timings: run.timings,
        })
    }

    /// The frames a sentence will last: the text encoder and the duration
    /// predictor only — the durations `synthesize_chunked` will use with the
    /// same `params` (the duration noise is the seeded generator's first
    /// draw). It runs the synthesis with a frame limit of 0, which stops
    /// right after the durations, before anything is allocated per frame.
    pub fn predict_frames(
        &self,
        ids: &[i64],
        params: &Params,
        stop: &dyn Fn() -> bool,
    ) -> Result<u64, VitsError> {
        let probe = Params {
            max_frames: 0,
            ..*params
        };
        match self.synthesize_chunked(ids, &probe, None, stop, &mut |_, _| true) {
            Err(VitsError::TooManyFrames { frames, .. }) => Ok(frames),
            Ok(_) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Synthesizes one sentence of phoneme ids, handing its audio to `on_audio`
    /// as it is made: with `chunks`, the decoder runs over windows of latent
    /// frames (bounded working memory, early first audio); without, once over
    /// the sentence. `on_audio` gets each piece and whether it is the last; it
    /// returns false to stop. `stop` is asked between modules and windows.
    /// Either way of stopping ends in [`VitsError::Stopped`].
    pub fn synthesize_chunked(
        &self,
        ids: &[i64],
        params: &Params,
        chunks: Option<DecoderChunks>,
        stop: &dyn Fn() -> bool,
        on_audio: &mut dyn FnMut(&[f32], bool) -> bool,
    ) -> Result<SynthesisRun, VitsError> {
        let Params {
            noise_scale,
            length_scale,
            noise_w,
            speaker,
            seed,
            max_phonemes,
            max_frames,
        } = *params;
        validate_scales(noise_scale, length_scale, noise_w)?;
        if ids.is_empty() {
            return Err(VitsError::EmptyInput);
        }
        if ids.len() > max_phonemes {
            return Err(VitsError::TooManyPhonemes {
                count: ids.len(),
                limit: max_phonemes,
            });
        }
        let stopped = || {
            if stop() {
                Err(VitsError::Stopped)
            } else {
                Ok(())
            }
        };
        let g = self.speaker_embedding(speaker)?;
        let g = g.as_ref();
        let mut rng = NormalRng::new(seed);
        let mut timings = ModuleTimings::default();

        // Multiply-adds since the last mark, from this thread's count.
        let mut counted = roofline::macs_so_far();
        let mut macs_since = || {
            let now = roofline::macs_so_far();
            now.wrapping_sub(std::mem::replace(&mut counted, now))
        };
        let clock = std::time::Instant::now();
        let enc = self.enc_p.forward(ids)?;
        timings.text_encoder = clock.elapsed();
        timings.macs.text_encoder = macs_since();
        stopped()?;

        let clock = std::time::Instant::now();
        let dp_noise =
            rng.tensor(2 * ids.len(), noise_w, &self.device)?
                .reshape((1, 2, ids.len()))?;
        let logw = self.dp.reverse(&enc.hidden, &dp_noise, g)?;
        let durations = length::durations_from_logw(&logw, length_scale);
        // Checked before anything is allocated per frame.
        let frames: u64 = durations.iter().map(|&d| u64::from(d)).sum();
        if frames > max_frames as u64 {
            return Err(VitsError::TooManyFrames {
                frames,
                limit: max_frames,
            });
        }
        timings.duration_predictor = clock.elapsed();
        timings.macs.duration_predictor = macs_since();
        stopped()?;

        let clock = std::time::Instant::now();
        let m_p = length::expand_frames(&enc.m_p, &durations)?;
        let logs_p = length::expand_frames(&enc.logs_p, &durations)?;
        let z_p = if noise_scale == 0.0 {
            m_p
        } else {
            let eps = rng
                .tensor(m_p.elem_count(), noise_scale, &self.device)?
                .reshape(m_p.shape())?;
            (m_p + (eps * logs_p.exp()?)?)?
        };
        let z = self.flow.reverse(&z_p, g)?;
        timings.flow = clock.elapsed();
        timings.macs.flow = macs_since();
        stopped()?;

        // The decoder, whole or window by window. Each window decodes
        // `overlap` frames of context on both sides and keeps the middle:
        // the receptive field of HiFi-GAN is a few frames, so the joined
        // audio matches the whole decode (tests/engine_model.rs measures it).
        let total = z.dim(2)?;
        let hop = self.dec.hop_length();
        let windowed = |c: &DecoderChunks| {
            let shortest = match c.paced {
                Some(_) => c.first,
                None => c.frames,
            };
            total > shortest + 2 * c.overlap
        };
        let (mut step, max_step, overlap) = match chunks {
            Some(c) if windowed(&c) => (
                c.first.clamp(1, c.frames.max(1)),
                c.frames.max(1),
                c.overlap,
            ),
            _ => (total.max(1), total.max(1), 0),
        };
        let paced = chunks.filter(windowed).and_then(|c| c.paced);
        let first = step;
        let mut first_out: Option<std::time::Instant> = None;
        let mut start = 0;
        while start < total {
            let end = (start + step).min(total);
            let lo = start.saturating_sub(overlap);
            let hi = (end + overlap).min(total);
            let clock = std::time::Instant::now();
            let window = if lo == 0 && hi == total {
                self.dec.forward(&z, g)?
            } else {
                self.dec.forward(&z.narrow(2, lo, hi - lo)?, g)?
            };
            let took = clock.elapsed();
            timings.decoder += took;
            timings.macs.decoder += macs_since();
            let keep = &window[(start - lo) * hop..((end - lo) * hop).min(window.len())];
            let out = *first_out.get_or_insert_with(std::time::Instant::now);
            if !on_audio(keep, end == total) {
                return Err(VitsError::Stopped);
            }
            let done = end - start;
            start = end;
            step = match paced {
                Some(frame_seconds) => {
                    let ahead = start as f64 * frame_seconds - out.elapsed().as_secs_f64();
                    let per_frame = took.as_secs_f64() / done as f64;
                    let fits = (0.5 * ahead / per_frame.max(1e-9)) as usize;
                    let next = fits.clamp(first, max_step);
                    // No window shorter than the first after this one, unless
                    // that would make it longer than `frames` (the memory bound).
                    let rest = total - start;
                    if rest <= (next + first).min(max_step) {
                        rest
                    } else {
                        next
                    }
                }
                None => (step * 2).min(max_step),
            };
            if start < total {
                stopped()?;
            }
        }
        Ok(SynthesisRun { durations, timings })
    }
}

fn validate_scales(noise_scale: f32, length_scale: f32, noise_w: f32) -> Result<(), VitsError> {
    for (name, value) in [("noise_scale", noise_scale), ("noise_w", noise_w)] {
        if !value.is_finite() || value < 0.0 {
            return Err(VitsError::InvalidScale { name, value });
        }
    }
    if !length_scale.is_finite() || length_scale <= 0.0 {
        return Err(VitsError::InvalidScale {
            name: "length_scale",
            value: length_scale,
        });
    }
    Ok(())
}

/// Deterministic standard-normal generator (SplitMix64 + Box–Muller), so a seed gives the
/// same audio on every platform without depending on candle's RNG.
struct NormalRng {
    state: u64,
    spare: Option<f32>,
}

impl NormalRng {
    fn new(seed: u64) -> Self {
        Self {
            state: seed,
            spare: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f32 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let r = (-2.0 * self.uniform().ln()).sqrt();
        let theta = std::f64::consts::TAU * self.uniform();
        self.spare = Some((r * theta.sin()) as f32);
        (r * theta.cos()) as f32
    }

    /// `n` samples of N(0, scale²) as a 1-D tensor (all zeros without drawing when scale is 0).
    fn tensor(&mut self, n: usize, scale: f32, device: &Device) -> Result<Tensor, VitsError> {
        let data: Vec<f32> = if scale == 0.0 {
            vec![0.0; n]
        } else {
            (0..n).map(|_| self.normal() * scale).collect()
        };
        Ok(Tensor::from_vec(data, n, device)?)
    }
}
