//! [`DirectConvTranspose1d`]: the decoder's upsampling layers without candle's column
//! buffer.
//!
//! candle's `conv_transpose1d` runs a gemm into a `T · out · k` column buffer and then
//! overlap-adds it (col2im). Here the layer is evaluated in polyphase form: output
//! sample `m = q·s + r` (before cropping the padding) only sees the taps `k = r + s·i`
//! applied to inputs `q − i`. With `s | L` (`L` = 8 lanes for AVX2, 16 for AVX-512),
//! one vector holds `G = L / s` consecutive frames × `s` phases, so the kernel
//! broadcasts `G` input values and multiplies by a vector of `L` phase weights; a lane
//! permutation at the end puts the phases back in time order. Other strides, and the
//! portable level, take the portable kernel.

use candle_core::{Device, Tensor};

use super::buffers::{alloc_out, assume_init, fill_window, read_bias, with_cpu_f32};
use super::plan::{channel_groups, tr_tile, tr_tiles, Tile, MIN_TILES_PER_CHUNK, WINDOW_FLOATS};
use super::scalar;
#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512};
use crate::vits::isa::Isa;
use crate::vits::parallel::{run_items, threads_for, SendPtr, CONV_MIN_MACS};
use crate::vits::roofline::count_macs;
use crate::vits::VitsError;

/// `[in, out, k]` transposed convolution (PyTorch `ConvTranspose1d`, `groups = 1`,
/// dilation 1, no output padding) with stride `s` and padding `(k − s) / 2`, so the
/// output has `T · s` samples.
#[derive(Debug, Clone)]
pub(crate) struct DirectConvTranspose1d {
    /// For SIMD strides (`s | L`, `L` the level's lanes): `[out_blocks, in, taps,
    /// co_block, L]`, lane `l` holding tap `k = l / G + s · i` (`G = L / s`), zero past
    /// `k` or `out`. Otherwise (and for the portable level) the plain `[in, out, k]`
    /// weight.
    pub(super) packed: Vec<f32>,
    pub(super) bias: Vec<f32>,
    pub(super) in_ch: usize,
    pub(super) out_ch: usize,
    pub(super) kernel: usize,
    pub(super) stride: usize,
    pub(super) padding: usize,
    /// Taps per phase: `⌈k / s⌉`.
    pub(super) taps: usize,
    /// Whether the vector kernel runs it: a SIMD level whose lanes the stride divides.
    pub(super) simd: bool,
    /// The instruction set the weights are packed for and the kernels run with.
    pub(super) isa: Isa,
    /// Register tile: `co_block` channels × `nv` vectors of `8 / s` frames × `s` phases.
    pub(super) tile: Tile,
    /// Weights and inputs rounded to bfloat16 ([`super::emulating_bf16`]).
    pub(super) bf16: bool,
}

impl DirectConvTranspose1d {
    /// Builds from a `[in, out, k]` weight (PyTorch layout) and an optional `[out]` bias.
    pub(crate) fn new(
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: usize,
    ) -> Result<Self, VitsError> {
        let isa = Isa::detect();
        Self::with_tile(weight, bias, stride, tr_tile(isa), isa)
    }

    /// [`Self::new`] for an explicit instruction set (which the CPU must have) and
    /// register tile (one of [`tr_tiles`]).
    pub(crate) fn with_tile(
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: usize,
        tile: Tile,
        isa: Isa,
    ) -> Result<Self, VitsError> {
        if !isa.supported() {
            return Err(VitsError::Internal(format!("the CPU lacks {}", isa.name())));
        }
        if !tr_tiles(isa).contains(&tile) {
            return Err(VitsError::Internal(format!(
                "no {} kernel for tile {tile:?}",
                isa.name()
            )));
        }
        let (in_ch, out_ch, kernel) = weight.dims3()?;
        if stride == 0 || kernel < stride || !(kernel - stride).is_multiple_of(2) {
            return Err(VitsError::Unsupported(format!(
                "direct conv_transpose1d needs kernel ≥ stride with an even difference, \
                 got k={kernel} s={stride}"
            )));
        }
        let bf16 = super::bf16_now();
        let mut w = weight.flatten_all()?.to_vec1::<f32>()?;
        if bf16 {
            w.iter_mut().for_each(|v| *v = super::bf16_round(*v));
        }
        let bias = read_bias(bias, out_ch)?;
        let taps = kernel.div_ceil(stride);
        let lanes = isa.lanes();
        let simd = lanes > 1 && lanes.is_multiple_of(stride);
        let packed = if simd {
            let g = lanes / stride;
            let cb = tile.co_block;
            let blocks = out_ch.div_ceil(cb);
            let mut p = vec![0.0f32; blocks * in_ch * taps * cb * lanes];
            for co in 0..out_ch {
                let (blk, c) = (co / cb, co % cb);
                for ci in 0..in_ch {
                    for i in 0..taps {
                        for l in 0..lanes {
                            let k = l / g + stride * i;
                            if k < kernel {
                                p[(((blk * in_ch + ci) * taps + i) * cb + c) * lanes + l] =
                                    w[(ci * out_ch + co) * kernel + k];
                            }
                        }
                    }
                }
            }
            p
        } else {
            w
        };
        Ok(Self {
            packed,
            bias,
            in_ch,
            out_ch,
            kernel,
            stride,
            padding: (kernel - stride) / 2,
            taps,
            simd,
            isa,
            tile,
            bf16,
        })
    }

