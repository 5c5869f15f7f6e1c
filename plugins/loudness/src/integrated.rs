//! Gated integrated loudness of ITU-R BS.1770-4 (as used by EBU R128),
//! measured block by block with a bounded memory.
//!
//! The K-weighted signal is cut into 400 ms blocks overlapping by 75 %
//! (a new block every 100 ms). A block's loudness is
//! `-0.691 + 10 log10(Σ_ch G_ch · mean_square_ch)`. Blocks at or below
//! −70 LUFS are dropped (absolute gate), then blocks at or below the mean of
//! the survivors minus 10 LU (relative gate); the integrated loudness is that
//! same formula over the mean power of the remaining blocks.
//!
//! Only complete blocks are used: a trailing partial block is ignored, as
//! BS.1770 prescribes (pyloudnorm may round up and count one more, partial,
//! block, which only matters for very short signals). Block boundaries fall
//! on frame `floor(j · rate / 10)`, so rates not divisible by 10 (11025 Hz)
//! still get exact 100 ms steps on average.
//!
//! [`BlockMeter`] carries the filter memory and the last three 100 ms steps
//! from one block of audio to the next and yields each 400 ms block's power
//! as it completes, computed exactly as a whole-buffer meter would. The
//! gates need every block's power, and an utterance of hours has tens of
//! thousands of blocks, so they are kept in a [`Histogram`] of block
//! loudness instead: [`BIN_LU`] wide bins, each with its block count and
//! the exact sum of their powers. The means are then exact; only a block
//! in the one bin that a gate falls into can land on the wrong side of it,
//! and that bin goes with the side its mean lies on (exact again when its
//! blocks are alike, as in a steady tone). The bins span [`FLOOR_LUFS`] to
//! [`TOP_LUFS`], so the histogram never holds more than [`BINS`] of them
//! however long the utterance.

use crate::kweight::{k_weighting, Biquad};
use voxpipe_plugin_audio::state::{Reader, Writer};
use voxpipe_plugin_audio::StageError;

/// Absolute gate (LUFS).
const ABSOLUTE_GATE: f64 = -70.0;
/// Relative gate (LU below the absolutely-gated mean).
const RELATIVE_GATE: f64 = -10.0;
/// Loudness offset of BS.1770: cancels the K-filter gain at 1 kHz.
const OFFSET: f64 = -0.691;

/// Width of a histogram bin, LU. 0.01 LU puts a block misjudged by a gate
/// at most 0.01 LU from it, far below what a listener (or EBU Tech 3341's
/// ±0.1 LU) can tell.
pub(crate) const BIN_LU: f64 = 0.01;
/// Quietest block the histogram keeps, LUFS: the absolute gate seen from
/// before the largest gain this stage may apply (`max_gain_db` ≤ 60), so
/// the loudness *after* any gain can still be gated from the histogram.
pub(crate) const FLOOR_LUFS: f64 = -130.0;
/// Blocks louder than this share the top bin (only out-of-range input can
/// get there: full-scale noise on eight channels is about +12 LUFS); a
/// gate never falls into it, so nothing is lost.
pub(crate) const TOP_LUFS: f64 = 30.0;
/// Number of histogram bins: the bound on its size.
pub(crate) const BINS: usize = ((TOP_LUFS - FLOOR_LUFS) / BIN_LU) as usize;

/// BS.1770-4 channel weight. Positions follow the WAV/SMPTE order used by
/// libebur128: L, R, C, LFE, Ls, Rs for 6 channels; L, R, C, Ls, Rs for 5;
/// L, R, Ls, Rs for 4. The LFE is excluded (weight 0), surrounds get 1.41.
/// Channels beyond the sixth are weighted 1.0 (no standard position).
pub(crate) fn channel_weight(channels: usize, index: usize) -> f64 {
    match (channels, index) {
        (4, 2 | 3) => 1.41,
        (5, 3 | 4) => 1.41,
        (c, 3) if c >= 6 => 0.0,
        (c, 4 | 5) if c >= 6 => 1.41,
        _ => 1.0,
    }
}

/// Power (not dB) to loudness in LUFS.
pub(crate) fn lufs(power: f64) -> f64 {
    if power > 0.0 {
        OFFSET + 10.0 * power.log10()
    } else {
        f64::NEG_INFINITY
    }
}

/// First frame of the 100 ms step `j`.
fn step_start(j: u64, rate: u32) -> u64 {
    // u64: j·rate cannot overflow for any realistic length.
    j * u64::from(rate) / 10
}

