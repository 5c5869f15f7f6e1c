//! Direct (im2col-free) 1-D convolution for the HiFi-GAN decoder's narrow, long stages.
//!
//! candle's CPU `conv1d` builds an im2col buffer of `in · k · T` floats and runs a gemm.
//! In the decoder's last stages (32–128 channels at up to 256× the frame rate) that buffer
//! dominates both time and peak memory. Here every output sample is accumulated directly
//! from the (zero-padded, already activated) input: a register-blocked kernel keeps
//! `CO_BLOCK × TB` accumulators in SIMD registers across all input channels and taps,
//! so the only memory traffic is streaming the input rows. The input's LeakyReLU, the
//! bias and an optional residual (`y = x + conv(act(x))`) are fused into the same pass.

use candle_core::{Device, Tensor};

use super::VitsError;

/// Output channels computed together: each input sample loaded is reused this many times.
const CO_BLOCK: usize = 4;
/// Output samples per register tile (three 8-lane AVX2 vectors; 12 of the 16 registers
/// hold accumulators). An AVX-512 variant (16 lanes, tiles of 32 or 48) measured 3×
/// slower on this kernel, so there is none.
const T_BLOCK: usize = 24;
/// Below this many multiply-adds a convolution runs on the calling thread only: spawning
/// a thread costs tens of microseconds.
const PARALLEL_MIN_MACS: usize = 4_000_000;

/// A dense 1-D convolution (`groups = 1`, stride 1) with "same" padding
/// `dilation · (k − 1) / 2`, evaluated directly on `f32` buffers.
#[derive(Debug, Clone)]
pub(crate) struct DirectConv1d {
    /// Weights repacked as `[out_blocks, in, k, CO_BLOCK]`, zero-filled past `out`, so the
    /// kernel reads the `CO_BLOCK` weights of one (input channel, tap) contiguously.
    packed: Vec<f32>,
    /// One bias per output channel (zeros when the layer has none).
    bias: Vec<f32>,
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
    dilation: usize,
}

impl DirectConv1d {
    /// Builds from a `[out, in, k]` weight and an optional `[out]`-element bias.
    pub(crate) fn new(
        weight: &Tensor,
        bias: Option<&Tensor>,
        dilation: usize,
    ) -> Result<Self, VitsError> {
        let (out_ch, in_ch, kernel) = weight.dims3()?;
        if kernel == 0 || kernel % 2 == 0 || dilation == 0 {
            return Err(VitsError::Unsupported(format!(
                "direct conv1d needs an odd kernel and dilation ≥ 1, got k={kernel} d={dilation}"
            )));
        }
        let w = weight.flatten_all()?.to_vec1::<f32>()?;
        let bias = match bias {
            Some(b) => {
                let b = b.flatten_all()?.to_vec1::<f32>()?;
                if b.len() != out_ch {
                    return Err(VitsError::Internal(format!(
                        "conv bias has {} elements for {out_ch} output channels",
                        b.len()
                    )));
                }
                b
            }
            None => vec![0.0; out_ch],
        };
        let blocks = out_ch.div_ceil(CO_BLOCK);
        let mut packed = vec![0.0f32; blocks * in_ch * kernel * CO_BLOCK];
        for co in 0..out_ch {
            let (blk, lane) = (co / CO_BLOCK, co % CO_BLOCK);
            for ci in 0..in_ch {
                for k in 0..kernel {
                    packed[((blk * in_ch + ci) * kernel + k) * CO_BLOCK + lane] =
                        w[(co * in_ch + ci) * kernel + k];
                }
            }
        }
        Ok(Self {
            packed,
            bias,
            in_ch,
            out_ch,
            kernel,
            dilation,
        })
    }

