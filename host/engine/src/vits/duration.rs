//! Stochastic duration predictor (`dp`), run in reverse: noise → log-durations.
//!
//! Reverse flow order for n ConvFlows: [Flip, CF_{2n−1}, …, Flip, CF_3, Flip, ElementwiseAffine]
//! (VITS drops the first ConvFlow at inference). Each ConvFlow inverts a monotonic
//! rational-quadratic spline with linear tails.

use candle_core::Tensor;

use super::ops::{flip_channels, ChannelNorm, Conv1d, DepthwiseConv1d, Pointwise};
use super::weights::Weights;
use super::{cpu, math};
use super::{DurationHyper, VitsError};

/// Spline interval half-width: outside ±TAIL_BOUND the ConvFlow is the identity.
const TAIL_BOUND: f32 = 5.0;
/// Minimum bin width, height and knot derivative of the spline.
const MIN_BIN: f32 = 1e-3;
const MIN_DERIVATIVE: f32 = 1e-3;

/// Dilated depthwise-separable conv stack: depthwise (dilation k^i) → LN → GELU → 1×1 → LN → GELU, residual.
#[derive(Debug, Clone)]
struct DdsConv {
    layers: Vec<DdsLayer>,
}

#[derive(Debug, Clone)]
struct DdsLayer {
    sep: DepthwiseConv1d,
    norm_1: ChannelNorm,
    pointwise: Pointwise,
    norm_2: ChannelNorm,
}

impl DdsConv {
    /// `dilations` are the voice's (`kernel^i` in VITS, the same for every DDSConv of `dp`),
    /// one per layer.
    fn load(w: &Weights, prefix: &str, dilations: &[usize]) -> Result<Self, VitsError> {
        let n_layers = w.count_indexed(|i| format!("{prefix}.convs_sep.{i}.weight"));
        if n_layers != dilations.len() {
            return Err(VitsError::Unsupported(format!(
                "{prefix} has {n_layers} layers but the voice gives {} dilations",
                dilations.len()
            )));
        }
        let first = w.get_rank(&format!("{prefix}.convs_sep.0.weight"), 3)?;
        let (channels, _, _) = first.dims3()?;
        let layers = dilations
            .iter()
            .enumerate()
            .map(|(i, &dilation)| {
                Ok(DdsLayer {
                    sep: DepthwiseConv1d::load(w, &format!("{prefix}.convs_sep.{i}"), dilation)?,
                    norm_1: ChannelNorm::load(w, &format!("{prefix}.norms_1.{i}"), channels)?,
                    pointwise: Pointwise::load(
                        w,
                        &format!("{prefix}.convs_1x1.{i}"),
                        w.native_cpu(),
                    )?,
                    norm_2: ChannelNorm::load(w, &format!("{prefix}.norms_2.{i}"), channels)?,
                })
            })
            .collect::<Result<Vec<_>, VitsError>>()?;
        Ok(Self { layers })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, VitsError> {
        let mut x = x.clone();
        for l in &self.layers {
            let y = l.norm_1.forward(&l.sep.forward(&x)?)?.gelu_erf()?;
            let y = l.norm_2.forward(&l.pointwise.forward(&y)?)?.gelu_erf()?;
            x = (x + y)?;
        }
        Ok(x)
    }

    /// [`Self::forward`] in place on a `[C, len]` buffer (CPU: fused passes, no
    /// per-op tensors).
    fn forward_cpu(&self, x: &mut [f32], len: usize) -> Result<(), VitsError> {
        for l in &self.layers {
            let pointwise = l
                .pointwise
                .cpu()
                .ok_or_else(|| VitsError::Internal("DDSConv not loaded for the CPU".into()))?;
            let mut y = l.sep.forward_cpu(x, len);
            l.norm_1.forward_cpu(&mut y, len);
            math::gelu(&mut y);
            let mut y = pointwise.forward(&y, len);
            l.norm_2.forward_cpu(&mut y, len);
            math::gelu(&mut y);
            math::add_assign(x, &y);
        }
        Ok(())
    }
}

/// Coupling flow whose second channel goes through a conditioned rational-quadratic spline.
#[derive(Debug, Clone)]
struct ConvFlow {
    pre: Pointwise,
    convs: DdsConv,
    proj: Pointwise,
    num_bins: usize,
    /// sqrt(filter_channels): the width/height logits are divided by it.
    logit_scale: f32,
}

impl ConvFlow {
    fn load(w: &Weights, prefix: &str, hyper: &DurationHyper) -> Result<Self, VitsError> {
        let pre = Pointwise::load(w, &format!("{prefix}.pre"), w.native_cpu())?;
        let proj = Pointwise::load(w, &format!("{prefix}.proj"), w.native_cpu())?;
        // proj emits 3·bins − 1 parameters per step (widths, heights, interior derivatives).
        let params = proj.out_channels();
        let num_bins = hyper.num_bins;
        if pre.in_channels() != 1 || num_bins == 0 || params != 3 * num_bins - 1 {
            return Err(VitsError::Shape {
                name: format!("{prefix}.proj.weight"),
                expected: format!("[3·bins−1, filter, 1] with 1-channel halves, {num_bins} bins"),
                got: vec![params, proj.in_channels()],
            });
        }
        Ok(Self {
            logit_scale: (pre.out_channels() as f32).sqrt(),
            num_bins,
            pre,
            convs: DdsConv::load(w, &format!("{prefix}.convs"), &hyper.ddsconv_dilations)?,
            proj,
        })
    }

