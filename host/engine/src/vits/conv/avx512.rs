//! The AVX-512F convolution kernels: 512-bit vectors, 32 registers, lane masks.
//!
//! The same algorithms as `avx2.rs` (read that file first): a forward tile keeps
//! `CB × 16·NV` accumulators in registers over all input channels and taps, and the
//! transposed kernel holds `G = 16 / s` frames × `s` phases per vector. What the wider
//! set changes: twice the lanes and registers, so tiles of up to 24 accumulators with
//! the inputs still in registers (more multiply-adds per load), weights broadcast
//! straight from memory into the multiply-add, and partial vectors at the ends of a row
//! stored through a lane mask instead of lane by lane.

use std::arch::x86_64::*;

use super::buffers::fill_window;
use super::plan::Block;
use super::transposed::TrJob;
use super::ConvJob;

/// `f32` lanes of a `__m512`.
const L: usize = 16;

/// The mask of the first `n` lanes (`n ≤ 16`).
#[inline(always)]
fn first_lanes(n: usize) -> __mmask16 {
    if n >= L {
        0xffff
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// One `CB × 16·NV` tile of the forward convolution at `x` (the tile's first sample in
/// the first row of the window), over all input channels and taps.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn conv_tile<const CB: usize, const NV: usize>(
    w: *const f32,
    x: *const f32,
    row: usize,
    cin: usize,
    k: usize,
    dil: usize,
) -> [[__m512; NV]; CB] {
    let mut acc = [[_mm512_setzero_ps(); NV]; CB];
    for ci in 0..cin {
        let xr = x.add(ci * row);
        let wr = w.add(ci * k * CB);
        for tap in 0..k {
            let xp = xr.add(tap * dil);
            let mut xv = [_mm512_setzero_ps(); NV];
            for (v, xv) in xv.iter_mut().enumerate() {
                *xv = _mm512_loadu_ps(xp.add(L * v));
            }
            for (c, acc_c) in acc.iter_mut().enumerate() {
                // LLVM folds the broadcast into the multiply-add's memory operand.
                let wv = _mm512_set1_ps(*wr.add(tap * CB + c));
                for (a, &xv) in acc_c.iter_mut().zip(&xv) {
                    *a = _mm512_fmadd_ps(xv, wv, *a);
                }
            }
        }
    }
    acc
}

/// Output samples `t0 .. t0 + n` of the channels of every block in `blocks`: the
/// compiled kernel for each block's tile.
///
/// # Safety
/// The CPU must have AVX-512F, AVX2 and FMA; `buf` must hold `in` rows of `row` floats
/// covering whole tiles plus the halo; the output range (these samples of these
/// blocks' channels) must be the caller's alone.
pub(super) unsafe fn conv_blocks(
    job: &ConvJob,
    blocks: &[Block],
    buf: &[f32],
    row: usize,
    t0: usize,
    n: usize,
) {
    for blk in blocks {
        match (blk.tile.co_block, blk.tile.nv) {
            (8, 3) => conv_block::<8, 3>(job, blk, buf, row, t0, n),
            (16, 1) => conv_block::<16, 1>(job, blk, buf, row, t0, n),
            (7, 3) => conv_block::<7, 3>(job, blk, buf, row, t0, n),
            (6, 3) => conv_block::<6, 3>(job, blk, buf, row, t0, n),
            (5, 3) => conv_block::<5, 3>(job, blk, buf, row, t0, n),
            (4, 6) => conv_block::<4, 6>(job, blk, buf, row, t0, n),
            (3, 6) => conv_block::<3, 6>(job, blk, buf, row, t0, n),
            (2, 6) => conv_block::<2, 6>(job, blk, buf, row, t0, n),
            (1, 6) => conv_block::<1, 6>(job, blk, buf, row, t0, n),
            _ => unreachable!("tiles come from TILES_512"),
        }
    }
}

/// Output samples `t0 .. t0 + n` of the channels of `blk`: whole `CB × 16·NV` tiles,
/// then the rest in one tile of just enough vectors. Short rows (a sentence's phonemes
/// in the text encoder, a few frames in the flow) would otherwise compute most of a
/// 48-sample tile for nothing.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn conv_block<const CB: usize, const NV: usize>(
    job: &ConvJob,
    blk: &Block,
    buf: &[f32],
    row: usize,
    t0: usize,
    n: usize,
) {
    let tb = L * NV;
    let whole = n / tb;
    for tile in 0..whole {
        conv_tile_store::<CB, NV>(job, blk, buf, row, t0, tile * tb, tb);
    }
    let (at, rest) = (whole * tb, n - whole * tb);
    // Vectors of the last tile; fewer than NV (else it would have been whole).
    match rest.div_ceil(L) {
        0 => {}
        1 => conv_tile_store::<CB, 1>(job, blk, buf, row, t0, at, rest),
        2 => conv_tile_store::<CB, 2>(job, blk, buf, row, t0, at, rest),
        3 => conv_tile_store::<CB, 3>(job, blk, buf, row, t0, at, rest),
        4 => conv_tile_store::<CB, 4>(job, blk, buf, row, t0, at, rest),
        _ => conv_tile_store::<CB, NV>(job, blk, buf, row, t0, at, rest),
    }
}