    /// `x` `[1, in, T]` → `[1, out, T]`: `conv(leaky_relu(x, slope))`, plus `x` itself
    /// when `residual` (which needs `in == out`). `slope: None` skips the activation.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        slope: Option<f32>,
        residual: bool,
    ) -> Result<Tensor, VitsError> {
        let (batch, in_ch, len) = x.dims3()?;
        if batch != 1 || in_ch != self.in_ch {
            return Err(VitsError::Internal(format!(
                "direct conv1d expects [1, {}, T], got {:?}",
                self.in_ch,
                x.dims()
            )));
        }
        if residual && self.in_ch != self.out_ch {
            return Err(VitsError::Internal(
                "residual convolution needs as many output as input channels".into(),
            ));
        }
        let input = x.flatten_all()?.to_vec1::<f32>()?;
        let out = self.run(&input, len, slope, residual);
        Ok(Tensor::from_vec(out, (1, self.out_ch, len), &Device::Cpu)?.to_device(x.device())?)
    }

    /// Convolution on a channels-first `[in, len]` buffer; returns `[out, len]`.
    fn run(&self, input: &[f32], len: usize, slope: Option<f32>, residual: bool) -> Vec<f32> {
        let pad = self.dilation * (self.kernel - 1) / 2;
        // Rows are long enough for whole tiles, so the kernel never reads past them.
        let row = len.div_ceil(T_BLOCK) * T_BLOCK + 2 * pad;
        let padded = pad_and_activate(input, self.in_ch, len, row, pad, slope);

        let mut out = vec![0.0f32; self.out_ch * len];
        let blocks = self.out_ch.div_ceil(CO_BLOCK);
        let macs = self.out_ch * self.in_ch * self.kernel * len;
        let threads = if macs < PARALLEL_MIN_MACS {
            1
        } else {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(blocks)
        };
        let ctx = Job {
            conv: self,
            padded: &padded,
            row,
            len,
            residual: residual.then_some(input),
        };
        if threads <= 1 {
            ctx.blocks(0, &mut out);
            return out;
        }
        // Whole output-channel blocks per thread: each owns a contiguous slice of `out`.
        let per_thread = blocks.div_ceil(threads) * CO_BLOCK * len;
        std::thread::scope(|s| {
            for (i, chunk) in out.chunks_mut(per_thread).enumerate() {
                let ctx = &ctx;
                let first = i * per_thread / (CO_BLOCK * len);
                s.spawn(move || ctx.blocks(first, chunk));
            }
        });
        out
    }
}

/// Copies `[ch, len]` into zero-padded rows of `row` floats (`pad` zeros in front),
/// applying LeakyReLU on the way: the padding zeros stay zero, as in the reference.
fn pad_and_activate(
    input: &[f32],
    ch: usize,
    len: usize,
    row: usize,
    pad: usize,
    slope: Option<f32>,
) -> Vec<f32> {
    let mut padded = vec![0.0f32; ch * row];
    for (dst, src) in padded.chunks_exact_mut(row).zip(input.chunks_exact(len)) {
        let dst = &mut dst[pad..pad + len];
        match slope {
            Some(a) => dst
                .iter_mut()
                .zip(src)
                .for_each(|(d, &v)| *d = v.max(v * a)),
            None => dst.copy_from_slice(src),
        }
    }
    padded
}

/// Everything one worker needs to compute a range of output-channel blocks.
struct Job<'a> {
    conv: &'a DirectConv1d,
    padded: &'a [f32],
    row: usize,
    len: usize,
    /// The un-activated input, added to the output for residual layers.
    residual: Option<&'a [f32]>,
}

