//! Portable convolution kernels: plain loops with the same arithmetic as the SIMD
//! kernels, for CPUs without AVX2 + FMA and, for the transposed convolution, strides
//! that do not divide the 8-lane vector.

use std::ops::Range;

use super::plan::Block;
use super::{ConvJob, DirectConvTranspose1d};
use crate::vits::parallel::SendPtr;

/// Portable version of the chunk kernel (scalar loops, same arithmetic): output samples
/// `t0 .. t0 + n` of the channels of `blocks`, from the staged window `buf`.
pub(super) fn conv_blocks(
    job: &ConvJob,
    blocks: &[Block],
    buf: &[f32],
    row: usize,
    t0: usize,
    n: usize,
) {
    let c = job.conv;
    let (cin, k, dil, len) = (c.in_ch, c.kernel, c.dilation, job.len);
    let mut acc = vec![0.0f32; n];
    for blk in blocks {
        let cb = blk.tile.co_block;
        for lane in 0..cb {
            let co = blk.co0 + lane;
            acc.iter_mut().for_each(|a| *a = 0.0);
            for ci in 0..cin {
                // From the row's start on: the last row of the input read in place
                // (a pointwise convolution) ends with the buffer, not `row` later.
                let x = &buf[ci * row..];
                for tap in 0..k {
                    let w = c.packed[blk.offset + (ci * k + tap) * cb + lane];
                    let x = &x[tap * dil..tap * dil + n];
                    acc.iter_mut().zip(x).for_each(|(a, &xv)| *a += w * xv);
                }
            }
            let bias = c.bias[co];
            for (i, &a) in acc.iter().enumerate() {
                let t = t0 + i;
                let r = job.residual.map_or(0.0, |r| r[co * len + t]);
                // SAFETY: (co, t) is inside the output and owned by this chunk.
                unsafe {
                    let dst = job.out.0.add(co * len + t);
                    let old = if job.accumulate { *dst } else { 0.0 };
                    *dst = old + a + bias + r;
                }
            }
        }
    }
}

/// Reference-style evaluation of a transposed convolution for output channels `cos` on
/// the activated input `act` `[in, len]`.
pub(super) fn transposed_channels(
    conv: &DirectConvTranspose1d,
    act: &[f32],
    len: usize,
    cos: Range<usize>,
    out: SendPtr,
) {
    let (s, k, p) = (conv.stride, conv.kernel, conv.padding);
    let olen = len * s;
    let mut acc = vec![0.0f32; olen];
    for co in cos {
        acc.iter_mut().for_each(|a| *a = conv.bias[co]);
        for ci in 0..conv.in_ch {
            let x = &act[ci * len..(ci + 1) * len];
            let w = &conv.packed[(ci * conv.out_ch + co) * k..(ci * conv.out_ch + co + 1) * k];
            // Full output sample t·s + kk lands at j = t·s + kk − p.
            for (t, &xv) in x.iter().enumerate() {
                for (kk, &wv) in w.iter().enumerate() {
                    let m = t * s + kk;
                    if m >= p && m - p < olen {
                        acc[m - p] += xv * wv;
                    }
                }
            }
        }
        // SAFETY: row `co` belongs to this chunk of channels.
        unsafe { std::ptr::copy_nonoverlapping(acc.as_ptr(), out.0.add(co * olen), olen) };
    }
}
