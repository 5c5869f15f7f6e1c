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
//! [`DirectConvTranspose1d`] does the same for the upsampling layers in polyphase form:
//! output sample `m = q·s + r` (before cropping the padding) only sees the taps
//! `k = r + s·i` applied to inputs `q − i`. With `s | 8`, one 8-lane vector holds
//! `G = 8 / s` consecutive frames × `s` phases, so the kernel broadcasts `G` input values
//! and multiplies by a vector of `8` phase weights; a lane permutation at the end puts the
//! phases back in time order.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{Device, Storage, Tensor};

use super::VitsError;

/// Below this many multiply-adds a convolution runs on the calling thread only: spawning
/// a thread costs tens of microseconds.
const PARALLEL_MIN_MACS: usize = 4_000_000;
/// Floats of activated input one work chunk may stage (`in · (width + halo)`): 128 KiB,
/// well inside L2, so every output-channel block re-reads it from cache.
const WINDOW_FLOATS: usize = 32 * 1024;
/// At least this many tiles per chunk, whatever the channel count, so the halo and the
/// per-chunk overhead stay small.
const MIN_TILES_PER_CHUNK: usize = 2;
/// Upper bound on worker threads (benchmarks set it to 1 to measure one core).
pub(crate) static MAX_THREADS: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Register tile of the forward convolution: `co_block` output channels × `8 · nv`
/// samples, `co_block · nv` ≤ 12 of the 16 AVX2 registers holding accumulators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tile {
    pub(crate) co_block: usize,
    pub(crate) nv: usize,
}

/// Tiles with a compiled AVX2 kernel. The default plan uses 6 × 16 and 4 × 16: the old
/// 4 × 24 tile needs all 16 registers (12 accumulators, 3 inputs, 1 weight) and LLVM
/// compiles it with register-rotating moves and spills in the inner loop, which made it
/// about 2× slower per multiply-add than 6 × 16 (15 registers, a clean loop).
pub(crate) const TILES: [Tile; 8] = [
    Tile { co_block: 6, nv: 2 },
    Tile { co_block: 4, nv: 2 },
    Tile { co_block: 4, nv: 3 },
    Tile { co_block: 5, nv: 2 },
    Tile { co_block: 3, nv: 4 },
    Tile { co_block: 2, nv: 6 },
    Tile {
        co_block: 1,
        nv: 12,
    },
    Tile { co_block: 1, nv: 4 },
];

/// The tile for a last block of `cb` (< the main block size) output channels.
fn tail_tile(cb: usize) -> Tile {
    let nv = match cb {
        1 => 12,
        2 => 6,
        3 => 4,
        _ => 2,
    };
    Tile { co_block: cb, nv }
}

/// Every tile's time width divides this, so windows rounded up to it cover whole tiles.
const TB_LCM: usize = 96;

/// A run of output channels computed together by one kernel.
#[derive(Debug, Clone, Copy)]
struct Block {
    co0: usize,
    tile: Tile,
    /// Offset of its `[in, k, co_block]` weights in `packed`.
    offset: usize,
}

/// Splits `out` channels into register-tile blocks. `None`: blocks of 6 and 4
/// (6 × 16 tiles use 12 accumulators with 3 spare registers; a 4 × 16 block instead of a
/// partly empty 6-block when `out` is not a multiple of 6), the rest in one tail block.
/// `Some(tile)`: blocks of that tile, the rest in one tail block.
fn plan(out: usize, tile: Option<Tile>) -> Vec<Tile> {
    let mut tiles = Vec::new();
    match tile {
        Some(t) => {
            tiles.extend(std::iter::repeat_n(t, out / t.co_block));
            if !out.is_multiple_of(t.co_block) {
                tiles.push(tail_tile(out % t.co_block));
            }
        }
        None => {
            let six = Tile { co_block: 6, nv: 2 };
            let four = Tile { co_block: 4, nv: 2 };
            // Largest a with out − 6a a multiple of 4 (or the remainder < 4).
            let mut a = out / 6;
            while a > 0 && !(out - 6 * a).is_multiple_of(4) {
                a -= 1;
            }
            if !(out - 6 * a).is_multiple_of(4) {
                a = out / 6;
            }
            tiles.extend(std::iter::repeat_n(six, a));
            let rest = out - 6 * a;
            tiles.extend(std::iter::repeat_n(four, rest / 4));
            if !rest.is_multiple_of(4) {
                tiles.push(tail_tile(rest % 4));
            }
        }
    }
    tiles
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
        let threads = threads_for(macs);
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

/// Raw output pointer shared by the workers; each writes disjoint samples.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: workers write disjoint (channel, time) ranges and the owner outlives them.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// Row `row` of `len` floats.
    ///
    /// # Safety
    /// The row must be in bounds and written by one worker only.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn row(&self, row: usize, len: usize) -> &mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(row * len), len)
    }
}

