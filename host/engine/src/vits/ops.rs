//! Small building blocks shared by the VITS parts: convolutions, channel LayerNorm,
//! activations. Written against candle's CPU fast paths (see the notes on candle traps).

use candle_core::{Tensor, D};

use super::conv::DirectConv1d;
use super::cpu;
use super::isa::vectorized;
use super::roofline::count_macs;
use super::weights::Weights;
use super::VitsError;

/// A 1-D convolution with "same" padding (`dilation * (k - 1) / 2`) and optional bias.
///
/// Kernel size, channel counts and bias presence come from the tensors; only the
/// dilation (not stored in a checkpoint) is passed in.
#[derive(Debug, Clone)]
pub(crate) struct Conv1d {
    /// `[out, in, k]`, or `[out, in]` for pointwise convolutions (run as a matmul).
    weight: Tensor,
    /// `[1, out, 1]`, ready to broadcast.
    bias: Option<Tensor>,
    kernel: usize,
    dilation: usize,
    padding: usize,
}

impl Conv1d {
    /// Loads `{prefix}.weight` and, when `with_bias`, `{prefix}.bias`.
    pub(crate) fn load(
        w: &Weights,
        prefix: &str,
        dilation: usize,
        with_bias: bool,
    ) -> Result<Self, VitsError> {
        let weight = w.get_rank(&format!("{prefix}.weight"), 3)?;
        let (out_ch, _in_ch, kernel) = weight.dims3()?;
        let bias = if with_bias {
            Some(
                w.get_vector(&format!("{prefix}.bias"), out_ch)?
                    .reshape((1, out_ch, 1))?,
            )
        } else {
            None
        };
        // Pointwise convolutions are plain matmuls; skipping im2col saves a copy.
        let weight = if kernel == 1 {
            weight.squeeze(2)?.contiguous()?
        } else {
            weight
        };
        Ok(Self {
            weight,
            bias,
            kernel,
            dilation,
            padding: dilation * (kernel - 1) / 2,
        })
    }

    /// Number of output channels.
    pub(crate) fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// The same convolution with its weight (not its bias) multiplied by `scale`.
    pub(crate) fn scaled(mut self, scale: f64) -> Result<Self, VitsError> {
        self.weight = (self.weight * scale)?;
        Ok(self)
    }

