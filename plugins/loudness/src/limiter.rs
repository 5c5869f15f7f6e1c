//! Look-ahead true-peak limiter, run frame by frame.
//!
//! Why a limiter: speech is peaky. espeak-ng speech has a peak-to-loudness
//! ratio of ~18.6 dB, so at −16 LUFS its true peak would be near +2.6 dBTP;
//! a single static gain under a −1 dBTP ceiling stops at about −19.3 LUFS.
//! The peaks that exceed the ceiling are short (glottal pulses, plosives),
//! so turning just them down costs almost no loudness and is inaudible when
//! the gain moves smoothly.
//!
//! Envelope (per frame, all channels linked so the stereo image holds):
//! 1. required gain `r[n] = min(1, threshold / peak[n])`, `peak` being the
//!    frame's 4× oversampled true peak ([`Lookahead`]);
//! 2. forward moving minimum over `L + 1` frames (`L` = look-ahead, 5 ms):
//!    `m[n] = min(r[n ..= n + L])`, so the gain is already down `L` frames
//!    before a peak. `r` falls as the peak rises, so this is the required
//!    gain of the largest peak in the window, which [`Lookahead`] tracks;
//! 3. release: `h[n] = min(m[n], 1 − (1 − h[n−1])·a)`, an exponential
//!    return towards unity (time constant [`RELEASE_SECONDS`]);
//! 4. moving average over `L + 1` frames: `g[n] = mean(h[n − L ..= n])`.
//!    That turns the step of (2) into a linear ramp over the look-ahead,
//!    and still guarantees `g[n] ≤ r[n]`: every `h` in the window
//!    `[n − L, n]` is ≤ `m` there, which is ≤ `r[n]` because `n` lies in
//!    each of their forward windows. Frames before the start count as
//!    `h[0]` (not 1) so the guarantee holds at the start too.
//!
//! A consequence of (4) worth testing: one frame to the next the gain moves
//! by at most `(1 − min g) / (L + 1)`, i.e. there is never a gain step.
//!
//! The gain of frame `n` needs the peaks up to frame `n + L`, and the peak
//! of a frame needs the interpolator's window six frames later, so the
//! limiter holds back `L + 6` frames (5 ms and a few samples): it returns
//! them with the utterance's last block, which keeps the output as long as
//! the input. What it carries from block to block (the frames held back,
//! their peaks, the interpolator's and the envelope's memory) is bounded by
//! the look-ahead, not by the length of the utterance.

use crate::integrated::{bounded_len, malformed, sized};
use crate::true_peak::{Interpolator, TAPS};
use std::collections::VecDeque;
use voxpipe_plugin_audio::state::{Reader, Writer};
use voxpipe_plugin_audio::StageError;

/// Look-ahead (and attack ramp) length. 5 ms is below the ~10 ms where
/// pre-echo of the gain ramp becomes audible, and long enough that the ramp
/// is a few periods of the lowest voice fundamentals' harmonics rather than
/// a click.
pub(crate) const LOOKAHEAD_SECONDS: f64 = 0.005;
/// Release time constant. 80 ms holds the gain through a vowel (pitch
/// pulses every 5–10 ms) instead of pumping on each pulse, yet recovers
/// within a syllable so the loudness cost stays small.
pub(crate) const RELEASE_SECONDS: f64 = 0.08;
/// Detector threshold below the ceiling. The envelope is computed from the
/// true peak of the *unlimited* signal; multiplying by a slowly varying
/// gain shifts the interpolated peaks very slightly, so aim a hair low.
pub(crate) const MARGIN_DB: f64 = 0.1;
/// Frames between an input frame and the interpolator window that settles
/// its true peak (the window's largest taps weigh the frames 5 and 6 back).
const SETTLE: u64 = 6;

/// Look-ahead in frames for `rate` (at least 1).
pub(crate) fn lookahead_frames(rate: u32) -> usize {
    ((LOOKAHEAD_SECONDS * f64::from(rate)).round() as usize).max(1)
}

/// Per-frame release coefficient for `rate`.
pub(crate) fn release_coefficient(rate: u32) -> f64 {
    (-1.0 / (RELEASE_SECONDS * f64::from(rate))).exp()
}

/// Gain that brings a peak of `peak` down to `threshold` (1 if it is not
/// above it).
pub(crate) fn required(peak: f64, threshold: f64) -> f64 {
    if peak > threshold {
        threshold / peak
    } else {
        1.0
    }
}

