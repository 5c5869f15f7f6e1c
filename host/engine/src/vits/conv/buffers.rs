//! Buffers around the convolution kernels: uninitialised outputs the kernels fill,
//! reading a bias or a tensor's floats, and staging the activated, zero-padded input
//! window a chunk's kernels read.

use std::mem::MaybeUninit;

use candle_core::{Storage, Tensor};

use crate::vits::isa::{with_isa, Isa};
use crate::vits::VitsError;

/// An output buffer of `n` floats, not yet initialised: the kernels write every element
/// exactly once (through [`SendPtr`](crate::vits::parallel::SendPtr)) before
/// [`assume_init`] hands it out, so no zeroing pass is needed.
pub(super) fn alloc_out(n: usize) -> Vec<MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: `MaybeUninit` needs no initialisation.
    unsafe { v.set_len(n) };
    v
}

/// # Safety
/// Every element of `v` must have been written.
pub(super) unsafe fn assume_init(v: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = std::mem::ManuallyDrop::new(v);
    Vec::from_raw_parts(v.as_mut_ptr().cast::<f32>(), v.len(), v.capacity())
}

/// Reads a bias of `n` elements, or zeros.
pub(super) fn read_bias(bias: Option<&Tensor>, n: usize) -> Result<Vec<f32>, VitsError> {
    match bias {
        Some(b) => {
            let b = b.flatten_all()?.to_vec1::<f32>()?;
            if b.len() != n {
                return Err(VitsError::Internal(format!(
                    "conv bias has {} elements for {n} output channels",
                    b.len()
                )));
            }
            Ok(b)
        }
        None => Ok(vec![0.0; n]),
    }
}

/// Calls `f` on the tensor's elements: in place for a contiguous CPU `f32` tensor,
/// otherwise on a copy.
pub(super) fn with_cpu_f32<R>(x: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R, VitsError> {
    {
        let (storage, layout) = x.storage_and_layout();
        if let (Storage::Cpu(cpu), Some((a, b))) = (&*storage, layout.contiguous_offsets()) {
            if let Ok(all) = cpu.as_slice::<f32>() {
                return Ok(f(&all[a..b]));
            }
        }
    }
    let copy = x.flatten_all()?.to_vec1::<f32>()?;
    Ok(f(&copy))
}

/// Fills `buf` (`ch` rows of `row` floats) with `act(x[c][start + j])` for
/// `j in 0..row`, zero where `start + j` is outside `0..len`: the padding zeros stay
/// zero, as in the reference. The activation is compiled for `isa`. With `bf16`, each
/// value is then rounded to bfloat16 (see [`super::emulating_bf16`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn fill_window(
    buf: &mut Vec<f32>,
    input: &[f32],
    ch: usize,
    len: usize,
    start: isize,
    row: usize,
    slope: Option<f32>,
    isa: Isa,
    bf16: bool,
) {
    if buf.len() < ch * row {
        buf.resize(ch * row, 0.0);
    }
    // Valid part of the window: j in lo..hi ↔ t in (start + lo)..(start + hi).
    let lo = (-start).clamp(0, row as isize) as usize;
    let hi = (len as isize - start).clamp(lo as isize, row as isize) as usize;
    let t_lo = (start + lo as isize).max(0) as usize;
    for (dst, src) in buf
        .chunks_exact_mut(row)
        .zip(input.chunks_exact(len.max(1)))
        .take(ch)
    {
        dst[..lo].fill(0.0);
        dst[hi..].fill(0.0);
        if hi > lo {
            let dst = &mut dst[lo..hi];
            let src = &src[t_lo..t_lo + (hi - lo)];
            match slope {
                // A select rather than `f32::max` (whose NaN rule blocks vectorising).
                Some(a) => with_isa(
                    isa,
                    #[inline(always)]
                    || {
                        dst.iter_mut()
                            .zip(src)
                            .for_each(|(d, &v)| *d = if v > 0.0 { v } else { v * a })
                    },
                ),
                None => dst.copy_from_slice(src),
            }
            if bf16 {
                dst.iter_mut().for_each(|v| *v = super::bf16_round(*v));
            }
        }
    }
}
