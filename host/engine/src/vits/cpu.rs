//! Fused CPU building blocks on plain `f32` buffers (channels-first `[C, T]` rows).
//!
//! candle runs every elementwise op as its own pass with a fresh output tensor, mostly
//! on one thread. Where a part of the model chains many of them over long inputs (the
//! flow's gated WaveNet runs 16 layers over every frame) those passes cost more than the
//! convolutions. Here the chains are single passes that write into buffers the caller
//! owns, and the pointwise convolutions add straight into their destination (the direct
//! kernel's store). The polynomial `exp`/`tanh`/`erf` these passes use are in
//! [`super::math`], attention (whose products go through `gemm`) in
//! [`super::attention`].

use super::conv::DirectConv1d;
use super::isa::vectorized;
use super::math::{sigmoid, tanh};
use super::parallel::{run_items, threads_for, SendPtr, ELEMENTWISE_MIN_ELEMS};
use super::VitsError;

/// WaveNet's gated activation: `out[c] = tanh(x[c] + b[c]) · σ(x[h + c] + b[h + c])` for
/// the `h` rows of `out`, where `x` is `[2h, len]` and `b` an optional per-row offset
/// (a speaker's conditioning).
pub(crate) fn gated_tanh(x: &[f32], h: usize, len: usize, offset: Option<&[f32]>, out: &mut [f32]) {
    // Real checks: the rows below are written through a raw pointer.
    assert_eq!(x.len(), 2 * h * len, "gate input size");
    assert_eq!(out.len(), h * len, "gate output size");
    if let Some(b) = offset {
        assert_eq!(b.len(), 2 * h, "gate offset size");
    }
    let dst = SendPtr(out.as_mut_ptr());
    let rows_per_item = 8;
    let items = h.div_ceil(rows_per_item);
    run_items(
        items,
        threads_for(h * len, ELEMENTWISE_MIN_ELEMS),
        |item, _| {
            let rows = item * rows_per_item..((item + 1) * rows_per_item).min(h);
            for c in rows {
                let (ba, bb) = offset.map_or((0.0, 0.0), |b| (b[c], b[h + c]));
                let a = &x[c * len..(c + 1) * len];
                let g = &x[(h + c) * len..(h + c + 1) * len];
                // SAFETY: row `c` of `out` is written by this item only.
                let o = unsafe { dst.row(c, len) };
                gate_row(a, g, ba, bb, o);
            }
        },
    );
}

fn gate_row(a: &[f32], g: &[f32], ba: f32, bb: f32, out: &mut [f32]) {
    vectorized(
        #[inline(always)]
        || {
            for ((o, &a), &g) in out.iter_mut().zip(a).zip(g) {
                *o = tanh(a + ba) * sigmoid(g + bb);
            }
        },
    )
}

/// LayerNorm over the channels of a `[C, len]` buffer, in place (biased variance, as
/// VITS' `modules.LayerNorm`): three vectorised row sweeps, no transposes.
pub(crate) fn layer_norm(x: &mut [f32], len: usize, gamma: &[f32], beta: &[f32], eps: f32) {
    vectorized(
        #[inline(always)]
        || layer_norm_inner(x, len, gamma, beta, eps),
    )
}

#[inline(always)]
fn layer_norm_inner(x: &mut [f32], len: usize, gamma: &[f32], beta: &[f32], eps: f32) {
    let channels = gamma.len();
    debug_assert_eq!(x.len(), channels * len);
    if len == 0 {
        return;
    }
    let mut mean = vec![0.0f32; len];
    for row in x.chunks_exact(len) {
        mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v);
    }
    let n = 1.0 / channels as f32;
    mean.iter_mut().for_each(|m| *m *= n);
    let mut var = vec![0.0f32; len];
    for row in x.chunks_exact(len) {
        var.iter_mut()
            .zip(row)
            .zip(&mean)
            .for_each(|((s, &v), &m)| *s += (v - m) * (v - m));
    }
    // 1 / sqrt(var + eps), per time step.
    var.iter_mut()
        .for_each(|s| *s = 1.0 / (*s * n + eps).sqrt());
    for ((row, &g), &b) in x.chunks_exact_mut(len).zip(gamma).zip(beta) {
        row.iter_mut()
            .zip(&mean)
            .zip(&var)
            .for_each(|((v, &m), &inv)| *v = (*v - m) * inv * g + b);
    }
}

