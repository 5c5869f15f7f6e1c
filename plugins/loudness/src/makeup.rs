//! Make-up gain for the limiter, decided in the measuring pass.
//!
//! The limiter costs a little loudness, so the static gain in front of it
//! must be a bit more than `target − measured`. How much more depends on
//! how much the limiter takes off at that gain, which a whole-utterance
//! stage could try out (limit, measure, raise the gain, limit again). A
//! block stage sees the audio only twice, the second time to apply, so the
//! measuring pass tries every plausible setting at once instead:
//!
//! At a static gain `G` (dB), the limiter brings the frame peaks of
//! `G·x` down to the threshold `T` (ceiling − margin); that is the same
//! envelope as bringing the peaks of `x` down to `θ = T − G`, and the
//! output is `G·(x·envelope_θ)`. So the loudness after gain and limiter is
//! `G + loudness(x limited at θ)`. [`Probes`] runs the limiter on `x` at a
//! grid of thresholds θ (1 dB apart, from the lowest any allowed gain can
//! need up to +6 dBTP; at most [`MAX_PROBES`]), each with its own
//! K-weighting, and records per 400 ms block how much power it took off
//! ([`Loss`], filed by the block's loudness before limiting, so that the
//! histogram of the unlimited blocks can be gated as if limited). At the
//! end, the loudness at any gain is the histogram's gated loudness less a
//! probe's loss, interpolated (monotone cubic) between the probes around
//! its θ (above the signal's true peak nothing is limited: no loss). The
//! make-up loop of the whole-utterance stage then runs unchanged on that
//! curve ([`solve`]).
//!
//! A probe whose envelope has never left 1 is the unlimited signal: it
//! carries no meter of its own until it first limits, so the probes above
//! the signal's peaks cost nothing.

use crate::integrated::{BlockMeter, Histogram, Loss};
use crate::limiter::{Envelope, MARGIN_DB};
use crate::true_peak::to_db;
use crate::Settings;
use voxpipe_plugin_audio::state::{Reader, Writer};
use voxpipe_plugin_audio::StageError;

/// Make-up rounds after the first limiting pass.
pub(crate) const MAX_ROUNDS: usize = 4;
/// Least loudness (dB) a make-up round must gain per dB of extra gain to
/// be kept; also the smallest slope the secant step assumes.
pub(crate) const MIN_SLOPE: f64 = 0.3;
/// Accept the result once this close to the target (LU).
pub(crate) const TOLERANCE_LU: f64 = 0.1;
/// Spacing of the probes' thresholds, dB. The loudness a limiter costs is
/// a smooth function of its threshold; interpolated over 1 dB it is off by
/// at most about 0.02 LU (`makeup_model_matches_real_limiting`), well
/// inside the make-up loop's ±0.1 LU tolerance.
const PROBE_STEP_DB: f64 = 1.0;
/// Highest probe threshold, dBTP: above the true peak of any signal in
/// [−1, 1] this stage is likely to see (full-scale fs/4 reads +3 dBTP).
const PROBE_TOP_DBTP: f64 = 6.0;
/// Most probes; wider ranges (large `max_gain_db`) space them further.
pub(crate) const MAX_PROBES: usize = 48;

/// The limiter threshold after the gain (the peak target), linear.
pub(crate) fn threshold(settings: &Settings) -> f64 {
    10f64.powf((settings.true_peak_dbtp - MARGIN_DB) / 20.0)
}

/// The probes' thresholds over the input, dB, lowest first: from the one
/// the largest gain needs up to [`PROBE_TOP_DBTP`].
fn grid(settings: &Settings) -> Vec<f64> {
    let low = to_db(threshold(settings)) - settings.max_gain_db;
    let span = PROBE_TOP_DBTP - low;
    let n = ((span / PROBE_STEP_DB).ceil() as usize + 1).min(MAX_PROBES);
    (0..n)
        .map(|k| low + span * k as f64 / (n - 1) as f64)
        .collect()
}

/// One trial threshold.
#[derive(Debug, Clone, PartialEq)]
struct Probe {
    /// θ, linear over the input.
    threshold: f64,
    envelope: Envelope,
    /// The limited signal's meter; `None` while the envelope has stayed at
    /// 1 (the limited signal is still the unlimited one).
    meter: Option<BlockMeter>,
    loss: Loss,
}