/// The limiter's detector: takes frames one at a time and gives each one
/// back, once the peaks of the `L` frames after it are known, with the
/// largest true peak of the window `[n, n + L]` (all channels linked).
///
/// A frame's peak is the largest of |sample| over its channels and the
/// interpolated values on either side of it (between frames `n − 1` and
/// `n`, and `n` and `n + 1`): each interpolator window credits the two
/// frames its largest taps weigh, so the largest peak is the true peak.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Lookahead {
    channels: usize,
    lookahead: usize,
    interpolator: Interpolator,
    /// Frames taken so far.
    taken: u64,
    /// Frames given back so far.
    given: u64,
    /// Samples of the frames taken and not yet given back, frame-major.
    samples: VecDeque<f32>,
    /// Peaks of the same frames; the last [`SETTLE`] may still grow.
    peaks: VecDeque<f64>,
    /// Settled frames whose peak may still be the largest of a later
    /// window: (frame, peak), peaks decreasing from the front.
    maxima: VecDeque<(u64, f64)>,
    /// The largest settled peak: the true peak so far.
    peak: f64,
    /// The frame being given back (scratch).
    frame: Vec<f32>,
}

impl Lookahead {
    pub(crate) fn new(channels: usize, rate: u32) -> Self {
        Lookahead {
            channels,
            lookahead: lookahead_frames(rate),
            interpolator: Interpolator::new(channels),
            taken: 0,
            given: 0,
            samples: VecDeque::new(),
            peaks: VecDeque::new(),
            maxima: VecDeque::new(),
            peak: 0.0,
            frame: Vec::with_capacity(channels),
        }
    }

    /// The true peak (linear) of the frames settled so far: of the whole
    /// signal after [`Lookahead::finish`].
    pub(crate) fn peak(&self) -> f64 {
        self.peak
    }

    /// Take one frame; `give` gets every frame that this one lets go, with
    /// its window's largest peak. Peaks at or below `floor` need not be
    /// exact (any value up to `floor` may stand for them): the caller only
    /// compares them with levels at least that high. `floor` must not fall
    /// from one frame to the next; 0 asks for every peak exactly.
    pub(crate) fn take(&mut self, frame: &[f32], floor: f64, give: &mut impl FnMut(&[f32], f64)) {
        let sample_peak = frame.iter().fold(0.0f64, |m, &s| m.max(f64::from(s).abs()));
        for &s in frame {
            self.samples.push_back(s);
        }
        self.peaks.push_back(sample_peak);
        let window = self.taken;
        self.taken += 1;
        let v = self.interpolator.push_above(frame, floor);
        self.credit(window, v);
        if window >= SETTLE {
            self.settle(window - SETTLE, give);
        }
    }

    /// The signal has ended: run the interpolator past its end and give
    /// back every frame still held, the windows cut at the last frame.
    pub(crate) fn finish(&mut self, give: &mut impl FnMut(&[f32], f64)) {
        if self.taken == 0 {
            return;
        }
        for window in self.taken..self.taken + TAPS as u64 - 1 {
            let v = self.interpolator.push_silence();
            self.credit(window, v);
        }
        for frame in self.taken.saturating_sub(SETTLE)..self.taken {
            self.settle(frame, give);
        }
        while self.given < self.taken {
            self.give(give);
        }
    }

    /// Credit the value `v` of interpolator window `window` (its newest
    /// input frame) to the frames its largest taps weigh; windows past the
    /// end credit the last frame.
    fn credit(&mut self, window: u64, v: f64) {
        for frame in [
            window.saturating_sub(SETTLE),
            window.saturating_sub(SETTLE - 1),
        ] {
            let i = (frame.min(self.taken - 1) - self.given) as usize;
            self.peaks[i] = self.peaks[i].max(v);
        }
    }

    /// Frame `frame`'s peak is final: it may be the largest of the windows
    /// of the frames `frame − L ..= frame`, and completes the first one.
    fn settle(&mut self, frame: u64, give: &mut impl FnMut(&[f32], f64)) {
        let p = self.peaks[(frame - self.given) as usize];
        self.peak = self.peak.max(p);
        while self.maxima.back().is_some_and(|&(_, q)| q <= p) {
            self.maxima.pop_back();
        }
        self.maxima.push_back((frame, p));
        if frame >= self.lookahead as u64 {
            self.give(give);
        }
    }