impl Job<'_> {
    /// Fills `out` (`[n, len]` for output channels `first_block · CO_BLOCK ..`).
    fn blocks(&self, first_block: usize, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU supports the features `blocks_avx2` is compiled for.
                unsafe { self.blocks_avx2(first_block, out) };
                return;
            }
        }
        self.blocks_generic::<false, T_BLOCK>(first_block, out);
    }

    /// The same code compiled with AVX2 + FMA, so the tile loops become 8-lane FMAs.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn blocks_avx2(&self, first_block: usize, out: &mut [f32]) {
        self.blocks_generic::<true, T_BLOCK>(first_block, out);
    }

    /// `FMA`: use fused multiply-adds (only where the CPU has them: `f32::mul_add`
    /// without hardware support is a slow library call).
    #[inline(always)]
    fn blocks_generic<const FMA: bool, const TB: usize>(
        &self,
        first_block: usize,
        out: &mut [f32],
    ) {
        let len = self.len;
        for (b, rows) in out.chunks_mut(CO_BLOCK * len).enumerate() {
            let blk = first_block + b;
            let co0 = blk * CO_BLOCK;
            let n_co = rows.len() / len;
            let cin = self.conv.in_ch;
            let k = self.conv.kernel;
            let w = &self.conv.packed[blk * cin * k * CO_BLOCK..(blk + 1) * cin * k * CO_BLOCK];
            for tile in 0..len.div_ceil(TB) {
                let t0 = tile * TB;
                let acc = self.tile::<FMA, TB>(w, t0);
                let valid = TB.min(len - t0);
                for (c, acc_row) in acc.iter().enumerate().take(n_co) {
                    let co = co0 + c;
                    let dst = &mut rows[c * len + t0..c * len + t0 + valid];
                    let bias = self.conv.bias[co];
                    match self.residual {
                        Some(res) => {
                            let src = &res[co * len + t0..co * len + t0 + valid];
                            for ((d, &a), &r) in dst.iter_mut().zip(acc_row).zip(src) {
                                *d = a + bias + r;
                            }
                        }
                        None => {
                            for (d, &a) in dst.iter_mut().zip(acc_row) {
                                *d = a + bias;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Accumulates one `CO_BLOCK × TB` tile over all input channels and taps.
    /// Fixed-size arrays let the compiler keep the accumulators in registers.
    #[inline(always)]
    fn tile<const FMA: bool, const TB: usize>(
        &self,
        w: &[f32],
        t0: usize,
    ) -> [[f32; TB]; CO_BLOCK] {
        let mut acc = [[0.0f32; TB]; CO_BLOCK];
        let k = self.conv.kernel;
        let dil = self.conv.dilation;
        for (ci, w_ci) in w.chunks_exact(k * CO_BLOCK).enumerate() {
            let x_row = &self.padded[ci * self.row + t0..(ci + 1) * self.row];
            for (tap, w_tap) in w_ci.chunks_exact(CO_BLOCK).enumerate() {
                let x: &[f32; TB] = match x_row[tap * dil..].first_chunk() {
                    Some(x) => x,
                    None => continue, // unreachable: rows cover whole tiles plus padding
                };
                for (acc_c, &wc) in acc.iter_mut().zip(w_tap) {
                    for (a, &xv) in acc_c.iter_mut().zip(x) {
                        *a = if FMA {
                            wc.mul_add(xv, *a)
                        } else {
                            *a + wc * xv
                        };
                    }
                }
            }
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random values in [−1, 1) (no extra dev-dependency).
    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Reference: candle's conv1d on `leaky(x)` (+ bias, + x).
    fn reference(
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        dil: usize,
        slope: Option<f32>,
        residual: bool,
    ) -> Tensor {
        let k = w.dim(2).unwrap();
        let act = match slope {
            Some(a) => x.maximum(&(x * a as f64).unwrap()).unwrap(),
            None => x.clone(),
        };
        let y = act
            .conv1d(w, dil * (k - 1) / 2, 1, dil, 1)
            .unwrap()
            .broadcast_add(&b.reshape((1, (), 1)).unwrap())
            .unwrap();
        if residual {
            (y + x).unwrap()
        } else {
            y
        }
    }

    fn check(cin: usize, cout: usize, k: usize, dil: usize, len: usize, slope: Option<f32>) {
        let dev = Device::Cpu;
        let x = Tensor::from_vec(noise(cin * len, 1), (1, cin, len), &dev).unwrap();
        let w = Tensor::from_vec(noise(cout * cin * k, 2), (cout, cin, k), &dev).unwrap();
        let b = Tensor::from_vec(noise(cout, 3), cout, &dev).unwrap();
        for residual in [false, cin == cout] {
            let conv = DirectConv1d::new(&w, Some(&b), dil).unwrap();
            let got = conv.forward(&x, slope, residual).unwrap();
            let want = reference(&x, &w, &b, dil, slope, residual);
            assert_eq!(got.dims(), want.dims());
            let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let max = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                max < 1e-4,
                "cin {cin} cout {cout} k {k} d {dil} len {len}: max diff {max}"
            );
        }
    }

    #[test]
    fn matches_candle_plain_and_dilated() {
        check(8, 8, 3, 1, 50, Some(0.1));
        check(8, 8, 5, 6, 97, Some(0.1));
        check(16, 16, 7, 12, 300, None);
    }

    #[test]
    fn matches_candle_odd_channel_counts_and_short_inputs() {
        // conv_post-like (one output channel), a partial channel block, inputs shorter
        // than one tile and than the receptive field.
        check(32, 1, 7, 1, 123, Some(0.01));
        check(6, 5, 3, 2, 7, Some(0.1));
        check(4, 4, 7, 12, 3, Some(0.1));
    }

    #[test]
    fn matches_candle_when_threaded() {
        // Enough multiply-adds to take the multi-threaded path.
        check(32, 32, 5, 2, 6000, Some(0.1));
    }

    #[test]
    fn rejects_even_kernels() {
        let w = Tensor::zeros((2, 2, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(DirectConv1d::new(&w, None, 1).is_err());
    }
}
