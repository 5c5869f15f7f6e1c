//! Which SIMD instruction set the CPU kernels may use, decided at run time.
//!
//! The crate is built for the x86-64 baseline (SSE2), so wider vectors are used only
//! where the running CPU has them: the hand-written convolution kernels
//! ([`super::conv`]) pick a kernel per [`Isa`], and the plain-Rust loops elsewhere get
//! recompiled for AVX2 + FMA through [`with_avx2`]. New instruction sets (AVX-512) join
//! here and in the kernels' dispatch, nowhere else.

/// The instruction set a kernel runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// Portable Rust, whatever the compiler makes of it for the baseline target.
    Scalar,
    /// 256-bit AVX2 vectors with fused multiply-add.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Isa {
    /// The best instruction set this CPU has a kernel for (`std` caches the detection).
    #[inline]
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            return Self::Avx2Fma;
        }
        Self::Scalar
    }
}

/// Whether the CPU has AVX2 and FMA.
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

/// Runs `f` compiled for AVX2 + FMA when the CPU has them: `f` is inlined into a
/// function with those target features, so its loops vectorise 8 lanes wide instead of
/// the 4 of the x86-64 baseline. Callers mark the closure `#[inline(always)]`: left to
/// itself LLVM may keep a large closure out of line, compiled for the baseline.
#[inline(always)]
pub(crate) fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn run<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { run(f) };
    }
    f()
}
