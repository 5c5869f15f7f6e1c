//! Entry points for `voxpipe-bench conv`, not an API: the crate-private direct
//! convolution on shapes the benchmark chooses, and the cap on the kernels' worker
//! threads, so that the benchmark binary can time them against candle's im2col `conv1d`.
//! Timing lives in the benchmark, not in the tests.

use std::sync::atomic::Ordering;

use candle_core::Tensor;

use super::conv::DirectConv1d;
use super::parallel::MAX_THREADS;
use super::VitsError;

/// The native CPU convolution of the decoder, flow and text encoder (no bias).
pub struct DirectConv(DirectConv1d);

impl DirectConv {
    /// Builds from a `[out, in, k]` weight with "same" padding for `dilation`.
    pub fn new(weight: &Tensor, dilation: usize) -> Result<Self, VitsError> {
        Ok(Self(DirectConv1d::new(weight, None, dilation)?))
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
