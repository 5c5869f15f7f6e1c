//! The stage as it was before blocks (WIT 0.2, one call per utterance),
//! kept verbatim as the reference the block-driven stage is compared with.
//! Adapted only so that it compiles here: `process` is a free function of
//! the whole utterance, the helpers that the crate still has unchanged
//! (settings, input checks, K-weighting coefficients, channel weights,
//! the Annex 2 interpolator taps, `plan_gain`) are the crate's, and the
//! biquad runs through the crate's per-sample `Biquad::step`. Log lines
//! are dropped.

use crate::input;
use crate::integrated::channel_weight;
use crate::kweight::k_weighting;
use crate::true_peak::{PHASES, TAPS};
use crate::{plan_gain, target_with_volume, Limit, Settings};
use voxpipe_plugin_audio::{Audio, Config, Context, StageError};

// --- lib.rs: `Loudness::process` and `limited` --------------------------------

pub fn process(ctx: &Context, config: &Config, mut audio: Audio) -> Result<Audio, StageError> {
    let mut settings = Settings::from_config(config)?;
    settings.target_lufs = target_with_volume(settings.target_lufs, ctx);
    if let Some(why) = input::problem(&audio.samples, audio.channels, audio.sample_rate) {
        return Err(StageError::InvalidInput(why));
    }
    let channels = usize::from(audio.channels);
    let Some(loudness) = integrated(&audio.samples, channels, audio.sample_rate) else {
        return Ok(audio);
    };
    // With the limiter on, measure the per-frame peaks it needs right
    // away: their maximum is exactly the true peak, so this saves a pass.
    let frame_peaks = settings
        .limiter
        .then(|| frame_peaks(&audio.samples, channels));
    let peak = to_db(match &frame_peaks {
        Some(p) => p.iter().copied().fold(0.0, f64::max),
        None => true_peak_linear(&audio.samples, channels),
    });
    let plan = plan_gain(loudness, peak, &settings);
    if let (Some(peaks), Limit::TruePeak) = (&frame_peaks, plan.limit) {
        return Ok(limited(audio, peaks, loudness, &settings).0);
    }
    let factor = 10f64.powf(plan.gain_db / 20.0);
    for s in &mut audio.samples {
        // The ceiling is at most 0 dBTP, so the clamp never engages; it
        // only guards the [-1, 1] contract against rounding.
        *s = ((f64::from(*s) * factor) as f32).clamp(-1.0, 1.0);
    }
    Ok(audio)
}

/// The limiter path of `process`: the gain the ceiling would have cut
/// (target, or `max_gain_db`), then the limiter and make-up rounds.
/// Also returns the limiter's outcome, for the comparison tests.
pub fn limited(
    mut audio: Audio,
    peaks: &[f64],
    loudness: f64,
    settings: &Settings,
) -> (Audio, Outcome) {
    // The plan without the ceiling: peak −inf never exceeds it.
    let free = plan_gain(loudness, f64::NEG_INFINITY, settings);
    let channels = usize::from(audio.channels);
    let (samples, out) = limit(
        &audio.samples,
        peaks,
        channels,
        audio.sample_rate,
        free.gain_db,
        loudness + free.gain_db,
        settings,
    );
    audio.samples = samples;
    (audio, out)
}

// --- limiter.rs -----------------------------------------------------------------

pub(crate) const LOOKAHEAD_SECONDS: f64 = 0.005;
pub(crate) const RELEASE_SECONDS: f64 = 0.08;
pub(crate) const MARGIN_DB: f64 = 0.1;
pub(crate) const MAX_ROUNDS: usize = 4;
pub(crate) const MIN_SLOPE: f64 = 0.3;
pub(crate) const TOLERANCE_LU: f64 = 0.1;

pub(crate) fn lookahead_frames(rate: u32) -> usize {
    ((LOOKAHEAD_SECONDS * f64::from(rate)).round() as usize).max(1)
}

pub(crate) fn release_coefficient(rate: u32) -> f64 {
    (-1.0 / (RELEASE_SECONDS * f64::from(rate))).exp()
}

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
pub struct Outcome {
    /// Static gain applied before the limiter, dB (make-up included).
    pub gain_db: f64,
    /// Largest gain reduction of the envelope, dB (≥ 0).
    pub max_reduction_db: f64,
    /// Final trim applied after the true-peak check, dB (≤ 0; usually 0).
    pub trim_db: f64,
    /// Limiting passes run (1 + make-up rounds).
    pub passes: usize,
    /// Loudness of the output, LUFS.
    pub loudness_lufs: Option<f64>,
    /// True peak of the output, dBTP.
    pub peak_dbtp: f64,
}

