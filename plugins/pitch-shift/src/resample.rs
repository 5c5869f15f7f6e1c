//! Band-limited resampling with a Kaiser-windowed sinc kernel, run as a
//! stream.
//!
//! Reading a signal at positions `i·step` changes its playback rate by
//! `step`, which is what turns the vocoder's time stretch into a pitch
//! shift. When `step > 1` (pitch up) the signal is decimated and the kernel's
//! cut-off drops to `1/step` of Nyquist so that no partial aliases back into
//! the band. The kernel is tabulated once per call as a bank of
//! [`PHASES`] + 1 filters, one per fraction of a sample the read position
//! can fall at; an output between two of them is the linear blend of the
//! two filters' sums. So each output sample costs two dot products of
//! `2·reach` taps (~`4·ZEROS/cutoff` multiply-adds, vectorized) and no table
//! lookups or transcendental functions.
//!
//! Streaming: output `i` reads the input within `reach` samples of
//! `i·step`, so it is computed as soon as that input has arrived, and the
//! input behind the next output's reach is dropped. The carried
//! [`ResampleState`] is the next output's index and under `2·reach` input
//! samples; pieces of any size give the same samples as the whole, bit for
//! bit.

use voxpipe_plugin_audio::state::{Reader, Writer};
use voxpipe_plugin_audio::StageError;

/// Zero crossings of the sinc on each side of the centre.
const ZEROS: usize = 16;
/// Table entries per zero crossing.
const RES: usize = 256;
/// Kaiser window shape: ~80 dB stop-band attenuation.
const BETA: f64 = 8.0;
/// Cut-off as a fraction of the (lower) Nyquist frequency, leaving room for
/// the transition band so the content at Nyquist does not alias.
const PASS: f64 = 0.95;
/// Filters in the bank per sample of read position. The kernel between two
/// of them is blended linearly, as it was between [`RES`] table entries per
/// zero crossing: 256 phases put the nodes at least as close (a zero
/// crossing spans `1/cutoff` ≥ 1 samples).
const PHASES: usize = 256;

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

/// The fixed part of a resampling by `step`: the tabulated kernel and its
/// scale, rebuilt on every call and shared by the channels. Computes
/// `out[i] = Σ_j x[j]·h(i·step − j)`, the input taken as zero outside its
/// bounds.
pub struct Resampler {
    step: f64,
    /// `PHASES + 1` filters of `taps` coefficients: filter `q` holds
    /// `h(q/PHASES − d)` for the inputs `d = 1 − reach ..= reach` samples
    /// from the one at or before the read position, the gain folded in.
    bank: Vec<f32>,
    taps: usize,
    /// Kernel support in input samples on each side.
    reach: i64,
}

/// What a resampling carries from one call to the next, per channel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResampleState {
    /// Index of the next output sample.
    next: u64,
    /// Input from index `held_from` on: what the next outputs still read.
    held_from: u64,
    held: Vec<f32>,
}

impl Resampler {
    /// Reading at `step` (finite and positive) input samples per output.
    pub fn new(step: f64) -> Resampler {
        let cutoff = PASS * (1.0 / step).min(1.0);
        let reach = (ZEROS as f64 / cutoff).ceil() as i64;
        let taps = 2 * reach as usize;
        let table = kernel_table();
        // Table position per input sample of distance, and its end.
        let (scale, limit) = (cutoff * RES as f64, (ZEROS * RES) as f64);
        let mut bank = Vec::with_capacity((PHASES + 1) * taps);
        for q in 0..=PHASES {
            let frac = q as f64 / PHASES as f64;
            bank.extend((0..taps).map(|t| {
                let d = ((t as i64 + 1 - reach) as f64 - frac).abs() * scale;
                if d >= limit {
                    return 0.0;
                }
                let m = d as usize;
                let f = (d - m as f64) as f32;
                let h = table[m] + (table[m + 1] - table[m]) * f;
                h * cutoff as f32
            }));
        }
        Resampler {
            step,
            bank,
            taps,
            reach,
        }
    }

    /// Filter `q` of the bank.
    fn filter(&self, q: usize) -> &[f32] {
        &self.bank[q * self.taps..(q + 1) * self.taps]
    }

    /// Input samples the next outputs may still read, at most: the input
    /// within `reach` of the next output, plus one step.
    fn max_held(&self) -> usize {
        2 * self.reach as usize + self.step.ceil() as usize
    }

