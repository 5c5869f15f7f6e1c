//! Sample-rate conversion: [`resample`] for whole utterances and the streaming
//! [`Resampler`] that the MP3 and Ogg Opus encoders run in front of their
//! codecs (MP3 carries only nine rates, Opus always runs at 48 kHz).
//!
//! A Kaiser-windowed-sinc polyphase filter: one coefficient row per output
//! phase for simple ratios, interpolated rows for awkward ones (such as
//! 22 050 → 47 999 Hz) so the table stays small.

use voxpipe_types::Audio;

/// Converts `audio` to `rate` Hz with a Kaiser-windowed-sinc polyphase filter
/// (anti-aliased, ~90 dB stopband, passband flat to 0.82 × the lower Nyquist
/// frequency). Output frame `n` is centred on input time `n / rate` (no
/// delay); length is `ceil(frames × rate / audio.sample_rate)`. Returns a
/// clone when the rates are equal, and empty audio if either rate or the
/// channel count is zero.
pub fn resample(audio: &Audio, rate: u32) -> Audio {
    if rate == audio.sample_rate {
        return audio.clone();
    }
    if rate == 0 || audio.sample_rate == 0 || audio.channels == 0 {
        return Audio {
            sample_rate: rate,
            channels: audio.channels,
            samples: Vec::new(),
        };
    }
    let ch = audio.channels as usize;
    let whole = audio.samples.len() - audio.samples.len() % ch;
    let mut r = Resampler::new(audio.sample_rate, rate, ch);
    let mut samples = r.process(&audio.samples[..whole]);
    samples.extend(r.flush());
    Audio {
        sample_rate: rate,
        channels: audio.channels,
        samples,
    }
}

/// Zero crossings of the sinc on each side of the centre, at the cutoff.
const RS_ZERO_CROSSINGS: f64 = 32.0;
/// Cutoff as a fraction of the lower of the two Nyquist frequencies.
const RS_ROLLOFF: f64 = 0.9;
/// Kaiser β for ≈ 90 dB stopband attenuation.
const RS_KAISER_BETA: f64 = 9.0;
/// Ratios with more output phases than this use an interpolated table.
const RS_MAX_EXACT_PHASES: u64 = 1024;

/// Streaming polyphase resampler (interleaved frames in, interleaved frames
/// out). Feeding input in any chunking gives the same output as one call.
pub(crate) struct Resampler {
    ch: usize,
    /// Output rate / gcd: phases per input sample.
    l: u64,
    /// Input rate / gcd: input step per output sample, in 1/l units.
    m: u64,
    /// Taps on each side: the filter has `2 * half` taps.
    half: usize,
    /// Rows in `table` minus one.
    phases: u64,
    /// `(phases + 1) × 2·half` coefficients; row p is for fractional offset p/phases.
    table: Vec<f32>,
    /// Interleaved input frames; frame i is input frame `buf_start + i`.
    buf: Vec<f32>,
    buf_start: i64,
    in_frames: u64,
    out_next: u64,
    row: Vec<f32>,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Dot product with eight independent accumulators so it vectorises.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut tail = 0.0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    let mut acc = [0.0f32; 8];
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..200 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-16 {
            break;
        }
    }
    sum
}

