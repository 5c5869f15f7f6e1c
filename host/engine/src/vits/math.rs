//! Elementwise math on `f32`: `exp`, `tanh`, `sigmoid`, `erf` as polynomials, GELU, and
//! vectorisable sums and maxima.
//!
//! libm's transcendental functions are calls LLVM cannot vectorise; these are short
//! polynomials written so that loops calling them vectorise (16 lanes wide with
//! AVX-512, 8 with AVX2, inside [`vectorized`]). The in-place passes over whole buffers
//! are here too.

use super::isa::vectorized;

/// `e^x` to about 2 ulp for |x| < 87 (Cephes' `expf` polynomial; saturates beyond),
/// written so that LLVM vectorises loops calling it.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 87.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// `1 / (1 + e^−x)`.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh x` as `1 − 2 / (1 + e^2x)`: absolute error about 1e-7.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (1.0 + exp(2.0 * x))
}

/// Sum of `v` with 8 independent partial sums (a plain fold is a serial chain that
/// LLVM may not reorder, so it would not vectorise).
#[inline(always)]
pub(crate) fn sum(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = v.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Maximum of `v` (−∞ when empty), vectorisable like [`sum`]; NaNs are not expected.
#[inline(always)]
pub(crate) fn max(v: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = v.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = if x > *a { x } else { *a };
        }
    }
    acc.iter().fold(tail, |m, &x| if x > m { x } else { m })
}

/// `erf x` to about 5e-7 (Abramowitz & Stegun 7.1.26 in `f32`), vectorisable.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let p = 1.061_405_4;
    let p = p * t - 1.453_152;
    let p = p * t + 1.421_413_7;
    let p = p * t - 0.284_496_74;
    let p = p * t + 0.254_829_6;
    let y = 1.0 - p * t * exp(-a * a);
    if x < 0.0 {
        -y
    } else {
        y
    }
}

/// GELU (the erf form, as `torch.nn.functional.gelu`) in place.
pub(crate) fn gelu(x: &mut [f32]) {
    vectorized(
        #[inline(always)]
        || {
            x.iter_mut()
                .for_each(|v| *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2)))
        },
    );
}

/// `tanh` in place.
pub(crate) fn tanh_in_place(x: &mut [f32]) {
    vectorized(
        #[inline(always)]
        || x.iter_mut().for_each(|v| *v = tanh(*v)),
    );
}

/// `x += y`, elementwise.
pub(crate) fn add_assign(x: &mut [f32], y: &[f32]) {
    debug_assert_eq!(x.len(), y.len());
    vectorized(
        #[inline(always)]
        || x.iter_mut().zip(y).for_each(|(a, &b)| *a += b),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_tanh_sigmoid_match_libm() {
        let mut worst = [0f32; 3];
        for i in -20_000..=20_000 {
            let x = i as f32 * 1e-3;
            let e = (exp(x) - x.exp()).abs() / x.exp();
            worst[0] = worst[0].max(e);
            worst[1] = worst[1].max((tanh(x) - x.tanh()).abs());
            worst[2] = worst[2].max((sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs());
        }
        assert!(worst[0] < 3e-7, "exp relative error {}", worst[0]);
        assert!(worst[1] < 3e-7, "tanh error {}", worst[1]);
        assert!(worst[2] < 2e-7, "sigmoid error {}", worst[2]);
        assert_eq!(tanh(200.0), 1.0);
        assert_eq!(tanh(-200.0), -1.0);
        assert!(sigmoid(-200.0) >= 0.0 && sigmoid(200.0) == 1.0);
    }

    #[test]
    fn erf_and_gelu_match_reference() {
        // erf through libm's erfc-free identity: compare with a high-precision series.
        let erf64 = |x: f64| {
            // Maclaurin series, fine for |x| ≤ 3 in f64.
            let mut sum = 0.0f64;
            let mut term = x;
            let mut n = 0.0f64;
            while term.abs() > 1e-17 * sum.abs().max(1e-300) && n < 200.0 {
                sum += term / (2.0 * n + 1.0);
                n += 1.0;
                term *= -x * x / n;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        };
        let mut worst = 0f64;
        for i in -3000..=3000 {
            let x = i as f32 * 1e-3;
            worst = worst.max((f64::from(erf(x)) - erf64(f64::from(x))).abs());
        }
        // 1.5e-7 for the formula in exact arithmetic, plus f32 rounding.
        assert!(worst < 6e-7, "erf error {worst}");
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
        let mut v = vec![-1.0f32, 0.0, 0.5, 3.0];
        gelu(&mut v);
        let want = [-0.158_655_25f32, 0.0, 0.345_731_14, 2.995_950_4];
        for (g, w) in v.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
    }
}