    /// Inverse pass on `z` `[1, 2, T]` conditioned on `cond` `[1, filter, T]`.
    fn reverse(&self, z: &Tensor, cond: &Tensor) -> Result<Tensor, VitsError> {
        let x0 = z.narrow(1, 0, 1)?;
        let x1 = z.narrow(1, 1, 1)?;
        let h = self.convs.forward(&(self.pre.forward(&x0)? + cond)?)?;
        let params = self
            .proj
            .forward(&h)?
            .squeeze(0)?
            .t()?
            .contiguous()?
            .to_vec2::<f32>()?;
        let x1 = x1.flatten_all()?.to_vec1::<f32>()?;
        let out: Vec<f32> = x1
            .iter()
            .zip(&params)
            .map(|(&y, p)| self.inverse_spline(y, p))
            .collect();
        let len = out.len();
        let x1 = Tensor::from_vec(out, (1, 1, len), z.device())?;
        Ok(Tensor::cat(&[&x0, &x1], 1)?)
    }

    /// [`Self::reverse`] in place on `z` `[2, len]` with `cond` `[filter, len]` (CPU).
    fn reverse_cpu(&self, z: &mut [f32], cond: &[f32], len: usize) -> Result<(), VitsError> {
        let (Some(pre), Some(proj)) = (self.pre.cpu(), self.proj.cpu()) else {
            return Err(VitsError::Internal(
                "ConvFlow not loaded for the CPU".into(),
            ));
        };
        let (x0, x1) = z.split_at_mut(len);
        let mut h = pre.forward(x0, len);
        math::add_assign(&mut h, cond);
        self.convs.forward_cpu(&mut h, len)?;
        let params = proj.forward(&h, len);
        let n_params = proj.out_channels();
        let mut p = vec![0.0f32; n_params];
        for (t, y) in x1.iter_mut().enumerate() {
            for (k, v) in p.iter_mut().enumerate() {
                *v = params[k * len + t];
            }
            *y = self.inverse_spline(*y, &p);
        }
        Ok(())
    }

