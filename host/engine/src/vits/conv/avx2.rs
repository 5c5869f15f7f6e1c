//! The AVX2 + FMA convolution kernels: 256-bit vectors, 16 registers.
//!
//! One function per register tile, monomorphised over its shape (const generics), so
//! every accumulator lives in a register; the callers in `mod.rs` and `transposed.rs`
//! reach them through [`conv_blocks`] and [`tr_dispatch`] for a convolution built for
//! [`Isa::Avx2Fma`](crate::vits::isa::Isa). The kernel set of another instruction set
//! sits in a file of its own beside this one (`avx512.rs`), with the same two entry
//! points.

use std::arch::x86_64::*;

use super::buffers::fill_window;
use super::plan::Block;
use super::transposed::TrJob;
use super::ConvJob;

/// One `CB × 8·NV` tile of the forward convolution at `x` (the tile's first sample in
/// the first row of the window), over all input channels and taps.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn conv_tile<const CB: usize, const NV: usize>(
    w: *const f32,
    x: *const f32,
    row: usize,
    cin: usize,
    k: usize,
    dil: usize,
) -> [[__m256; NV]; CB] {
    let mut acc = [[_mm256_setzero_ps(); NV]; CB];
    for ci in 0..cin {
        let xr = x.add(ci * row);
        let wr = w.add(ci * k * CB);
        for tap in 0..k {
            let xp = xr.add(tap * dil);
            let mut xv = [_mm256_setzero_ps(); NV];
            for (v, xv) in xv.iter_mut().enumerate() {
                *xv = _mm256_loadu_ps(xp.add(8 * v));
            }
            for (c, acc_c) in acc.iter_mut().enumerate() {
                let wv = _mm256_broadcast_ss(&*wr.add(tap * CB + c));
                for (a, &xv) in acc_c.iter_mut().zip(&xv) {
                    *a = _mm256_fmadd_ps(xv, wv, *a);
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
/// The CPU must have AVX2 and FMA; `buf` must hold `in` rows of `row` floats covering
/// whole tiles plus the halo; the output range (these samples of these blocks' channels)
/// must be the caller's alone.
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
            (6, 2) => conv_block::<6, 2>(job, blk, buf, row, t0, n),
            (4, 2) => conv_block::<4, 2>(job, blk, buf, row, t0, n),
            (4, 3) => conv_block::<4, 3>(job, blk, buf, row, t0, n),
            (5, 2) => conv_block::<5, 2>(job, blk, buf, row, t0, n),
            (3, 4) => conv_block::<3, 4>(job, blk, buf, row, t0, n),
            (2, 6) => conv_block::<2, 6>(job, blk, buf, row, t0, n),
            (1, 12) => conv_block::<1, 12>(job, blk, buf, row, t0, n),
            (1, 4) => conv_block::<1, 4>(job, blk, buf, row, t0, n),
            _ => unreachable!("tiles come from TILES"),
        }
    }
}

/// Output samples `t0 .. t0 + n` of the channels of `blk`.
#[target_feature(enable = "avx2,fma")]
unsafe fn conv_block<const CB: usize, const NV: usize>(
    job: &ConvJob,
    blk: &Block,
    buf: &[f32],
    row: usize,
    t0: usize,
    n: usize,
) {
    let c = job.conv;
    let (cin, k, dil, len) = (c.in_ch, c.kernel, c.dilation, job.len);
    let tb = 8 * NV;
    let w = c.packed.as_ptr().add(blk.offset);
    for tile in 0..n.div_ceil(tb) {
        let acc = conv_tile::<CB, NV>(w, buf.as_ptr().add(tile * tb), row, cin, k, dil);
        let ts = t0 + tile * tb;
        let valid = tb.min(t0 + n - ts);
        for (cc, acc_c) in acc.iter().enumerate() {
            let co = blk.co0 + cc;
            let bias = _mm256_set1_ps(c.bias[co]);
            let dst = job.out.0.add(co * len + ts);
            let res = job.residual.map(|r| r.as_ptr().add(co * len + ts));
            for (v, &a) in acc_c.iter().enumerate() {
                if 8 * v >= valid {
                    break;
                }
                let mut y = _mm256_add_ps(a, bias);
                if 8 * v + 8 <= valid {
                    if let Some(res) = res {
                        y = _mm256_add_ps(y, _mm256_loadu_ps(res.add(8 * v)));
                    }
                    if job.accumulate {
                        y = _mm256_add_ps(y, _mm256_loadu_ps(dst.add(8 * v)));
                    }
                    _mm256_storeu_ps(dst.add(8 * v), y);
                } else {
                    let mut lanes = [0.0f32; 8];
                    _mm256_storeu_ps(lanes.as_mut_ptr(), y);
                    for (l, &yl) in lanes.iter().enumerate() {
                        let i = 8 * v + l;
                        if i < valid {
                            let r = res.map_or(0.0, |r| *r.add(i));
                            let old = if job.accumulate { *dst.add(i) } else { 0.0 };
                            *dst.add(i) = old + yl + r;
                        }
                    }
                }
            }
        }
    }
}

/// Broadcasts `G` consecutive floats at `p` across the 8 lanes (lane `l` ← `p[l % G]`).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn bcast<const G: usize>(p: *const f32) -> __m256 {
    match G {
        1 => _mm256_broadcast_ss(&*p),
        2 => _mm256_castpd_ps(_mm256_set1_pd(p.cast::<f64>().read_unaligned())),
        4 => {
            let v = _mm_loadu_ps(p);
            _mm256_set_m128(v, v)
        }
        _ => _mm256_loadu_ps(p),
    }
}

/// Picks the compiled kernel for the job's tile and `g`.
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
                _ => unreachable!("stride divides 8"),
            }
        };
    }
    let t = job.conv.tile;
    match (t.co_block, t.nv) {
        (4, 3) => go!(4, 3),
        (2, 6) => go!(2, 6),
        (6, 2) => go!(6, 2),
        (4, 2) => go!(4, 2),
        _ => unreachable!("tile checked at construction"),
    }
}

