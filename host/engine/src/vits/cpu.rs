//! Fused CPU building blocks on plain `f32` buffers (channels-first `[C, T]` rows).
//!
//! candle runs every elementwise op as its own pass with a fresh output tensor, mostly
//! on one thread. Where a part of the model chains many of them over long inputs (the
//! flow's gated WaveNet runs 16 layers over every frame) those passes cost more than the
//! convolutions. Here the chains are single passes that write into buffers the caller
//! owns, the pointwise convolutions add straight into their destination (the direct
//! kernel's store), attention's matrix products go through `gemm` (what candle's matmul
//! calls), and the transcendental functions are a vectorisable polynomial instead of
//! libm calls.

use super::direct_conv::{run_items, DirectConv1d, SendPtr};
use super::VitsError;

/// Below this many elements an elementwise pass stays on the calling thread.
const PARALLEL_MIN_ELEMS: usize = 1 << 16;
/// Below this many multiply-adds a gemm stays on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// `e^x` to about 2 ulp for |x| < 87 (Cephes' `expf` polynomial; saturates beyond),
/// written so that LLVM vectorises loops calling it.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 87.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// `1 / (1 + e^−x)`.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh x` as `1 − 2 / (1 + e^2x)`: absolute error about 1e-7.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (1.0 + exp(2.0 * x))
}

/// Runs `f` compiled for AVX2 + FMA when the CPU has them: `f` is inlined into a
/// function with those target features, so its loops vectorise 8 lanes wide instead of
/// the 4 of the x86-64 baseline. Callers mark the closure `#[inline(always)]`: left to
/// itself LLVM may keep a large closure out of line, compiled for the baseline.
#[inline(always)]
pub(crate) fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if super::direct_conv::has_avx2_fma() {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn run<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { run(f) };
    }
    f()
}

/// Sum of `v` with 8 independent partial sums (a plain fold is a serial chain that
/// LLVM may not reorder, so it would not vectorise).
#[inline(always)]
fn sum(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = v.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Maximum of `v` (−∞ when empty), vectorisable like [`sum`]; NaNs are not expected.
#[inline(always)]
fn max(v: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = v.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = if x > *a { x } else { *a };
        }
    }
    acc.iter().fold(tail, |m, &x| if x > m { x } else { m })
}

/// Worker threads for `work` units when `min` of them are worth a thread (capped like
/// the convolutions', see [`super::direct_conv::max_threads`]).
fn threads_for(work: usize, min: usize) -> usize {
    if work < min {
        1
    } else {
        super::direct_conv::max_threads()
    }
}

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
        threads_for(h * len, PARALLEL_MIN_ELEMS),
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
    with_avx2(
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
    with_avx2(
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

/// `erf x` to about 5e-7 (Abramowitz & Stegun 7.1.26 in `f32`), vectorisable.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let p = 1.061_405_4;
    let p = p * t - 1.453_152;
    let p = p * t + 1.421_413_7;
    let p = p * t - 0.284_496_74;
    let p = p * t + 0.254_829_6;
    let y = 1.0 - p * t * exp(-a * a);
    if x < 0.0 {
        -y
    } else {
        y
    }
}

/// GELU (the erf form, as `torch.nn.functional.gelu`) in place.
pub(crate) fn gelu(x: &mut [f32]) {
    with_avx2(
        #[inline(always)]
        || {
            x.iter_mut()
                .for_each(|v| *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2)))
        },
    );
}

/// `tanh` in place.
pub(crate) fn tanh_in_place(x: &mut [f32]) {
    with_avx2(
        #[inline(always)]
        || x.iter_mut().for_each(|v| *v = tanh(*v)),
    );
}

/// `x += y`, elementwise.
pub(crate) fn add_assign(x: &mut [f32], y: &[f32]) {
    debug_assert_eq!(x.len(), y.len());
    with_avx2(
        #[inline(always)]
        || x.iter_mut().zip(y).for_each(|(a, &b)| *a += b),
    );
}

