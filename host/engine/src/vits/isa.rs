//! Which SIMD instruction set the CPU kernels may use, decided at run time.
//!
//! The crate is built for the x86-64 baseline (SSE2), so wider vectors are used only
//! where the running CPU has them: the hand-written convolution kernels
//! ([`super::conv`]) pick a kernel per [`Isa`], and the plain-Rust loops elsewhere get
//! recompiled for the level in use through [`vectorized`]. A new level joins here and
//! in the kernels' dispatch, nowhere else.
//!
//! The level in use is the best the CPU has, unless the environment variable
//! [`ISA_ENV`] (`VOXPIPE_CPU_ISA=avx512|avx2|scalar`, read once per process) asks for a
//! lower one: that is how the tests run every level on one machine, and how an operator
//! rules out a level. A level the CPU lacks, or a value not understood, falls back to
//! the best level with a warning: a kernel never runs instructions the CPU does not have.

use std::sync::OnceLock;

/// The environment variable that caps the instruction set (see the module docs).
pub const ISA_ENV: &str = "VOXPIPE_CPU_ISA";

/// The instruction set a kernel runs with, lowest first (`Ord` compares levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Isa {
    /// Portable Rust, whatever the compiler makes of it for the baseline target.
    Scalar,
    /// 256-bit AVX2 vectors with fused multiply-add (16 vector registers).
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// 512-bit AVX-512F vectors (32 vector registers, lane masks), with FMA.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// Every level this build has kernels for, lowest first.
    pub(crate) const ALL: &'static [Isa] = &[
        Isa::Scalar,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512,
    ];

    /// The level in use: the best the CPU has, capped by [`ISA_ENV`]. Decided once per
    /// process; the first call may log a warning.
    #[inline]
    pub(crate) fn detect() -> Self {
        static CHOSEN: OnceLock<Isa> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let request = std::env::var(ISA_ENV).ok();
            let (isa, warning) = resolve(request.as_deref(), Self::best());
            if let Some(w) = warning {
                tracing::warn!("{w}");
            }
            tracing::debug!(isa = isa.name(), "CPU kernels' instruction set");
            isa
        })
    }

    /// The best level this CPU runs.
    pub(crate) fn best() -> Self {
        *Self::ALL
            .iter()
            .rev()
            .find(|isa| isa.supported())
            .unwrap_or(&Isa::Scalar)
    }

    /// Whether this CPU has the instructions of `self`.
    pub(crate) fn supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2Fma.supported() && std::arch::is_x86_feature_detected!("avx512f")
            }
        }
    }

    /// The levels this CPU runs, lowest first (what the tests compare).
    pub(crate) fn available() -> Vec<Isa> {
        Self::ALL
            .iter()
            .copied()
            .filter(|i| i.supported())
            .collect()
    }

    /// The name [`ISA_ENV`] takes for this level.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => "avx2",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => "avx512",
        }
    }

    /// `f32` lanes of one vector register (1 for the portable code).
    pub(crate) fn lanes(self) -> usize {
        match self {
            Isa::Scalar => 1,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => 8,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => 16,
        }
    }
}

/// The level for a request (`None`: the variable is unset) on a CPU whose best level is
/// `best`, and the warning to log when the request cannot be honoured as asked.
fn resolve(request: Option<&str>, best: Isa) -> (Isa, Option<String>) {
    let Some(raw) = request.map(str::trim).filter(|r| !r.is_empty()) else {
        return (best, None);
    };
    match Isa::ALL
        .iter()
        .find(|isa| isa.name().eq_ignore_ascii_case(raw))
    {
        Some(&isa) if isa <= best => (isa, None),
        Some(&isa) => (
            best,
            Some(format!(
                "{ISA_ENV}={raw}: this CPU lacks {}; using {}",
                isa.name(),
                best.name()
            )),
        ),
        // A name another architecture knows, or a typo: never guess upwards.
        None => (
            best,
            Some(format!(
                "{ISA_ENV}={raw} is not one of {} (or not available on this architecture); \
                 using {}",
                Isa::ALL
                    .iter()
                    .rev()
                    .map(|i| i.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                best.name()
            )),
        ),
    }
}

/// Runs `f` compiled for `isa`: `f` is inlined into a function with those target
/// features, so its loops vectorise 16 (AVX-512) or 8 (AVX2) lanes wide instead of the
/// 4 of the x86-64 baseline. Callers mark the closure `#[inline(always)]`: left to
/// itself LLVM may keep a large closure out of line, compiled for the baseline.
///
/// Panics if the CPU lacks `isa` (callers pass [`Isa::detect`] or a level they
/// checked): that check is what keeps this function safe.
#[inline(always)]
pub(crate) fn with_isa<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    match isa {
        Isa::Scalar => f(),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => {
            assert!(isa.supported(), "the CPU lacks AVX2/FMA");
            #[target_feature(enable = "avx2,fma")]
            unsafe fn run<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            // SAFETY: the CPU has AVX2 and FMA (asserted above).
            unsafe { run(f) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            assert!(isa.supported(), "the CPU lacks AVX-512F");
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn run<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            // SAFETY: the CPU has AVX-512F, AVX2 and FMA (asserted above).
            unsafe { run(f) }
        }
    }
}

/// [`with_isa`] at the level in use ([`Isa::detect`]).
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    with_isa(Isa::detect(), f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_only_lowers_the_level() {
        let best = *Isa::ALL.last().unwrap();
        assert_eq!(resolve(None, best), (best, None));
        assert_eq!(resolve(Some("  "), best), (best, None));
        for &isa in Isa::ALL {
            // Any level at or below the best is taken as asked, in any case.
            assert_eq!(resolve(Some(isa.name()), best), (isa, None));
            let upper = isa.name().to_uppercase();
            assert_eq!(resolve(Some(&upper), best), (isa, None));
            // Above what the CPU has: the CPU's best, with a warning.
            let (got, warning) = resolve(Some(best.name()), isa);
            assert_eq!(got, isa);
            assert_eq!(warning.is_some(), isa != best, "{isa:?}");
        }
        let (got, warning) = resolve(Some("avx1024"), Isa::Scalar);
        assert_eq!(got, Isa::Scalar);
        assert!(warning.unwrap().contains("avx1024"));
    }

    #[test]
    fn detection_is_consistent() {
        let best = Isa::best();
        assert!(best.supported());
        assert!(Isa::detect() <= best);
        assert!(Isa::available().contains(&Isa::detect()));
        // Levels are cumulative: every level below a supported one is supported.
        for pair in Isa::ALL.windows(2) {
            assert!(!pair[1].supported() || pair[0].supported());
        }
    }

    #[test]
    fn vectorised_loops_agree_at_every_level() {
        // Elementwise IEEE arithmetic is exact whatever the vector width: the same loop
        // compiled for each level must give the same bits.
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let run = |isa| {
            with_isa(
                isa,
                #[inline(always)]
                || {
                    x.iter()
                        .map(|&v| crate::vits::math::tanh(v) * 0.5 + v)
                        .collect::<Vec<f32>>()
                },
            )
        };
        let want = run(Isa::Scalar);
        for isa in Isa::available() {
            assert_eq!(run(isa), want, "{isa:?}");
        }
    }
}
