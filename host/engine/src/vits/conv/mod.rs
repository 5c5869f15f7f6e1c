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
//! `avx512.rs` the AVX-512F kernels, `avx2.rs` the AVX2 + FMA ones and `scalar.rs` the
//! portable ones. A convolution is built for one [`Isa`] (by default the level in use,
//! [`Isa::detect`]): its weights are packed for that level's tiles, and one `match` per
//! chunk on that level picks the kernel.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod buffers;
mod plan;
mod scalar;
mod transposed;

use std::cell::Cell;

use candle_core::{Device, Tensor};

use super::isa::Isa;
use super::parallel::{run_items, threads_for, SendPtr, CONV_MIN_MACS};
use super::roofline::count_macs;
use super::VitsError;
use buffers::{alloc_out, assume_init, fill_window, read_bias, with_cpu_f32};
pub(crate) use plan::Tile;
use plan::{channel_groups, chunk_unit, plan, tiles, Block, MIN_TILES_PER_CHUNK, WINDOW_FLOATS};
pub(crate) use transposed::DirectConvTranspose1d;

thread_local! {
    /// Set while [`emulating_bf16`] builds convolutions.
    static BF16: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (which builds convolutions) so that, with `on`, the direct and transposed
/// convolutions it builds round their weights and their (activated) inputs to bfloat16
/// and sum the products in f32 — the numerics of an AVX512-BF16 or AMX-BF16 kernel,
/// whose products of two bf16 values are exact in f32. The arithmetic stays f32, so it
/// is no faster: it measures what a bf16 path would cost in fidelity on a CPU that has
/// none (`voxpipe-bench bf16`, issue 18).
pub(crate) fn emulating_bf16<R>(on: bool, f: impl FnOnce() -> R) -> R {
    let before = BF16.with(|b| b.replace(on));
    let r = f();
    BF16.with(|b| b.set(before));
    r
}

fn bf16_now() -> bool {
    BF16.with(Cell::get)
}

/// `x` rounded to the nearest bfloat16 (ties to even), as an f32.
pub(crate) fn bf16_round(x: f32) -> f32 {
    let bits = x.to_bits();
    if x.is_nan() {
        return x;
    }
    let rounded = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) & 0xFFFF_0000;
    f32::from_bits(rounded)
}

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
    /// The instruction set the weights are packed for and the kernels run with.
    isa: Isa,
    /// The distinct sample widths of the blocks' tiles (a window covers whole tiles
    /// of each).
    widths: Vec<usize>,
    /// Weights and inputs rounded to bfloat16 ([`emulating_bf16`]).
    bf16: bool,
}

impl DirectConv1d {
    /// Builds from a `[out, in, k]` weight and an optional `[out]`-element bias.
    pub(crate) fn new(
        weight: &Tensor,
        bias: Option<&Tensor>,
        dilation: usize,
    ) -> Result<Self, VitsError> {
        Self::build(weight, bias, dilation, None, Isa::detect())
    }

    /// [`Self::new`] for an explicit instruction set (which the CPU must have) and,
    /// optionally, blocks of one explicit register tile (one of [`plan::tiles`]).
    pub(crate) fn with_tile(
        weight: &Tensor,
        bias: Option<&Tensor>,
        dilation: usize,
        tile: Option<Tile>,
        isa: Isa,
    ) -> Result<Self, VitsError> {
        if let Some(tile) = tile {
            if !tiles(isa).contains(&tile) {
                return Err(VitsError::Internal(format!(
                    "no {} kernel for tile {tile:?}",
                    isa.name()
                )));
            }
        }
        Self::build(weight, bias, dilation, tile, isa)
    }

