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
//! `G + loudness(x limited at θ)`. [`Probes`] runs the limiter's envelope
//! on `x` at a grid of thresholds θ (1 dB apart, from the lowest any
//! allowed gain can need up to +6 dBTP; at most [`MAX_PROBES`]) and records
//! per 400 ms block how much power each took off ([`Loss`], filed by the
//! block's loudness before limiting, so that the histogram of the unlimited
//! blocks can be gated as if limited). The power a probe takes off a frame
//! is `1 − g²` of the frame's K-weighted energy (`g` its gain), so the
//! probes share the unlimited signal's K-weighting instead of filtering a
//! limited copy each (five times cheaper; the difference is far inside the
//! tolerance, see [`Probes::feed`]). At the end, the loudness at any gain
//! is the histogram's gated loudness less a probe's loss, interpolated
//! (monotone cubic) between the probes around its θ (above the signal's
//! true peak nothing is limited: no loss). The make-up loop of the
//! whole-utterance stage then runs unchanged on that curve ([`solve`]).
//!
//! A probe whose threshold the peaks have never exceeded is the unlimited
//! signal: it costs nothing, so the probes above the signal's peaks are
//! free.

use crate::integrated::{bounded_len, exact, malformed, sized, BlockMeter, Histogram, Loss};
use crate::limiter::{lookahead_frames, release_coefficient, MARGIN_DB};
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

/// `x.min(cap)` for the probes' loop, where nothing is NaN: a plain
/// comparison, which vectorizes (Wasm's vector `min` propagates NaN and
/// `f64::min` does not, so `min` keeps the loop scalar).
#[inline(always)]
fn at_most(x: f64, cap: f64) -> f64 {
    if x < cap {
        x
    } else {
        cap
    }
}

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

/// The limiter at every threshold of the grid (see the module comment),
/// kept as one array per quantity so that a frame's work over the probes
/// is one straight loop.
///
/// Probe `p` limits a frame when the peak of its window exceeds θ_p, and
/// the thresholds rise with `p`: the probes that have ever limited are a
/// prefix, `0 .. limited`. The others are at rest (their envelope a ring
/// of ones, nothing lost) and are not touched until the peaks reach them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Probes {
    /// θ per probe, linear over the input, rising.
    thresholds: Vec<f64>,
    /// Probes `0 .. limited` have limited at some frame.
    limited: usize,
    /// Per-frame release coefficient and `1 / (L + 1)`.
    release: f64,
    inverse_width: f64,
    /// Per probe: `h` of the previous frame (the limiter's steps 3–4,
    /// [`crate::limiter::Envelope`]).
    prev: Vec<f64>,
    /// The last `L + 1` values of `h`, slot-major: `ring[slot · n + p]`.
    ring: Vec<f64>,
    /// The ring's slot to overwrite next (the same for every probe).
    next: usize,
    /// Per probe: Σ of its ring values.
    sums: Vec<f64>,
    /// Per probe: energy taken off in the current 100 ms step.
    current: Vec<f64>,
    /// Per probe: energy taken off in the last three complete steps.
    recent: Vec<[f64; 3]>,
    losses: Vec<Loss>,
}

impl Probes {
    pub(crate) fn new(rate: u32, settings: &Settings) -> Self {
        let thresholds: Vec<f64> = grid(settings)
            .into_iter()
            .map(|db| 10f64.powf(db / 20.0))
            .collect();
        let n = thresholds.len();
        let width = lookahead_frames(rate) + 1;
        Probes {
            limited: 0,
            release: release_coefficient(rate),
            inverse_width: 1.0 / width as f64,
            prev: vec![1.0; n],
            ring: vec![1.0; width * n],
            next: 0,
            sums: vec![width as f64; n],
            current: vec![0.0; n],
            recent: vec![[0.0; 3]; n],
            losses: vec![Loss::default(); n],
            thresholds,
        }
    }

    /// The lowest threshold (linear over the input): peaks at or below it
    /// leave every probe as it is.
    pub(crate) fn lowest(&self) -> f64 {
        self.thresholds.first().copied().unwrap_or(f64::INFINITY)
    }

