//! A small iterative radix-2 FFT, plus a real-input FFT built on a complex
//! FFT of half the size.
//!
//! Why our own instead of `rustfft`: the stage only ever needs a handful of
//! power-of-two sizes (256..=4096) and one transform size per call. Sixty
//! lines of well-tested code keep the component small and the dependency
//! tree at zero. The butterflies of a stage run over contiguous slices and
//! twiddles, which the compiler vectorizes (the plugins are built with Wasm
//! `simd128`); the transforms are about a third of the stage's time.
//!
//! Data is kept as separate real and imaginary `f32` slices ("split
//! complex"), which is what the phase vocoder wants anyway.

use std::f64::consts::PI;

/// Complex FFT of a fixed power-of-two size.
pub struct Fft {
    n: usize,
    /// The pairs of positions `i < j` that bit reversal exchanges.
    swaps: Vec<(u32, u32)>,
    /// The twiddles of every butterfly stage, stage after stage: the stage
    /// of span `size` has `cos(2πj/size)`, `sin(2πj/size)` for
    /// `j < size/2` at `size/2 − 1 ..`. Contiguous per stage, so that the
    /// butterflies of a stage read them in order and vectorize (the values
    /// are those of `2πk/n` at `k = j·n/size`, computed the same way).
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Fft {
    /// A transform of size `n`; `None` unless `n` is a power of two ≥ 2.
    pub fn new(n: usize) -> Option<Fft> {
        if n < 2 || !n.is_power_of_two() {
            return None;
        }
        let bits = n.trailing_zeros();
        let swaps = (0..n as u32)
            .map(|i| (i, i.reverse_bits() >> (32 - bits)))
            .filter(|&(i, j)| i < j)
            .collect();
        let mut size = 2;
        let (mut cos, mut sin) = (Vec::with_capacity(n), Vec::with_capacity(n));
        while size <= n {
            let step = n / size;
            for j in 0..size / 2 {
                let a = 2.0 * PI * (j * step) as f64 / n as f64;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
            size *= 2;
        }
        Some(Fft { n, swaps, cos, sin })
    }

    /// The transform size.
    pub fn size(&self) -> usize {
        self.n
    }

    /// In-place forward transform, `X[k] = Σ x[m]·e^(−2πikm/n)` (unscaled).
    pub fn forward(&self, re: &mut [f32], im: &mut [f32]) {
        self.run(re, im, -1.0);
    }

    /// In-place inverse transform, scaled by `1/n` so that
    /// `inverse(forward(x)) == x`.
    pub fn inverse(&self, re: &mut [f32], im: &mut [f32]) {
        self.run(re, im, 1.0);
        let scale = 1.0 / self.n as f32;
        re.iter_mut().for_each(|v| *v *= scale);
        im.iter_mut().for_each(|v| *v *= scale);
    }

    fn run(&self, re: &mut [f32], im: &mut [f32], sign: f32) {
        let n = self.n;
        let (re, im) = (&mut re[..n], &mut im[..n]);
        for &(i, j) in &self.swaps {
            re.swap(i as usize, j as usize);
            im.swap(i as usize, j as usize);
        }
        // The first two stages, whose twiddles are 1 and ∓i, as one pass
        // of four-point butterflies without multiplications (they are too
        // short to vectorize as stages of their own).
        let mut size = 2;
        if n >= 4 {
            for (re, im) in re.chunks_exact_mut(4).zip(im.chunks_exact_mut(4)) {
                let (a0r, a0i) = (re[0] + re[1], im[0] + im[1]);
                let (a1r, a1i) = (re[0] - re[1], im[0] - im[1]);
                let (a2r, a2i) = (re[2] + re[3], im[2] + im[3]);
                let (a3r, a3i) = (re[2] - re[3], im[2] - im[3]);
                // a3 times the size-4 twiddle (0, sign).
                let (tr, ti) = (-sign * a3i, sign * a3r);
                re[0] = a0r + a2r;
                im[0] = a0i + a2i;
                re[2] = a0r - a2r;
                im[2] = a0i - a2i;
                re[1] = a1r + tr;
                im[1] = a1i + ti;
                re[3] = a1r - tr;
                im[3] = a1i - ti;
            }
            size = 8;
        }
        while size <= n {
            let half = size / 2;
            let (cos, sin) = (&self.cos[half - 1..size - 1], &self.sin[half - 1..size - 1]);
            for (re, im) in re.chunks_exact_mut(size).zip(im.chunks_exact_mut(size)) {
                let (re_a, re_b) = re.split_at_mut(half);
                let (im_a, im_b) = im.split_at_mut(half);
                for j in 0..half {
                    let (wr, wi) = (cos[j], sign * sin[j]);
                    let tr = re_b[j] * wr - im_b[j] * wi;
                    let ti = re_b[j] * wi + im_b[j] * wr;
                    re_b[j] = re_a[j] - tr;
                    im_b[j] = im_a[j] - ti;
                    re_a[j] += tr;
                    im_a[j] += ti;
                }
            }
            size *= 2;
        }
    }
}

/// FFT of a real signal of size `n` (a power of two ≥ 4), computed with a
/// complex FFT of size `n/2` (half the work of a plain complex FFT).
/// Spectra hold the `n/2 + 1` non-redundant bins.
pub struct RealFft {
    half: Fft,
    /// `cos(2πk/n)`, `sin(2πk/n)` for `k ≤ n/2`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    zr: Vec<f32>,
    zi: Vec<f32>,
}

impl RealFft {
    /// A real transform of size `n`; `None` unless `n` is a power of two ≥ 4.
    pub fn new(n: usize) -> Option<RealFft> {
        if n < 4 || !n.is_power_of_two() {
            return None;
        }
        let half = Fft::new(n / 2)?;
        let (cos, sin) = (0..=n / 2)
            .map(|k| {
                let a = 2.0 * PI * k as f64 / n as f64;
                (a.cos() as f32, a.sin() as f32)
            })
            .unzip();
        Some(RealFft {
            half,
            cos,
            sin,
            zr: vec![0.0; n / 2],
            zi: vec![0.0; n / 2],
        })
    }

    /// The (real) transform size.
    pub fn size(&self) -> usize {
        self.half.size() * 2
    }

    /// Spectrum of `x` (length `n`) into `re`, `im` (length `n/2 + 1`).
    pub fn forward(&mut self, x: &[f32], re: &mut [f32], im: &mut [f32]) {
        let m = self.half.size();
        for i in 0..m {
            self.zr[i] = x[2 * i];
            self.zi[i] = x[2 * i + 1];
        }
        self.half.forward(&mut self.zr, &mut self.zi);
        for k in 0..=m {
            let (ar, ai) = (self.zr[k % m], self.zi[k % m]);
            // conj(Z[m − k])
            let (br, bi) = (self.zr[(m - k) % m], -self.zi[(m - k) % m]);
            // Even part E = (Z[k] + conj Z[m−k]) / 2, odd part O = (Z[k] − conj Z[m−k]) / 2i.
            let (er, ei) = ((ar + br) * 0.5, (ai + bi) * 0.5);
            let (or, oi) = ((ai - bi) * 0.5, -(ar - br) * 0.5);
            // X[k] = E + e^(−2πik/n)·O
            let (wr, wi) = (self.cos[k], -self.sin[k]);
            re[k] = er + or * wr - oi * wi;
            im[k] = ei + or * wi + oi * wr;
        }
    }

    /// Signal (length `n`, into `x`) of the spectrum `re`, `im` (length
    /// `n/2 + 1`, Hermitian symmetry implied; the imaginary parts of bins 0
    /// and `n/2` are ignored). Exact inverse of [`RealFft::forward`].
    pub fn inverse(&mut self, re: &[f32], im: &[f32], x: &mut [f32]) {
        let m = self.half.size();
        for k in 0..m {
            let (ar, ai) = (re[k], im[k]);
            // conj(X[m − k])
            let (br, bi) = (re[m - k], -im[m - k]);
            let (er, ei) = ((ar + br) * 0.5, (ai + bi) * 0.5);
            // O = (X[k] − conj X[m−k]) · e^(+2πik/n) / 2
            let (dr, di) = ((ar - br) * 0.5, (ai - bi) * 0.5);
            let (wr, wi) = (self.cos[k], self.sin[k]);
            let (or, oi) = (dr * wr - di * wi, dr * wi + di * wr);
            // Z = E + i·O
            self.zr[k] = er - oi;
            self.zi[k] = ei + or;
        }
        self.half.inverse(&mut self.zr, &mut self.zi);
        for i in 0..m {
            x[2 * i] = self.zr[i];
            x[2 * i + 1] = self.zi[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random signal in [-1, 1].
    fn noise(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn naive_dft(x: &[f32], y: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let n = x.len();
        let mut out = (vec![0.0; n], vec![0.0; n]);
        for k in 0..n {
            for m in 0..n {
                let a = -2.0 * PI * (k * m % n) as f64 / n as f64;
                let (c, s) = (a.cos(), a.sin());
                out.0[k] += x[m] as f64 * c - y[m] as f64 * s;
                out.1[k] += x[m] as f64 * s + y[m] as f64 * c;
            }
        }
        out
    }

    #[test]
    fn complex_fft_matches_a_naive_dft_and_inverts() {
        for n in [2, 4, 8, 64, 256] {
            let (x, y) = (noise(n, 1), noise(n, 2));
            let (mut re, mut im) = (x.clone(), y.clone());
            let fft = Fft::new(n).unwrap();
            fft.forward(&mut re, &mut im);
            let (er, ei) = naive_dft(&x, &y);
            for k in 0..n {
                assert!((re[k] as f64 - er[k]).abs() < 1e-3, "n={n} k={k}");
                assert!((im[k] as f64 - ei[k]).abs() < 1e-3, "n={n} k={k}");
            }
            fft.inverse(&mut re, &mut im);
            for m in 0..n {
                assert!((re[m] - x[m]).abs() < 1e-5 && (im[m] - y[m]).abs() < 1e-5);
            }
        }
        assert!(Fft::new(0).is_none() && Fft::new(12).is_none());
    }

    #[test]
    fn real_fft_matches_a_naive_dft_and_inverts() {
        for n in [4, 8, 16, 512] {
            let x = noise(n, 7);
            let mut rfft = RealFft::new(n).unwrap();
            let (mut re, mut im) = (vec![0.0; n / 2 + 1], vec![0.0; n / 2 + 1]);
            rfft.forward(&x, &mut re, &mut im);
            let (er, ei) = naive_dft(&x, &vec![0.0; n]);
            for k in 0..=n / 2 {
                assert!((re[k] as f64 - er[k]).abs() < 1e-3, "n={n} k={k}");
                assert!((im[k] as f64 - ei[k]).abs() < 1e-3, "n={n} k={k}");
            }
            let mut back = vec![0.0; n];
            rfft.inverse(&re, &im, &mut back);
            for m in 0..n {
                assert!((back[m] - x[m]).abs() < 1e-5, "n={n} m={m}");
            }
        }
        assert!(RealFft::new(2).is_none());
    }
}
