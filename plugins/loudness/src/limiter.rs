//! Look-ahead true-peak limiter: the gain envelope and the loop that brings
//! the limited signal back onto the loudness target.
//!
//! Why a limiter: speech is peaky. espeak-ng speech has a peak-to-loudness
//! ratio of ~18.6 dB, so at −16 LUFS its true peak would be near +2.6 dBTP;
//! a single static gain under a −1 dBTP ceiling stops at about −19.3 LUFS.
//! The peaks that exceed the ceiling are short (glottal pulses, plosives),
//! so turning just them down costs almost no loudness and is inaudible when
//! the gain moves smoothly.
//!
//! The whole utterance is in memory, so the envelope is computed with
//! look-ahead over the buffer and applied *aligned* to the signal: no
//! latency, output length unchanged.
//!
//! Envelope (per frame, all channels linked so the stereo image holds):
//! 1. required gain `r[n] = min(1, threshold / peak[n])`, `peak` being the
//!    frame's 4× oversampled true peak (see `true_peak::frame_peaks`);
//! 2. forward moving minimum over `L + 1` frames (`L` = look-ahead, 5 ms):
//!    `m[n] = min(r[n ..= n + L])`, so the gain is already down `L` frames
//!    before a peak;
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

use crate::Settings;

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
/// The final true-peak check catches whatever is left.
pub(crate) const MARGIN_DB: f64 = 0.1;
/// Make-up rounds after the first limiting pass.
pub(crate) const MAX_ROUNDS: usize = 4;
/// Least loudness (dB) a make-up round must gain per dB of extra gain to
/// be kept; also the smallest slope the secant step assumes.
pub(crate) const MIN_SLOPE: f64 = 0.3;
/// Accept the result once this close to the target (LU).
pub(crate) const TOLERANCE_LU: f64 = 0.1;

/// Look-ahead in frames for `rate` (at least 1).
pub(crate) fn lookahead_frames(rate: u32) -> usize {
    ((LOOKAHEAD_SECONDS * f64::from(rate)).round() as usize).max(1)
}

/// Per-frame release coefficient for `rate`.
pub(crate) fn release_coefficient(rate: u32) -> f64 {
    (-1.0 / (RELEASE_SECONDS * f64::from(rate))).exp()
}

/// Gain envelope (linear, in (0, 1]) that keeps every `peaks[n]` at or below
/// `threshold` (see the module comment for the four steps). `peaks` are
/// linear per-frame peaks, `threshold > 0`, `lookahead ≥ 1`,
/// `0 ≤ release < 1`. All ones when nothing exceeds the threshold.
pub(crate) fn gain_envelope(
    peaks: &[f64],
    threshold: f64,
    lookahead: usize,
    release: f64,
) -> Vec<f64> {
    let n = peaks.len();
    if n == 0 {
        return Vec::new();
    }
    let required: Vec<f64> = peaks
        .iter()
        .map(|&p| if p > threshold { threshold / p } else { 1.0 })
        .collect();

    // (2) Forward moving minimum with a monotonic deque (O(n)), scanning
    // backwards so the window [i, i + L] is "what comes next".
    let mut held = vec![1.0f64; n];
    let mut deque = std::collections::VecDeque::with_capacity(lookahead + 1);
    for i in (0..n).rev() {
        while deque
            .back()
            .is_some_and(|&j: &usize| required[j] >= required[i])
        {
            deque.pop_back();
        }
        deque.push_back(i);
        while deque.front().is_some_and(|&j| j > i + lookahead) {
            deque.pop_front();
        }
        held[i] = deque.front().map_or(1.0, |&j| required[j]);
    }

    // (3) Exponential release towards 1.
    let mut prev = 1.0f64;
    for h in held.iter_mut() {
        let released = 1.0 - (1.0 - prev) * release;
        *h = h.min(released);
        prev = *h;
    }

    // (4) Moving average over [i − L, i]; frames before 0 count as held[0].
    let width = (lookahead + 1) as f64;
    let mut sum = held[0] * width;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let leaving = if i > lookahead {
            held[i - lookahead - 1]
        } else {
            held[0]
        };
        // i = 0: the window is held[0] (L + 1 times), already summed.
        if i > 0 {
            sum += held[i] - leaving;
        }
        // Never above 1 (rounding of the running sum) nor above the
        // required gain's bound by more than rounding.
        out.push((sum / width).min(1.0));
    }
    out
}

/// The limiter's result, for the log line and the tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Outcome {
    /// Static gain applied before the limiter, dB (make-up included).
    pub gain_db: f64,
    /// Largest gain reduction of the envelope, dB (≥ 0).
    pub max_reduction_db: f64,
    /// Final trim applied after the true-peak check, dB (≤ 0; usually 0).
    pub trim_db: f64,
    /// Limiting passes run (1 + make-up rounds).
    pub passes: usize,
    /// Loudness of the output, LUFS (`None` cannot happen for audio whose
    /// loudness was defined, but is not unwrapped).
    pub loudness_lufs: Option<f64>,
    /// True peak of the output, dBTP.
    pub peak_dbtp: f64,
}