/// Softmax of one row in place (max-subtracted).
#[inline(always)]
fn softmax_row(row: &mut [f32]) {
    let m = max(row);
    row.iter_mut().for_each(|v| *v = exp(*v - m));
    let inv = 1.0 / sum(row);
    row.iter_mut().for_each(|v| *v *= inv);
}

/// `C = A · B` (or `C += A · B` when `accumulate`) for row-major `C` `[m, n]`, with `A`
/// `[m, k]` and `B` `[k, n]` given by their (row, column) strides.
///
/// # Safety
/// Every index the strides reach must be inside the buffers behind the pointers.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(
    (m, n, k): (usize, usize, usize),
    c: *mut f32,
    a: *const f32,
    (a_rs, a_cs): (isize, isize),
    b: *const f32,
    (b_rs, b_cs): (isize, isize),
    accumulate: bool,
) {
    let parallelism = match threads_for(m * n * k, PARALLEL_MIN_MACS) {
        1 => gemm::Parallelism::None,
        t => gemm::Parallelism::Rayon(t),
    };
    gemm::gemm(
        m,
        n,
        k,
        c,
        1,
        n as isize,
        accumulate,
        a,
        a_cs,
        a_rs,
        b,
        b_cs,
        b_rs,
        1.0,
        1.0,
        false,
        false,
        false,
        parallelism,
    );
}

