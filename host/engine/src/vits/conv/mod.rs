//! Direct (im2col-free) 1-D convolutions for the HiFi-GAN decoder's narrow, long stages.
//!
//! candle's CPU `conv1d` builds an im2col buffer of `in · k · T` floats and runs a gemm;
//! its `conv_transpose1d` runs a gemm into a `T · out · k` column buffer and then
//! overlap-adds it (col2im). In the decoder's stages (32–256 channels at up to 256× the
//! frame rate) those buffers dominate both time and peak memory. Here every output
//! sample is accumulated directly from the (zero-padded, already activated) input: a
//! register-blocked kernel keeps `co_block × 8·nv` accumulators in SIMD registers across
//! all input channels and taps, so the only memory traffic is streaming the input.
//!
//! Work is split into time chunks. For each chunk a worker activates (LeakyReLU) and
//! zero-pads the chunk's input window into a small, cache-resident scratch buffer, then
//! runs every output-channel block over it: the input is read from memory once per
//! convolution, not once per output-channel block, and there is no full-size padded copy.
//! Chunks are handed out through an atomic counter, so two threads stay balanced even
//! when one core is busy with something else. The bias and an optional residual
//! (`y = x + conv(act(x))`) are fused into the stores.
//!
//! [`DirectConvTranspose1d`] does the same for the upsampling layers in polyphase form
//! (`transposed.rs`).
//!
//! Files: this one has the forward convolution's API and work split; `plan.rs` the
//! register tiles and blocking; `buffers.rs` the input window and output buffers;
//! `avx2.rs` the AVX2 + FMA kernels and `scalar.rs` the portable ones. Which kernel set
//! runs is decided in one place per convolution, a `match` on [`Isa::detect`].

#[cfg(target_arch = "x86_64")]
mod avx2;
mod buffers;
mod plan;
mod scalar;
mod transposed;

use candle_core::{Device, Tensor};

use super::isa::Isa;
use super::parallel::{run_items, threads_for, SendPtr, CONV_MIN_MACS};
use super::VitsError;
use buffers::{alloc_out, assume_init, fill_window, read_bias, with_cpu_f32};
use plan::{channel_groups, plan, Block, MIN_TILES_PER_CHUNK, TB_LCM, WINDOW_FLOATS};
pub(crate) use plan::{Tile, TILES};
pub(crate) use transposed::DirectConvTranspose1d;

