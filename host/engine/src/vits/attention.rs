//! VITS' relative-position self-attention on channels-first `[C, T]` buffers.
//!
//! The matrix products go through `gemm` (what candle's matmul calls), reading `Q`, `K`,
//! `V` in place through strides; the relative-key logits, the softmax and the band of
//! probabilities the relative values need are one fused, threaded pass per head.

use super::isa::with_avx2;
use super::math::{exp, max, sum};
use super::parallel::{run_items, threads_for, SendPtr, ELEMENTWISE_MIN_ELEMS, GEMM_MIN_MACS};

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
    let parallelism = match threads_for(m * n * k, GEMM_MIN_MACS) {
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
            threads_for(len * len, ELEMENTWISE_MIN_ELEMS),
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