/// Multi-head self-attention with shared relative-position embeddings (VITS'
/// `MultiHeadAttention` with `window_size`, batch 1, no mask), on channels-first
/// buffers.
///
/// `qkv` is `[3·H, len]`: queries (already divided by `sqrt(d_k)`), keys, values; `H`
/// = `heads · d_k`. `rel_k` / `rel_v` are `[2·window+1, d_k]`. Writes `[H, len]` into
/// `out`. Per head: scores `QᵀK` plus the relative-key logits on the band
/// `|j − i| ≤ window`, a row softmax, then `V·Pᵀ` plus the relative-value term read
/// off the band of `P`.
pub(crate) fn relative_attention(
    qkv: &[f32],
    heads: usize,
    len: usize,
    rel_k: &[f32],
    rel_v: &[f32],
    out: &mut [f32],
) {
    if len == 0 {
        return;
    }
    let hidden = qkv.len() / (3 * len);
    let d_k = hidden / heads;
    let span = rel_k.len() / d_k;
    let window = span / 2;
    // Real checks: the products below read through raw pointers.
    assert_eq!(qkv.len(), 3 * hidden * len, "qkv size");
    assert_eq!(hidden, heads * d_k, "heads · d_k");
    assert_eq!(rel_k.len(), span * d_k, "emb_rel_k size");
    assert_eq!(rel_v.len(), rel_k.len(), "emb_rel_v size");
    assert_eq!(out.len(), hidden * len, "attention output size");
    let mut scores = vec![0.0f32; len * len];
    let mut rel = vec![0.0f32; span * len];
    // Row i: p[i][i + r − window] for r in 0..span (0 off the ends).
    let mut band = vec![0.0f32; len * span];
    let (l, dk) = (len as isize, d_k as isize);
    for h in 0..heads {
        let q = &qkv[h * d_k * len..(h + 1) * d_k * len];
        let k = &qkv[(hidden + h * d_k) * len..(hidden + (h + 1) * d_k) * len];
        let v = &qkv[(2 * hidden + h * d_k) * len..(2 * hidden + (h + 1) * d_k) * len];
        let o = &mut out[h * d_k * len..(h + 1) * d_k * len];
        // SAFETY: shapes as documented: q, k, v are [d_k, len]; scores [len, len];
        // rel [span, len]; o [d_k, len].
        unsafe {
            // scores[i][j] = Σ_d q[d][i] k[d][j]
            matmul(
                (len, len, d_k),
                scores.as_mut_ptr(),
                q.as_ptr(),
                (1, l),
                k.as_ptr(),
                (l, 1),
                false,
            );
            // rel[r][i] = Σ_d rel_k[r][d] q[d][i]
            matmul(
                (span, len, d_k),
                rel.as_mut_ptr(),
                rel_k.as_ptr(),
                (dk, 1),
                q.as_ptr(),
                (l, 1),
                false,
            );
        }
        let rows = SendPtr(scores.as_mut_ptr());
        let band_rows = SendPtr(band.as_mut_ptr());
        let rel = &rel;
        let rows_per_item = 16;
        run_items(
            len.div_ceil(rows_per_item),
            threads_for(len * len, PARALLEL_MIN_ELEMS),
            |item, _| {
                for i in item * rows_per_item..((item + 1) * rows_per_item).min(len) {
                    // SAFETY: row i of scores and of band is this item's.
                    let (row, band) = unsafe { (rows.row(i, len), band_rows.row(i, span)) };
                    // Band offsets r with 0 ≤ i + r − window < len.
                    let r_lo = window.saturating_sub(i);
                    let r_hi = span.min(len + window - i);
                    for r in r_lo..r_hi {
                        row[i + r - window] += rel[r * len + i];
                    }
                    with_avx2(
                        #[inline(always)]
                        || softmax_row(row),
                    );
                    band.fill(0.0);
                    for r in r_lo..r_hi {
                        band[r] = row[i + r - window];
                    }
                }
            },
        );
        // SAFETY: as above, band [len, span].
        unsafe {
            // o[d][i] = Σ_j v[d][j] p[i][j]
            matmul(
                (d_k, len, len),
                o.as_mut_ptr(),
                v.as_ptr(),
                (l, 1),
                scores.as_ptr(),
                (1, l),
                false,
            );
            // o[d][i] += Σ_r rel_v[r][d] band[i][r]
            let s = span as isize;
            matmul(
                (d_k, len, span),
                o.as_mut_ptr(),
                rel_v.as_ptr(),
                (1, dk),
                band.as_ptr(),
                (1, s),
                true,
            );
        }
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
        with_avx2(
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
    fn exp_tanh_sigmoid_match_libm() {
        let mut worst = [0f32; 3];
        for i in -20_000..=20_000 {
            let x = i as f32 * 1e-3;
            let e = (exp(x) - x.exp()).abs() / x.exp();
            worst[0] = worst[0].max(e);
            worst[1] = worst[1].max((tanh(x) - x.tanh()).abs());
            worst[2] = worst[2].max((sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs());
        }
        assert!(worst[0] < 3e-7, "exp relative error {}", worst[0]);
        assert!(worst[1] < 3e-7, "tanh error {}", worst[1]);
        assert!(worst[2] < 2e-7, "sigmoid error {}", worst[2]);
        assert_eq!(tanh(200.0), 1.0);
        assert_eq!(tanh(-200.0), -1.0);
        assert!(sigmoid(-200.0) >= 0.0 && sigmoid(200.0) == 1.0);
    }

    #[test]
    fn erf_and_gelu_match_reference() {
        // erf through libm's erfc-free identity: compare with a high-precision series.
        let erf64 = |x: f64| {
            // Maclaurin series, fine for |x| ≤ 3 in f64.
            let mut sum = 0.0f64;
            let mut term = x;
            let mut n = 0.0f64;
            while term.abs() > 1e-17 * sum.abs().max(1e-300) && n < 200.0 {
                sum += term / (2.0 * n + 1.0);
                n += 1.0;
                term *= -x * x / n;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        };
        let mut worst = 0f64;
        for i in -3000..=3000 {
            let x = i as f32 * 1e-3;
            worst = worst.max((f64::from(erf(x)) - erf64(f64::from(x))).abs());
        }
        // 1.5e-7 for the formula in exact arithmetic, plus f32 rounding.
        assert!(worst < 6e-7, "erf error {worst}");
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
        let mut v = vec![-1.0f32, 0.0, 0.5, 3.0];
        gelu(&mut v);
        let want = [-0.158_655_25f32, 0.0, 0.345_731_14, 2.995_950_4];
        for (g, w) in v.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
    }

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