    /// Feed the next `input` samples and append to `out` every output whose
    /// input has arrived, up to `limit` outputs in all. On the `last` call
    /// the input ends (zero beyond) and the output is completed to exactly
    /// `limit` samples.
    pub fn push(
        &self,
        state: &mut ResampleState,
        input: &[f32],
        limit: u64,
        last: bool,
        out: &mut Vec<f32>,
    ) {
        state.held.extend_from_slice(input);
        let from = state.held_from as i64;
        let end = from + state.held.len() as i64;
        while state.next < limit {
            let pos = state.next as f64 * self.step;
            let centre = pos.floor() as i64;
            if !last && centre + self.reach >= end {
                break;
            }
            let phase = (pos - centre as f64) * PHASES as f64;
            let q = (phase as usize).min(PHASES - 1);
            let f = (phase - q as f64) as f32;
            // Taps `t` read input `centre + 1 − reach + t`; those outside
            // the signal read zero, i.e. are left out.
            let first = centre + 1 - self.reach;
            let lo = first.max(0);
            let hi = (centre + self.reach).min(end - 1);
            let acc = if lo > hi {
                0.0
            } else {
                let x = &state.held[(lo - from) as usize..=(hi - from) as usize];
                let t = (lo - first) as usize..=(hi - first) as usize;
                let a = dot(x, &self.filter(q)[t.clone()]);
                let b = dot(x, &self.filter(q + 1)[t]);
                a + (b - a) * f
            };
            out.push(acc);
            state.next += 1;
        }
        // Input before the next output's reach is never read again.
        let next_lo = (state.next as f64 * self.step).floor() as i64 - self.reach + 1;
        let unused = (next_lo - from).clamp(0, state.held.len() as i64);
        state.held.drain(..unused as usize);
        state.held_from += unused as u64;
    }
}

/// `Σ x·h` in eight interleaved partial sums, which the compiler turns
/// into vector multiply-adds (one running sum would pin it to one lane).
fn dot(x: &[f32], h: &[f32]) -> f32 {
    let mut sums = [0.0f32; 8];
    let (xs, hs) = (x.chunks_exact(8), h.chunks_exact(8));
    let tail: f32 = xs
        .remainder()
        .iter()
        .zip(hs.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (xc, hc) in xs.zip(hs) {
        for k in 0..8 {
            sums[k] += xc[k] * hc[k];
        }
    }
    sums.iter().sum::<f32>() + tail
}

impl ResampleState {
    /// Append the state to `w` (see [`ResampleState::read`]).
    pub fn write(&self, w: Writer) -> Writer {
        w.u64(self.next).u64(self.held_from).f32s(&self.held)
    }

    /// Read a state written by [`ResampleState::write`] for `resampler`.
    pub fn read(r: &mut Reader, resampler: &Resampler) -> Result<ResampleState, StageError> {
        let state = ResampleState {
            next: r.u64()?,
            held_from: r.u64()?,
            held: r.f32s()?,
        };
        if state.held.len() > resampler.max_held() {
            return Err(StageError::PluginFault(
                "the carried resampler state holds more input than it reads".into(),
            ));
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resample `input` whole (one push, the last) to `out_len` samples.
    fn resample(input: &[f32], step: f64, out_len: usize) -> Vec<f32> {
        let mut out = Vec::new();
        Resampler::new(step).push(
            &mut ResampleState::default(),
            input,
            out_len as u64,
            true,
            &mut out,
        );
        out
    }

    #[test]
    fn the_kernel_is_one_at_zero_and_zero_at_the_crossings() {
        let t = kernel_table();
        assert!((t[0] - 1.0).abs() < 1e-6);
        for z in 1..ZEROS {
            assert!(t[z * RES].abs() < 1e-6);
        }
    }

    #[test]
    fn a_low_tone_passes_with_its_amplitude() {
        // 100 Hz at 22.05 kHz read at step 2 (octave up) and 0.5 (down).
        let x: Vec<f32> = (0..20000)
            .map(|i| (std::f32::consts::TAU * 100.0 * i as f32 / 22050.0).sin())
            .collect();
        for step in [0.5, 1.0, 1.5, 2.0] {
            let y = resample(&x, step, (x.len() as f64 / step) as usize);
            let mid = &y[y.len() / 4..3 * y.len() / 4];
            let peak = mid.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!((peak - 1.0).abs() < 0.01, "step {step}: peak {peak}");
        }
    }

    #[test]
    fn pieces_of_any_size_give_the_same_samples_and_a_bounded_state() {
        let x: Vec<f32> = (0..5000).map(|i| (i as f32 * 0.37).sin() * 0.5).collect();
        for step in [0.5, 1.189, 2.0] {
            let r = Resampler::new(step);
            let total = (x.len() as f64 / step) as u64;
            let whole = resample(&x, step, total as usize);
            for piece in [1, 3, 64, 1000] {
                let mut state = ResampleState::default();
                let mut out = Vec::new();
                let chunks: Vec<&[f32]> = x.chunks(piece).collect();
                for (i, c) in chunks.iter().enumerate() {
                    let last = i + 1 == chunks.len();
                    r.push(&mut state, c, total, last, &mut out);
                    assert!(state.held.len() <= r.max_held());
                }
                assert_eq!(out, whole, "step {step}, pieces of {piece}");
            }
        }
    }

    #[test]
    fn the_state_reads_back_as_written() {
        let r = Resampler::new(1.5);
        let mut state = ResampleState::default();
        r.push(&mut state, &[0.5; 100], 1000, false, &mut Vec::new());
        let bytes = state.write(Writer::new()).finish();
        let mut reader = Reader::new(&bytes);
        assert_eq!(ResampleState::read(&mut reader, &r).unwrap(), state);
        reader.end().unwrap();
    }
}