/// Worker threads for a convolution of `macs` multiply-adds.
fn threads_for(macs: usize) -> usize {
    if macs < PARALLEL_MIN_MACS {
        1
    } else {
        max_threads()
    }
}

/// The cores this process may use (read once: on Linux it reads cgroup files), capped
/// by [`MAX_THREADS`].
pub(crate) fn max_threads() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    cores.min(MAX_THREADS.load(Ordering::Relaxed)).max(1)
}

/// Into how many groups to split the output-channel blocks of each time chunk so that
/// `threads` workers get about 8 items each (dynamic scheduling then balances them).
fn channel_groups(chunks: usize, blocks: usize, threads: usize) -> usize {
    if threads <= 1 {
        1
    } else {
        (8 * threads).div_ceil(chunks).clamp(1, blocks.max(1))
    }
}

/// Runs `work(item, scratch)` for every item in `0..items` on `threads` threads (the
/// calling one included), handing items out through an atomic counter.
pub(crate) fn run_items<F>(items: usize, threads: usize, work: F)
where
    F: Fn(usize, &mut Vec<f32>) + Sync,
{
    let threads = threads.min(items);
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut buf = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= items {
                break;
            }
            work(i, &mut buf);
        }
    };
    if threads <= 1 {
        worker();
        return;
    }
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(worker);
        }
        worker();
    });
}

/// An output buffer of `n` floats, not yet initialised: the kernels write every element
/// exactly once (through [`SendPtr`]) before [`assume_init`] hands it out, so no zeroing
/// pass is needed.
fn alloc_out(n: usize) -> Vec<MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: `MaybeUninit` needs no initialisation.
    unsafe { v.set_len(n) };
    v
}

/// # Safety
/// Every element of `v` must have been written.
unsafe fn assume_init(v: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = std::mem::ManuallyDrop::new(v);
    Vec::from_raw_parts(v.as_mut_ptr().cast::<f32>(), v.len(), v.capacity())
}