    fn build(
        weight: &Tensor,
        bias: Option<&Tensor>,
        dilation: usize,
        tile: Option<Tile>,
        isa: Isa,
    ) -> Result<Self, VitsError> {
        if !isa.supported() {
            return Err(VitsError::Internal(format!("the CPU lacks {}", isa.name())));
        }
        let (out_ch, in_ch, kernel) = weight.dims3()?;
        if kernel == 0 || kernel % 2 == 0 || dilation == 0 {
            return Err(VitsError::Unsupported(format!(
                "direct conv1d needs an odd kernel and dilation ≥ 1, got k={kernel} d={dilation}"
            )));
        }
        let bf16 = bf16_now();
        let mut w = weight.flatten_all()?.to_vec1::<f32>()?;
        if bf16 {
            w.iter_mut().for_each(|v| *v = bf16_round(*v));
        }
        let bias = read_bias(bias, out_ch)?;
        let mut packed = vec![0.0f32; out_ch * in_ch * kernel];
        let mut blocks = Vec::new();
        let (mut co0, mut offset) = (0, 0);
        for tile in plan(out_ch, tile, isa) {
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
        let mut widths: Vec<usize> = blocks
            .iter()
            .map(|b| b.tile.nv * isa.lanes().max(8))
            .collect();
        widths.sort_unstable();
        widths.dedup();
        Ok(Self {
            packed,
            blocks,
            bias,
            in_ch,
            out_ch,
            kernel,
            dilation,
            isa,
            widths,
            bf16,
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
        let macs = self.out_ch * self.in_ch * self.kernel * len;
        count_macs(macs);
        let threads = threads_for(macs, CONV_MIN_MACS);
        // Chunk width: a multiple of whole main tiles, the window plus halo within the
        // budget; narrower (down to one unit) when that gives each thread about 8
        // chunks. More chunks, rather than more channel groups per chunk, is the cheaper
        // way to balance the threads: a chunk stages its window once for all its
        // channels, a group stages it again (in the flow and the text encoder, a few
        // hundred frames wide, this was about 1 % of a sentence).
        let unit = chunk_unit(self.isa);
        let fit = (WINDOW_FLOATS / self.in_ch.max(1)).saturating_sub(2 * pad) / unit;
        let mut width = fit.max(MIN_TILES_PER_CHUNK) * unit;
        if threads > 1 {
            width = width.min(len.div_ceil(8 * threads).div_ceil(unit).max(1) * unit);
        }
        let chunks = len.div_ceil(width);
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
        // Whole tiles of every width the blocks use, plus the halo.
        let cover = c
            .widths
            .iter()
            .map(|&w| n.div_ceil(w) * w)
            .max()
            .unwrap_or(n);
        let row = cover + 2 * self.pad;
        // A convolution of the plain input (no activation, no bf16 rounding) reads the
        // input rows where they are when its window, halo included, lies inside them:
        // the window would only be a copy, which for a pointwise convolution (one tap
        // per input channel) cost as much as a third of the multiply-adds (192 → 384
        // channels: 27 → 44 GMAC/s on one thread, `voxpipe-bench conv`). The first and
        // last chunks, whose halo or tiles reach past the input's ends, still take the
        // window with its zeros.
        if self.slope.is_none() && !c.bf16 && t0 >= self.pad && t0 + cover + self.pad <= self.len {
            let start = t0 - self.pad;
            self.run_kernels(blocks, &self.input[start..], self.len, t0, n);
            return;
        }
        fill_window(
            buf,
            self.input,
            c.in_ch,
            self.len,
            t0 as isize - self.pad as isize,
            row,
            self.slope,
            c.isa,
            c.bf16,
        );
        self.run_kernels(blocks, buf, row, t0, n);
    }

    /// The blocks' kernels over `buf`: `in` rows `row` floats apart, each covering
    /// this chunk's whole tiles plus the halo from its first float on.
    fn run_kernels(&self, blocks: &[Block], buf: &[f32], row: usize, t0: usize, n: usize) {
        let c = self.conv;
        debug_assert!(buf.len() >= (c.in_ch - 1) * row + n);
        // SAFETY (both SIMD arms): the CPU has the features (checked when the
        // convolution was built for them); `buf` holds `in` rows of `row` floats
        // covering whole tiles plus the halo (the window, or the input itself when
        // every tile lies inside it); the output range is this chunk's samples of
        // these blocks' channels.
        match c.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { avx512::conv_blocks(self, blocks, buf, row, t0, n) },
            #[cfg(target_arch = "x86_64")]
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

    /// Every level this CPU runs, every tile of that level and its default plan,
    /// against candle's conv1d and against the portable kernel.
    fn check(cin: usize, cout: usize, k: usize, dil: usize, len: usize, slope: Option<f32>) {
        let dev = Device::Cpu;
        let x = Tensor::from_vec(noise(cin * len, 1), (1, cin, len), &dev).unwrap();
        let w = Tensor::from_vec(noise(cout * cin * k, 2), (cout, cin, k), &dev).unwrap();
        let b = Tensor::from_vec(noise(cout, 3), cout, &dev).unwrap();
        for residual in [false, cin == cout] {
            let want = reference(&x, &w, &b, dil, slope, residual);
            let scalar = DirectConv1d::with_tile(&w, Some(&b), dil, None, Isa::Scalar)
                .unwrap()
                .forward(&x, slope, residual)
                .unwrap();
            for isa in Isa::available() {
                let plans = std::iter::once(None).chain(tiles(isa).iter().copied().map(Some));
                for tile in plans {
                    let conv = DirectConv1d::with_tile(&w, Some(&b), dil, tile, isa).unwrap();
                    let got = conv.forward(&x, slope, residual).unwrap();
                    let (max, vs_scalar) = (max_diff(&got, &want), max_diff(&got, &scalar));
                    assert!(
                        max < 1e-4 && vs_scalar < 1e-4,
                        "cin {cin} cout {cout} k {k} d {dil} len {len} {isa:?} {tile:?}: \
                         max diff {max} vs candle, {vs_scalar} vs scalar"
                    );
                }
            }
        }
    }

    #[test]
    fn accumulating_store_with_residual_at_every_level() {
        // `out += conv(act(x)) + r` (the decoder's resblock sum), at lengths that end
        // in a partial vector of each width.
        let dev = Device::Cpu;
        for len in [1, 7, 17, 33, 100, 250] {
            let (cin, cout, k) = (5, 11, 3);
            let x = noise(cin * len, 11);
            let r = noise(cout * len, 12);
            let start = noise(cout * len, 13);
            let w = Tensor::from_vec(noise(cout * cin * k, 14), (cout, cin, k), &dev).unwrap();
            let b = Tensor::from_vec(noise(cout, 15), cout, &dev).unwrap();
            let xt = Tensor::from_vec(x.clone(), (1, cin, len), &dev).unwrap();
            let want = reference(&xt, &w, &b, 1, Some(0.2), false)
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for isa in Isa::available() {
                let conv = DirectConv1d::with_tile(&w, Some(&b), 1, None, isa).unwrap();
                let mut out = start.clone();
                conv.run_into(&x, len, Some(0.2), Some(&r), &mut out, true);
                for i in 0..cout * len {
                    let expect = start[i] + want[i] + r[i];
                    assert!(
                        (out[i] - expect).abs() < 1e-4,
                        "{isa:?} len {len} at {i}: {} vs {expect}",
                        out[i]
                    );
                }
            }
        }
    }

    #[test]
    fn bf16_emulation_rounds_weights_and_inputs_and_sums_in_f32() {
        // Ties to even on the 16 bits dropped; exact values stay.
        assert_eq!(bf16_round(1.0), 1.0);
        assert_eq!(bf16_round(f32::from_bits(0x3F80_8000)), 1.0);
        assert_eq!(
            bf16_round(f32::from_bits(0x3F81_8000)),
            f32::from_bits(0x3F82_0000)
        );
        assert_eq!(
            bf16_round(f32::from_bits(0x3F80_8001)),
            f32::from_bits(0x3F81_0000)
        );
        // A convolution built while emulating = the f32 one on rounded weights and
        // rounded activated inputs.
        let dev = Device::Cpu;
        let (cin, cout, k, len) = (6, 5, 3, 40);
        let x = noise(cin * len, 21);
        let w = noise(cout * cin * k, 22);
        let b = noise(cout, 23);
        let bt = Tensor::from_vec(b, cout, &dev).unwrap();
        let emulated = emulating_bf16(true, || {
            DirectConv1d::new(
                &Tensor::from_vec(w.clone(), (cout, cin, k), &dev).unwrap(),
                Some(&bt),
                1,
            )
        })
        .unwrap();
        assert!(!bf16_now(), "the scope ends with the closure");
        let rounded_w: Vec<f32> = w.iter().map(|&v| bf16_round(v)).collect();
        let act: Vec<f32> = x
            .iter()
            .map(|&v| bf16_round(if v > 0.0 { v } else { v * 0.1 }))
            .collect();
        let plain = DirectConv1d::new(
            &Tensor::from_vec(rounded_w, (cout, cin, k), &dev).unwrap(),
            Some(&bt),
            1,
        )
        .unwrap();
        let got = emulated.run(&x, len, Some(0.1), false);
        let want = plain.run(&act, len, None, false);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
    }

    #[test]
    fn matches_candle_plain_and_dilated() {
        check(8, 8, 3, 1, 50, Some(0.1));
        check(8, 8, 5, 6, 97, Some(0.1));
        check(16, 16, 7, 12, 300, None);
        // Pointwise (1×1), as the flow's and encoder's projections run.
        check(12, 20, 1, 1, 77, None);
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
    fn plain_input_is_read_in_place_except_at_the_ends() {
        // 192 input channels: chunks of 144 samples on one thread (the first four read
        // the input in place, the fifth, a partial tile, through the window), and of
        // 48 on two (7.7 M multiply-adds), with and without a residual.
        check(192, 12, 1, 1, 700, None);
        check(192, 40, 1, 1, 1000, None);
        check(192, 192, 1, 1, 250, None);
        // With a halo: the first chunk's reaches before the input (the window's
        // zeros), the middle ones' lie inside it, the last one's past its end.
        check(192, 12, 5, 1, 700, None);
        check(192, 12, 3, 4, 700, None);
        check(192, 192, 3, 1, 1000, None);
        // With an activation to apply, the window is still used.
        check(192, 12, 1, 1, 700, Some(0.1));
        // `dst += W·x + b` (the flow's res/skip), at every level.
        let dev = Device::Cpu;
        let (cin, cout, len) = (192, 24, 500);
        let x = noise(cin * len, 21);
        let start = noise(cout * len, 22);
        let w = Tensor::from_vec(noise(cout * cin, 23), (cout, cin, 1), &dev).unwrap();
        let b = Tensor::from_vec(noise(cout, 24), cout, &dev).unwrap();
        let xt = Tensor::from_vec(x.clone(), (1, cin, len), &dev).unwrap();
        let want = reference(&xt, &w, &b, 1, None, false)
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for isa in Isa::available() {
            let conv = DirectConv1d::with_tile(&w, Some(&b), 1, None, isa).unwrap();
            let mut out = start.clone();
            conv.run_into(&x, len, None, None, &mut out, true);
            for i in 0..cout * len {
                let expect = start[i] + want[i];
                assert!(
                    (out[i] - expect).abs() < 1e-4,
                    "{isa:?} at {i}: {} vs {expect}",
                    out[i]
                );
            }
        }
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
        let want = reference(&x, &w, &b, 2, Some(0.1), true);
        for isa in Isa::available() {
            let conv = DirectConv1d::with_tile(&w, Some(&b), 2, None, isa).unwrap();
            let got = conv.forward(&x, Some(0.1), true).unwrap();
            assert!(max_diff(&got, &want) < 1e-4, "{isa:?}");
        }
    }

    #[test]
    fn counts_its_multiply_adds_on_the_calling_thread() {
        // Threaded (the items run on the workers too), counted once by the caller.
        let (cin, cout, k, len) = (32, 40, 5, 5000);
        let dev = Device::Cpu;
        let w = Tensor::from_vec(noise(cout * cin * k, 2), (cout, cin, k), &dev).unwrap();
        let conv = DirectConv1d::new(&w, None, 1).unwrap();
        let x = noise(cin * len, 1);
        let before = crate::vits::roofline::macs_so_far();
        conv.run(&x, len, Some(0.1), false);
        let counted = crate::vits::roofline::macs_so_far() - before;
        assert_eq!(counted, (cout * cin * k * len) as u64);
    }

    #[test]
    fn rejects_even_kernels() {
        let w = Tensor::zeros((2, 2, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(DirectConv1d::new(&w, None, 1).is_err());
    }
}
