//! Time stretching without pitch change: a phase vocoder with identity
//! phase locking (Laroche & Dolson, 1999), run as a stream.
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
//!
//! Streaming: frames are computed in order as soon as the input they read
//! has arrived, and an output sample is let go once every frame that
//! overlaps it has been added. What one frame needs from the previous one
//! (its analysis and synthesis spectra) and the input and overlap-add sums
//! still in use are a [`StretchState`], bounded by the frame size whatever
//! the length of the signal. Feeding a signal in pieces of any size gives
//! the same samples, bit for bit, as feeding it whole: every sample goes
//! through the same arithmetic in the same order.

use std::f32::consts::PI;

use voxpipe_plugin_audio::state::{Reader, Writer};
use voxpipe_plugin_audio::StageError;

use crate::fft::RealFft;

const TWO_PI: f32 = 2.0 * PI;

/// Where the summed squared window is below this no frame reached (only at
/// the very start); those samples are 0 rather than a division by ~0.
const NORM_FLOOR: f32 = 1e-3;

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

/// The fixed part of a stretch: frame size, hops, window and transform,
/// rebuilt on every call (it depends only on the frame size and the factor)
/// and shared by the channels. Output time `τ` plays input time `τ / alpha`.
pub struct Stretcher {
    n: usize,
    syn_hop: usize,
    ana_hop: f64,
    fft: RealFft,
    window: Vec<f32>,
    /// The window squared, which every frame adds to the normalisation.
    window_sq: Vec<f32>,
}

/// What a stretch carries from one call to the next, per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct StretchState {
    /// Index of the next frame to compute. Frame `k` is centred on input
    /// `round(k·Ha)` and output `k·Hs`; the first is the earliest whose
    /// window reaches output 0, so it is negative.
    next_frame: i64,
    /// Analysis centre of the previous frame; `None` before the first.
    prev_centre: Option<i64>,
    /// The previous frame's analysis spectrum, which the phase advance is
    /// measured against.
    prev_re: Vec<f32>,
    prev_im: Vec<f32>,
    /// The previous frame's synthesis spectrum, whose phases the next frame
    /// continues.
    syn_re: Vec<f32>,
    syn_im: Vec<f32>,
    /// Input from index `input_from` on: what the next frames still read
    /// (less than one frame).
    input_from: u64,
    input: Vec<f32>,
    /// Overlap-add sums of the signal and of the squared window for the
    /// output from index `pending_from` on, which later frames still add to
    /// (less than one frame).
    pending_from: u64,
    sum: Vec<f32>,
    norm: Vec<f32>,
}

impl Stretcher {
    /// A stretch by `alpha` (finite and positive; callers keep it within
    /// 0.25..=4) with FFT size `frame`, a power of two ≥ 16.
    pub fn new(frame: usize, alpha: f64) -> Result<Stretcher, StageError> {
        let fft = RealFft::new(frame).ok_or_else(|| {
            StageError::PluginFault(format!("frame size {frame} is not a power of two"))
        })?;
        let (syn_hop, ana_hop) = hops(frame, alpha);
        Ok(Stretcher {
            n: frame,
            syn_hop,
            ana_hop,
            fft,
            window: hann(frame),
            window_sq: hann(frame).iter().map(|w| w * w).collect(),
        })
    }

    fn bins(&self) -> usize {
        self.n / 2 + 1
    }

    /// The state before any input.
    pub fn start(&self) -> StretchState {
        let bins = self.bins();
        StretchState {
            next_frame: -(((self.n / 2) / self.syn_hop) as i64) + 1,
            prev_centre: None,
            prev_re: vec![0.0; bins],
            prev_im: vec![0.0; bins],
            syn_re: vec![0.0; bins],
            syn_im: vec![0.0; bins],
            input_from: 0,
            input: Vec::new(),
            pending_from: 0,
            sum: Vec::new(),
            norm: Vec::new(),
        }
    }

    /// Analysis centre of frame `k`, in input samples.
    fn centre(&self, k: i64) -> i64 {
        (k as f64 * self.ana_hop).round() as i64
    }

    /// How many output samples are final once the frames before
    /// `next_frame` are in: those that no later frame overlaps.
    fn complete(&self, state: &StretchState) -> u64 {
        (state.next_frame * self.syn_hop as i64 - (self.n / 2) as i64).max(0) as u64
    }