impl Resampler {
    pub(crate) fn new(in_rate: u32, out_rate: u32, ch: usize) -> Self {
        let g = gcd(in_rate as u64, out_rate as u64);
        let (l, m) = (out_rate as u64 / g, in_rate as u64 / g);
        let fc = RS_ROLLOFF * (out_rate as f64 / in_rate as f64).min(1.0);
        let width = RS_ZERO_CROSSINGS / fc; // half-width in input samples
        let half = width.ceil() as usize;
        let phases = if l <= RS_MAX_EXACT_PHASES {
            l
        } else {
            // The kernel gets smoother as fc drops, so fewer rows suffice.
            ((1024.0 * fc).ceil() as u64).max(64)
        };
        let taps = 2 * half;
        let i0_beta = bessel_i0(RS_KAISER_BETA);
        let mut table = Vec::with_capacity((phases as usize + 1) * taps);
        for p in 0..=phases {
            let frac = p as f64 / phases as f64;
            let start = table.len();
            for k in 0..taps {
                let x = frac + (half as f64 - 1.0) - k as f64;
                let h = if x.abs() >= width {
                    0.0
                } else {
                    let t = x / width;
                    let win = bessel_i0(RS_KAISER_BETA * (1.0 - t * t).sqrt()) / i0_beta;
                    let y = fc * x;
                    let sinc = if y == 0.0 {
                        1.0
                    } else {
                        (std::f64::consts::PI * y).sin() / (std::f64::consts::PI * y)
                    };
                    fc * sinc * win
                };
                table.push(h);
            }
            // Unity DC gain for every phase.
            let sum: f64 = table[start..].iter().sum();
            for c in &mut table[start..] {
                *c /= sum;
            }
        }
        let table = table.into_iter().map(|c| c as f32).collect();
        Resampler {
            ch,
            l,
            m,
            half,
            phases,
            table,
            buf: vec![0.0; (half - 1) * ch],
            buf_start: -(half as i64 - 1),
            in_frames: 0,
            out_next: 0,
            row: vec![0.0; taps],
        }
    }

    /// Feeds whole frames; returns the output frames that are now complete.
    pub(crate) fn process(&mut self, input: &[f32]) -> Vec<f32> {
        debug_assert_eq!(input.len() % self.ch, 0);
        self.buf.extend_from_slice(input);
        self.in_frames += (input.len() / self.ch) as u64;
        self.run(false)
    }

    /// Ends the input (zero-padded) and returns the remaining output.
    pub(crate) fn flush(&mut self) -> Vec<f32> {
        self.buf.resize(self.buf.len() + self.half * self.ch, 0.0);
        self.run(true)
    }