/// Output-channel blocks `blocks` of one chunk of vector slots of a transposed
/// convolution with `G = 8 / stride`.
// `acc[cc][v]` indexes two register arrays at once; iterators would hide that.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma")]
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
    let mut idx = [0i32; 8];
    for (j, v) in idx.iter_mut().enumerate() {
        *v = ((j % s) * G + j / s) as i32;
    }
    let perm = _mm256_loadu_si256(idx.as_ptr().cast());
    // Weights stay in registers across the NV slots when the x vectors would not fit.
    let w_stationary = CB * NV + NV + 1 > 16;
    for blk in blocks {
        let w = c.packed.as_ptr().add(blk * cin * taps * CB * 8);
        let n_co = CB.min(c.out_ch - blk * CB);
        for tile in 0..nslots / NV {
            let mut acc = [[_mm256_setzero_ps(); NV]; CB];
            // Frame of lane-group 0, slot 0 of the tile, tap 0, row 0.
            let x0 = buf.as_ptr().add(tile * NV * G + halo);
            for ci in 0..cin {
                let xr = x0.add(ci * row);
                let wr = w.add(ci * taps * CB * 8);
                for i in 0..taps {
                    if w_stationary {
                        let mut wv = [_mm256_setzero_ps(); CB];
                        for (cc, wv) in wv.iter_mut().enumerate() {
                            *wv = _mm256_loadu_ps(wr.add((i * CB + cc) * 8));
                        }
                        for v in 0..NV {
                            let xv = bcast::<G>(xr.add(v * G).sub(i));
                            for cc in 0..CB {
                                acc[cc][v] = _mm256_fmadd_ps(wv[cc], xv, acc[cc][v]);
                            }
                        }
                    } else {
                        let mut xv = [_mm256_setzero_ps(); NV];
                        for (v, xv) in xv.iter_mut().enumerate() {
                            *xv = bcast::<G>(xr.add(v * G).sub(i));
                        }
                        for (cc, acc_c) in acc.iter_mut().enumerate() {
                            let wv = _mm256_loadu_ps(wr.add((i * CB + cc) * 8));
                            for (a, &xv) in acc_c.iter_mut().zip(&xv) {
                                *a = _mm256_fmadd_ps(wv, xv, *a);
                            }
                        }
                    }
                }
            }
            for (cc, acc_c) in acc.iter().enumerate().take(n_co) {
                let co = blk * CB + cc;
                let bias = _mm256_set1_ps(c.bias[co]);
                let row_out = job.out.0.add(co * olen);
                for (v, &a) in acc_c.iter().enumerate() {
                    let u = ua + tile * NV + v;
                    if u >= ub {
                        break;
                    }
                    let a = if G > 1 {
                        _mm256_permutevar8x32_ps(a, perm)
                    } else {
                        a
                    };
                    let y = _mm256_add_ps(a, bias);
                    let m0 = 8 * u;
                    if m0 >= p && m0 + 8 - p <= olen {
                        _mm256_storeu_ps(row_out.add(m0 - p), y);
                    } else {
                        let mut lanes = [0.0f32; 8];
                        _mm256_storeu_ps(lanes.as_mut_ptr(), y);
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