/// One `CB × 16·V` tile at window offset `at` (output sample `t0 + at`), of which the
/// first `valid` samples are stored.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn conv_tile_store<const CB: usize, const V: usize>(
    job: &ConvJob,
    blk: &Block,
    buf: &[f32],
    row: usize,
    t0: usize,
    at: usize,
    valid: usize,
) {
    let c = job.conv;
    let (cin, k, dil, len) = (c.in_ch, c.kernel, c.dilation, job.len);
    let w = c.packed.as_ptr().add(blk.offset);
    let acc = conv_tile::<CB, V>(w, buf.as_ptr().add(at), row, cin, k, dil);
    let ts = t0 + at;
    for (cc, acc_c) in acc.iter().enumerate() {
        let co = blk.co0 + cc;
        let bias = _mm512_set1_ps(c.bias[co]);
        let dst = job.out.0.add(co * len + ts);
        let res = job.residual.map(|r| r.as_ptr().add(co * len + ts));
        for (v, &a) in acc_c.iter().enumerate() {
            if L * v >= valid {
                break;
            }
            // Masked loads and stores touch only the lanes inside the row.
            let m = first_lanes(valid - L * v);
            let mut y = _mm512_add_ps(a, bias);
            if let Some(res) = res {
                y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, res.add(L * v)));
            }
            if job.accumulate {
                y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, dst.add(L * v)));
            }
            _mm512_mask_storeu_ps(dst.add(L * v), m, y);
        }
    }
}

/// Broadcasts `G` consecutive floats at `p` across the 16 lanes (lane `l` ← `p[l % G]`).
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn bcast<const G: usize>(p: *const f32) -> __m512 {
    match G {
        1 => _mm512_set1_ps(*p),
        2 => _mm512_castpd_ps(_mm512_set1_pd(p.cast::<f64>().read_unaligned())),
        4 => _mm512_broadcast_f32x4(_mm_loadu_ps(p)),
        8 => _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_loadu_pd(p.cast()))),
        _ => _mm512_loadu_ps(p),
    }
}

/// Picks the compiled kernel for the job's tile and `g` (`= 16 / stride`).
///
/// # Safety
/// The CPU must have AVX-512F, AVX2 and FMA; the job's weights must be packed for 16
/// lanes; the chunk's output range must be the caller's alone.
pub(super) unsafe fn tr_dispatch(
    job: &TrJob,
    g: usize,
    chunk: usize,
    blocks: std::ops::Range<usize>,
    buf: &mut Vec<f32>,
) {
    macro_rules! go {
        ($cb:literal, $nv:literal) => {
            match g {
                1 => tr_chunk::<$cb, $nv, 1>(job, chunk, blocks, buf),
                2 => tr_chunk::<$cb, $nv, 2>(job, chunk, blocks, buf),
                4 => tr_chunk::<$cb, $nv, 4>(job, chunk, blocks, buf),
                8 => tr_chunk::<$cb, $nv, 8>(job, chunk, blocks, buf),
                16 => tr_chunk::<$cb, $nv, 16>(job, chunk, blocks, buf),
                _ => unreachable!("stride divides 16"),
            }
        };
    }
    let t = job.conv.tile;
    match (t.co_block, t.nv) {
        (4, 6) => go!(4, 6),
        (2, 6) => go!(2, 6),
        (8, 3) => go!(8, 3),
        _ => unreachable!("tile checked at construction"),
    }
}