    /// `x` `[1, in, T]` → `[1, out, T · stride]`: `conv_transpose(leaky_relu(x, slope))`
    /// plus bias. `slope: None` skips the activation.
    pub(crate) fn forward(&self, x: &Tensor, slope: Option<f32>) -> Result<Tensor, VitsError> {
        let (batch, in_ch, len) = x.dims3()?;
        if batch != 1 || in_ch != self.in_ch {
            return Err(VitsError::Internal(format!(
                "direct conv_transpose1d expects [1, {}, T], got {:?}",
                self.in_ch,
                x.dims()
            )));
        }
        let out = with_cpu_f32(x, |input| self.run(input, len, slope))?;
        Ok(
            Tensor::from_vec(out, (1, self.out_ch, len * self.stride), &Device::Cpu)?
                .to_device(x.device())?,
        )
    }

    pub(crate) fn run(&self, input: &[f32], len: usize, slope: Option<f32>) -> Vec<f32> {
        let olen = len * self.stride;
        let mut out = alloc_out(self.out_ch * olen);
        if len == 0 || self.out_ch == 0 {
            // SAFETY: empty.
            return unsafe { assume_init(out) };
        }
        let macs = self.in_ch * self.out_ch * self.kernel * len;
        count_macs(macs);
        let threads = threads_for(macs, CONV_MIN_MACS);
        let out_ptr = SendPtr(out.as_mut_ptr().cast());
        let isa = self.isa;
        if !self.simd {
            // Groups of output channels, straight from the activated input.
            let mut act = Vec::new();
            fill_window(
                &mut act, input, self.in_ch, len, 0, len, slope, isa, self.bf16,
            );
            let per = 8;
            run_items(self.out_ch.div_ceil(per), threads, |chunk, _| {
                let cos = chunk * per..(chunk * per + per).min(self.out_ch);
                scalar::transposed_channels(self, &act, len, cos, out_ptr);
            });
            // SAFETY: every row is written whole by its group.
            return unsafe { assume_init(out) };
        }
        // Vector slots `u` cover full-output samples `m ∈ [L·u, L·u + L)`; output
        // sample `j = m − padding`.
        let lanes = isa.lanes();
        let g = lanes / self.stride;
        let u_lo = self.padding / lanes;
        let u_hi = (self.padding + olen).div_ceil(lanes);
        let nv = self.tile.nv;
        let halo = self.taps - 1;
        let fit = (WINDOW_FLOATS / self.in_ch.max(1)).saturating_sub(halo + g) / (nv * g);
        let width = fit.max(MIN_TILES_PER_CHUNK) * nv; // slots per chunk
        let chunks = (u_hi - u_lo).div_ceil(width);
        let blocks = self.out_ch.div_ceil(self.tile.co_block);
        let groups = channel_groups(chunks, blocks, threads);
        let job = TrJob {
            conv: self,
            input,
            len,
            slope,
            u_lo,
            u_hi,
            width,
            out: out_ptr,
        };
        run_items(chunks * groups, threads, |item, buf| {
            let (chunk, grp) = (item / groups, item % groups);
            let blks = grp * blocks / groups..(grp + 1) * blocks / groups;
            // SAFETY (both SIMD arms): the CPU has the features (checked at
            // construction), the weights are packed for its lanes, and the item's
            // output range is its own.
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { avx512::tr_dispatch(&job, g, chunk, blks, buf) },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2Fma => unsafe { avx2::tr_dispatch(&job, g, chunk, blks, buf) },
                Isa::Scalar => {
                    unreachable!("CPUs without SIMD kernels took the portable path above")
                }
            }
        });
        // SAFETY: the chunks cover every slot of the cropped output and the groups every
        // block; each output sample is stored once.
        unsafe { assume_init(out) }
    }
}

