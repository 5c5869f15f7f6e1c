//! What the benchmark's roofline needs from the kernels: the multiply-adds each module
//! ran, and this CPU's measured peak for the instruction set in use.
//!
//! Counting: each native kernel (convolutions, 1×1 convolutions, transposed
//! convolutions, attention's products, the depthwise convolution) adds the
//! multiply-adds of its call to a count of the thread that called it, and
//! [`super::Voice::synthesize_chunked`] reads the count between modules. Per thread, so
//! concurrent syntheses do not mix their counts; one thread-local add per kernel call
//! costs nothing next to the call.
//!
//! Peak: a tight loop of independent multiply-adds in registers (no memory traffic) at
//! the level in use, on as many threads as the kernels use, for a fixed time. Measured
//! rather than derived from a clock and a port count: the clock of a shared or
//! virtual machine under load is not what `/proc/cpuinfo` says, and the measured figure
//! is what a perfect kernel could reach on this machine now.

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::isa::Isa;

thread_local! {
    static MACS: Cell<u64> = const { Cell::new(0) };
}

/// Adds `n` multiply-adds to this thread's count.
#[inline]
pub(crate) fn count_macs(n: usize) {
    MACS.with(|m| m.set(m.get().wrapping_add(n as u64)));
}

/// This thread's count so far (differences between two reads are what matter).
pub(crate) fn macs_so_far() -> u64 {
    MACS.with(Cell::get)
}

/// Independent accumulators in the peak loop: enough to cover the multiply-add
/// latency (4 cycles) on two pipes with room to spare, few enough to stay in the 16
/// registers of AVX2.
const CHAINS: usize = 12;

/// Multiply-adds of `iters` rounds of [`CHAINS`] vector multiply-adds at `isa`, run in
/// registers; returns a value that depends on all of them (so none is optimised out).
fn fma_loop(isa: Isa, iters: u64) -> f32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` is a level the CPU has (see `peak_macs_per_s`).
        Isa::Avx512 => unsafe { fma_loop_avx512(iters) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2Fma => unsafe { fma_loop_avx2(iters) },
        Isa::Scalar => mul_add_loop_portable(iters),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn fma_loop_avx512(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let b = _mm512_set1_ps(std::hint::black_box(0.999_999));
    let c = _mm512_set1_ps(std::hint::black_box(1e-7));
    let mut acc = [_mm512_set1_ps(1.0); CHAINS];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, b, c);
        }
    }
    let mut sum = _mm512_setzero_ps();
    for a in acc {
        sum = _mm512_add_ps(sum, a);
    }
    _mm512_reduce_add_ps(sum)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop_avx2(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let b = _mm256_set1_ps(std::hint::black_box(0.999_999));
    let c = _mm256_set1_ps(std::hint::black_box(1e-7));
    let mut acc = [_mm256_set1_ps(1.0); CHAINS];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, b, c);
        }
    }
    let mut lanes = [0.0f32; 8];
    let mut sum = _mm256_setzero_ps();
    for a in acc {
        sum = _mm256_add_ps(sum, a);
    }
    _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
    lanes.iter().sum()
}

/// The portable level's best: what the kernels compiled for the baseline target reach
/// at most, on x86-64 4-lane SSE2 multiplies and adds (no fused multiply-add), written
/// out because LLVM leaves a plain-Rust version of this loop scalar.
fn mul_add_loop_portable(iters: u64) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86-64 baseline every build targets.
        unsafe {
            let b = _mm_set1_ps(std::hint::black_box(0.999_999));
            let c = _mm_set1_ps(std::hint::black_box(1e-7));
            let mut acc = [_mm_set1_ps(1.0); CHAINS];
            for _ in 0..iters {
                for a in acc.iter_mut() {
                    *a = _mm_add_ps(_mm_mul_ps(*a, b), c);
                }
            }
            let mut lanes = [0.0f32; 4];
            let mut sum = _mm_setzero_ps();
            for a in acc {
                sum = _mm_add_ps(sum, a);
            }
            _mm_storeu_ps(lanes.as_mut_ptr(), sum);
            lanes.iter().sum()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let b = std::hint::black_box(0.999_999f32);
        let c = std::hint::black_box(1e-7f32);
        let mut acc = [1.0f32; CHAINS];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = *a * b + c;
            }
        }
        acc.iter().sum()
    }
}

/// `f32` lanes of one multiply-add of [`fma_loop`] at `isa`.
fn loop_lanes(isa: Isa) -> usize {
    match isa {
        Isa::Scalar if cfg!(target_arch = "x86_64") => 4,
        _ => isa.lanes(),
    }
}

/// Multiply-adds one [`fma_loop`] round does at `isa`.
fn macs_per_round(isa: Isa) -> u64 {
    (CHAINS * loop_lanes(isa)) as u64
}

/// This machine's measured peak at the level in use: multiply-adds per second of
/// [`fma_loop`] on `threads` threads at once (each for about `time`), as
/// `(all threads, one thread alone)`.
pub(crate) fn peak_macs_per_s(threads: usize, time: Duration) -> (f64, f64) {
    let isa = Isa::detect();
    let run = |time: Duration| {
        // Rounds between clock reads: about 50 µs of work, so the reads cost nothing.
        let batch = 20_000 / CHAINS as u64;
        let start = Instant::now();
        let mut rounds = 0u64;
        let mut sink = 0.0f32;
        while start.elapsed() < time {
            sink += fma_loop(isa, batch);
            rounds += batch;
        }
        std::hint::black_box(sink);
        (rounds * macs_per_round(isa)) as f64 / start.elapsed().as_secs_f64()
    };
    let alone = run(time);
    let all: f64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1)).map(|_| s.spawn(|| run(time))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
    });
    (all, alone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_counted_per_thread() {
        let before = macs_so_far();
        count_macs(1000);
        std::thread::spawn(|| count_macs(5)).join().unwrap();
        assert_eq!(macs_so_far() - before, 1000);
    }

    #[test]
    fn the_peak_loops_compute_what_they_count() {
        // Every level's loop computes the chains `a ← a·b + c` it counts (up to
        // rounding), so none of the multiply-adds the peak counts can have been dropped
        // by the compiler.
        for isa in Isa::available() {
            let got = fma_loop(isa, 1000);
            let mut a = 1.0f32;
            for _ in 0..1000 {
                a = a * 0.999_999 + 1e-7;
            }
            let want = a * macs_per_round(isa) as f32;
            assert!((got - want).abs() < 1e-3 * want, "{isa:?}: {got} vs {want}");
        }
        let (all, alone) = peak_macs_per_s(1, Duration::from_millis(5));
        assert!(all > 0.0 && alone > 0.0);
    }
}
