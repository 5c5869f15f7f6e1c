//! Fused CPU building blocks on plain `f32` buffers (channels-first `[C, T]` rows).
//!
//! candle runs every elementwise op as its own pass with a fresh output tensor, mostly
//! on one thread. Where a part of the model chains many of them over long inputs (the
//! flow's gated WaveNet runs 16 layers over every frame) those passes cost more than the
//! convolutions. Here the chains are single passes that write into buffers the caller
//! owns, the pointwise convolutions accumulate straight into their destination through
//! `gemm` (what candle's matmul calls), and the transcendental functions are a
//! vectorisable polynomial instead of libm calls.

use super::direct_conv::run_items;

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

/// Worker threads for `work` units when `min` of them are worth a thread.
fn threads_for(work: usize, min: usize) -> usize {
    if work < min {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Output pointer shared by workers that write disjoint rows.
#[derive(Clone, Copy)]
struct RowsPtr(*mut f32);
// SAFETY: every worker writes its own rows; the owner outlives the workers.
unsafe impl Send for RowsPtr {}
unsafe impl Sync for RowsPtr {}

impl RowsPtr {
    /// Row `row` of `len` floats.
    ///
    /// # Safety
    /// The row must be in bounds and written by one worker only.
    #[allow(clippy::mut_from_ref)]
    unsafe fn row(&self, row: usize, len: usize) -> &mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(row * len), len)
    }
}

/// WaveNet's gated activation: `out[c] = tanh(x[c] + b[c]) · σ(x[h + c] + b[h + c])` for
/// the `h` rows of `out`, where `x` is `[2h, len]` and `b` an optional per-row offset
/// (a speaker's conditioning).
pub(crate) fn gated_tanh(x: &[f32], h: usize, len: usize, offset: Option<&[f32]>, out: &mut [f32]) {
    debug_assert_eq!(x.len(), 2 * h * len);
    debug_assert_eq!(out.len(), h * len);
    let dst = RowsPtr(out.as_mut_ptr());
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
    #[cfg(target_arch = "x86_64")]
    if super::direct_conv::has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { gate_row_avx2(a, g, ba, bb, out) };
    }
    gate_row_portable(a, g, ba, bb, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gate_row_avx2(a: &[f32], g: &[f32], ba: f32, bb: f32, out: &mut [f32]) {
    gate_row_portable(a, g, ba, bb, out);
}

#[inline(always)]
fn gate_row_portable(a: &[f32], g: &[f32], ba: f32, bb: f32, out: &mut [f32]) {
    for ((o, &a), &g) in out.iter_mut().zip(a).zip(g) {
        *o = tanh(a + ba) * sigmoid(g + bb);
    }
}

/// A 1×1 convolution `[out, in]` with bias, for `gemm` on `[C, T]` buffers.
#[derive(Debug, Clone)]
pub(crate) struct Pointwise {
    /// Row-major `[out, in]`.
    weight: Vec<f32>,
    bias: Vec<f32>,
    out_ch: usize,
    in_ch: usize,
}

impl Pointwise {
    /// `weight` row-major `[out, in]`; `bias` `out` elements.
    pub(crate) fn new(weight: Vec<f32>, bias: Vec<f32>, out_ch: usize, in_ch: usize) -> Self {
        debug_assert_eq!(weight.len(), out_ch * in_ch);
        debug_assert_eq!(bias.len(), out_ch);
        Self {
            weight,
            bias,
            out_ch,
            in_ch,
        }
    }

    pub(crate) fn out_channels(&self) -> usize {
        self.out_ch
    }

    pub(crate) fn in_channels(&self) -> usize {
        self.in_ch
    }

    /// `dst[o] += sign · (W[o] · x + b[o])` for the output rows `rows` (a contiguous
    /// range of this layer's outputs); `x` is `[in, len]`, `dst` `[rows.len(), len]`.
    pub(crate) fn accumulate(
        &self,
        x: &[f32],
        len: usize,
        rows: std::ops::Range<usize>,
        sign: f32,
        dst: &mut [f32],
    ) {
        debug_assert_eq!(x.len(), self.in_ch * len);
        debug_assert_eq!(dst.len(), rows.len() * len);
        for (row, &b) in dst.chunks_exact_mut(len).zip(&self.bias[rows.clone()]) {
            let b = sign * b;
            row.iter_mut().for_each(|v| *v += b);
        }
        self.gemm(x, len, rows, sign, true, dst);
    }

    /// `W · x + b`: `[in, len]` → `[out, len]`.
    pub(crate) fn forward(&self, x: &[f32], len: usize) -> Vec<f32> {
        let mut dst = vec![0.0; self.out_ch * len];
        for (row, &b) in dst.chunks_exact_mut(len.max(1)).zip(&self.bias) {
            row.fill(b);
        }
        self.gemm(x, len, 0..self.out_ch, 1.0, true, &mut dst);
        dst
    }

    fn gemm(
        &self,
        x: &[f32],
        len: usize,
        rows: std::ops::Range<usize>,
        scale: f32,
        read_dst: bool,
        dst: &mut [f32],
    ) {
        let (m, n, k) = (rows.len(), len, self.in_ch);
        if m == 0 || n == 0 {
            return;
        }
        let parallelism = match threads_for(m * n * k, PARALLEL_MIN_MACS) {
            1 => gemm::Parallelism::None,
            t => gemm::Parallelism::Rayon(t),
        };
        let lhs = &self.weight[rows.start * k..rows.end * k];
        // SAFETY: dst is [m, n] row-major, lhs [m, k], x [k, n]; the sizes were checked
        // by the callers' shapes (debug-asserted above).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.as_mut_ptr(),
                1,
                n as isize,
                read_dst,
                lhs.as_ptr(),
                1,
                k as isize,
                x.as_ptr(),
                1,
                n as isize,
                1.0,
                scale,
                false,
                false,
                false,
                parallelism,
            );
        }
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
    fn gate_and_pointwise_match_scalar_reference() {
        let (h, len) = (5, 300_00);
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
        let p = Pointwise::new(w.clone(), b.clone(), o, i);
        let y = p.forward(&out, len);
        let mut dst = vec![1.0; 2 * len];
        p.accumulate(&out, len, 1..3, -1.0, &mut dst);
        for r in 0..o {
            for t in (0..len).step_by(101) {
                let want = b[r] + (0..i).map(|c| w[r * i + c] * out[c * len + t]).sum::<f32>();
                assert!((y[r * len + t] - want).abs() < 1e-5);
                if r > 0 {
                    assert!((dst[(r - 1) * len + t] - (1.0 - want)).abs() < 1e-5);
                }
            }
        }
    }
}
