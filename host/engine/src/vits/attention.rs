//! VITS' relative-position self-attention on channels-first `[C, T]` buffers.
//!
//! The matrix products go through `gemm` (what candle's matmul calls), reading `Q`, `K`,
//! `V` in place through strides. The work is cut into items of (head, block of query
//! rows), each independent of the others: its rows of the scores, the relative-key
//! logits, the softmax, the band of probabilities the relative values need, and its
//! columns of the output. The items run on the kernels' workers ([`run_items`]) with
//! single-threaded products, so attention needs no second thread pool: handing each
//! product to rayon's threads made them compete for the cores with the kernels' workers
//! (spinning between regions) and cost a hand-off per product.

use super::isa::vectorized;
use super::math::{exp, max, sum};
use super::parallel::{run_items, threads_for, SendPtr, CONV_MIN_MACS};
use super::roofline::count_macs;

/// Query rows per item: enough rows that a product is worth `gemm`'s packing, few
/// enough that a sentence of a few dozen phonemes still gives every worker an item.
const ROWS_PER_ITEM: usize = 16;

/// Softmax of one row in place (max-subtracted).
#[inline(always)]
fn softmax_row(row: &mut [f32]) {
    let m = max(row);
    row.iter_mut().for_each(|v| *v = exp(*v - m));
    let inv = 1.0 / sum(row);
    row.iter_mut().for_each(|v| *v *= inv);
}

/// `C = A · B` (or `C += A · B` when `accumulate`) for `C` `[m, n]` with row stride
/// `c_rs` (columns contiguous), `A` `[m, k]` and `B` `[k, n]` given by their (row,
/// column) strides; on the calling thread.
///
/// # Safety
/// Every index the strides reach must be inside the buffers behind the pointers.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(
    (m, n, k): (usize, usize, usize),
    c: *mut f32,
    c_rs: isize,
    a: *const f32,
    (a_rs, a_cs): (isize, isize),
    b: *const f32,
    (b_rs, b_cs): (isize, isize),
    accumulate: bool,
) {
    gemm::gemm(
        m,
        n,
        k,
        c,
        1,
        c_rs,
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
        gemm::Parallelism::None,
    );
}

