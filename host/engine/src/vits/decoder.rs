//! HiFi-GAN generator (`dec`): latent frames → waveform.

use candle_core::Tensor;

use super::conv::{DirectConv1d, DirectConvTranspose1d};
use super::math;
use super::ops::{leaky_relu, Conv1d, FusedConv1d};
use super::weights::Weights;
use super::{DecoderHyper, ResBlockKind, VitsError};

/// LeakyReLU slope inside the generator.
const SLOPE: f64 = 0.1;
/// PyTorch's default slope, used once before `conv_post`.
const SLOPE_POST: f64 = 0.01;

/// Transposed convolution upsampling by `stride`, output length `T · stride`.
#[derive(Debug, Clone)]
struct Upsample {
    /// `[in, out, k]`.
    weight: Tensor,
    /// `[1, out, 1]`.
    bias: Tensor,
    stride: usize,
    padding: usize,
    /// The same layer as a direct polyphase kernel, on the CPU.
    direct: Option<DirectConvTranspose1d>,
}

impl Upsample {
    /// `scale` multiplies the weight (see [`Decoder`] on the resblock average).
    fn load(w: &Weights, prefix: &str, stride: usize, scale: f64) -> Result<Self, VitsError> {
        let name = format!("{prefix}.weight");
        let weight = (w.get_rank(&name, 3)? * scale)?;
        let (_, out_ch, kernel) = weight.dims3()?;
        if kernel < stride || !(kernel - stride).is_multiple_of(2) {
            return Err(VitsError::Shape {
                name,
                expected: format!("kernel ≥ stride {stride} with even difference"),
                got: weight.dims().to_vec(),
            });
        }
        let bias = w.get_vector(&format!("{prefix}.bias"), out_ch)?;
        let direct = if w.native_cpu() {
            Some(DirectConvTranspose1d::new(&weight, Some(&bias), stride)?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias: bias.reshape((1, out_ch, 1))?,
            stride,
            padding: (kernel - stride) / 2,
            direct,
        })
    }

    /// `conv_transpose(leaky_relu(x))`.
    fn forward(&self, x: &Tensor) -> Result<Tensor, VitsError> {
        if let Some(direct) = &self.direct {
            return direct.forward(x, Some(SLOPE as f32));
        }
        let x = leaky_relu(x, SLOPE)?;
        let len = x.dim(2)?;
        // candle's fast path needs padding 0: compute the full output, then crop the
        // `padding` samples a padded transposed conv would drop on each side.
        let full = x
            .contiguous()?
            .conv_transpose1d(&self.weight, 0, 0, self.stride, 1, 1)?;
        Ok(full
            .narrow(2, self.padding, len * self.stride)?
            .broadcast_add(&self.bias)?)
    }
}

/// A HiFi-GAN residual block. On the CPU the convolutions run as
/// [`super::conv::DirectConv1d`] with the LeakyReLU (and, for ResBlock2, the
/// residual add) fused: at these widths candle's im2col + gemm is several times slower
/// and its im2col buffers set the decoder's peak memory.
#[derive(Debug, Clone)]
enum ResBlock {
    /// HiFi-GAN V1 (Piper "high"): per dilation d,
    /// `x += conv2(leaky(conv1_d(leaky(x))))` with `conv2` undilated.
    One(Vec<(FusedConv1d, FusedConv1d)>),
    /// HiFi-GAN V2/V3 (Piper "medium", "low", "x_low"): per dilation d,
    /// `x += conv_d(leaky(x))`.
    Two(Vec<FusedConv1d>),
}

impl ResBlock {
    /// Loads `{prefix}.convs1/convs2` (ResBlock1) or `{prefix}.convs` (ResBlock2);
    /// `dilations` are those of `convs1` or `convs`; `kind` is the voice's.
    fn load(
        w: &Weights,
        prefix: &str,
        kind: ResBlockKind,
        dilations: &[usize],
    ) -> Result<Self, VitsError> {
        let conv = |name: String, dilation: usize| {
            FusedConv1d::new(Conv1d::load(w, &name, dilation, true)?, w.native_cpu())
        };
        let one = kind == ResBlockKind::One;
        let list = if one { "convs1" } else { "convs" };
        let n = w.count_indexed(|i| format!("{prefix}.{list}.{i}.weight"));
        if n != dilations.len() {
            return Err(VitsError::Unsupported(format!(
                "{prefix}.{list} has {n} convs but the config gives {} dilations",
                dilations.len()
            )));
        }
        if one {
            let n2 = w.count_indexed(|i| format!("{prefix}.convs2.{i}.weight"));
            if n2 != n {
                return Err(VitsError::Unsupported(format!(
                    "{prefix} has {n} convs1 but {n2} convs2"
                )));
            }
            let pairs = dilations
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    Ok((
                        conv(format!("{prefix}.convs1.{i}"), d)?,
                        conv(format!("{prefix}.convs2.{i}"), 1)?,
                    ))
                })
                .collect::<Result<Vec<_>, VitsError>>()?;
            Ok(Self::One(pairs))
        } else {
            let convs = dilations
                .iter()
                .enumerate()
                .map(|(i, &d)| conv(format!("{prefix}.convs.{i}"), d))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Self::Two(convs))
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, VitsError> {
        let slope = Some(SLOPE as f32);
        let mut x = x.clone();
        match self {
            Self::One(pairs) => {
                for (conv1, conv2) in pairs {
                    let y = conv1.forward(&x, slope, false)?;
                    x = (conv2.forward(&y, slope, false)? + x)?;
                }
            }
            Self::Two(convs) => {
                for conv in convs {
                    x = conv.forward(&x, slope, true)?;
                }
            }
        }
        Ok(x)
    }
}

