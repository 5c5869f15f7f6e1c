//! Time stretching without pitch change: a phase vocoder with identity
//! phase locking (Laroche & Dolson, 1999).
//!
//! The signal is cut into Hann-windowed frames at analysis centres
//! `k·Ha`, each frame is transformed, its phases are advanced so that every
//! sinusoid keeps its frequency when the frame is moved to the synthesis
//! centre `k·Hs`, and the frames are overlap-added with a Hann synthesis
//! window (normalised by the summed squared window). `Hs / Ha` is the
//! stretch factor.
//!
//! Identity phase locking: only spectral peaks get their phase advanced from
//! the instantaneous-frequency estimate; every other bin keeps its phase
//! relation to the peak whose region it lies in, i.e. the whole region is
//! rotated by the peak's phasor. That keeps the partials' main lobes
//! coherent, which is what removes most of the "phasiness" of a plain phase
//! vocoder, and it needs an `atan2` per peak rather than per bin.

use std::f32::consts::PI;

use crate::fft::RealFft;

const TWO_PI: f32 = 2.0 * PI;

/// Wrap a phase to [-π, π].
fn wrap(phase: f32) -> f32 {
    phase - TWO_PI * (phase / TWO_PI).round()
}

/// Hops for a stretch factor `alpha` with frame size `n`. The synthesis hop
/// is `n/4` (75 % overlap) unless that would make the analysis hop longer
/// than `n/4`: the phase-advance estimate is only unambiguous for
/// frequencies within `n / (2·Ha)` bins of a bin centre, which must cover
/// the two-bin half-width of the Hann main lobe. Squeezing (alpha < 1) then
/// lowers the synthesis hop instead, in powers of two.
fn hops(n: usize, alpha: f64) -> (usize, f64) {
    let mut syn = n / 4;
    while syn > 1 && syn as f64 / alpha > (n / 4) as f64 + 1e-9 {
        syn /= 2;
    }
    (syn, syn as f64 / alpha)
}

/// A periodic Hann window of size `n`.
fn hann(n: usize) -> Vec<f32> {
    (0..n)
        .map(|j| (0.5 - 0.5 * (std::f64::consts::TAU * j as f64 / n as f64).cos()) as f32)
        .collect()
}