    /// Feed the next `input` samples and append to `out` the output samples
    /// that are final, up to `limit` samples of output in all. Before the
    /// `last` call, frames wait for all the input they read; on it, the
    /// input ends (zero beyond) and every frame up to `limit` is computed,
    /// so the output then has exactly `limit` samples.
    pub fn push(
        &mut self,
        state: &mut StretchState,
        input: &[f32],
        limit: u64,
        last: bool,
        out: &mut Vec<f32>,
    ) {
        let half = (self.n / 2) as i64;
        state.input.extend_from_slice(input);
        let input_end = (state.input_from + state.input.len() as u64) as i64;
        let mut scratch = Scratch::new(self.n);
        loop {
            let ready = if last {
                self.complete(state) < limit
            } else {
                self.centre(state.next_frame) + half <= input_end
            };
            if !ready {
                break;
            }
            self.add_frame(state, &mut scratch);
        }

        // Before the last call the limit is the length the input so far
        // would give, which the final samples never reach: they lag the
        // input's stretch by about a frame. So nothing final is held back
        // and `sum` stays under a frame.
        let done = self.complete(state).min(limit);
        let count = done.saturating_sub(state.pending_from) as usize;
        out.extend(
            state.sum[..count]
                .iter()
                .zip(&state.norm[..count])
                .map(|(&o, &w)| if w > NORM_FLOOR { o / w } else { 0.0 }),
        );
        state.sum.drain(..count);
        state.norm.drain(..count);
        state.pending_from += count as u64;

        // Input before the next frame's window is never read again.
        let next_start = self.centre(state.next_frame) - half;
        let unused = (next_start - state.input_from as i64).clamp(0, state.input.len() as i64);
        state.input.drain(..unused as usize);
        state.input_from += unused as u64;
    }