/// Output-channel blocks `blocks` of one chunk of vector slots of a transposed
/// convolution with `G = 16 / stride`.
// `acc[cc][v]` indexes two register arrays at once; iterators would hide that.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tr_chunk<const CB: usize, const NV: usize, const G: usize>(
    job: &TrJob,
    chunk: usize,
    blocks: std::ops::Range<usize>,
    buf: &mut Vec<f32>,
) {
    let c = job.conv;
    let (cin, taps, s, p) = (c.in_ch, c.taps, c.stride, c.padding);
    let olen = job.len * s;
    let ua = job.u_lo + chunk * job.width;
    let ub = (ua + job.width).min(job.u_hi);
    let nslots = (ub - ua).div_ceil(NV) * NV;
    // Window: frames q ∈ [ua·G − (taps − 1), ub'·G) with ub' = ua + nslots.
    let halo = taps - 1;
    let row = nslots * G + halo;
    fill_window(
        buf,
        job.input,
        cin,
        job.len,
        (ua * G) as isize - halo as isize,
        row,
        job.slope,
        c.isa,
        c.bf16,
    );
    // Lane l of an accumulator holds frame offset l % G, phase l / G; output order
    // wants m-offset j = phase + s · frame, i.e. lane (j % s)·G + j / s.
    let mut idx = [0i32; L];
    for (j, v) in idx.iter_mut().enumerate() {
        *v = ((j % s) * G + j / s) as i32;
    }
    let perm = _mm512_loadu_si512(idx.as_ptr().cast());
    // Weights stay in registers across the NV slots when the x vectors would not fit.
    let w_stationary = CB * NV + NV + 1 > 32;
    for blk in blocks {
        let w = c.packed.as_ptr().add(blk * cin * taps * CB * L);
        let n_co = CB.min(c.out_ch - blk * CB);
        for tile in 0..nslots / NV {
            let mut acc = [[_mm512_setzero_ps(); NV]; CB];
            // Frame of lane-group 0, slot 0 of the tile, tap 0, row 0.
            let x0 = buf.as_ptr().add(tile * NV * G + halo);
            for ci in 0..cin {
                let xr = x0.add(ci * row);
                let wr = w.add(ci * taps * CB * L);
                for i in 0..taps {
                    if w_stationary {
                        let mut wv = [_mm512_setzero_ps(); CB];
                        for (cc, wv) in wv.iter_mut().enumerate() {
                            *wv = _mm512_loadu_ps(wr.add((i * CB + cc) * L));
                        }
                        for v in 0..NV {
                            let xv = bcast::<G>(xr.add(v * G).sub(i));
                            for cc in 0..CB {
                                acc[cc][v] = _mm512_fmadd_ps(wv[cc], xv, acc[cc][v]);
                            }
                        }
                    } else {
                        let mut xv = [_mm512_setzero_ps(); NV];
                        for (v, xv) in xv.iter_mut().enumerate() {
                            *xv = bcast::<G>(xr.add(v * G).sub(i));
                        }
                        for (cc, acc_c) in acc.iter_mut().enumerate() {
                            let wv = _mm512_loadu_ps(wr.add((i * CB + cc) * L));
                            for (a, &xv) in acc_c.iter_mut().zip(&xv) {
                                *a = _mm512_fmadd_ps(wv, xv, *a);
                            }
                        }
                    }
                }
            }
            for (cc, acc_c) in acc.iter().enumerate().take(n_co) {
                let co = blk * CB + cc;
                let bias = _mm512_set1_ps(c.bias[co]);
                let row_out = job.out.0.add(co * olen);
                for (v, &a) in acc_c.iter().enumerate() {
                    let u = ua + tile * NV + v;
                    if u >= ub {
                        break;
                    }
                    let a = if G < L {
                        _mm512_permutexvar_ps(perm, a)
                    } else {
                        a
                    };
                    let y = _mm512_add_ps(a, bias);
                    // Full-output samples m0 .. m0 + 16 land at m − p when inside the
                    // cropped output: a masked store of the lanes that are.
                    let m0 = L * u;
                    if m0 >= p && m0 + L - p <= olen {
                        _mm512_storeu_ps(row_out.add(m0 - p), y);
                    } else if m0 >= p {
                        // The row's end: the lanes before it, through a mask.
                        let m = first_lanes(olen + p - m0);
                        _mm512_mask_storeu_ps(row_out.add(m0 - p), m, y);
                    } else {
                        // The row's start (the padding is cropped): lane by lane.
                        let mut lanes = [0.0f32; L];
                        _mm512_storeu_ps(lanes.as_mut_ptr(), y);
                        for (l, &yl) in lanes.iter().enumerate() {
                            let m = m0 + l;
                            if m >= p && m - p < olen {
                                *row_out.add(m - p) = yl;
                            }
                        }
                    }
                }
            }
        }
    }
}
