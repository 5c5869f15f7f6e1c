//! Entry points for `voxpipe-bench`, not an API: the crate-private direct convolution
//! on shapes the benchmark chooses and the cap on the kernels' worker threads (`conv`
//! times them against candle's im2col `conv1d`), and this machine's measured peak for
//! the roofline `engine` prints. Timing lives in the benchmark, not in the tests.

use std::sync::atomic::Ordering;
use std::time::Duration;

use candle_core::Tensor;

use super::conv::{DirectConv1d, Tile};
use super::isa::Isa;
use super::parallel::{max_threads, MAX_THREADS};
use super::VitsError;

/// The native CPU convolution of the decoder, flow and text encoder (no bias).
pub struct DirectConv(DirectConv1d);

impl DirectConv {
    /// Builds from a `[out, in, k]` weight with "same" padding for `dilation`.
    pub fn new(weight: &Tensor, dilation: usize) -> Result<Self, VitsError> {
        Ok(Self(DirectConv1d::new(weight, None, dilation)?))
    }

    /// [`Self::new`] with blocks of one register tile of the level in use
    /// (`co_block` channels × `nv` vectors), to compare tiles; an error names a tile
    /// the level has no kernel for.
    pub fn with_tile(
        weight: &Tensor,
        dilation: usize,
        co_block: usize,
        nv: usize,
    ) -> Result<Self, VitsError> {
        let tile = Tile { co_block, nv };
        Ok(Self(DirectConv1d::with_tile(
            weight,
            None,
            dilation,
            Some(tile),
            Isa::detect(),
        )?))
    }

    /// `x` `[1, in, T]` → `conv(leaky_relu(x, slope))` `[1, out, T]`.
    pub fn forward(&self, x: &Tensor, slope: Option<f32>) -> Result<Tensor, VitsError> {
        self.0.forward(x, slope, false)
    }
}

/// Caps the CPU kernels' worker threads at `n` (`usize::MAX`: every core available).
/// Process-wide: it affects every voice in the process.
pub fn set_max_threads(n: usize) {
    MAX_THREADS.store(n, Ordering::Relaxed);
}

/// This machine's peak multiply-add rate at the instruction set in use, measured (see
/// the `roofline` module): a tight loop of independent vector multiply-adds in
/// registers, on as many threads as the kernels use.
#[derive(Debug, Clone, Copy)]
pub struct Peak {
    /// The instruction set measured (the kernels' level: `avx512`, `avx2`, `scalar`).
    pub isa: &'static str,
    /// Threads the loop ran on at once (the kernels' worker count).
    pub threads: usize,
    /// Multiply-adds per second of all of them together.
    pub macs_per_s: f64,
    /// Multiply-adds per second of one thread alone.
    pub macs_per_s_one_thread: f64,
}

/// Measures [`Peak`], each loop running for about `time`.
pub fn measure_peak(time: Duration) -> Peak {
    let threads = max_threads();
    let (all, one) = super::roofline::peak_macs_per_s(threads, time);
    Peak {
        isa: super::cpu_isa(),
        threads,
        macs_per_s: all,
        macs_per_s_one_thread: one,
    }
}