    /// Inverts the spline at one time step; `p` holds widths ‖ heights ‖ interior derivatives.
    fn inverse_spline(&self, y: f32, p: &[f32]) -> f32 {
        if !(-TAIL_BOUND..=TAIL_BOUND).contains(&y) {
            return y; // linear tails are the identity
        }
        let n = self.num_bins;
        let scale = self.logit_scale;
        let widths: Vec<f32> = p[..n].iter().map(|v| v / scale).collect();
        let heights: Vec<f32> = p[n..2 * n].iter().map(|v| v / scale).collect();
        let cumwidths = knots(&widths);
        let cumheights = knots(&heights);
        // Boundary derivatives are pinned so that the spline meets the linear tails with
        // slope 1: min + softplus(ln(e^(1−min) − 1)) = 1, computed the same way as the export.
        let boundary = MIN_DERIVATIVE + softplus(((1.0 - MIN_DERIVATIVE).exp() - 1.0).ln());
        let mut derivs = Vec::with_capacity(n + 1);
        derivs.push(boundary);
        derivs.extend(
            p[2 * n..3 * n - 1]
                .iter()
                .map(|&v| MIN_DERIVATIVE + softplus(v)),
        );
        derivs.push(boundary);

        let bin = find_bin(&cumheights, y);
        let (x_lo, y_lo) = (cumwidths[bin], cumheights[bin]);
        let bin_w = cumwidths[bin + 1] - x_lo;
        let bin_h = cumheights[bin + 1] - y_lo;
        let delta = bin_h / bin_w;
        let (d0, d1) = (derivs[bin], derivs[bin + 1]);
        let dy = y - y_lo;
        let a = dy * (d0 + d1 - 2.0 * delta) + bin_h * (delta - d0);
        let b = bin_h * d0 - dy * (d0 + d1 - 2.0 * delta);
        let c = -delta * dy;
        let disc = b * b - 4.0 * a * c;
        let root = (2.0 * c) / (-b - disc.sqrt());
        root * bin_w + x_lo
    }
}

/// Knot positions on [−B, B] from bin logits: softmax, floor at MIN_BIN, cumulative sum.
fn knots(logits: &[f32]) -> Vec<f32> {
    let n = logits.len();
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    let mut out = Vec::with_capacity(n + 1);
    out.push(0.0f32);
    let mut acc = 0.0f32;
    for e in exps {
        acc += MIN_BIN + (1.0 - MIN_BIN * n as f32) * (e / sum);
        out.push(acc);
    }
    for v in out.iter_mut() {
        *v = 2.0 * TAIL_BOUND * *v - TAIL_BOUND;
    }
    out[0] = -TAIL_BOUND;
    out[n] = TAIL_BOUND;
    out
}

/// Bin containing `y`: number of knots ≤ y minus one (last knot nudged by 1e-6), clamped.
fn find_bin(knots: &[f32], y: f32) -> usize {
    let last = knots.len() - 1;
    let count = knots
        .iter()
        .enumerate()
        .filter(|&(i, &k)| y >= if i == last { k + 1e-6 } else { k })
        .count();
    count.saturating_sub(1).min(last - 1)
}

/// `ln(1 + eˣ)`, stable for large |x|.
fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// The stochastic duration predictor `dp`.
#[derive(Debug, Clone)]
pub struct DurationPredictor {
    pre: Pointwise,
    /// Speaker conditioning `gin → filter` of multi-speaker voices.
    cond: Option<Conv1d>,
    convs: DdsConv,
    proj: Pointwise,
    /// ConvFlows in reverse-inference order (highest index first, the first one dropped).
    flows: Vec<ConvFlow>,
    /// ElementwiseAffine mean `[1, 2, 1]`.
    affine_m: Tensor,
    /// ElementwiseAffine log-scale `[1, 2, 1]`.
    affine_logs: Tensor,
}

impl DurationPredictor {
    /// Loads `dp.*`; which flows exist, the DDSConv dilations and the spline bins are the
    /// voice's hyperparameters, the widths those of the tensors.
    pub fn load(w: &Weights, hyper: &DurationHyper) -> Result<Self, VitsError> {
        // ConvFlows sit at odd indices 1, 3, 5, …; VITS drops the first (index 1) at
        // inference, and inference exports do not contain it.
        let mut flow_indices: Vec<usize> = hyper
            .conv_flow_indices
            .iter()
            .copied()
            .filter(|&i| i != 1)
            .collect();
        if flow_indices.is_empty() {
            return Err(VitsError::MissingWeight("dp.flows.3.pre.weight".into()));
        }
        flow_indices.reverse();
        let flows = flow_indices
            .iter()
            .map(|i| ConvFlow::load(w, &format!("dp.flows.{i}"), hyper))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            pre: Pointwise::load(w, "dp.pre", w.native_cpu())?,
            cond: w
                .contains("dp.cond.weight")
                .then(|| Conv1d::load(w, "dp.cond", 1, true))
                .transpose()?,
            convs: DdsConv::load(w, "dp.convs", &hyper.ddsconv_dilations)?,
            proj: Pointwise::load(w, "dp.proj", w.native_cpu())?,
            flows,
            affine_m: w.get_vector("dp.flows.0.m", 2)?.reshape((1, 2, 1))?,
            affine_logs: w.get_vector("dp.flows.0.logs", 2)?.reshape((1, 2, 1))?,
        })
    }

    /// Input width of the speaker conditioning (0 without one).
    pub fn cond_width(&self) -> usize {
        self.cond.as_ref().map_or(0, Conv1d::in_channels)
    }

    /// Log-durations `[T]` from the encoder's hidden states `[1, H, T]` and noise `[1, 2, T]`
    /// (already scaled by noise_w), for speaker `g` `[1, gin, 1]` of a multi-speaker voice.
    pub fn reverse(
        &self,
        hidden: &Tensor,
        noise: &Tensor,
        g: Option<&Tensor>,
    ) -> Result<Vec<f32>, VitsError> {
        if let (Some(pre), Some(proj)) = (self.pre.cpu(), self.proj.cpu()) {
            return self.reverse_cpu(pre, proj, hidden, noise, g);
        }
        let mut x = self.pre.forward(hidden)?;
        if let (Some(cond), Some(g)) = (&self.cond, g) {
            x = x.broadcast_add(&cond.forward(g)?)?;
        }
        let cond = self.proj.forward(&self.convs.forward(&x)?)?;
        let mut z = noise.clone();
        for flow in &self.flows {
            z = flip_channels(&z)?;
            z = flow.reverse(&z, &cond)?;
        }
        z = flip_channels(&z)?;
        // ElementwiseAffine inverse: (z − m) · exp(−logs).
        z = z
            .broadcast_sub(&self.affine_m)?
            .broadcast_mul(&self.affine_logs.neg()?.exp()?)?;
        Ok(z.narrow(1, 0, 1)?.flatten_all()?.to_vec1::<f32>()?)
    }

    /// [`Self::reverse`] on plain buffers (CPU).
    fn reverse_cpu(
        &self,
        pre: &cpu::Pointwise,
        proj: &cpu::Pointwise,
        hidden: &Tensor,
        noise: &Tensor,
        g: Option<&Tensor>,
    ) -> Result<Vec<f32>, VitsError> {
        let (_, _, len) = hidden.dims3()?;
        let mut x = pre.forward(&hidden.flatten_all()?.to_vec1::<f32>()?, len);
        if let (Some(cond), Some(g)) = (&self.cond, g) {
            let c = cond.forward(g)?.flatten_all()?.to_vec1::<f32>()?;
            for (row, &v) in x.chunks_exact_mut(len).zip(&c) {
                row.iter_mut().for_each(|x| *x += v);
            }
        }
        self.convs.forward_cpu(&mut x, len)?;
        let cond = proj.forward(&x, len);
        let mut z = noise.flatten_all()?.to_vec1::<f32>()?;
        // Flip of 2 channels: swap the rows.
        let flip = |z: &mut Vec<f32>| z.rotate_left(len);
        for flow in &self.flows {
            flip(&mut z);
            flow.reverse_cpu(&mut z, &cond, len)?;
        }
        flip(&mut z);
        // ElementwiseAffine inverse on the first row: (z − m) · exp(−logs).
        let m = self.affine_m.flatten_all()?.to_vec1::<f32>()?[0];
        let logs = self.affine_logs.flatten_all()?.to_vec1::<f32>()?[0];
        let scale = (-logs).exp();
        z.truncate(len);
        z.iter_mut().for_each(|v| *v = (*v - m) * scale);
        Ok(z)
    }
}