/// What the workers of one transposed convolution share.
#[allow(dead_code)] // only read by the x86-64 kernels
pub(super) struct TrJob<'a> {
    pub(super) conv: &'a DirectConvTranspose1d,
    pub(super) input: &'a [f32],
    pub(super) len: usize,
    pub(super) slope: Option<f32>,
    /// Vector slots `u_lo..u_hi` cover the cropped output.
    pub(super) u_lo: usize,
    pub(super) u_hi: usize,
    /// Slots per chunk (whole tiles).
    pub(super) width: usize,
    pub(super) out: SendPtr,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vits::conv::tests::{leaky, max_diff, noise};

    /// Reference transposed convolution as the decoder computes it today: candle's
    /// `conv_transpose1d` with padding 0, then the crop, then the bias.
    fn reference_tr(x: &Tensor, w: &Tensor, b: &Tensor, s: usize, slope: Option<f32>) -> Tensor {
        let (len, k) = (x.dim(2).unwrap(), w.dim(2).unwrap());
        leaky(x, slope)
            .conv_transpose1d(w, 0, 0, s, 1, 1)
            .unwrap()
            .narrow(2, (k - s) / 2, len * s)
            .unwrap()
            .broadcast_add(&b.reshape((1, (), 1)).unwrap())
            .unwrap()
    }

    fn check_tr(cin: usize, cout: usize, k: usize, s: usize, len: usize, slope: Option<f32>) {
        let dev = Device::Cpu;
        let x = Tensor::from_vec(noise(cin * len, 7), (1, cin, len), &dev).unwrap();
        let w = Tensor::from_vec(noise(cin * cout * k, 8), (cin, cout, k), &dev).unwrap();
        let b = Tensor::from_vec(noise(cout, 9), cout, &dev).unwrap();
        let want = reference_tr(&x, &w, &b, s, slope);
        let scalar =
            DirectConvTranspose1d::with_tile(&w, Some(&b), s, tr_tile(Isa::Scalar), Isa::Scalar)
                .unwrap()
                .forward(&x, slope)
                .unwrap();
        for isa in Isa::available() {
            for &tile in tr_tiles(isa) {
                let conv = DirectConvTranspose1d::with_tile(&w, Some(&b), s, tile, isa).unwrap();
                let got = conv.forward(&x, slope).unwrap();
                assert_eq!(got.dims(), &[1, cout, len * s]);
                let (max, vs_scalar) = (max_diff(&got, &want), max_diff(&got, &scalar));
                assert!(
                    max < 1e-4 && vs_scalar < 1e-4,
                    "tr cin {cin} cout {cout} k {k} s {s} len {len} {isa:?} {tile:?}: \
                     max diff {max} vs candle, {vs_scalar} vs scalar"
                );
            }
        }
    }

    #[test]
    fn transposed_matches_candle_decoder_shapes() {
        // The medium voice's three upsampling layers at a short length.
        check_tr(256, 128, 16, 8, 37, Some(0.1));
        check_tr(128, 64, 16, 8, 41, Some(0.1));
        check_tr(64, 32, 8, 4, 53, Some(0.1));
    }

    #[test]
    fn transposed_matches_candle_odd_lengths_and_t1() {
        for len in [1, 2, 3, 5, 7, 13, 25] {
            check_tr(6, 5, 16, 8, len, Some(0.1));
            check_tr(5, 7, 8, 4, len, None);
            check_tr(3, 9, 4, 2, len, Some(0.2));
            check_tr(4, 3, 4, 4, len, Some(0.1));
            check_tr(4, 3, 3, 1, len, Some(0.1));
            check_tr(4, 6, 20, 8, len, Some(0.1));
            // Stride 16: the vector kernel at 16 lanes, the portable one at 8.
            check_tr(3, 5, 16, 16, len, Some(0.1));
            check_tr(3, 5, 32, 16, len, Some(0.1));
        }
    }

    #[test]
    fn transposed_matches_candle_other_strides() {
        // Strides that divide no vector width take the portable path.
        for len in [1, 4, 19] {
            check_tr(5, 6, 11, 3, len, Some(0.1));
            check_tr(5, 6, 10, 10, len, None);
            check_tr(4, 4, 36, 32, len, Some(0.1));
        }
    }

    #[test]
    fn transposed_matches_candle_when_threaded() {
        check_tr(64, 32, 8, 4, 3001, Some(0.1));
        check_tr(128, 64, 16, 8, 777, Some(0.1));
    }

    #[test]
    fn transposed_rejects_bad_kernels() {
        let w = Tensor::zeros((2, 2, 7), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(DirectConvTranspose1d::new(&w, None, 8).is_err());
        assert!(DirectConvTranspose1d::new(&w, None, 2).is_err());
    }
}