    /// Compute frame `state.next_frame` and add it to the output sums.
    fn add_frame(&mut self, state: &mut StretchState, s: &mut Scratch) {
        let n = self.n;
        let half = n / 2;
        let bins = half + 1;
        let k = state.next_frame;
        let centre = self.centre(k);
        // Analysis frame, zero outside the input: before its start, and past
        // its end (only reached on the last call). Input before
        // `input_from` was dropped only once no frame could read it, so
        // what lies there is before the start.
        // Frame position j reads input index `start + j`; the ones that
        // exist are j in `lo..hi`.
        let start = centre - half as i64 - state.input_from as i64;
        let lo = (-start).clamp(0, n as i64) as usize;
        let hi = (state.input.len() as i64 - start).clamp(lo as i64, n as i64) as usize;
        s.buf[..lo].fill(0.0);
        s.buf[hi..].fill(0.0);
        if lo < hi {
            let input = &state.input[(start + lo as i64) as usize..(start + hi as i64) as usize];
            for ((b, &x), &w) in s.buf[lo..hi]
                .iter_mut()
                .zip(input)
                .zip(&self.window[lo..hi])
            {
                *b = x * w;
            }
        }
        self.fft.forward(&s.buf, &mut s.xr, &mut s.xi);
        let (xr, xi) = (&s.xr, &s.xi);
        let (pr, pi) = (&mut state.prev_re, &mut state.prev_im);
        let (yr, yi) = (&mut state.syn_re, &mut state.syn_im);

        match state.prev_centre {
            None => {
                // First frame: synthesis phases are the analysis phases.
                yr.copy_from_slice(xr);
                yi.copy_from_slice(xi);
            }
            Some(prev) => {
                let dt = (centre - prev).max(1) as f32;
                for b in 0..bins {
                    s.power[b] = xr[b] * xr[b] + xi[b] * xi[b];
                }
                find_peaks(&s.power, &mut s.peaks);
                if s.peaks.is_empty() {
                    // Silence (or a flat spectrum): nothing to keep coherent.
                    yr.copy_from_slice(xr);
                    yi.copy_from_slice(xi);
                }
                // Previous synthesis frame is still in yr/yi.
                let mut start = 0;
                for (i, &p) in s.peaks.iter().enumerate() {
                    let end = match s.peaks.get(i + 1) {
                        // Region boundary: the weakest bin between two peaks.
                        Some(&q) => {
                            (p..q)
                                .min_by(|&a, &b| s.power[a].total_cmp(&s.power[b]))
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
                    let rot = wrap(prev_syn + freq * self.syn_hop as f32 - ana);
                    let (sn, c) = rot.sin_cos();
                    for b in start..end {
                        let (r, im) = (xr[b], xi[b]);
                        yr[b] = r * c - im * sn;
                        yi[b] = r * sn + im * c;
                    }
                    start = end;
                }
            }
        }
        pr.copy_from_slice(xr);
        pi.copy_from_slice(xi);
        state.prev_centre = Some(centre);
        state.next_frame += 1;

        self.fft.inverse(yr, yi, &mut s.buf);
        // Frame k covers output samples k·Hs − n/2 .. k·Hs + n/2. Those
        // before 0 are never played; none between 0 and `pending_from` is
        // left, since those were final, i.e. overlapped by no later frame.
        let base = k * self.syn_hop as i64 - half as i64 - state.pending_from as i64;
        let reach = (base + n as i64).max(0) as usize;
        if state.sum.len() < reach {
            state.sum.resize(reach, 0.0);
            state.norm.resize(reach, 0.0);
        }
        let skip = (-base).max(0) as usize;
        let at = (base + skip as i64) as usize..(base + n as i64) as usize;
        for ((sum, &b), &w) in state.sum[at.clone()]
            .iter_mut()
            .zip(&s.buf[skip..])
            .zip(&self.window[skip..])
        {
            *sum += b * w;
        }
        for (norm, &w2) in state.norm[at].iter_mut().zip(&self.window_sq[skip..]) {
            *norm += w2;
        }
    }
}

/// Per-call work buffers of [`Stretcher::add_frame`].
struct Scratch {
    buf: Vec<f32>,
    xr: Vec<f32>,
    xi: Vec<f32>,
    power: Vec<f32>,
    peaks: Vec<usize>,
}

impl Scratch {
    fn new(n: usize) -> Scratch {
        let bins = n / 2 + 1;
        Scratch {
            buf: vec![0.0; n],
            xr: vec![0.0; bins],
            xi: vec![0.0; bins],
            power: vec![0.0; bins],
            peaks: Vec::with_capacity(bins / 2),
        }
    }
}

impl StretchState {
    /// Append the state to `w` (see [`StretchState::read`]).
    pub fn write(&self, w: Writer) -> Writer {
        let w = w.u64(self.next_frame as u64);
        let w = match self.prev_centre {
            None => w.u8(0),
            Some(c) => w.u8(1).u64(c as u64),
        };
        w.f32s(&self.prev_re)
            .f32s(&self.prev_im)
            .f32s(&self.syn_re)
            .f32s(&self.syn_im)
            .u64(self.input_from)
            .f32s(&self.input)
            .u64(self.pending_from)
            .f32s(&self.sum)
            .f32s(&self.norm)
    }

    /// Read a state written by [`StretchState::write`] for `stretcher`,
    /// checking that its lists have the sizes that stretcher makes.
    pub fn read(r: &mut Reader, stretcher: &Stretcher) -> Result<StretchState, StageError> {
        let next_frame = r.u64()? as i64;
        let prev_centre = match r.u8()? {
            0 => None,
            _ => Some(r.u64()? as i64),
        };
        let state = StretchState {
            next_frame,
            prev_centre,
            prev_re: r.f32s()?,
            prev_im: r.f32s()?,
            syn_re: r.f32s()?,
            syn_im: r.f32s()?,
            input_from: r.u64()?,
            input: r.f32s()?,
            pending_from: r.u64()?,
            sum: r.f32s()?,
            norm: r.f32s()?,
        };
        let bins = stretcher.bins();
        let spectra = [&state.prev_re, &state.prev_im, &state.syn_re, &state.syn_im];
        if spectra.iter().any(|s| s.len() != bins)
            || state.input.len() > stretcher.n
            || state.sum.len() != state.norm.len()
            || state.sum.len() > stretcher.n
        {
            return Err(StageError::PluginFault(
                "the carried vocoder state does not fit the frame size".into(),
            ));
        }
        Ok(state)
    }
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

    /// Stretch `input` whole (one push, the last) to `out_len` samples.
    fn stretch(input: &[f32], alpha: f64, frame: usize, out_len: usize) -> Vec<f32> {
        let mut s = Stretcher::new(frame, alpha).unwrap();
        let mut state = s.start();
        let mut out = Vec::new();
        s.push(&mut state, input, out_len as u64, true, &mut out);
        out
    }

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
    fn pieces_of_any_size_give_the_same_samples_and_a_bounded_state() {
        let x: Vec<f32> = (0..20_000)
            .map(|i| ((i as f32 * 0.031).sin() + (i as f32 * 0.17).sin()) * 0.3)
            .collect();
        for alpha in [0.5, 1.3, 2.0] {
            let total = (x.len() as f64 * alpha).round() as u64;
            let whole = stretch(&x, alpha, 512, total as usize);
            for piece in [1, 7, 300, 4096] {
                let mut s = Stretcher::new(512, alpha).unwrap();
                let mut state = s.start();
                let mut out = Vec::new();
                let chunks: Vec<&[f32]> = x.chunks(piece).collect();
                let mut received = 0;
                for (i, c) in chunks.iter().enumerate() {
                    let last = i + 1 == chunks.len();
                    received += c.len();
                    // As the stage does: the output's length so far, rounded down.
                    let limit = if last {
                        total
                    } else {
                        (received as f64 * alpha) as u64
                    };
                    s.push(&mut state, c, limit, last, &mut out);
                    assert!(state.input.len() <= 512 && state.sum.len() <= 512);
                }
                assert_eq!(out, whole, "alpha {alpha}, pieces of {piece}");
            }
        }
    }

    #[test]
    fn the_state_reads_back_as_written() {
        let mut s = Stretcher::new(256, 1.5).unwrap();
        let mut state = s.start();
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.1).sin()).collect();
        s.push(&mut state, &x, 1500, false, &mut Vec::new());
        let bytes = state.write(Writer::new()).finish();
        let mut r = Reader::new(&bytes);
        assert_eq!(StretchState::read(&mut r, &s).unwrap(), state);
        r.end().unwrap();
        // A state made for another frame size is refused.
        let other = Stretcher::new(512, 1.5).unwrap();
        assert!(StretchState::read(&mut Reader::new(&bytes), &other).is_err());
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