impl ResBlock {
    /// The convolutions as direct kernels, in order, when they were loaded so.
    fn direct(&self) -> Option<Vec<&DirectConv1d>> {
        match self {
            Self::One(pairs) => pairs
                .iter()
                .flat_map(|(a, b)| [a.direct(), b.direct()])
                .collect(),
            Self::Two(convs) => convs.iter().map(FusedConv1d::direct).collect(),
        }
    }

    /// [`Self::forward`] on a `[C, len]` buffer, its result added to `sum` by the last
    /// convolution's store (or becoming `sum` when there is none yet): no separate
    /// pass for the residual or the multi-receptive-field sum.
    fn forward_cpu(&self, x: &[f32], len: usize, sum: &mut Option<Vec<f32>>) {
        let slope = Some(SLOPE as f32);
        let convs = self.direct().expect("checked by Decoder::forward");
        // The last convolution: `conv(act(input)) + residual`, into the sum.
        let finish =
            |conv: &DirectConv1d, input: &[f32], residual: &[f32], sum: &mut Option<Vec<f32>>| {
                match sum {
                    Some(s) => conv.run_into(input, len, slope, Some(residual), s, true),
                    None => *sum = Some(conv.run_with(input, len, slope, Some(residual))),
                }
            };
        let mut cur: Option<Vec<f32>> = None;
        match self {
            Self::One(_) => {
                let n = convs.len() / 2;
                for (i, pair) in convs.chunks_exact(2).enumerate() {
                    let input = cur.as_deref().unwrap_or(x);
                    let y = pair[0].run(input, len, slope, false);
                    if i + 1 == n {
                        finish(pair[1], &y, input, sum);
                    } else {
                        cur = Some(pair[1].run_with(&y, len, slope, Some(input)));
                    }
                }
            }
            Self::Two(_) => {
                let n = convs.len();
                for (i, conv) in convs.iter().enumerate() {
                    let input = cur.as_deref().unwrap_or(x);
                    if i + 1 == n {
                        finish(conv, input, input, sum);
                    } else {
                        cur = Some(conv.run(input, len, slope, true));
                    }
                }
            }
        }
    }
}

/// The generator `dec`.
///
/// Each stage averages its parallel resblocks (multi-receptive-field fusion). The
/// average's `1 / n` is folded into the weights of the layer after it (the next
/// upsampling or `conv_post`): both start with a LeakyReLU, and
/// `conv(leaky(s / n)) = (conv / n)(leaky(s))` for `n > 0`, so the stage only sums.
#[derive(Debug, Clone)]
pub struct Decoder {
    conv_pre: FusedConv1d,
    /// Speaker conditioning `gin → upsample_initial_channel` of multi-speaker voices,
    /// added after `conv_pre`.
    cond: Option<Conv1d>,
    /// One upsampling layer and its parallel resblocks per stage.
    stages: Vec<(Upsample, Vec<ResBlock>)>,
    /// Direct on the CPU: one output channel at 256× the frame rate is the worst case
    /// for im2col.
    conv_post: FusedConv1d,
}