/// What one frame did to a [`BlockMeter`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Fed {
    /// The frame's K-weighted energy, channels weighted: `Σ_ch G_ch · y_ch²`.
    pub(crate) energy: f64,
    /// Whether the frame completed a 100 ms step.
    pub(crate) step: bool,
    /// The 400 ms block it completed, if it completed one.
    pub(crate) block: Option<Block>,
}

/// A complete 400 ms block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Block {
    /// Mean power (channels weighted).
    pub(crate) power: f64,
    /// Its length in frames (the divisor of that mean).
    pub(crate) frames: f64,
}

/// K-weighting and 400 ms block powers of one signal, fed frame by frame.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BlockMeter {
    rate: u32,
    filters: [Biquad; 2],
    weights: Vec<f64>,
    /// Filter memory, per channel: pre-filter, then RLB.
    memory: Vec<[[f64; 2]; 2]>,
    /// Frames fed so far.
    frames: u64,
    /// Complete 100 ms steps so far.
    steps: u64,
    /// The frame count at which the current step completes (derived from
    /// `steps`, kept to save a division per frame).
    step_end: u64,
    /// Σ y² of the current step, per channel (summed per channel first,
    /// then weighted, the way a whole-buffer meter adds them up).
    current: Vec<f64>,
    /// Weighted energies of the last three complete steps, oldest first.
    recent: [f64; 3],
}

impl BlockMeter {
    pub(crate) fn new(rate: u32, channels: usize) -> Self {
        BlockMeter {
            rate,
            filters: k_weighting(rate),
            weights: (0..channels).map(|c| channel_weight(channels, c)).collect(),
            memory: vec![[[0.0; 2]; 2]; channels],
            frames: 0,
            steps: 0,
            step_end: step_start(1, rate),
            current: vec![0.0; channels],
            recent: [0.0; 3],
        }
    }

    /// Frames fed so far.
    pub(crate) fn frames(&self) -> u64 {
        self.frames
    }

    /// Feed one frame; returns the mean power of the 400 ms block this
    /// frame completes, if it completes one.
    pub(crate) fn feed(&mut self, frame: &[f32]) -> Option<f64> {
        self.feed_frame(frame).block.map(|b| b.power)
    }

    /// Feed one frame and say what it did: its own K-weighted energy, and
    /// whether it completed a 100 ms step or a 400 ms block.
    pub(crate) fn feed_frame(&mut self, frame: &[f32]) -> Fed {
        let mut frame_energy = 0.0;
        for (((&s, memory), sum), &weight) in frame
            .iter()
            .zip(&mut self.memory)
            .zip(&mut self.current)
            .zip(&self.weights)
        {
            let [pre, rlb] = &self.filters;
            let y = rlb.step(pre.step(f64::from(s), &mut memory[0]), &mut memory[1]);
            *sum += y * y;
            frame_energy += weight * y * y;
        }
        self.frames += 1;
        if self.frames < self.step_end {
            return Fed {
                energy: frame_energy,
                step: false,
                block: None,
            };
        }
        let mut energy = 0.0;
        for (sum, &weight) in self.current.iter_mut().zip(&self.weights) {
            // A channel of weight 0 (the LFE) is filtered but not counted.
            if weight != 0.0 {
                energy += weight * *sum;
            }
            *sum = 0.0;
        }
        let j = self.steps;
        self.steps += 1;
        self.step_end = step_start(self.steps + 1, self.rate);
        let [a, b, c] = self.recent;
        self.recent = [b, c, energy];
        let block = (j >= 3).then(|| {
            let frames = (step_start(j + 1, self.rate) - step_start(j - 3, self.rate)) as f64;
            Block {
                power: (a + b + c + energy) / frames,
                frames,
            }
        });
        Fed {
            energy: frame_energy,
            step: true,
            block,
        }
    }

    pub(crate) fn write(&self, mut w: Writer) -> Writer {
        w = w
            .u64(self.frames)
            .u64(self.steps)
            .f64s(&self.recent)
            .f64s(&self.current);
        let memory: Vec<f64> = self.memory.iter().flatten().flatten().copied().collect();
        w.f64s(&memory)
    }

    pub(crate) fn read(r: &mut Reader, rate: u32, channels: usize) -> Result<Self, StageError> {
        let mut m = BlockMeter::new(rate, channels);
        m.frames = r.u64()?;
        m.steps = r.u64()?;
        m.step_end = step_start(m.steps + 1, rate);
        m.recent = exact(r.f64s()?, "meter steps")?;
        m.current = sized(r.f64s()?, channels, "meter sums")?;
        let memory = sized(r.f64s()?, channels * 4, "filter memory")?;
        for (slot, v) in m.memory.iter_mut().zip(memory.chunks_exact(4)) {
            *slot = [[v[0], v[1]], [v[2], v[3]]];
        }
        Ok(m)
    }
}