    /// Number of input channels.
    pub(crate) fn in_channels(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Weight (row-major `[out, in, k]`, or `[out, in]` when pointwise) and bias (zeros
    /// without one) as plain vectors.
    pub(crate) fn to_vecs(&self) -> Result<(Vec<f32>, Vec<f32>), VitsError> {
        let bias = match &self.bias {
            Some(b) => b.flatten_all()?.to_vec1::<f32>()?,
            None => vec![0.0; self.out_channels()],
        };
        Ok((self.weight.flatten_all()?.to_vec1::<f32>()?, bias))
    }

    /// The same convolution as a [`DirectConv1d`], for long inputs with few channels
    /// where candle's im2col buffer dominates (the decoder's later stages).
    pub(crate) fn to_direct(&self) -> Result<DirectConv1d, VitsError> {
        if self.kernel == 1 {
            return Err(VitsError::Internal(
                "pointwise convolutions already run as a matmul".into(),
            ));
        }
        DirectConv1d::new(&self.weight, self.bias.as_ref(), self.dilation)
    }

    /// `x`: `[1, in, T]` → `[1, out, T]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor, VitsError> {
        let y = if self.kernel == 1 {
            self.weight
                .matmul(&x.squeeze(0)?.contiguous()?)?
                .unsqueeze(0)?
        } else {
            x.contiguous()?
                .conv1d(&self.weight, self.padding, 1, self.dilation, 1)?
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// A "same" convolution with the input's LeakyReLU and an optional residual fused in:
/// the hand-written [`DirectConv1d`] on the CPU, candle's own ops on other devices
/// (the direct kernel works on host memory and would copy to and fro).
#[derive(Debug, Clone)]
pub(crate) enum FusedConv1d {
    Direct(DirectConv1d),
    Tensor(Conv1d),
}

impl FusedConv1d {
    /// The direct kernel, when that is what was loaded.
    pub(crate) fn direct(&self) -> Option<&DirectConv1d> {
        match self {
            Self::Direct(d) => Some(d),
            Self::Tensor(_) => None,
        }
    }

    /// The direct kernel when `native` (the CPU's kernels, see [`super::Kernels`]),
    /// candle's ops otherwise; pointwise convolutions stay a matmul.
    pub(crate) fn new(conv: Conv1d, native: bool) -> Result<Self, VitsError> {
        Ok(if native && conv.kernel > 1 {
            Self::Direct(conv.to_direct()?)
        } else {
            Self::Tensor(conv)
        })
    }

    /// `conv(leaky_relu(x, slope))`, plus `x` when `residual`.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        slope: Option<f32>,
        residual: bool,
    ) -> Result<Tensor, VitsError> {
        match self {
            Self::Direct(conv) => conv.forward(x, slope, residual),
            Self::Tensor(conv) => {
                let act = match slope {
                    Some(a) => leaky_relu(x, a as f64)?,
                    None => x.clone(),
                };
                let y = conv.forward(&act)?;
                Ok(if residual { (y + x)? } else { y })
            }
        }
    }
}

/// A pointwise (1×1) convolution: candle's matmul, or on the CPU a [`cpu::Pointwise`]
/// that works on plain buffers and can accumulate into its destination.
#[derive(Debug, Clone)]
pub(crate) enum Pointwise {
    Cpu(cpu::Pointwise),
    Tensor(Conv1d),
}

impl Pointwise {
    /// Loads `{prefix}.weight` `[out, in, 1]` and `{prefix}.bias`, in the CPU form when
    /// `native` (see [`super::Kernels`]).
    pub(crate) fn load(w: &Weights, prefix: &str, native: bool) -> Result<Self, VitsError> {
        let conv = Conv1d::load(w, prefix, 1, true)?;
        if conv.kernel != 1 {
            return Err(VitsError::Shape {
                name: format!("{prefix}.weight"),
                expected: "[out, in, 1] (pointwise)".into(),
                got: conv.weight.dims().to_vec(),
            });
        }
        if !native {
            return Ok(Self::Tensor(conv));
        }
        let (out_ch, in_ch) = (conv.out_channels(), conv.in_channels());
        let (weight, bias) = conv.to_vecs()?;
        Ok(Self::Cpu(cpu::Pointwise::new(weight, bias, out_ch, in_ch)?))
    }

    /// Number of output channels.
    pub(crate) fn out_channels(&self) -> usize {
        match self {
            Self::Cpu(p) => p.out_channels(),
            Self::Tensor(c) => c.out_channels(),
        }
    }

    /// Number of input channels.
    pub(crate) fn in_channels(&self) -> usize {
        match self {
            Self::Cpu(p) => p.in_channels(),
            Self::Tensor(c) => c.in_channels(),
        }
    }

    /// The CPU form, when that is what was loaded.
    pub(crate) fn cpu(&self) -> Option<&cpu::Pointwise> {
        match self {
            Self::Cpu(p) => Some(p),
            Self::Tensor(_) => None,
        }
    }

    /// `x`: `[1, in, T]` → `[1, out, T]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor, VitsError> {
        match self {
            Self::Tensor(c) => c.forward(x),
            Self::Cpu(p) => {
                let (_, _, len) = x.dims3()?;
                let data = x.flatten_all()?.to_vec1::<f32>()?;
                let y = p.forward(&data, len);
                Ok(Tensor::from_vec(y, (1, p.out_channels(), len), x.device())?)
            }
        }
    }
}

/// LayerNorm over the channel axis of a `[1, C, T]` tensor (VITS' `modules.LayerNorm`).
#[derive(Debug, Clone)]
pub(crate) struct ChannelNorm {
    /// `[1, C, 1]`.
    gamma: Tensor,
    /// `[1, C, 1]`.
    beta: Tensor,
    /// The same values as plain vectors, for [`Self::forward_cpu`].
    gamma_v: Vec<f32>,
    beta_v: Vec<f32>,
    eps: f64,
}

impl ChannelNorm {
    /// Loads `{prefix}.gamma` / `{prefix}.beta` of `channels` elements.
    pub(crate) fn load(w: &Weights, prefix: &str, channels: usize) -> Result<Self, VitsError> {
        let gamma = w
            .get_vector(&format!("{prefix}.gamma"), channels)?
            .reshape((1, channels, 1))?;
        let beta = w
            .get_vector(&format!("{prefix}.beta"), channels)?
            .reshape((1, channels, 1))?;
        Ok(Self {
            gamma_v: gamma.flatten_all()?.to_vec1::<f32>()?,
            beta_v: beta.flatten_all()?.to_vec1::<f32>()?,
            gamma,
            beta,
            eps: 1e-5,
        })
    }

    /// [`Self::forward`] in place on a `[C, len]` buffer.
    pub(crate) fn forward_cpu(&self, x: &mut [f32], len: usize) {
        cpu::layer_norm(x, len, &self.gamma_v, &self.beta_v, self.eps as f32);
    }

    /// Normalizes every time step over its channels (biased variance, like PyTorch).
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor, VitsError> {
        let mean = x.mean_keepdim(1)?;
        let centered = x.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(1)?;
        let normed = centered.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        Ok(normed
            .broadcast_mul(&self.gamma)?
            .broadcast_add(&self.beta)?)
    }
}

/// Depthwise (groups = channels) 1-D convolution with "same" padding.
///
/// candle's grouped conv1d loops over groups; k shifted slices times per-channel
/// weights are two orders of magnitude faster for 192 groups.
#[derive(Debug, Clone)]
pub(crate) struct DepthwiseConv1d {
    /// One `[1, C, 1]` weight column per kernel tap.
    taps: Vec<Tensor>,
    /// `[1, C, 1]`.
    bias: Tensor,
    /// Row-major `[C, k]` and `[C]`, for [`Self::forward_cpu`].
    weight_v: Vec<f32>,
    bias_v: Vec<f32>,
    dilation: usize,
}

impl DepthwiseConv1d {
    /// Loads `{prefix}.weight` (`[C, 1, k]`) and `{prefix}.bias`.
    pub(crate) fn load(w: &Weights, prefix: &str, dilation: usize) -> Result<Self, VitsError> {
        let weight = w.get_rank(&format!("{prefix}.weight"), 3)?;
        let (channels, one, kernel) = weight.dims3()?;
        if one != 1 {
            return Err(VitsError::Shape {
                name: format!("{prefix}.weight"),
                expected: "[C, 1, k] (depthwise)".to_string(),
                got: weight.dims().to_vec(),
            });
        }
        let taps = (0..kernel)
            .map(|j| weight.narrow(2, j, 1)?.reshape((1, channels, 1)))
            .collect::<Result<Vec<_>, _>>()?;
        let bias = w
            .get_vector(&format!("{prefix}.bias"), channels)?
            .reshape((1, channels, 1))?;
        Ok(Self {
            taps,
            weight_v: weight.flatten_all()?.to_vec1::<f32>()?,
            bias_v: bias.flatten_all()?.to_vec1::<f32>()?,
            bias,
            dilation,
        })
    }

    /// [`Self::forward`] on a `[C, len]` buffer: one pass per channel row.
    pub(crate) fn forward_cpu(&self, x: &[f32], len: usize) -> Vec<f32> {
        let k = self.taps.len();
        let pad = self.dilation * (k - 1) / 2;
        let mut out = vec![0.0f32; x.len()];
        if len == 0 {
            return out;
        }
        count_macs(x.len() * k);
        vectorized(
            #[inline(always)]
            || {
                for ((o, row), (w, &b)) in out
                    .chunks_exact_mut(len)
                    .zip(x.chunks_exact(len))
                    .zip(self.weight_v.chunks_exact(k).zip(&self.bias_v))
                {
                    o.fill(b);
                    for (j, &wj) in w.iter().enumerate() {
                        // Tap j reads x[t + j·d − pad]; zero outside 0..len.
                        let shift = (j * self.dilation) as isize - pad as isize;
                        let t_lo = (-shift).clamp(0, len as isize) as usize;
                        let t_hi =
                            (len as isize - shift).clamp(t_lo as isize, len as isize) as usize;
                        if t_hi == t_lo {
                            continue; // the tap only sees padding
                        }
                        let src = &row
                            [(t_lo as isize + shift) as usize..(t_hi as isize + shift) as usize];
                        o[t_lo..t_hi]
                            .iter_mut()
                            .zip(src)
                            .for_each(|(o, &v)| *o += wj * v);
                    }
                }
            },
        );
        out
    }

    /// `[1, C, T]` → `[1, C, T]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor, VitsError> {
        let len = x.dim(2)?;
        let pad = self.dilation * (self.taps.len() - 1) / 2;
        let padded = x.pad_with_zeros(2, pad, pad)?;
        let mut acc = self.bias.broadcast_as(x.shape())?.contiguous()?;
        for (j, tap) in self.taps.iter().enumerate() {
            let shifted = padded.narrow(2, j * self.dilation, len)?;
            acc = (acc + shifted.broadcast_mul(tap)?)?;
        }
        Ok(acc)
    }
}

/// LeakyReLU as `max(x, slope·x)` (valid for 0 < slope < 1), cheaper than candle_nn's.
pub(crate) fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor, VitsError> {
    Ok(x.maximum(&(x * slope)?)?)
}

/// Softmax over the last axis, max-subtracted for stability.
pub(crate) fn softmax_last_dim(x: &Tensor) -> Result<Tensor, VitsError> {
    let max = x.max_keepdim(D::Minus1)?;
    let e = x.broadcast_sub(&max)?.exp()?;
    let sum = e.sum_keepdim(D::Minus1)?;
    Ok(e.broadcast_div(&sum)?)
}

/// Reverses the channel order of `[1, C, T]` (VITS' `Flip`, `torch.flip(x, [1])`).
pub(crate) fn flip_channels(x: &Tensor) -> Result<Tensor, VitsError> {
    let channels = x.dim(1)?;
    let idx: Vec<u32> = (0..channels as u32).rev().collect();
    let idx = Tensor::from_vec(idx, channels, x.device())?;
    Ok(x.index_select(&idx, 1)?)
}