/// Multi-head self-attention with shared relative-position embeddings (VITS'
/// `MultiHeadAttention` with `window_size`, batch 1, no mask), on channels-first
/// buffers.
///
/// `qkv` is `[3·H, len]`: queries (already divided by `sqrt(d_k)`), keys, values; `H`
/// = `heads · d_k`. `rel_k` / `rel_v` are `[2·window+1, d_k]`. Writes `[H, len]` into
/// `out`. Per head and query row `i`: scores `q_i · k_j` plus the relative-key logits on
/// the band `|j − i| ≤ window`, a softmax over `j`, then `Σ_j p_ij v_j` plus the
/// relative-value term read off the band of `p_i`.
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
    // Real checks: the products below read and write through raw pointers.
    assert_eq!(qkv.len(), 3 * hidden * len, "qkv size");
    assert_eq!(hidden, heads * d_k, "heads · d_k");
    assert_eq!(rel_k.len(), span * d_k, "emb_rel_k size");
    assert_eq!(rel_v.len(), rel_k.len(), "emb_rel_v size");
    assert_eq!(out.len(), hidden * len, "attention output size");
    let blocks = len.div_ceil(ROWS_PER_ITEM);
    let macs = heads * len * (2 * len + 2 * span) * d_k;
    // Counted here, on the calling thread: the items may run on the workers.
    count_macs(macs);
    let out = SendPtr(out.as_mut_ptr());
    let (l, dk, sp) = (len as isize, d_k as isize, span as isize);
    run_items(
        heads * blocks,
        threads_for(macs, CONV_MIN_MACS),
        |item, buf| {
            let (h, block) = (item / blocks, item % blocks);
            let i0 = block * ROWS_PER_ITEM;
            let rows = ROWS_PER_ITEM.min(len - i0);
            let q = &qkv[h * d_k * len..(h + 1) * d_k * len];
            let k = &qkv[(hidden + h * d_k) * len..(hidden + (h + 1) * d_k) * len];
            let v = &qkv[(2 * hidden + h * d_k) * len..(2 * hidden + (h + 1) * d_k) * len];
            // Scratch: this block's scores [rows, len], relative-key logits
            // [span, rows] and band of probabilities [rows, span].
            buf.clear();
            buf.resize(rows * len + 2 * span * rows, 0.0);
            let (scores, rest) = buf.split_at_mut(rows * len);
            let (rel, band) = rest.split_at_mut(span * rows);
            let r = rows as isize;
            // SAFETY: q, k, v are [d_k, len] and row i0 + rows ≤ len; scores, rel and
            // band are sized above.
            unsafe {
                // scores[i][j] = Σ_d q[d][i0 + i] k[d][j]
                matmul(
                    (rows, len, d_k),
                    scores.as_mut_ptr(),
                    l,
                    q.as_ptr().add(i0),
                    (1, l),
                    k.as_ptr(),
                    (l, 1),
                    false,
                );
                // rel[r][i] = Σ_d rel_k[r][d] q[d][i0 + i]
                matmul(
                    (span, rows, d_k),
                    rel.as_mut_ptr(),
                    r,
                    rel_k.as_ptr(),
                    (dk, 1),
                    q.as_ptr().add(i0),
                    (l, 1),
                    false,
                );
            }
            for ii in 0..rows {
                let i = i0 + ii;
                let row = &mut scores[ii * len..(ii + 1) * len];
                let band = &mut band[ii * span..(ii + 1) * span];
                // Band offsets t with 0 ≤ i + t − window < len.
                let t_lo = window.saturating_sub(i);
                let t_hi = span.min(len + window - i);
                for t in t_lo..t_hi {
                    row[i + t - window] += rel[t * rows + ii];
                }
                vectorized(
                    #[inline(always)]
                    || softmax_row(row),
                );
                band.fill(0.0);
                for t in t_lo..t_hi {
                    band[t] = row[i + t - window];
                }
            }
            // SAFETY: columns i0 .. i0 + rows of head h's [d_k, len] output are this
            // item's alone; v is [d_k, len], scores [rows, len], band [rows, span].
            unsafe {
                let o = out.get().add(h * d_k * len + i0);
                // o[d][i0 + i] = Σ_j v[d][j] p[i][j]
                matmul(
                    (d_k, rows, len),
                    o,
                    l,
                    v.as_ptr(),
                    (l, 1),
                    scores.as_ptr(),
                    (1, l),
                    false,
                );
                // o[d][i0 + i] += Σ_t rel_v[t][d] band[i][t]
                matmul(
                    (d_k, rows, span),
                    o,
                    l,
                    rel_v.as_ptr(),
                    (1, dk),
                    band.as_ptr(),
                    (1, sp),
                    true,
                );
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// VITS' relative attention written out in plain loops (f64), from the PyTorch
    /// module's definition.
    fn reference(qkv: &[f32], heads: usize, len: usize, rel_k: &[f32], rel_v: &[f32]) -> Vec<f32> {
        let hidden = qkv.len() / (3 * len);
        let d_k = hidden / heads;
        let window = rel_k.len() / d_k / 2;
        let at = |c: usize, t: usize| f64::from(qkv[c * len + t]);
        let mut out = vec![0.0f32; hidden * len];
        for h in 0..heads {
            for i in 0..len {
                let mut logits = vec![0.0f64; len];
                for (j, logit) in logits.iter_mut().enumerate() {
                    let mut s = 0.0;
                    for d in 0..d_k {
                        s += at(h * d_k + d, i) * at(hidden + h * d_k + d, j);
                    }
                    if j + window >= i && j <= i + window {
                        let t = j + window - i;
                        for d in 0..d_k {
                            s += at(h * d_k + d, i) * f64::from(rel_k[t * d_k + d]);
                        }
                    }
                    *logit = s;
                }
                let m = logits.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = logits.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for d in 0..d_k {
                    let mut o = 0.0;
                    for (j, ej) in e.iter().enumerate() {
                        let p = ej / z;
                        o += p * at(2 * hidden + h * d_k + d, j);
                        if j + window >= i && j <= i + window {
                            o += p * f64::from(rel_v[(j + window - i) * d_k + d]);
                        }
                    }
                    out[(h * d_k + d) * len + i] = o as f32;
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_for_short_and_long_inputs() {
        let (heads, d_k, window) = (2, 16, 4);
        let span = 2 * window + 1;
        let noise = |n: usize, seed: u32| -> Vec<f32> {
            (0..n)
                .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32)
                .map(|x| (x / (1u32 << 24) as f32) * 2.0 - 1.0)
                .collect()
        };
        let rel_k = noise(span * d_k, 1);
        let rel_v = noise(span * d_k, 2);
        // Shorter than the window, one partial block, several blocks (threaded).
        for len in [1, 3, 5, 17, 40, 300] {
            let qkv = noise(3 * heads * d_k * len, len as u32);
            let mut out = vec![f32::NAN; heads * d_k * len];
            let before = crate::vits::roofline::macs_so_far();
            relative_attention(&qkv, heads, len, &rel_k, &rel_v, &mut out);
            // Per head: scores and output len·len·d_k each, the two relative terms
            // len·span·d_k each; counted on this thread whoever ran the items.
            let counted = crate::vits::roofline::macs_so_far() - before;
            assert_eq!(counted, (heads * 2 * len * (len + span) * d_k) as u64);
            let want = reference(&qkv, heads, len, &rel_k, &rel_v);
            let worst = out
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "len {len}: max diff {worst}");
        }
    }
}
