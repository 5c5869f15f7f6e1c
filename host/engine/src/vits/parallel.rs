//! Threading for the CPU kernels: how many workers a piece of work gets, and the
//! work-sharing loop they run.
//!
//! The convolutions ([`super::conv`]), the fused passes ([`super::cpu`]) and attention
//! ([`super::attention`]) all split their work the same way: items handed out through an
//! atomic counter to scoped threads, the calling thread included, and one place decides
//! whether a job is big enough to be worth a thread at all. Keeping that here means the
//! kernels depend on this module and never on each other for it.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Below this many multiply-adds a convolution runs on the calling thread only: spawning
/// a thread costs tens of microseconds.
pub(crate) const CONV_MIN_MACS: usize = 4_000_000;
/// Below this many multiply-adds a `gemm` (attention's matrix products) stays on the
/// calling thread. Lower than [`CONV_MIN_MACS`], presumably because `gemm` hands its
/// work to rayon's global pool, whose threads already exist, instead of spawning scoped
/// threads per call (the reason was not recorded; both values are kept as they were).
pub(crate) const GEMM_MIN_MACS: usize = 1 << 20;
/// Below this many elements an elementwise pass stays on the calling thread.
pub(crate) const ELEMENTWISE_MIN_ELEMS: usize = 1 << 16;

/// Upper bound on worker threads (benchmarks set it to 1 to measure one core).
pub(crate) static MAX_THREADS: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Worker threads for `work` units when `min` of them are worth a thread: one below
/// `min`, otherwise [`max_threads`].
pub(crate) fn threads_for(work: usize, min: usize) -> usize {
    if work < min {
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
