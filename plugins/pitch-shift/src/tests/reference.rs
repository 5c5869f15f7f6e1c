//! The whole-utterance algorithm as it was before the port to blocks
//! (WIT 0.2, one `process` call per utterance), kept verbatim as the
//! reference the block-driven stage is compared with. Adapted only so that
//! it compiles here: `process` is a free function without the chunk
//! position, and the modules' items are inlined under their old names.

use crate::{check_audio, frame_size, Settings, Shift};
use voxpipe_plugin_audio::{log, Audio, Config, Context, StageError};

// ---- lib.rs: `PitchShift::process` ----

pub fn process(ctx: &Context, config: &Config, audio: Audio) -> Result<Audio, StageError> {
    let settings = Settings::from_config(config)?;
    check_audio(&audio)?;
    let shift = Shift::for_request(ctx, &settings)?;
    if shift.clamped {
        log::warn(&format!(
            "request {}: pitch shift clamped to {} semitones (style + config exceed ±12)",
            ctx.request_id, shift.semitones
        ));
    }
    if shift.is_identity() {
        return Ok(audio);
    }
    let channels = audio.channels as usize;
    let frames = audio.samples.len() / channels;
    let out_frames = if shift.tempo == 1.0 {
        frames
    } else {
        (frames as f64 / shift.tempo).round() as usize
    };
    log::debug(&format!(
        "request {}: {} semitones, tempo {}, {} frames -> {}",
        ctx.request_id, shift.semitones, shift.tempo, frames, out_frames
    ));

    let mut samples = vec![0.0f32; out_frames * channels];
    for ch in 0..channels {
        let input: Vec<f32> = audio
            .samples
            .iter()
            .skip(ch)
            .step_by(channels)
            .map(|&s| if s.is_finite() { s } else { 0.0 })
            .collect();
        let out = shift_channel(
            &input,
            shift.pitch_ratio(),
            shift.tempo,
            audio.sample_rate,
            out_frames,
        );
        for (frame, s) in out.into_iter().enumerate() {
            samples[frame * channels + ch] = s;
        }
    }
    Ok(Audio {
        sample_rate: audio.sample_rate,
        channels: audio.channels,
        samples,
    })
}

// ---- shift.rs ----

/// Shift `input` by the frequency ratio `pitch` and play it at `tempo`,
/// returning exactly `out_len` samples (`out_len` ≈ `input.len() / tempo`).
pub fn shift_channel(
    input: &[f32],
    pitch: f64,
    tempo: f64,
    sample_rate: u32,
    out_len: usize,
) -> Vec<f32> {
    let alpha = pitch / tempo;
    let pitch_only = (pitch - 1.0).abs() < 1e-12;
    // The resampler reads up to `reach` samples past its last position.
    let needed = if pitch_only {
        out_len
    } else {
        (out_len as f64 * pitch).ceil() as usize + 64
    };
    let stretched = if (alpha - 1.0).abs() < 1e-12 {
        // Pitch and tempo cancel: pure resampling, no vocoder needed.
        input.to_vec()
    } else {
        vocoder::stretch(input, alpha, frame_size(sample_rate), needed)
    };
    let mut out = if pitch_only {
        let mut s = stretched;
        s.resize(out_len, 0.0);
        s
    } else {
        resample::resample(&stretched, pitch, out_len)
    };
    // Overlap-add and the resampler's ripple can overshoot slightly; the
    // contract is samples in [-1, 1].
    for s in &mut out {
        *s = s.clamp(-1.0, 1.0);
    }
    out
}

// ---- vocoder.rs ----

mod vocoder {
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
}

// ---- resample.rs ----

mod resample {
    /// Zero crossings of the sinc on each side of the centre.
    const ZEROS: usize = 16;
    /// Table entries per zero crossing.
    const RES: usize = 256;
    /// Kaiser window shape: ~80 dB stop-band attenuation.
    const BETA: f64 = 8.0;
    /// Cut-off as a fraction of the (lower) Nyquist frequency, leaving room for
    /// the transition band so the content at Nyquist does not alias.
    const PASS: f64 = 0.95;

    /// Zeroth-order modified Bessel function of the first kind (power series).
    fn bessel_i0(x: f64) -> f64 {
        let mut sum = 1.0;
        let mut term = 1.0;
        let q = x * x / 4.0;
        for k in 1..64 {
            term *= q / (k * k) as f64;
            sum += term;
            if term < sum * 1e-17 {
                break;
            }
        }
        sum
    }

    /// `sinc(u)·kaiser(u / ZEROS)` for `u = m / RES`, `m = 0..=ZEROS·RES`, plus
    /// one zero so that interpolation at the very edge needs no check.
    fn kernel_table() -> Vec<f32> {
        let len = ZEROS * RES;
        let norm = bessel_i0(BETA);
        let mut table: Vec<f32> = (0..=len)
            .map(|m| {
                let u = m as f64 / RES as f64;
                let sinc = if m == 0 {
                    1.0
                } else {
                    (std::f64::consts::PI * u).sin() / (std::f64::consts::PI * u)
                };
                let r = u / ZEROS as f64;
                let window = bessel_i0(BETA * (1.0 - r * r).max(0.0).sqrt()) / norm;
                (sinc * window) as f32
            })
            .collect();
        table.push(0.0);
        table
    }

    /// `out[i] = Σ_j x[j]·h(i·step − j)` for `i < out_len`, with the input taken
    /// as zero outside its bounds. `step` must be finite and positive.
    pub fn resample(input: &[f32], step: f64, out_len: usize) -> Vec<f32> {
        let table = kernel_table();
        let cutoff = PASS * (1.0 / step).min(1.0);
        // Kernel support in input samples on each side.
        let reach = (ZEROS as f64 / cutoff).ceil() as i64;
        // Table position per input sample of distance.
        let scale = (cutoff * RES as f64) as f32;
        let limit = (ZEROS * RES) as f32;
        let gain = cutoff as f32;
        let len = input.len() as i64;

        (0..out_len)
            .map(|i| {
                let pos = i as f64 * step;
                let centre = pos.floor() as i64;
                let frac = (pos - centre as f64) as f32;
                let lo = (centre - reach + 1).max(0);
                let hi = (centre + reach).min(len - 1);
                let mut acc = 0.0f32;
                for j in lo..=hi {
                    let d = ((j - centre) as f32 - frac).abs() * scale;
                    if d >= limit {
                        continue;
                    }
                    let m = d as usize;
                    let f = d - m as f32;
                    let h = table[m] + (table[m + 1] - table[m]) * f;
                    acc += input[j as usize] * h;
                }
                acc * gain
            })
            .collect()
    }
}