/// Reads a bias of `n` elements, or zeros.
fn read_bias(bias: Option<&Tensor>, n: usize) -> Result<Vec<f32>, VitsError> {
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
fn with_cpu_f32<R>(x: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R, VitsError> {
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
/// zero, as in the reference.
fn fill_window(
    buf: &mut Vec<f32>,
    input: &[f32],
    ch: usize,
    len: usize,
    start: isize,
    row: usize,
    slope: Option<f32>,
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
                Some(a) => super::cpu::with_avx2(
                    #[inline(always)]
                    || {
                        dst.iter_mut()
                            .zip(src)
                            .for_each(|(d, &v)| *d = if v > 0.0 { v } else { v * a })
                    },
                ),
                None => dst.copy_from_slice(src),
            }
        }
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
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2_fma() {
                for blk in blocks {
                    // SAFETY: the CPU has the features; `buf` holds `in` rows of `row`
                    // floats covering whole tiles plus the halo; the output range is
                    // this chunk's samples of this block's channels.
                    unsafe {
                        match (blk.tile.co_block, blk.tile.nv) {
                            (6, 2) => avx2::conv_block::<6, 2>(self, blk, buf, row, t0, n),
                            (4, 2) => avx2::conv_block::<4, 2>(self, blk, buf, row, t0, n),
                            (4, 3) => avx2::conv_block::<4, 3>(self, blk, buf, row, t0, n),
                            (5, 2) => avx2::conv_block::<5, 2>(self, blk, buf, row, t0, n),
                            (3, 4) => avx2::conv_block::<3, 4>(self, blk, buf, row, t0, n),
                            (2, 6) => avx2::conv_block::<2, 6>(self, blk, buf, row, t0, n),
                            (1, 12) => avx2::conv_block::<1, 12>(self, blk, buf, row, t0, n),
                            (1, 4) => avx2::conv_block::<1, 4>(self, blk, buf, row, t0, n),
                            _ => unreachable!("tiles come from TILES"),
                        }
                    }
                }
                return;
            }
        }
        self.chunk_generic(blocks, buf, row, t0, n);
    }

    /// Portable version of the chunk kernel (scalar loops, same arithmetic).
    fn chunk_generic(&self, blocks: &[Block], buf: &[f32], row: usize, t0: usize, n: usize) {
        let c = self.conv;
        let (cin, k, dil, len) = (c.in_ch, c.kernel, c.dilation, self.len);
        let mut acc = vec![0.0f32; n];
        for blk in blocks {
            let cb = blk.tile.co_block;
            for lane in 0..cb {
                let co = blk.co0 + lane;
                acc.iter_mut().for_each(|a| *a = 0.0);
                for ci in 0..cin {
                    let x = &buf[ci * row..(ci + 1) * row];
                    for tap in 0..k {
                        let w = c.packed[blk.offset + (ci * k + tap) * cb + lane];
                        let x = &x[tap * dil..tap * dil + n];
                        acc.iter_mut().zip(x).for_each(|(a, &xv)| *a += w * xv);
                    }
                }
                let bias = c.bias[co];
                for (i, &a) in acc.iter().enumerate() {
                    let t = t0 + i;
                    let r = self.residual.map_or(0.0, |r| r[co * len + t]);
                    // SAFETY: (co, t) is inside the output and owned by this chunk.
                    unsafe {
                        let dst = self.out.0.add(co * len + t);
                        let old = if self.accumulate { *dst } else { 0.0 };
                        *dst = old + a + bias + r;
                    }
                }
            }
        }
    }
}

/// `[in, out, k]` transposed convolution (PyTorch `ConvTranspose1d`, `groups = 1`,
/// dilation 1, no output padding) with stride `s` and padding `(k − s) / 2`, so the
/// output has `T · s` samples.
#[derive(Debug, Clone)]
pub(crate) struct DirectConvTranspose1d {
    /// For SIMD strides (`s | 8`): `[out_blocks, in, taps, co_block, 8]`, lane `l`
    /// holding tap `k = l / G + s · i` (`G = 8 / s`), zero past `k` or `out`.
    /// Otherwise the plain `[in, out, k]` weight.
    packed: Vec<f32>,
    bias: Vec<f32>,
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    /// Taps per phase: `⌈k / s⌉`.
    taps: usize,
    /// Whether the stride divides 8 (the vector kernel's layout).
    simd: bool,
    /// Register tile: `co_block` channels × `nv` vectors of `8 / s` frames × `s` phases.
    tile: Tile,
}

/// Tiles with a compiled transposed kernel.
pub(crate) const TR_TILES: [Tile; 4] = [
    Tile { co_block: 4, nv: 3 },
    Tile { co_block: 2, nv: 6 },
    Tile { co_block: 6, nv: 2 },
    Tile { co_block: 4, nv: 2 },
];

/// Default transposed tile: 2 output channels × 6 vectors, the two weight vectors of a
/// (channel, tap) stay in registers while six input broadcasts stream past; it measured
/// best or tied on the three upsampling layers.
const TR_TILE: Tile = Tile { co_block: 2, nv: 6 };