/// The limiter at every threshold of the grid (see the module comment).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Probes {
    rate: u32,
    channels: usize,
    probes: Vec<Probe>,
    /// Scratch: each probe's gain for the frame at hand.
    gains: Vec<f64>,
}

impl Probes {
    pub(crate) fn new(rate: u32, channels: usize, settings: &Settings) -> Self {
        let probes: Vec<Probe> = grid(settings)
            .into_iter()
            .map(|db| Probe {
                threshold: 10f64.powf(db / 20.0),
                envelope: Envelope::new(rate),
                meter: None,
                loss: Loss::default(),
            })
            .collect();
        Probes {
            rate,
            channels,
            gains: vec![1.0; probes.len()],
            probes,
        }
    }

    /// Feed one frame (given back by the detector with its window's
    /// largest peak) to every probe and to the unlimited `meter` and
    /// `histogram`.
    pub(crate) fn feed(
        &mut self,
        frame: &[f32],
        largest_peak: f64,
        meter: &mut BlockMeter,
        histogram: &mut Histogram,
    ) {
        // One division for all probes (their gains need not match the
        // applying pass's to the last bit, unlike its own).
        let inverse = 1.0 / largest_peak;
        for (probe, gain) in self.probes.iter_mut().zip(&mut self.gains) {
            let m = if largest_peak > probe.threshold {
                probe.threshold * inverse
            } else {
                1.0
            };
            if m == 1.0 && probe.meter.is_none() && probe.envelope.started() {
                // At rest, and staying so: a ring of ones turns into itself.
                *gain = 1.0;
                continue;
            }
            *gain = probe.envelope.gain(m);
            if probe.meter.is_none() && probe.envelope.moved() {
                // Up to this frame the limited signal was the unlimited one.
                probe.meter = Some(meter.clone());
            }
        }
        let Some(power) = meter.feed(frame, 1.0) else {
            for (probe, &gain) in self.probes.iter_mut().zip(&self.gains) {
                if let Some(m) = &mut probe.meter {
                    m.feed(frame, gain);
                }
            }
            return;
        };
        histogram.add(power);
        for (probe, &gain) in self.probes.iter_mut().zip(&self.gains) {
            if let Some(limited) = probe.meter.as_mut().and_then(|m| m.feed(frame, gain)) {
                probe.loss.add(power, limited);
            }
        }
    }

    /// The loudness (LUFS) after a gain of `gain_db` and the limiter at
    /// `settings`' ceiling, from the histogram of the unlimited blocks and
    /// the probes around the threshold; `peak` is the input's true peak
    /// (linear): at thresholds above it nothing is limited.
    pub(crate) fn loudness(
        &self,
        histogram: &Histogram,
        peak: f64,
        gain_db: f64,
        settings: &Settings,
    ) -> Option<f64> {
        let theta = to_db(threshold(settings)) - gain_db;
        let peak_db = to_db(peak);
        // Nodes of the curve: (θ dB, loss), lowest θ first, ending with
        // the peak, where the loss is nil.
        let mut nodes: Vec<(f64, Option<&Loss>)> = self
            .probes
            .iter()
            .map(|p| (to_db(p.threshold), Some(&p.loss)))
            .filter(|&(db, _)| db < peak_db)
            .collect();
        nodes.push((peak_db, None));
        let i = match nodes.iter().position(|&(db, _)| db > theta) {
            None => return histogram.loudness(gain_db, None),
            Some(0) => return histogram.loudness(gain_db, nodes[0].1),
            Some(i) => i - 1,
        };
        // Monotone cubic (Fritsch–Carlson) through the nodes around θ: the
        // loudness rises with θ, and a straight line between probes would
        // cut the curve's bend by up to a few hundredths of an LU.
        let at = |k: usize| histogram.loudness(gain_db, nodes[k].1);
        let (x0, x1) = (nodes[i].0, nodes[i + 1].0);
        let (y0, y1) = (at(i)?, at(i + 1)?);
        let secant = (y1 - y0) / (x1 - x0);
        let before = match i.checked_sub(1) {
            Some(k) => Some((y0 - at(k)?) / (x0 - nodes[k].0)),
            None => None,
        };
        let after = match nodes.get(i + 2) {
            Some(&(x2, _)) => Some((at(i + 2)? - y1) / (x2 - x1)),
            None => None,
        };
        let slope = |outer: Option<f64>, h_outer: f64| match outer {
            Some(d) if d * secant > 0.0 => {
                let h = x1 - x0;
                let (w1, w2) = (2.0 * h + h_outer, h + 2.0 * h_outer);
                (w1 + w2) / (w1 / d + w2 / secant)
            }
            Some(_) => 0.0,
            None => secant,
        };
        let d0 = slope(before, i.checked_sub(1).map_or(0.0, |k| x0 - nodes[k].0));
        let d1 = slope(after, nodes.get(i + 2).map_or(0.0, |&(x2, _)| x2 - x1));
        let h = x1 - x0;
        let t = (theta - x0) / h;
        let (t2, t3) = (t * t, t * t * t);
        Some(
            (2.0 * t3 - 3.0 * t2 + 1.0) * y0
                + (t3 - 2.0 * t2 + t) * h * d0
                + (-2.0 * t3 + 3.0 * t2) * y1
                + (t3 - t2) * h * d1,
        )
    }