pub(crate) fn limit(
    samples: &[f32],
    peaks: &[f64],
    channels: usize,
    rate: u32,
    gain_db: f64,
    goal_lufs: f64,
    settings: &Settings,
) -> (Vec<f32>, Outcome) {
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
        (out, -to_db(min).min(0.0))
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
    let (_, mut out, g, reduction, loudness) = best.unwrap_or_else(|| {
        let (out, r) = render(gain_db);
        (0.0, out, gain_db, r, f64::NAN)
    });

    let mut peak = to_db(true_peak_linear(&out, channels));
    let mut trim_db = 0.0;
    if peak > ceiling_dbtp {
        trim_db = ceiling_dbtp - peak;
        let factor = 10f64.powf(trim_db / 20.0);
        for s in &mut out {
            *s = (f64::from(*s) * factor) as f32;
        }
        peak = to_db(true_peak_linear(&out, channels));
    }
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

// --- integrated.rs ----------------------------------------------------------------

const ABSOLUTE_GATE: f64 = -70.0;
const RELATIVE_GATE: f64 = -10.0;
const OFFSET: f64 = -0.691;

fn lufs(power: f64) -> f64 {
    if power > 0.0 {
        OFFSET + 10.0 * power.log10()
    } else {
        f64::NEG_INFINITY
    }
}

fn step_start(j: usize, rate: u32) -> usize {
    ((j as u64 * u64::from(rate)) / 10) as usize
}

pub(crate) fn integrated(samples: &[f32], channels: usize, rate: u32) -> Option<f64> {
    let frames = samples.len() / channels;
    let steps = (frames as u64 * 10 / u64::from(rate)) as usize;
    if steps < 4 {
        return None;
    }
    let used = step_start(steps, rate);

    let mut step_energy = vec![0.0f64; steps];
    let filters = k_weighting(rate);
    let mut x = vec![0.0f64; used];
    for ch in 0..channels {
        let weight = channel_weight(channels, ch);
        if weight == 0.0 {
            continue;
        }
        for (i, v) in x.iter_mut().enumerate() {
            *v = f64::from(samples[i * channels + ch]);
        }
        for f in &filters {
            let mut state = [0.0; 2];
            for v in x.iter_mut() {
                *v = f.step(*v, &mut state);
            }
        }
        for (j, e) in step_energy.iter_mut().enumerate() {
            let seg = &x[step_start(j, rate)..step_start(j + 1, rate)];
            *e += weight * seg.iter().map(|v| v * v).sum::<f64>();
        }
    }

    let blocks: Vec<f64> = (0..steps - 3)
        .map(|j| {
            let len = step_start(j + 4, rate) - step_start(j, rate);
            step_energy[j..j + 4].iter().sum::<f64>() / len as f64
        })
        .collect();

    let gated_mean = |threshold: f64| -> Option<f64> {
        let kept: Vec<f64> = blocks
            .iter()
            .copied()
            .filter(|&p| lufs(p) > threshold)
            .collect();
        if kept.is_empty() {
            None
        } else {
            Some(kept.iter().sum::<f64>() / kept.len() as f64)
        }
    };

    let absolute_mean = gated_mean(ABSOLUTE_GATE)?;
    let relative = lufs(absolute_mean) + RELATIVE_GATE;
    let mean = gated_mean(relative.max(ABSOLUTE_GATE))?;
    Some(lufs(mean))
}

// --- true_peak.rs ---------------------------------------------------------------

pub(crate) fn true_peak_linear(samples: &[f32], channels: usize) -> f64 {
    let mut peak = samples
        .iter()
        .fold(0.0f64, |m, &s| m.max(f64::from(s).abs()));
    interpolate(samples, channels, |_, v| peak = peak.max(v));
    peak
}

pub(crate) fn frame_peaks(samples: &[f32], channels: usize) -> Vec<f64> {
    let mut peaks: Vec<f64> = samples
        .chunks_exact(channels)
        .map(|f| f.iter().fold(0.0f64, |m, &s| m.max(f64::from(s).abs())))
        .collect();
    let frames = peaks.len();
    if frames == 0 {
        return peaks;
    }
    interpolate(samples, channels, |w, v| {
        for m in [w.saturating_sub(6), w.saturating_sub(5)] {
            let slot = &mut peaks[m.min(frames - 1)];
            *slot = slot.max(v);
        }
    });
    peaks
}

fn interpolate(samples: &[f32], channels: usize, mut sink: impl FnMut(usize, f64)) {
    let frames = samples.len() / channels;
    let mut padded = vec![0.0f64; frames + 2 * (TAPS - 1)];
    for ch in 0..channels {
        for (i, slot) in padded[TAPS - 1..TAPS - 1 + frames].iter_mut().enumerate() {
            *slot = f64::from(samples[i * channels + ch]);
        }
        for (w, window) in padded.windows(TAPS).enumerate() {
            let mut best = 0.0f64;
            for phase in &PHASES {
                let mut acc = 0.0;
                for (k, c) in phase.iter().enumerate() {
                    acc += c * window[TAPS - 1 - k];
                }
                best = best.max(acc.abs());
            }
            sink(w, best);
        }
    }
}

pub(crate) fn to_db(linear: f64) -> f64 {
    if linear > 0.0 {
        20.0 * linear.log10()
    } else {
        f64::NEG_INFINITY
    }
}
