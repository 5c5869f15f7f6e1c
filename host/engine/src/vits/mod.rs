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
//! the repository). Hyperparameters are read from tensor shapes wherever they are stored
//! there; the rest is [`VitsConfig`].

mod attention;
#[doc(hidden)]
pub mod bench;
mod conv;
mod cpu;
pub mod decoder;
pub mod duration;
pub mod flow;
mod isa;
pub mod length;
mod math;
mod ops;
mod parallel;
pub mod text_encoder;
pub mod weights;

use candle_core::{Device, Tensor};

pub use weights::Weights;

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
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// An internal invariant was violated (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Hyperparameters that a checkpoint does not store. Defaults are Piper's
/// (medium and low quality voices).
#[derive(Debug, Clone, PartialEq)]
pub struct VitsConfig {
    /// Strides of the decoder's transposed convolutions (their product is the hop length).
    pub upsample_rates: Vec<usize>,
    /// Dilations of each resblock in a stage, in resblock order (of `convs1` for
    /// ResBlock1, whose `convs2` are undilated).
    pub resblock_dilations: Vec<Vec<usize>>,
    /// Dilation growth of the flow's WaveNet layers.
    pub flow_dilation_rate: usize,
}

impl Default for VitsConfig {
    fn default() -> Self {
        Self {
            upsample_rates: vec![8, 8, 4],
            resblock_dilations: vec![vec![1, 2], vec![2, 6], vec![3, 12]],
            flow_dilation_rate: 1,
        }
    }
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
    /// Builds a voice from checkpoint-named weights.
    pub fn from_weights(
        w: &Weights,
        config: &VitsConfig,
        device: &Device,
    ) -> Result<Self, VitsError> {
        let speakers = if w.contains("emb_g.weight") {
            Some(w.get_rank("emb_g.weight", 2)?)
        } else {
            None
        };
        let gin = match &speakers {
            Some(emb) => emb.dim(1)?,
            None => 0,
        };
        let voice = Self {
            enc_p: text_encoder::TextEncoder::load(w)?,
            dp: duration::DurationPredictor::load(w)?,
            flow: flow::Flow::load(w, config.flow_dilation_rate)?,
            dec: decoder::Decoder::load(w, &config.upsample_rates, &config.resblock_dilations)?,
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
    pub fn from_onnx(onnx: &super::onnx::Weights, device: &Device) -> Result<Self, VitsError> {
        Self::from_onnx_with(onnx, device, Kernels::Auto)
    }

    /// [`Self::from_onnx`] with a choice of kernels.
    pub fn from_onnx_with(
        onnx: &super::onnx::Weights,
        device: &Device,
        kernels: Kernels,
    ) -> Result<Self, VitsError> {
        let hyper = super::onnx::hyperparameters(onnx)
            .map_err(|e| VitsError::Unsupported(format!("cannot read the voice's shape: {e}")))?;
        let config = VitsConfig {
            upsample_rates: hyper.decoder.upsample_rates.clone(),
            resblock_dilations: hyper.decoder.resblock_dilation_sizes.clone(),
            flow_dilation_rate: hyper.flow.dilation_rate,
        };
        let mut weights = Weights::from_onnx(onnx, device)?;
        if kernels == Kernels::Candle {
            weights = weights.candle_only();
        }
        Self::from_weights(&weights, &config, device)
    }

    /// Where the model's tensors live.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Samples per duration frame.
    pub fn hop_length(&self) -> usize {
        self.dec.hop_length()
    }

    /// Synthesizes one sentence of phoneme ids.
    pub fn synthesize(&self, ids: &[i64], params: &Params) -> Result<Synthesis, VitsError> {
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
        let g = self.speaker_embedding(speaker)?;
        let g = g.as_ref();
        let mut rng = NormalRng::new(seed);
        let mut timings = ModuleTimings::default();
        let clock = std::time::Instant::now();
        let enc = self.enc_p.forward(ids)?;
        timings.text_encoder = clock.elapsed();
        let clock = std::time::Instant::now();
        let dp_noise =
            rng.tensor(2 * ids.len(), noise_w, &self.device)?
                .reshape((1, 2, ids.len()))?;
        let logw = self.dp.reverse(&enc.hidden, &dp_noise, g)?;
        let durations = length::durations_from_logw(&logw, length_scale);
        let frames: u64 = durations.iter().map(|&d| u64::from(d)).sum();
        if frames > max_frames as u64 {
            return Err(VitsError::TooManyFrames {
                frames,
                limit: max_frames,
            });
        }
        timings.duration_predictor = clock.elapsed();
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
        let clock = std::time::Instant::now();
        let audio = self.dec.forward(&z, g)?;
        timings.decoder = clock.elapsed();
        Ok(Synthesis {
            audio,
            durations,
            timings,
        })
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