/// Stretch `input` in time by `alpha` (output time `τ` plays input time
/// `τ / alpha`) and return the first `out_len` samples. `frame` is the FFT
/// size, a power of two ≥ 16. `alpha` must be finite and positive; callers
/// keep it within 0.25..=4.
pub fn stretch(input: &[f32], alpha: f64, frame: usize, out_len: usize) -> Vec<f32> {
    let n = frame;
    let half = n / 2;
    let bins = half + 1;
    let Some(mut fft) = RealFft::new(n) else {
        return vec![0.0; out_len];
    };
    let window = hann(n);
    let (syn_hop, ana_hop) = hops(n, alpha);

    // Output with `n` samples of margin on both sides, so frames that hang
    // over either end need no bounds checks.
    let mut out = vec![0.0f32; out_len + 2 * n];
    let mut norm = vec![0.0f32; out_len + 2 * n];

    // Frames whose windows overlap [0, out_len): centres from just after
    // −n/2 to just before out_len + n/2.
    let first = -((half / syn_hop) as i64) + 1;
    let last = ((out_len + half) as i64 - 1).div_euclid(syn_hop as i64);

    let mut buf = vec![0.0f32; n];
    let (mut xr, mut xi) = (vec![0.0f32; bins], vec![0.0f32; bins]);
    let (mut pr, mut pi) = (vec![0.0f32; bins], vec![0.0f32; bins]);
    let (mut yr, mut yi) = (vec![0.0f32; bins], vec![0.0f32; bins]);
    let mut power = vec![0.0f32; bins];
    let mut peaks: Vec<usize> = Vec::with_capacity(bins / 2);
    let mut prev_centre: Option<i64> = None;

    for k in first..=last {
        let centre = (k as f64 * ana_hop).round() as i64;
        // Analysis frame, zero outside the input.
        for (j, b) in buf.iter_mut().enumerate() {
            let t = centre - half as i64 + j as i64;
            *b = if t >= 0 && (t as usize) < input.len() {
                input[t as usize] * window[j]
            } else {
                0.0
            };
        }
        fft.forward(&buf, &mut xr, &mut xi);

        match prev_centre {
            None => {
                // First frame: synthesis phases are the analysis phases.
                yr.copy_from_slice(&xr);
                yi.copy_from_slice(&xi);
            }
            Some(prev) => {
                let dt = (centre - prev).max(1) as f32;
                for b in 0..bins {
                    power[b] = xr[b] * xr[b] + xi[b] * xi[b];
                }
                find_peaks(&power, &mut peaks);
                if peaks.is_empty() {
                    // Silence (or a flat spectrum): nothing to keep coherent.
                    yr.copy_from_slice(&xr);
                    yi.copy_from_slice(&xi);
                }
                // Previous synthesis frame is still in yr/yi.
                let mut start = 0;
                for (i, &p) in peaks.iter().enumerate() {
                    let end = match peaks.get(i + 1) {
                        // Region boundary: the weakest bin between two peaks.
                        Some(&q) => {
                            (p..q)
                                .min_by(|&a, &b| power[a].total_cmp(&power[b]))
                                .unwrap_or(p)
                                + 1
                        }
                        None => bins,
                    };
                    let ana = xi[p].atan2(xr[p]);
                    let prev_ana = pi[p].atan2(pr[p]);
                    let prev_syn = yi[p].atan2(yr[p]);
                    let omega = TWO_PI * p as f32 / n as f32;
                    let deviation = wrap(ana - prev_ana - omega * dt);
                    let freq = omega + deviation / dt;
                    let rot = wrap(prev_syn + freq * syn_hop as f32 - ana);
                    let (s, c) = rot.sin_cos();
                    for b in start..end {
                        let (r, im) = (xr[b], xi[b]);
                        yr[b] = r * c - im * s;
                        yi[b] = r * s + im * c;
                    }
                    start = end;
                }
            }
        }
        pr.copy_from_slice(&xr);
        pi.copy_from_slice(&xi);
        prev_centre = Some(centre);

        fft.inverse(&yr, &yi, &mut buf);
        // Frame k covers output samples k·Hs − n/2 .. k·Hs + n/2, stored at
        // offset +n.
        let base = (k * syn_hop as i64 - half as i64 + n as i64) as usize;
        for j in 0..n {
            out[base + j] += buf[j] * window[j];
            norm[base + j] += window[j] * window[j];
        }
    }

    // Where windows overlap fully the squared-window sum is a constant; the
    // floor only guards against dividing by ~0 where no frame reached.
    let floor = 1e-3;
    out[n..n + out_len]
        .iter()
        .zip(&norm[n..n + out_len])
        .map(|(&o, &w)| if w > floor { o / w } else { 0.0 })
        .collect()
}

/// Indices of local maxima of `power` (greater than both neighbours on each
/// side, two bins deep), ignoring bins more than 120 dB below the strongest.
fn find_peaks(power: &[f32], peaks: &mut Vec<usize>) {
    peaks.clear();
    let max = power.iter().copied().fold(0.0f32, f32::max);
    if max <= 0.0 || !max.is_finite() {
        return;
    }
    let floor = max * 1e-12;
    let n = power.len();
    for b in 0..n {
        let p = power[b];
        if p <= floor {
            continue;
        }
        let left = (b >= 1 && power[b - 1] >= p) || (b >= 2 && power[b - 2] >= p);
        let right = (b + 1 < n && power[b + 1] > p) || (b + 2 < n && power[b + 2] > p);
        if !left && !right {
            peaks.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_keep_the_analysis_hop_within_a_quarter_frame() {
        for alpha in [0.25, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 4.0] {
            let (syn, ana) = hops(1024, alpha);
            assert!(
                (32.0..=256.0 + 1e-6).contains(&ana),
                "alpha {alpha}: {syn} {ana}"
            );
            assert!((syn as f64 / ana - alpha).abs() < 1e-9);
        }
        assert_eq!(hops(1024, 1.0).0, 256);
        assert_eq!(hops(1024, 0.25).0, 64);
    }

    #[test]
    fn unit_stretch_reconstructs_the_input() {
        let x: Vec<f32> = (0..5000).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
        let y = stretch(&x, 1.0, 1024, x.len());
        assert_eq!(y.len(), x.len());
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() < 1e-3);
        }
    }

    #[test]
    fn peaks_are_strict_local_maxima() {
        let mut peaks = Vec::new();
        find_peaks(&[0.0, 1.0, 5.0, 1.0, 0.0, 2.0, 3.0, 3.0, 0.5], &mut peaks);
        assert_eq!(peaks, vec![2, 6]);
        find_peaks(&[0.0; 8], &mut peaks);
        assert!(peaks.is_empty());
    }
}