/// A list read back from a state must have the length it was written with.
pub(crate) fn sized<T>(v: Vec<T>, len: usize, what: &str) -> Result<Vec<T>, StageError> {
    if v.len() == len {
        Ok(v)
    } else {
        Err(StageError::PluginFault(format!(
            "the carried state's {what} hold {} values, not {len}",
            v.len()
        )))
    }
}

/// [`sized`] into an array.
pub(crate) fn exact<const N: usize>(v: Vec<f64>, what: &str) -> Result<[f64; N], StageError> {
    let v = sized(v, N, what)?;
    Ok(v.try_into().unwrap_or([0.0; N]))
}

/// Bin of a block of loudness `l`, if it is above the floor.
fn bin(l: f64, width: f64, bins: usize) -> Option<usize> {
    (l > FLOOR_LUFS).then(|| (((l - FLOOR_LUFS) / width) as usize).min(bins - 1))
}

/// Block powers by loudness (see the module comment): sparse, sorted by
/// bin, at most [`BINS`] entries.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Histogram {
    /// (bin, blocks, Σ power).
    bins: Vec<(usize, u64, f64)>,
}

impl Histogram {
    /// Count a block of mean power `power` (blocks below [`FLOOR_LUFS`] are
    /// below every gate this stage applies and are left out).
    pub(crate) fn add(&mut self, power: f64) {
        let Some(b) = bin(lufs(power), BIN_LU, BINS) else {
            return;
        };
        match self.bins.binary_search_by_key(&b, |e| e.0) {
            Ok(i) => {
                self.bins[i].1 += 1;
                self.bins[i].2 += power;
            }
            Err(i) => self.bins.insert(i, (b, 1, power)),
        }
    }

    /// Number of bins in use.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.bins.len()
    }

    /// Blocks louder than `threshold` LUFS once `loss` is taken off them:
    /// their count and Σ power.
    ///
    /// The loss is known per bin of the [`Loss`] only (which may span
    /// several of the histogram's); within one, every block is taken to
    /// have lost the same share of its power, so it passes the
    /// gate if its loudness before the loss was above the gate plus that
    /// share in dB. (Exact when the limiter takes off alike from alike
    /// blocks; without it, always exact.)
    fn above(&self, threshold: f64, loss: Option<&Loss>) -> (u64, f64) {
        let mut kept = (0, 0.0);
        let key = |b: usize| loss.map_or(b, |l| l.key(b));
        for group in self.bins.chunk_by(|a, b| key(a.0) == key(b.0)) {
            let lost = loss.map_or(0.0, |l| l.at(key(group[0].0)));
            let share = if lost == 0.0 {
                1.0
            } else {
                let before: f64 = group.iter().map(|e| e.2).sum();
                (before - lost) / before
            };
            if share <= 0.0 {
                continue;
            }
            let gate = threshold - 10.0 * share.log10();
            for &(b, n, sum) in group {
                let low = FLOOR_LUFS + b as f64 * BIN_LU;
                // The bin the gate falls into goes with its mean.
                if low >= gate || (low + BIN_LU > gate && lufs(sum / n as f64) > gate) {
                    kept.0 += n;
                    kept.1 += sum * share;
                }
            }
        }
        kept
    }

    /// Gated integrated loudness (LUFS) after a gain of `gain_db` and with
    /// `loss` taken off the blocks' power (see [`Histogram::above`]), or
    /// `None` when no block passes the absolute gate.
    pub(crate) fn loudness(&self, gain_db: f64, loss: Option<&Loss>) -> Option<f64> {
        let kept = |threshold: f64| {
            let (n, sum) = self.above(threshold, loss);
            (n > 0).then(|| sum / n as f64)
        };
        // Gates apply to the loudness after the gain: −70 LUFS there is
        // −70 − gain here.
        let absolute = ABSOLUTE_GATE - gain_db;
        let relative = lufs(kept(absolute)?) + RELATIVE_GATE;
        // The relative gate can lie below the absolute one (the mean is
        // only known to be above it), so a block must pass both.
        Some(lufs(kept(relative.max(absolute))?) + gain_db)
    }

    pub(crate) fn write(&self, mut w: Writer) -> Writer {
        w = w.u64(self.bins.len() as u64);
        for &(b, n, sum) in &self.bins {
            // The bin (< 2^14) and the block count (< 2^50: ten blocks a
            // second for three million years) share one u64.
            w = w.u64((n << 14) | b as u64).f64(sum);
        }
        w
    }

    pub(crate) fn read(r: &mut Reader) -> Result<Self, StageError> {
        let len = bounded_len(r, BINS, "loudness histogram")?;
        let mut bins = Vec::with_capacity(len);
        for _ in 0..len {
            let key = r.u64()?;
            bins.push(((key & 0x3fff) as usize, key >> 14, r.f64()?));
        }
        if bins.windows(2).any(|w| w[0].0 >= w[1].0) || bins.last().is_some_and(|e| e.0 >= BINS) {
            return Err(malformed("loudness histogram"));
        }
        Ok(Histogram { bins })
    }
}