/// Apply `gain_db` to validated interleaved `samples` (whose per-frame
/// true peaks, from `true_peak::frame_peaks`, are `peaks`), limit the true
/// peak to `settings.true_peak_dbtp`, and re-apply make-up gain until the output loudness
/// is within [`TOLERANCE_LU`] of `goal_lufs` (the loudness the plain gain
/// would have given: the target, or less when `max_gain_db` capped it).
///
/// Make-up: the limiter costs a little loudness, so after each pass the
/// static gain is raised by the shortfall divided by the observed slope
/// (loudness gained per dB of gain, a secant over the last two passes,
/// clamped to [`MIN_SLOPE`]..=1), never above `settings.max_gain_db`. At
/// most [`MAX_ROUNDS`] make-up rounds. A round is kept only if it is closer
/// to the goal and, if it raised the gain, the loudness rose by at least
/// [`MIN_SLOPE`] dB per dB; otherwise the loop stops with the previous pass
/// (so a signal whose loudness *is* its peaks ends up at the ceiling, below
/// the target, as without the limiter, instead of being crushed).
///
/// The final word is the true-peak meter on the output: should the margin
/// not have covered the interpolation error, the output is scaled down by
/// the excess (a hair: it lowers the loudness by the same amount, which is
/// reported in [`Outcome::loudness_lufs`]).
pub(crate) fn limit(
    samples: &[f32],
    peaks: &[f64],
    channels: usize,
    rate: u32,
    gain_db: f64,
    goal_lufs: f64,
    settings: &Settings,
) -> (Vec<f32>, Outcome) {
    use crate::{integrated::integrated, true_peak};

    let (ceiling_dbtp, max_gain_db) = (settings.true_peak_dbtp, settings.max_gain_db);
    let lookahead = lookahead_frames(rate);
    let release = release_coefficient(rate);
    let threshold = 10f64.powf((ceiling_dbtp - MARGIN_DB) / 20.0);

    // One limiting pass at static gain `g` dB: output and max reduction.
    let render = |g: f64| -> (Vec<f32>, f64) {
        let factor = 10f64.powf(g / 20.0);
        // factor·peak > threshold  ⇔  peak > threshold / factor.
        let env = gain_envelope(peaks, threshold / factor, lookahead, release);
        let out = samples
            .chunks_exact(channels)
            .zip(&env)
            .flat_map(|(frame, &e)| {
                frame
                    .iter()
                    .map(move |&s| ((f64::from(s) * factor * e) as f32).clamp(-1.0, 1.0))
            })
            .collect();
        let min = env.iter().copied().fold(1.0f64, f64::min);
        (out, -true_peak::to_db(min).min(0.0))
    };

    let mut g = gain_db;
    let mut prev: Option<(f64, f64)> = None; // (gain, loudness) of the last pass
                                             // (error, output, gain, reduction, loudness) of the pass kept so far.
    let mut best: Option<(f64, Vec<f32>, f64, f64, f64)> = None;
    let mut passes = 0;
    for _ in 0..=MAX_ROUNDS {
        passes += 1;
        let (out, reduction) = render(g);
        let Some(l) = integrated(&out, channels, rate) else {
            break;
        };
        let err = (l - goal_lufs).abs();
        if let Some((b_err, _, b_g, _, b_l)) = &best {
            // Keep a pass only if it is closer to the goal and, when it
            // raised the gain, bought at least MIN_SLOPE dB of loudness per
            // dB: past that the gain only feeds the limiter (audio whose
            // loudness *is* its peaks, like a click train or a full-scale
            // square), which would turn it into a brick-wall compressor
            // for nothing.
            let worth = g <= *b_g || l - b_l >= MIN_SLOPE * (g - b_g);
            if err >= *b_err || !worth {
                break;
            }
        }
        best = Some((err, out, g, reduction, l));
        if err <= TOLERANCE_LU {
            break;
        }
        let slope = match prev {
            Some((pg, pl)) if (g - pg).abs() > 1e-9 => ((l - pl) / (g - pg)).clamp(MIN_SLOPE, 1.0),
            _ => 1.0,
        };
        let next = (g + (goal_lufs - l) / slope).min(max_gain_db);
        if (next - g).abs() < 1e-6 {
            break; // capped by max_gain_db: no further progress possible
        }
        prev = Some((g, l));
        g = next;
    }
    // `best` is None only if the loudness of the output were undefined,
    // which a gain cannot cause for audio that had one; render anyway.
    let (_, mut out, g, reduction, loudness) = best.unwrap_or_else(|| {
        let (out, r) = render(gain_db);
        (0.0, out, gain_db, r, f64::NAN)
    });

    let mut peak = true_peak::to_db(true_peak::true_peak_linear(&out, channels));
    let mut trim_db = 0.0;
    if peak > ceiling_dbtp {
        trim_db = ceiling_dbtp - peak;
        let factor = 10f64.powf(trim_db / 20.0);
        for s in &mut out {
            *s = (f64::from(*s) * factor) as f32;
        }
        peak = true_peak::to_db(true_peak::true_peak_linear(&out, channels));
    }
    // A static trim shifts the loudness by exactly its gain: no re-measure.
    let loudness_lufs = Some(loudness + trim_db).filter(|l| l.is_finite());
    (
        out,
        Outcome {
            gain_db: g,
            max_reduction_db: reduction,
            trim_db,
            passes,
            loudness_lufs,
            peak_dbtp: peak,
        },
    )
}