/// A dense 1-D convolution (`groups = 1`, stride 1) with "same" padding
/// `dilation · (k − 1) / 2`, evaluated directly on `f32` buffers.
#[derive(Debug, Clone)]
pub(crate) struct DirectConv1d {
    /// Weights repacked per block as `[in, k, co_block]`, so the kernel reads the
    /// `co_block` weights of one (input channel, tap) contiguously.
    packed: Vec<f32>,
    blocks: Vec<Block>,
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
        Self::build(weight, bias, dilation, None)
    }

    /// [`Self::new`] with blocks of one explicit register tile (one of [`TILES`]).
    #[allow(dead_code)]
    pub(crate) fn with_tile(
        weight: &Tensor,
        bias: Option<&Tensor>,
        dilation: usize,
        tile: Tile,
    ) -> Result<Self, VitsError> {
        if !TILES.contains(&tile) {
            return Err(VitsError::Internal(format!("no kernel for tile {tile:?}")));
        }
        Self::build(weight, bias, dilation, Some(tile))
    }

    fn build(
        weight: &Tensor,
        bias: Option<&Tensor>,
        dilation: usize,
        tile: Option<Tile>,
    ) -> Result<Self, VitsError> {
        let (out_ch, in_ch, kernel) = weight.dims3()?;
        if kernel == 0 || kernel % 2 == 0 || dilation == 0 {
            return Err(VitsError::Unsupported(format!(
                "direct conv1d needs an odd kernel and dilation ≥ 1, got k={kernel} d={dilation}"
            )));
        }
        let w = weight.flatten_all()?.to_vec1::<f32>()?;
        let bias = read_bias(bias, out_ch)?;
        let mut packed = vec![0.0f32; out_ch * in_ch * kernel];
        let mut blocks = Vec::new();
        let (mut co0, mut offset) = (0, 0);
        for tile in plan(out_ch, tile) {
            let cb = tile.co_block;
            for lane in 0..cb {
                for ci in 0..in_ch {
                    for k in 0..kernel {
                        packed[offset + (ci * kernel + k) * cb + lane] =
                            w[((co0 + lane) * in_ch + ci) * kernel + k];
                    }
                }
            }
            blocks.push(Block { co0, tile, offset });
            co0 += cb;
            offset += cb * in_ch * kernel;
        }
        Ok(Self {
            packed,
            blocks,
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
        let out = with_cpu_f32(x, |input| self.run(input, len, slope, residual))?;
        Ok(Tensor::from_vec(out, (1, self.out_ch, len), &Device::Cpu)?.to_device(x.device())?)
    }

    /// Convolution on a channels-first `[in, len]` buffer; returns `[out, len]`.
    pub(crate) fn run(
        &self,
        input: &[f32],
        len: usize,
        slope: Option<f32>,
        residual: bool,
    ) -> Vec<f32> {
        self.run_with(input, len, slope, residual.then_some(input))
    }

    /// [`Self::run`] with the residual taken from any `[out, len]` buffer.
    pub(crate) fn run_with(
        &self,
        input: &[f32],
        len: usize,
        slope: Option<f32>,
        residual: Option<&[f32]>,
    ) -> Vec<f32> {
        let mut out = alloc_out(self.out_ch * len);
        // SAFETY: `out` has `out · len` elements; not accumulating, the kernels write
        // every one of them before it is read.
        unsafe { self.run_raw(input, len, slope, residual, out.as_mut_ptr().cast(), false) };
        // SAFETY: written above.
        unsafe { assume_init(out) }
    }

    /// `out (+)= conv(act(input)) + residual`: the store adds `residual` (`[out, len]`,
    /// any buffer, e.g. the input of an earlier convolution) and, when `accumulate`,
    /// what `out` already holds. Saves the separate passes (and buffers) of a residual
    /// or a running sum.
    pub(crate) fn run_into(
        &self,
        input: &[f32],
        len: usize,
        slope: Option<f32>,
        residual: Option<&[f32]>,
        out: &mut [f32],
        accumulate: bool,
    ) {
        assert_eq!(out.len(), self.out_ch * len, "output buffer size");
        // SAFETY: `out` is initialised and has the size the kernels write.
        unsafe { self.run_raw(input, len, slope, residual, out.as_mut_ptr(), accumulate) }
    }

    /// # Safety
    /// `out` must point to `out · len` floats, initialised when `accumulate`.
    unsafe fn run_raw(
        &self,
        input: &[f32],
        len: usize,
        slope: Option<f32>,
        residual: Option<&[f32]>,
        out: *mut f32,
        accumulate: bool,
    ) {
        assert_eq!(input.len(), self.in_ch * len, "input buffer size");
        if let Some(r) = residual {
            assert_eq!(r.len(), self.out_ch * len, "residual buffer size");
        }
        if len == 0 || self.out_ch == 0 {
            return;
        }
        let pad = self.dilation * (self.kernel - 1) / 2;
        // Chunk width: a multiple of 48 samples (whole 16-, 24- and 48-sample tiles),
        // the window plus halo within the budget.
        let unit = 48;
        let fit = (WINDOW_FLOATS / self.in_ch.max(1)).saturating_sub(2 * pad) / unit;
        let width = fit.max(MIN_TILES_PER_CHUNK) * unit;
        let chunks = len.div_ceil(width);
        let macs = self.out_ch * self.in_ch * self.kernel * len;
        let threads = threads_for(macs, CONV_MIN_MACS);
        let groups = channel_groups(chunks, self.blocks.len(), threads);
        let job = ConvJob {
            conv: self,
            input,
            len,
            pad,
            width,
            slope,
            residual,
            accumulate,
            out: SendPtr(out),
        };
        let nb = self.blocks.len();
        run_items(chunks * groups, threads, |item, buf| {
            let (chunk, g) = (item / groups, item % groups);
            job.chunk(
                chunk,
                &self.blocks[g * nb / groups..(g + 1) * nb / groups],
                buf,
            )
        });
        // The chunks cover every sample and the groups every block, i.e. every output
        // channel; each (channel, sample) is stored once.
    }
}

/// Everything the workers of one forward convolution share.
struct ConvJob<'a> {
    conv: &'a DirectConv1d,
    /// The un-activated input `[in, len]`.
    input: &'a [f32],
    len: usize,
    pad: usize,
    /// Samples per chunk (whole tiles).
    width: usize,
    slope: Option<f32>,
    /// Added to the output, `[out, len]`.
    residual: Option<&'a [f32]>,
    /// Add to what the output holds instead of overwriting it.
    accumulate: bool,
    out: SendPtr,
}