/// A list length read back from a state, refused above `max`.
pub(crate) fn bounded_len(r: &mut Reader, max: usize, what: &str) -> Result<usize, StageError> {
    let len = r.u64()?;
    if len > max as u64 {
        return Err(malformed(what));
    }
    Ok(len as usize)
}

pub(crate) fn malformed(what: &str) -> StageError {
    StageError::PluginFault(format!("the carried {what} is malformed"))
}

/// Most bins a [`Loss`] keeps.
pub(crate) const LOSS_BINS: usize = 256;

/// Power a limiter took off blocks, by the loudness the blocks had before
/// it, so that the gates can sort the limited blocks by the histogram's
/// bins ([`Histogram::above`]). Its bins start as the histogram's and
/// double in width (pairs merged) whenever there would be more than
/// [`LOSS_BINS`]: a few minutes of speech keep the histogram's resolution,
/// hours of it a coarser one, in bounded space either way. Sparse, sorted.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Loss {
    /// A bin holds the histogram's bins `b` with `b >> shift` equal to its
    /// key.
    shift: u32,
    /// (key, power lost).
    bins: Vec<(usize, f64)>,
}

impl Loss {
    /// Record that a block of mean power `before` lost `lost` of it to
    /// the limiter.
    pub(crate) fn add(&mut self, before: f64, lost: f64) {
        let Some(b) = bin(lufs(before), BIN_LU, BINS) else {
            return;
        };
        let key = b >> self.shift;
        match self.bins.binary_search_by_key(&key, |e| e.0) {
            Ok(i) => self.bins[i].1 += lost,
            Err(i) => self.bins.insert(i, (key, lost)),
        }
        while self.bins.len() > LOSS_BINS {
            self.shift += 1;
            let mut merged: Vec<(usize, f64)> = Vec::with_capacity(self.bins.len());
            for &(key, lost) in &self.bins {
                match merged.last_mut() {
                    Some(last) if last.0 == key >> 1 => last.1 += lost,
                    _ => merged.push((key >> 1, lost)),
                }
            }
            self.bins = merged;
        }
    }

    /// Number of bins in use.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.bins.len()
    }

    /// The key of histogram bin `b`.
    fn key(&self, b: usize) -> usize {
        b >> self.shift
    }

    /// Power lost by the blocks of the bin with key `key`.
    fn at(&self, key: usize) -> f64 {
        self.bins
            .binary_search_by_key(&key, |e| e.0)
            .map_or(0.0, |i| self.bins[i].1)
    }

    pub(crate) fn write(&self, mut w: Writer) -> Writer {
        w = w.u64(u64::from(self.shift)).u64(self.bins.len() as u64);
        for &(key, lost) in &self.bins {
            w = w.u64(key as u64).f64(lost);
        }
        w
    }

    pub(crate) fn read(r: &mut Reader) -> Result<Self, StageError> {
        let shift = r.u64()?;
        let len = bounded_len(r, LOSS_BINS, "limiter losses")?;
        let mut bins = Vec::with_capacity(len);
        for _ in 0..len {
            bins.push((r.u64()? as usize, r.f64()?));
        }
        if shift >= usize::BITS.into()
            || bins.windows(2).any(|w| w[0].0 >= w[1].0)
            || bins.last().is_some_and(|e| e.0 >= BINS)
        {
            return Err(malformed("limiter losses"));
        }
        Ok(Loss {
            shift: shift as u32,
            bins,
        })
    }
}

/// Integrated loudness of validated interleaved audio, or `None` when it is
/// undefined (shorter than one 400 ms block, or nothing above the absolute
/// gate): the stage's own meter, run over a whole buffer.
pub(crate) fn integrated(samples: &[f32], channels: usize, rate: u32) -> Option<f64> {
    let mut meter = BlockMeter::new(rate, channels);
    let mut histogram = Histogram::default();
    for frame in samples.chunks_exact(channels) {
        if let Some(power) = meter.feed(frame) {
            histogram.add(power);
        }
    }
    histogram.loudness(0.0, None)
}