    /// Feed one frame (given back by the detector with its window's
    /// largest peak) to the unlimited `meter` and `histogram`, and to
    /// every probe.
    ///
    /// A probe does not filter its own limited signal: the energy its
    /// limiter takes off a frame is `(1 − g²)` of the frame's K-weighted
    /// energy, `g` being the probe's gain. (Exact for a gain that holds
    /// still over the K-filter's memory; the limiter's gain moves at most
    /// `1/(L + 1)` of its depth per frame, and the difference this makes
    /// is measured by `makeup_model_matches_real_limiting`: within
    /// 0.02 LU of limiting the whole signal and metering it, as with a
    /// K-filter per probe, at a fraction of the cost.)
    pub(crate) fn feed(
        &mut self,
        frame: &[f32],
        largest_peak: f64,
        meter: &mut BlockMeter,
        histogram: &mut Histogram,
    ) {
        // The meter sees every frame the probes see: before its first, the
        // rings are not filled yet.
        let first_frame = meter.frames() == 0;
        let fed = meter.feed_frame(frame);
        let n = self.thresholds.len();
        while self.limited < n && largest_peak > self.thresholds[self.limited] {
            self.limited += 1;
        }
        let k = self.limited;
        // One division for all probes (their gains need not match the
        // applying pass's to the last bit, unlike its own).
        let inverse = 1.0 / largest_peak;
        let slot = self.next * n;
        if first_frame {
            // The frames before the first count as the first (as in the
            // limiter's envelope).
            let width = self.ring.len() / n.max(1);
            for p in 0..k {
                let h = (self.thresholds[p] * inverse).min(1.0);
                self.prev[p] = h;
                for s in 0..width {
                    self.ring[s * n + p] = h;
                }
                self.sums[p] = h * width as f64;
            }
        }
        let (release, inverse_width, energy) = (self.release, self.inverse_width, fed.energy);
        let ring = &mut self.ring[slot..slot + k];
        for ((((&theta, prev), held), sum), current) in self.thresholds[..k]
            .iter()
            .zip(&mut self.prev[..k])
            .zip(ring)
            .zip(&mut self.sums[..k])
            .zip(&mut self.current[..k])
        {
            // Steps 2–4 of the limiter's envelope, then the energy lost.
            let m = at_most(theta * inverse, 1.0);
            let h = at_most(m, 1.0 - (1.0 - *prev) * release);
            *prev = h;
            *sum += h - *held;
            *held = h;
            let g = at_most(*sum * inverse_width, 1.0);
            *current += (1.0 - g * g) * energy;
        }
        self.next += 1;
        if self.next * n == self.ring.len() {
            self.next = 0;
        }
        if let Some(block) = fed.block {
            histogram.add(block.power);
        }
        if !fed.step {
            return;
        }
        for ((current, recent), loss) in self.current[..k]
            .iter_mut()
            .zip(&mut self.recent[..k])
            .zip(&mut self.losses[..k])
        {
            let [a, b, c] = *recent;
            if let Some(block) = fed.block {
                let lost = (a + b + c + *current) / block.frames;
                if lost > 0.0 {
                    loss.add(block.power, lost);
                }
            }
            *recent = [b, c, *current];
            *current = 0.0;
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
            .thresholds
            .iter()
            .zip(&self.losses)
            .map(|(&t, loss)| (to_db(t), Some(loss)))
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
        let limited = self.limited;
        self.losses
            .iter_mut()
            .enumerate()
            .map(move |(p, loss)| (loss, p < limited))
    }

    /// The probes that have limited carry their envelope, step energies
    /// and losses; the rest are at rest and carry nothing.
    pub(crate) fn write(&self, mut w: Writer) -> Writer {
        let (n, k) = (self.thresholds.len(), self.limited);
        w = w
            .u64(k as u64)
            .u64(self.next as u64)
            .f64s(&self.prev[..k])
            .f64s(&self.sums[..k])
            .f64s(&self.current[..k]);
        let ring: Vec<f64> = self
            .ring
            .chunks_exact(n)
            .flat_map(|slot| &slot[..k])
            .copied()
            .collect();
        w = w.f64s(&ring);
        for p in 0..k {
            w = w.f64s(&self.recent[p]);
            w = self.losses[p].write(w);
        }
        w
    }

    /// Read what [`Probes::write`] wrote.
    pub(crate) fn read(r: &mut Reader, rate: u32, settings: &Settings) -> Result<Self, StageError> {
        let mut probes = Probes::new(rate, settings);
        let n = probes.thresholds.len();
        let width = probes.ring.len() / n.max(1);
        let k = bounded_len(r, n, "probes")?;
        probes.limited = k;
        probes.next = r.u64()? as usize;
        if probes.next >= width {
            return Err(malformed("probes"));
        }
        probes.prev[..k].copy_from_slice(&sized(r.f64s()?, k, "probe envelopes")?);
        probes.sums[..k].copy_from_slice(&sized(r.f64s()?, k, "probe sums")?);
        probes.current[..k].copy_from_slice(&sized(r.f64s()?, k, "probe steps")?);
        let ring = sized(r.f64s()?, k * width, "probe rings")?;
        for (slot, held) in probes
            .ring
            .chunks_exact_mut(n)
            .zip(ring.chunks_exact(k.max(1)))
        {
            slot[..k].copy_from_slice(&held[..k]);
        }
        for p in 0..k {
            probes.recent[p] = exact(r.f64s()?, "probe steps")?;
            probes.losses[p] = Loss::read(r)?;
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