    /// The probes' losses, and whether each probe has limited yet.
    #[cfg(test)]
    pub(crate) fn losses_mut(&mut self) -> impl Iterator<Item = (&mut Loss, bool)> {
        self.probes
            .iter_mut()
            .map(|p| (&mut p.loss, p.meter.is_some()))
    }

    pub(crate) fn write(&self, mut w: Writer) -> Writer {
        for p in &self.probes {
            match &p.meter {
                // Untouched: the envelope is at rest (or new) and there is
                // no loss; nothing to carry.
                None => w = w.u8(0),
                Some(m) => {
                    w = p.envelope.write(w.u8(1));
                    w = m.write(w);
                    w = p.loss.write(w);
                }
            }
        }
        w
    }

    /// Read what [`Probes::write`] wrote; `started`: whether any frame has
    /// gone through the probes yet.
    pub(crate) fn read(
        r: &mut Reader,
        rate: u32,
        channels: usize,
        settings: &Settings,
        started: bool,
    ) -> Result<Self, StageError> {
        let mut probes = Probes::new(rate, channels, settings);
        for p in &mut probes.probes {
            match r.u8()? {
                0 if started => p.envelope = Envelope::at_rest(rate),
                0 => {}
                _ => {
                    p.envelope = Envelope::read(r, rate)?;
                    p.meter = Some(BlockMeter::read(r, rate, channels)?);
                    p.loss = Loss::read(r)?;
                }
            }
        }
        Ok(probes)
    }
}

/// The make-up loop of the whole-utterance stage, on the loudness curve
/// `loudness_at(gain_db)` (from [`Probes::loudness`]): start at `gain_db`
/// (what the gain would be without the ceiling) and raise it by the
/// shortfall from `goal_lufs` divided by the observed slope (loudness
/// gained per dB of gain, a secant over the last two rounds, clamped to
/// [`MIN_SLOPE`]..=1), never above `max_gain_db`, at most [`MAX_ROUNDS`]
/// times, until within [`TOLERANCE_LU`]. A round is kept only if it is
/// closer to the goal and, if it raised the gain, the loudness rose by at
/// least [`MIN_SLOPE`] dB per dB; otherwise the loop stops with the
/// previous one (so a signal whose loudness *is* its peaks ends up at the
/// ceiling, below the target, as without the limiter, instead of being
/// crushed). Returns the gain and the loudness the curve gives for it.
pub(crate) fn solve(
    loudness_at: impl Fn(f64) -> Option<f64>,
    gain_db: f64,
    goal_lufs: f64,
    max_gain_db: f64,
) -> (f64, Option<f64>) {
    let mut g = gain_db;
    let mut prev: Option<(f64, f64)> = None; // (gain, loudness) of the last round
    let mut best: Option<(f64, f64, f64)> = None; // (error, gain, loudness) kept
    for _ in 0..=MAX_ROUNDS {
        let Some(l) = loudness_at(g) else {
            break;
        };
        let err = (l - goal_lufs).abs();
        if let Some((b_err, b_g, b_l)) = best {
            // Past MIN_SLOPE the gain only feeds the limiter (audio whose
            // loudness *is* its peaks, like a click train or a full-scale
            // square), which would turn it into a brick-wall compressor
            // for nothing.
            let worth = g <= b_g || l - b_l >= MIN_SLOPE * (g - b_g);
            if err >= b_err || !worth {
                break;
            }
        }
        best = Some((err, g, l));
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
    match best {
        Some((_, g, l)) => (g, Some(l)),
        None => (gain_db, None),
    }
}