impl DirectConvTranspose1d {
    /// Builds from a `[in, out, k]` weight (PyTorch layout) and an optional `[out]` bias.
    pub(crate) fn new(
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: usize,
    ) -> Result<Self, VitsError> {
        Self::with_tile(weight, bias, stride, TR_TILE)
    }

    /// [`Self::new`] with an explicit register tile (one of [`TR_TILES`]).
    pub(crate) fn with_tile(
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: usize,
        tile: Tile,
    ) -> Result<Self, VitsError> {
        if !TR_TILES.contains(&tile) {
            return Err(VitsError::Internal(format!("no kernel for tile {tile:?}")));
        }
        let (in_ch, out_ch, kernel) = weight.dims3()?;
        if stride == 0 || kernel < stride || !(kernel - stride).is_multiple_of(2) {
            return Err(VitsError::Unsupported(format!(
                "direct conv_transpose1d needs kernel ≥ stride with an even difference, \
                 got k={kernel} s={stride}"
            )));
        }
        let w = weight.flatten_all()?.to_vec1::<f32>()?;
        let bias = read_bias(bias, out_ch)?;
        let taps = kernel.div_ceil(stride);
        let simd = 8 % stride == 0;
        let packed = if simd {
            let g = 8 / stride;
            let cb = tile.co_block;
            let blocks = out_ch.div_ceil(cb);
            let mut p = vec![0.0f32; blocks * in_ch * taps * cb * 8];
            for co in 0..out_ch {
                let (blk, c) = (co / cb, co % cb);
                for ci in 0..in_ch {
                    for i in 0..taps {
                        for l in 0..8 {
                            let k = l / g + stride * i;
                            if k < kernel {
                                p[(((blk * in_ch + ci) * taps + i) * cb + c) * 8 + l] =
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
            tile,
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
        let threads = threads_for(macs);
        let out_ptr = SendPtr(out.as_mut_ptr().cast());
        if !self.simd || !has_avx2_fma() {
            // Groups of output channels, straight from the activated input.
            let mut act = Vec::new();
            fill_window(&mut act, input, self.in_ch, len, 0, len, slope);
            let per = 8;
            run_items(self.out_ch.div_ceil(per), threads, |chunk, _| {
                let cos = chunk * per..(chunk * per + per).min(self.out_ch);
                self.generic_channels(&act, len, cos, out_ptr);
            });
            // SAFETY: every row is written whole by its group.
            return unsafe { assume_init(out) };
        }
        // Vector slots `u` cover full-output samples `m ∈ [8u, 8u + 8)`; output sample
        // `j = m − padding`.
        let g = 8 / self.stride;
        let u_lo = self.padding / 8;
        let u_hi = (self.padding + olen).div_ceil(8);
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
            #[cfg(target_arch = "x86_64")]
            // SAFETY: checked `has_avx2_fma` above; the item's output range is its own.
            unsafe {
                avx2::tr_dispatch(&job, g, chunk, blks, buf)
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (chunk, blks, buf, &job);
        });
        // SAFETY: the chunks cover every slot of the cropped output and the groups every
        // block; each output sample is stored once.
        unsafe { assume_init(out) }
    }

    /// Reference-style evaluation for output channels `cos` on the activated input
    /// `act` `[in, len]`.
    fn generic_channels(&self, act: &[f32], len: usize, cos: std::ops::Range<usize>, out: SendPtr) {
        let (s, k, p) = (self.stride, self.kernel, self.padding);
        let olen = len * s;
        let mut acc = vec![0.0f32; olen];
        for co in cos {
            acc.iter_mut().for_each(|a| *a = self.bias[co]);
            for ci in 0..self.in_ch {
                let x = &act[ci * len..(ci + 1) * len];
                let w = &self.packed[(ci * self.out_ch + co) * k..(ci * self.out_ch + co + 1) * k];
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
}

pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// What the workers of one transposed convolution share.
#[allow(dead_code)] // only read by the x86-64 kernels
struct TrJob<'a> {
    conv: &'a DirectConvTranspose1d,
    input: &'a [f32],
    len: usize,
    slope: Option<f32>,
    /// Vector slots `u_lo..u_hi` cover the cropped output.
    u_lo: usize,
    u_hi: usize,
    /// Slots per chunk (whole tiles).
    width: usize,
    out: SendPtr,
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{fill_window, Block, ConvJob, TrJob};

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

    /// Output samples `t0 .. t0 + n` of the channels of `blk`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn conv_block<const CB: usize, const NV: usize>(
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

    fn max_diff(got: &Tensor, want: &Tensor) -> f32 {
        assert_eq!(got.dims(), want.dims());
        let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        got.iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max)
    }

    fn leaky(x: &Tensor, slope: Option<f32>) -> Tensor {
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
        for tile in TR_TILES {
            let conv = DirectConvTranspose1d::with_tile(&w, Some(&b), s, tile).unwrap();
            let got = conv.forward(&x, slope).unwrap();
            assert_eq!(got.dims(), &[1, cout, len * s]);
            let max = max_diff(&got, &want);
            assert!(
                max < 1e-4,
                "tr cin {cin} cout {cout} k {k} s {s} len {len} {tile:?}: max diff {max}"
            );
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
        }
    }

    #[test]
    fn transposed_matches_candle_other_strides() {
        // Strides that do not divide 8 take the portable path.
        for len in [1, 4, 19] {
            check_tr(5, 6, 11, 3, len, Some(0.1));
            check_tr(5, 6, 10, 10, len, None);
            check_tr(4, 4, 32, 16, len, Some(0.1));
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

/// Throughput of the direct convolution vs candle's im2col on the model's shapes, one and
/// two threads: `cargo test --release --lib conv_speed -- --ignored --nocapture`.
/// A measuring tool (machines here are noisy: run it twice), not a check.
#[cfg(test)]
mod conv_speed {
    use super::*;

    #[test]
    #[ignore]
    fn conv_speed() {
        let dev = Device::Cpu;
        // (in, out, kernel, dilation, length): decoder stages 0–2 of a 15 s sentence,
        // a flow WaveNet in_layer and a text-encoder FFN conv at its frame rate.
        let shapes = [
            (128, 128, 3, 1, 10_776),
            (128, 128, 7, 3, 10_776),
            (64, 64, 5, 2, 86_208),
            (32, 32, 5, 2, 344_832),
            (192, 384, 5, 1, 1_347),
            (192, 768, 3, 1, 623),
        ];
        let median = |f: &dyn Fn()| {
            f();
            let mut v: Vec<f64> = (0..9)
                .map(|_| {
                    let t = std::time::Instant::now();
                    f();
                    t.elapsed().as_secs_f64()
                })
                .collect();
            v.sort_by(f64::total_cmp);
            v[4]
        };
        for (cin, cout, k, d, len) in shapes {
            let x = Tensor::zeros((1, cin, len), candle_core::DType::F32, &dev).unwrap();
            let w = Tensor::ones((cout, cin, k), candle_core::DType::F32, &dev).unwrap();
            let conv = DirectConv1d::new(&w, None, d).unwrap();
            let gmacs = (cin * cout * k * len) as f64 / 1e9;
            for threads in [1, 2] {
                MAX_THREADS.store(threads, Ordering::Relaxed);
                let s = median(&|| {
                    conv.forward(&x, Some(0.1), false).unwrap();
                });
                println!(
                    "{cin}→{cout} k{k} d{d} T {len}, direct, {threads} thread(s): {:.2} ms, {:.1} GMAC/s",
                    s * 1e3,
                    gmacs / s
                );
            }
            MAX_THREADS.store(usize::MAX, Ordering::Relaxed);
            let s = median(&|| {
                x.conv1d(&w, d * (k - 1) / 2, 1, d, 1).unwrap();
            });
            println!(
                "   candle im2col: {:.2} ms, {:.1} GMAC/s",
                s * 1e3,
                gmacs / s
            );
        }
    }
}