impl Decoder {
    /// Loads `dec.*`. Kernel sizes and channel widths come from the tensors; the strides
    /// (`upsample_rates`), the resblock kind and its dilations (of `convs1` for ResBlock1)
    /// are the voice's hyperparameters (the strides and dilations are not stored in a
    /// checkpoint, only in the ONNX graph).
    pub fn load(w: &Weights, hyper: &DecoderHyper) -> Result<Self, VitsError> {
        let upsample_rates = &hyper.upsample_rates;
        let resblock_dilations = &hyper.resblock_dilation_sizes;
        let n_ups = w.count_indexed(|i| format!("dec.ups.{i}.weight"));
        if n_ups != upsample_rates.len() {
            return Err(VitsError::Unsupported(format!(
                "dec has {n_ups} upsampling layers, config gives {} rates",
                upsample_rates.len()
            )));
        }
        let n_res = (0..)
            .take_while(|i| {
                w.contains(&format!("dec.resblocks.{i}.convs.0.weight"))
                    || w.contains(&format!("dec.resblocks.{i}.convs1.0.weight"))
            })
            .count();
        if n_ups == 0
            || n_res == 0
            || n_res % n_ups != 0
            || n_res / n_ups != resblock_dilations.len()
        {
            return Err(VitsError::Unsupported(format!(
                "dec has {n_res} resblocks for {n_ups} stages; config gives {} per stage",
                resblock_dilations.len()
            )));
        }
        let per_stage = n_res / n_ups;
        // The previous stage's resblock average (see the type's docs).
        let average = 1.0 / per_stage as f64;
        let stages = upsample_rates
            .iter()
            .enumerate()
            .map(|(i, &rate)| {
                let scale = if i == 0 { 1.0 } else { average };
                let up = Upsample::load(w, &format!("dec.ups.{i}"), rate, scale)?;
                let blocks = (0..per_stage)
                    .map(|j| {
                        ResBlock::load(
                            w,
                            &format!("dec.resblocks.{}", i * per_stage + j),
                            hyper.resblock_kind,
                            &resblock_dilations[j],
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((up, blocks))
            })
            .collect::<Result<Vec<_>, VitsError>>()?;
        Ok(Self {
            conv_pre: FusedConv1d::new(Conv1d::load(w, "dec.conv_pre", 1, true)?, w.native_cpu())?,
            cond: w
                .contains("dec.cond.weight")
                .then(|| Conv1d::load(w, "dec.cond", 1, true))
                .transpose()?,
            stages,
            conv_post: FusedConv1d::new(
                Conv1d::load(w, "dec.conv_post", 1, false)?.scaled(average)?,
                w.native_cpu(),
            )?,
        })
    }

    /// Samples per latent frame (product of the upsampling strides).
    pub fn hop_length(&self) -> usize {
        self.stages.iter().map(|(u, _)| u.stride).product()
    }

    /// Input width of the speaker conditioning (0 without one).
    pub fn cond_width(&self) -> usize {
        self.cond.as_ref().map_or(0, Conv1d::in_channels)
    }

    /// `z` `[1, C, F]` → waveform `[F · hop]` in [−1, 1]; `g` `[1, gin, 1]` is the
    /// speaker of a multi-speaker voice.
    pub fn forward(&self, z: &Tensor, g: Option<&Tensor>) -> Result<Vec<f32>, VitsError> {
        let mut x = self.conv_pre.forward(z, None, false)?;
        if let (Some(cond), Some(g)) = (&self.cond, g) {
            x = x.broadcast_add(&cond.forward(g)?)?;
        }
        if self.is_direct() {
            return self.stages_cpu(&x);
        }
        for (up, blocks) in &self.stages {
            x = up.forward(&x)?;
            // Multi-receptive-field fusion: average of the parallel resblocks.
            let mut sum: Option<Tensor> = None;
            for block in blocks {
                let y = block.forward(&x)?;
                sum = Some(match sum {
                    Some(s) => (s + y)?,
                    None => y,
                });
            }
            // The average's 1/n is in the next layer's weights.
            x = sum.ok_or_else(|| VitsError::Internal("stage without resblocks".into()))?;
        }
        let x = self
            .conv_post
            .forward(&x, Some(SLOPE_POST as f32), false)?
            .tanh()?;
        Ok(x.flatten_all()?.to_vec1::<f32>()?)
    }

    /// Every stage and `conv_post` run as direct kernels (the CPU).
    fn is_direct(&self) -> bool {
        self.conv_post.direct().is_some()
            && self.stages.iter().all(|(up, blocks)| {
                up.direct.is_some() && blocks.iter().all(|b| b.direct().is_some())
            })
    }

    /// The stages and `conv_post` on plain buffers, from `x` `[1, C, F]` (CPU).
    fn stages_cpu(&self, x: &Tensor) -> Result<Vec<f32>, VitsError> {
        let (_, _, mut len) = x.dims3()?;
        let mut x = x.flatten_all()?.to_vec1::<f32>()?;
        for (up, blocks) in &self.stages {
            let direct = up.direct.as_ref().expect("checked by is_direct");
            x = direct.run(&x, len, Some(SLOPE as f32));
            len *= up.stride;
            let mut sum = None;
            for block in blocks {
                block.forward_cpu(&x, len, &mut sum);
            }
            x = sum.ok_or_else(|| VitsError::Internal("stage without resblocks".into()))?;
        }
        let post = self.conv_post.direct().expect("checked by is_direct");
        let mut y = post.run(&x, len, Some(SLOPE_POST as f32), false);
        drop(x);
        math::tanh_in_place(&mut y);
        Ok(y)
    }
}