/// A 1×1 convolution `[out, in]` with bias on `[C, T]` buffers, run by the direct
/// kernel (as fast as `gemm` here, and its store adds into the destination, so the
/// flow's res/skip and the attention's output projection need no separate pass).
#[derive(Debug, Clone)]
pub(crate) struct Pointwise {
    conv: DirectConv1d,
    out_ch: usize,
    in_ch: usize,
}

impl Pointwise {
    /// `weight` row-major `[out, in]`; `bias` `out` elements.
    pub(crate) fn new(
        weight: Vec<f32>,
        bias: Vec<f32>,
        out_ch: usize,
        in_ch: usize,
    ) -> Result<Self, VitsError> {
        let device = candle_core::Device::Cpu;
        let weight = candle_core::Tensor::from_vec(weight, (out_ch, in_ch, 1), &device)?;
        let bias = candle_core::Tensor::from_vec(bias, out_ch, &device)?;
        Ok(Self {
            conv: DirectConv1d::new(&weight, Some(&bias), 1)?,
            out_ch,
            in_ch,
        })
    }

    pub(crate) fn out_channels(&self) -> usize {
        self.out_ch
    }

    pub(crate) fn in_channels(&self) -> usize {
        self.in_ch
    }

    /// `dst += W · x + b`; `x` is `[in, len]`, `dst` `[out, len]`.
    pub(crate) fn accumulate(&self, x: &[f32], len: usize, dst: &mut [f32]) {
        self.conv.run_into(x, len, None, None, dst, true);
    }

    /// `dst −= W · x + b`.
    pub(crate) fn subtract(&self, x: &[f32], len: usize, dst: &mut [f32]) {
        let y = self.forward(x, len);
        vectorized(
            #[inline(always)]
            || dst.iter_mut().zip(&y).for_each(|(d, &v)| *d -= v),
        );
    }

    /// `W · x + b`: `[in, len]` → `[out, len]`.
    pub(crate) fn forward(&self, x: &[f32], len: usize) -> Vec<f32> {
        self.conv.run(x, len, None, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_and_pointwise_match_scalar_reference() {
        let (h, len) = (5, 30_000);
        let x: Vec<f32> = (0..2 * h * len)
            .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        let offset: Vec<f32> = (0..2 * h).map(|i| i as f32 * 0.1 - 0.5).collect();
        let mut out = vec![0.0; h * len];
        gated_tanh(&x, h, len, Some(&offset), &mut out);
        for c in 0..h {
            for t in (0..len).step_by(97) {
                let a = (x[c * len + t] + offset[c]).tanh();
                let g = 1.0 / (1.0 + (-(x[(h + c) * len + t] + offset[h + c])).exp());
                assert!((out[c * len + t] - a * g).abs() < 1e-6);
            }
        }
        // y = W x + b; then dst -= rows 1..3 of (W x + b).
        let (o, i) = (3, h);
        let w: Vec<f32> = (0..o * i).map(|j| j as f32 * 0.01 - 0.05).collect();
        let b = vec![0.5, -1.0, 2.0];
        let p = Pointwise::new(w.clone(), b.clone(), o, i).unwrap();
        let y = p.forward(&out, len);
        let mut plus = vec![1.0; o * len];
        p.accumulate(&out, len, &mut plus);
        let mut minus = vec![1.0; o * len];
        p.subtract(&out, len, &mut minus);
        for r in 0..o {
            for t in (0..len).step_by(101) {
                let want = b[r] + (0..i).map(|c| w[r * i + c] * out[c * len + t]).sum::<f32>();
                let at = r * len + t;
                assert!((y[at] - want).abs() < 1e-5);
                assert!((plus[at] - (1.0 + want)).abs() < 1e-5);
                assert!((minus[at] - (1.0 - want)).abs() < 1e-5);
            }
        }
    }
}