    /// Give back the oldest frame held, with the largest settled peak of
    /// its window.
    fn give(&mut self, give: &mut impl FnMut(&[f32], f64)) {
        let n = self.given;
        while self.maxima.front().is_some_and(|&(f, _)| f < n) {
            self.maxima.pop_front();
        }
        let largest = self.maxima.front().map_or(0.0, |&(_, p)| p);
        self.peaks.pop_front();
        self.given += 1;
        // Straight from the queue when the frame is in one piece (almost
        // always), else through a scratch frame (one allocation per
        // utterance, not per frame).
        let (front, _) = self.samples.as_slices();
        if front.len() >= self.channels {
            give(&front[..self.channels], largest);
        } else {
            self.frame.clear();
            self.frame.extend(self.samples.iter().take(self.channels));
            give(&self.frame, largest);
        }
        for _ in 0..self.channels {
            self.samples.pop_front();
        }
    }

    pub(crate) fn write(&self, mut w: Writer) -> Writer {
        let samples: Vec<f32> = self.samples.iter().copied().collect();
        let peaks: Vec<f64> = self.peaks.iter().copied().collect();
        w = w
            .u64(self.taken)
            .u64(self.given)
            .f64(self.peak)
            .f64s(self.interpolator.history())
            .f32s(&samples)
            .f64s(&peaks)
            .u64(self.maxima.len() as u64);
        for &(frame, p) in &self.maxima {
            w = w.u64(frame).f64(p);
        }
        w
    }

    pub(crate) fn read(r: &mut Reader, channels: usize, rate: u32) -> Result<Self, StageError> {
        let mut l = Lookahead::new(channels, rate);
        l.taken = r.u64()?;
        l.given = r.u64()?;
        l.peak = r.f64()?;
        l.interpolator = Interpolator::with_history(channels, r.f64s()?)?;
        // Held back: at most the look-ahead and the frames not yet settled.
        let held = l
            .taken
            .checked_sub(l.given)
            .ok_or_else(|| malformed("limiter"))?;
        if held > (l.lookahead as u64 + SETTLE) {
            return Err(malformed("limiter"));
        }
        l.samples = sized(r.f32s()?, held as usize * channels, "held samples")?.into();
        l.peaks = sized(r.f64s()?, held as usize, "held peaks")?.into();
        for _ in 0..bounded_len(r, l.lookahead + SETTLE as usize + 1, "limiter")? {
            l.maxima.push_back((r.u64()?, r.f64()?));
        }
        Ok(l)
    }
}

/// Steps 3 and 4 of the envelope: release and moving average, one frame at
/// a time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Envelope {
    release: f64,
    /// `L + 1`.
    width: usize,
    /// `h` of the previous frame.
    prev: f64,
    /// The last `L + 1` values of `h`, a ring; empty before the first frame.
    held: Vec<f64>,
    /// Where the ring's oldest value is.
    next: usize,
    /// Σ of the ring, kept running as a whole-buffer moving average would
    /// (same additions in the same order, so the same roundings).
    sum: f64,
}

impl Envelope {
    pub(crate) fn new(rate: u32) -> Self {
        Envelope {
            release: release_coefficient(rate),
            width: lookahead_frames(rate) + 1,
            prev: 1.0,
            held: Vec::new(),
            next: 0,
            sum: 0.0,
        }
    }

    /// The gain of the next frame, whose window's largest required gain
    /// (step 2) is `m`.
    pub(crate) fn gain(&mut self, m: f64) -> f64 {
        let width = self.width;
        let h = m.min(1.0 - (1.0 - self.prev) * self.release);
        self.prev = h;
        if self.held.is_empty() {
            // The frames before the first count as the first.
            self.held = vec![h; width];
            self.sum = h * width as f64;
        } else {
            self.sum += h - self.held[self.next];
            self.held[self.next] = h;
        }
        self.next += 1;
        if self.next == width {
            self.next = 0;
        }
        // Never above 1 (rounding of the running sum).
        (self.sum / width as f64).min(1.0)
    }

    pub(crate) fn write(&self, w: Writer) -> Writer {
        w.f64(self.prev)
            .f64(self.sum)
            .u64(self.next as u64)
            .f64s(&self.held)
    }

    pub(crate) fn read(r: &mut Reader, rate: u32) -> Result<Self, StageError> {
        let mut e = Envelope::new(rate);
        e.prev = r.f64()?;
        e.sum = r.f64()?;
        e.next = r.u64()? as usize;
        e.held = r.f64s()?;
        if !(e.held.is_empty() || e.held.len() == e.width) || e.next >= e.width {
            return Err(malformed("limiter envelope"));
        }
        Ok(e)
    }
}