impl ConvJob<'_> {
    /// Computes output samples `chunk · width ..` for every output channel.
    fn chunk(&self, chunk: usize, blocks: &[Block], buf: &mut Vec<f32>) {
        let c = self.conv;
        let t0 = chunk * self.width;
        let n = self.width.min(self.len - t0);
        let row = n.div_ceil(TB_LCM) * TB_LCM + 2 * self.pad;
        fill_window(
            buf,
            self.input,
            c.in_ch,
            self.len,
            t0 as isize - self.pad as isize,
            row,
            self.slope,
        );
        match Isa::detect() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has the features; `buf` holds `in` rows of `row` floats
            // covering whole tiles plus the halo; the output range is this chunk's
            // samples of these blocks' channels.
            Isa::Avx2Fma => unsafe { avx2::conv_blocks(self, blocks, buf, row, t0, n) },
            Isa::Scalar => scalar::conv_blocks(self, blocks, buf, row, t0, n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random values in [−1, 1) (no extra dev-dependency).
    pub(super) fn noise(n: usize, seed: u64) -> Vec<f32> {
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

    pub(super) fn max_diff(got: &Tensor, want: &Tensor) -> f32 {
        assert_eq!(got.dims(), want.dims());
        let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        got.iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max)
    }

    pub(super) fn leaky(x: &Tensor, slope: Option<f32>) -> Tensor {
        match slope {
            Some(a) => x.maximum(&(x * a as f64).unwrap()).unwrap(),
            None => x.clone(),
        }
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
        let y = leaky(x, slope)
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
            for tile in TILES {
                let conv = DirectConv1d::with_tile(&w, Some(&b), dil, tile).unwrap();
                let got = conv.forward(&x, slope, residual).unwrap();
                let want = reference(&x, &w, &b, dil, slope, residual);
                let max = max_diff(&got, &want);
                assert!(
                    max < 1e-4,
                    "cin {cin} cout {cout} k {k} d {dil} len {len} {tile:?}: max diff {max}"
                );
            }
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
        check(3, 7, 3, 1, 1, Some(0.1));
    }

    #[test]
    fn matches_candle_when_threaded() {
        // Enough multiply-adds to take the multi-threaded path, several chunks.
        check(32, 32, 5, 2, 6000, Some(0.1));
        check(128, 128, 7, 12, 700, Some(0.1));
    }

    #[test]
    fn matches_candle_on_strided_input() {
        // A non-contiguous input takes the copying path.
        let dev = Device::Cpu;
        let x = Tensor::from_vec(noise(40 * 8, 4), (1, 40, 8), &dev).unwrap();
        let x = x.transpose(1, 2).unwrap();
        let w = Tensor::from_vec(noise(8 * 8 * 3, 5), (8, 8, 3), &dev).unwrap();
        let b = Tensor::from_vec(noise(8, 6), 8, &dev).unwrap();
        let conv = DirectConv1d::new(&w, Some(&b), 2).unwrap();
        let got = conv.forward(&x, Some(0.1), true).unwrap();
        let want = reference(&x, &w, &b, 2, Some(0.1), true);
        assert!(max_diff(&got, &want) < 1e-4);
    }

    #[test]
    fn rejects_even_kernels() {
        let w = Tensor::zeros((2, 2, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(DirectConv1d::new(&w, None, 1).is_err());
    }
}