    fn run(&mut self, flush: bool) -> Vec<f32> {
        let (l, m, half, ch) = (self.l, self.m, self.half as i64, self.ch);
        let taps = 2 * self.half;
        let total_out = if flush {
            (self.in_frames * l).div_ceil(m)
        } else {
            u64::MAX
        };
        let mut out = Vec::new();
        while self.out_next < total_out {
            let pos = self.out_next * m;
            let base = (pos / l) as i64;
            let phase = pos % l;
            if !flush && base + half >= self.in_frames as i64 {
                break;
            }
            let off = (base - (half - 1) - self.buf_start) as usize;
            let row: &[f32] = if self.phases == l {
                &self.table[phase as usize * taps..][..taps]
            } else {
                let r = phase * self.phases;
                let i = (r / l) as usize;
                let a = (r % l) as f32 / l as f32;
                let (r0, r1) = (
                    &self.table[i * taps..][..taps],
                    &self.table[(i + 1) * taps..][..taps],
                );
                for k in 0..taps {
                    self.row[k] = r0[k] + a * (r1[k] - r0[k]);
                }
                &self.row
            };
            let frames = &self.buf[off * ch..(off + taps) * ch];
            if ch == 1 {
                out.push(dot(row, frames));
            } else {
                for c in 0..ch {
                    let mut acc = 0.0f32;
                    for (k, coef) in row.iter().enumerate() {
                        acc += coef * frames[k * ch + c];
                    }
                    out.push(acc);
                }
            }
            self.out_next += 1;
        }
        // Drop input no later output needs.
        let next_first = (self.out_next * m / l) as i64 - (half - 1);
        let buffered = (self.buf.len() / ch) as i64;
        let drop = (next_first - self.buf_start).clamp(0, buffered);
        self.buf.drain(..drop as usize * ch);
        self.buf_start += drop;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{corr_at, db, rms, sine, stereo_input, RATE};

    /// Frequency from upward zero crossings over the middle of the signal.
    fn zero_crossing_freq(x: &[f32], rate: u32) -> f32 {
        let mid = &x[x.len() / 10..x.len() * 9 / 10];
        let ups: Vec<usize> = (1..mid.len())
            .filter(|&i| mid[i - 1] < 0.0 && mid[i] >= 0.0)
            .collect();
        let periods = (ups.len() - 1) as f32;
        periods * rate as f32 / (ups[ups.len() - 1] - ups[0]) as f32
    }

    fn middle(x: &[f32]) -> &[f32] {
        &x[x.len() / 10..x.len() * 9 / 10]
    }

    #[test]
    fn resample_keeps_frequency_and_level() {
        let a = sine(1000.0, RATE, 1.0, 0.5);
        for rate in [8_000, 16_000, 24_000, 44_100, 48_000, 47_999, 11_111] {
            let r = resample(&a, rate);
            assert_eq!(r.sample_rate, rate);
            assert_eq!(r.samples.len(), rate as usize, "1 s in, 1 s out");
            let f = zero_crossing_freq(&r.samples, rate);
            assert!((f - 1000.0).abs() < 1.0, "{rate}: {f} Hz");
            let level = db(rms(middle(&r.samples)) / rms(middle(&a.samples)));
            assert!(level.abs() < 0.1, "{rate}: {level} dB");
            // Zero delay: resampled sine matches the analytic one.
            let ideal = sine(1000.0, rate, 1.0, 0.5);
            let c = corr_at(
                middle(&r.samples),
                middle(&ideal.samples),
                0,
                middle(&ideal.samples).len() - 1,
            );
            assert!(c > 0.9999, "{rate}: corr {c}");
        }
    }

    #[test]
    fn resample_to_48k_for_the_voice_rate() {
        let a = sine(1000.0, RATE, 1.0, 0.5);
        let r = resample(&a, 48_000);
        assert_eq!(r.samples.len(), 48_000);
        let f = zero_crossing_freq(&r.samples, 48_000);
        assert!((f - 1000.0).abs() < 0.5, "{f}");
        let level = db(rms(middle(&r.samples)) / rms(middle(&a.samples)));
        assert!(level.abs() < 1.0, "{level}");
    }

    #[test]
    fn resample_anti_aliases() {
        // 10 kHz is above the 8 kHz Nyquist of 16 kHz: must be removed, not folded to 6 kHz.
        let a = sine(10_000.0, RATE, 1.0, 0.5);
        let r = resample(&a, 16_000);
        let att = db(rms(middle(&r.samples)) / rms(middle(&a.samples)));
        assert!(att < -40.0, "10 kHz only {att} dB down");
        // Same for 8 kHz output with a 5 kHz tone (Nyquist 4 kHz).
        let r = resample(&sine(5_000.0, RATE, 1.0, 0.5), 8_000);
        let att = db(rms(middle(&r.samples)) / (0.5 / 2f32.sqrt()));
        assert!(att < -40.0, "5 kHz only {att} dB down");
        // And a passband tone survives downsampling.
        let r = resample(&sine(3_000.0, RATE, 1.0, 0.5), 16_000);
        let level = db(rms(middle(&r.samples)) / (0.5 / 2f32.sqrt()));
        assert!(level.abs() < 0.1, "3 kHz at {level} dB");
    }

    #[test]
    fn resample_identity_and_streaming_consistency() {
        let a = stereo_input();
        assert_eq!(resample(&a, RATE), a);
        for rate in [48_000, 16_000, 47_999] {
            let whole = resample(&a, rate);
            let mut r = Resampler::new(RATE, rate, 2);
            let mut streamed = Vec::new();
            for chunk in a.samples.chunks(2 * 777) {
                streamed.extend(r.process(chunk));
            }
            streamed.extend(r.flush());
            assert_eq!(streamed, whole.samples, "{rate}");
            // Channels stay separate.
            let left: Vec<f32> = whole.samples.iter().step_by(2).copied().collect();
            let f = zero_crossing_freq(&left, rate);
            assert!((f - 440.0).abs() < 1.0, "{f}");
        }
        let empty = Audio {
            sample_rate: RATE,
            channels: 1,
            samples: vec![],
        };
        assert!(resample(&empty, 48_000).samples.is_empty());
    }
}
