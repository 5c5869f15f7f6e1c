//! The two passes over an utterance's blocks and the state carried between
//! the calls.
//!
//! Pass 0 (measuring) feeds every frame through the limiter's detector
//! (which settles the true peak), the K-weighting meter and, with the
//! limiter on, the make-up probes; its last call decides the [`Plan`].
//! Pass 1 (applying) starts from that plan: nothing, one gain, or the gain
//! and the limiter, which holds back its look-ahead until the last block.
//!
//! State layout (the SDK's `state` encoding): a tag, the rate and channel
//! count of the utterance, then the pass's own fields. Its size depends on
//! the rate, the channels and the settings, never on the utterance's
//! length (the largest possible is measured in the tests).

use crate::integrated::{malformed, BlockMeter, Histogram};
use crate::limiter::{required, Envelope, Lookahead};
use crate::makeup::{solve, threshold, Probes};
use crate::true_peak::to_db;
use crate::{plan_gain, Limit, Settings};
use voxpipe_plugin_audio::state::{Reader, Writer};
use voxpipe_plugin_audio::{log, Audio, BlockOutput, StageError};

const MEASURING: u8 = 1;
const APPLYING: u8 = 2;

/// Rate and channels of a block, checked against those of the state.
fn header(r: &mut Reader, tag: u8, audio: &Audio) -> Result<(), StageError> {
    if r.u8()? != tag {
        return Err(StageError::PluginFault(
            "the carried state is not this pass's".into(),
        ));
    }
    let (rate, channels) = (r.u64()?, r.u64()?);
    if (rate, channels) != (u64::from(audio.sample_rate), u64::from(audio.channels)) {
        return Err(StageError::InvalidInput(format!(
            "{} Hz, {} channel(s) in a block of an utterance that began at {rate} Hz, {channels} channel(s)",
            audio.sample_rate, audio.channels
        )));
    }
    Ok(())
}

fn write_header(tag: u8, rate: u32, channels: usize) -> Writer {
    Writer::new()
        .u8(tag)
        .u64(u64::from(rate))
        .u64(channels as u64)
}

/// What pass 0 carries from block to block.
struct Measuring {
    rate: u32,
    channels: usize,
    lookahead: Lookahead,
    meter: BlockMeter,
    histogram: Histogram,
    /// With the limiter on: the make-up probes.
    probes: Option<Probes>,
}

impl Measuring {
    fn new(rate: u32, channels: usize, settings: &Settings) -> Self {
        Measuring {
            rate,
            channels,
            lookahead: Lookahead::new(channels, rate),
            meter: BlockMeter::new(rate, channels),
            histogram: Histogram::default(),
            probes: settings.limiter.then(|| Probes::new(rate, settings)),
        }
    }

    /// Take a block's samples (validated, whole frames).
    fn take(&mut self, samples: &[f32]) {
        let Measuring {
            lookahead,
            meter,
            histogram,
            probes,
            channels,
            ..
        } = self;
        // What the peaks are compared with: the probes' thresholds (the
        // lowest first) and the true peak so far. A window below both
        // changes neither, so the detector need not interpolate it.
        let lowest = probes.as_ref().map_or(f64::INFINITY, Probes::lowest);
        for frame in samples.chunks_exact(*channels) {
            let floor = lowest.min(lookahead.peak());
            lookahead.take(frame, floor, &mut |f, peak| {
                measure_frame(f, peak, meter, histogram, probes)
            });
        }
    }

    /// The utterance has ended: decide what pass 1 does.
    fn finish(mut self, settings: &Settings) -> Plan {
        let Measuring {
            lookahead,
            meter,
            histogram,
            probes,
            ..
        } = &mut self;
        lookahead.finish(&mut |f, peak| measure_frame(f, peak, meter, histogram, probes));
        let Some(loudness) = self.histogram.loudness(0.0, None) else {
            log::info("loudness: undefined (shorter than 400 ms or silent); audio left unchanged");
            return Plan::Unchanged;
        };
        let peak = self.lookahead.peak();
        let peak_db = to_db(peak);
        let plan = plan_gain(loudness, peak_db, settings);
        let (Some(probes), Limit::TruePeak) = (&self.probes, plan.limit) else {
            log::info(&format!(
                "loudness: measured {loudness:.2} LUFS, true peak {peak_db:.2} dBTP; gain {:+.2} dB ({:?})",
                plan.gain_db, plan.limit
            ));
            return Plan::Gain {
                factor: 10f64.powf(plan.gain_db / 20.0),
            };
        };
        // The plan without the ceiling (peak −inf never exceeds it): the
        // gain the limiter must make room for, and the loudness it gives.
        let free = plan_gain(loudness, f64::NEG_INFINITY, settings);
        let (gain_db, expected) = solve(
            |g| probes.loudness(&self.histogram, peak, g, settings),
            free.gain_db,
            loudness + free.gain_db,
            settings.max_gain_db,
        );
        log::info(&format!(
            "loudness: measured {loudness:.2} LUFS, true peak {peak_db:.2} dBTP; gain {:+.2} dB ({:?}) \
             with limiter, make-up {:+.2} dB; expected output {} LUFS",
            gain_db,
            free.limit,
            gain_db - free.gain_db,
            expected.map_or_else(|| "undefined".to_string(), |l| format!("{l:.2}")),
        ));
        let factor = 10f64.powf(gain_db / 20.0);
        Plan::Limit(Box::new(Limiting {
            factor,
            // factor·peak > threshold  ⇔  peak > threshold / factor.
            threshold: threshold(settings) / factor,
            lookahead: Lookahead::new(self.channels, self.rate),
            envelope: Envelope::new(self.rate),
        }))
    }

    fn write(&self) -> Vec<u8> {
        let mut w = write_header(MEASURING, self.rate, self.channels);
        w = self.lookahead.write(w);
        w = self.meter.write(w);
        w = self.histogram.write(w);
        if let Some(p) = &self.probes {
            w = p.write(w);
        }
        w.finish()
    }

    fn read(state: &[u8], audio: &Audio, settings: &Settings) -> Result<Self, StageError> {
        let (rate, channels) = (audio.sample_rate, usize::from(audio.channels));
        let mut r = Reader::new(state);
        header(&mut r, MEASURING, audio)?;
        let lookahead = Lookahead::read(&mut r, channels, rate)?;
        let meter = BlockMeter::read(&mut r, rate, channels)?;
        let histogram = Histogram::read(&mut r)?;
        let probes = if settings.limiter {
            Some(Probes::read(&mut r, rate, settings)?)
        } else {
            None
        };
        r.end()?;
        Ok(Measuring {
            rate,
            channels,
            lookahead,
            meter,
            histogram,
            probes,
        })
    }
}

/// A frame the detector gave back (with its window's largest peak) goes to
/// the meter and, if there are any, the probes.
fn measure_frame(
    frame: &[f32],
    peak: f64,
    meter: &mut BlockMeter,
    histogram: &mut Histogram,
    probes: &mut Option<Probes>,
) {
    match probes {
        Some(p) => p.feed(frame, peak, meter, histogram),
        None => {
            if let Some(power) = meter.feed(frame) {
                histogram.add(power);
            }
        }
    }
}

/// What pass 1 does, decided at the end of pass 0.
enum Plan {
    /// Loudness undefined: the audio passes unchanged.
    Unchanged,
    /// One gain (linear).
    Gain { factor: f64 },
    /// The gain, then the limiter.
    Limit(Box<Limiting>),
}

/// Pass 1's gain and limiter, and what the limiter carries.
struct Limiting {
    /// The gain, linear.
    factor: f64,
    /// The limiter's threshold over the input (before the gain), linear.
    threshold: f64,
    lookahead: Lookahead,
    envelope: Envelope,
}

impl Plan {
    fn write(&self, rate: u32, channels: usize) -> Vec<u8> {
        let w = write_header(APPLYING, rate, channels);
        match self {
            Plan::Unchanged => w.u8(0),
            Plan::Gain { factor } => w.u8(1).f64(*factor),
            Plan::Limit(l) => l
                .envelope
                .write(l.lookahead.write(w.u8(2).f64(l.factor).f64(l.threshold))),
        }
        .finish()
    }

    fn read(state: &[u8], audio: &Audio) -> Result<Self, StageError> {
        let (rate, channels) = (audio.sample_rate, usize::from(audio.channels));
        let mut r = Reader::new(state);
        header(&mut r, APPLYING, audio)?;
        let plan = match r.u8()? {
            0 => Plan::Unchanged,
            1 => Plan::Gain { factor: r.f64()? },
            2 => Plan::Limit(Box::new(Limiting {
                factor: r.f64()?,
                threshold: r.f64()?,
                lookahead: Lookahead::read(&mut r, channels, rate)?,
                envelope: Envelope::read(&mut r, rate)?,
            })),
            _ => return Err(malformed("plan")),
        };
        r.end()?;
        Ok(plan)
    }
}

/// One block of pass 0: measure, return no audio.
pub(crate) fn measure(
    audio: Audio,
    last: bool,
    state: &[u8],
    settings: &Settings,
) -> Result<BlockOutput, StageError> {
    let (rate, channels) = (audio.sample_rate, usize::from(audio.channels));
    let mut m = if state.is_empty() {
        Measuring::new(rate, channels, settings)
    } else {
        Measuring::read(state, &audio, settings)?
    };
    m.take(&audio.samples);
    let state = if last {
        m.finish(settings).write(rate, channels)
    } else {
        m.write()
    };
    Ok(BlockOutput {
        audio: Audio {
            samples: Vec::new(),
            ..audio
        },
        state,
    })
}

/// One block of pass 1: apply the plan.
pub(crate) fn apply(mut audio: Audio, last: bool, state: &[u8]) -> Result<BlockOutput, StageError> {
    if state.is_empty() {
        return Err(StageError::PluginFault(
            "the applying pass began without the measuring pass's state".into(),
        ));
    }
    let (rate, channels) = (audio.sample_rate, usize::from(audio.channels));
    let mut plan = Plan::read(state, &audio)?;
    match &mut plan {
        Plan::Unchanged => {}
        Plan::Gain { factor } => {
            for s in &mut audio.samples {
                // The ceiling is at most 0 dBTP, so the clamp never engages;
                // it only guards the [-1, 1] contract against rounding.
                *s = ((f64::from(*s) * *factor) as f32).clamp(-1.0, 1.0);
            }
        }
        Plan::Limit(l) => {
            let Limiting {
                factor,
                threshold,
                lookahead,
                envelope,
            } = &mut **l;
            let mut out = Vec::with_capacity(audio.samples.len());
            let mut give = |frame: &[f32], peak: f64| {
                let e = envelope.gain(required(peak, *threshold));
                for &s in frame {
                    out.push(((f64::from(s) * *factor * e) as f32).clamp(-1.0, 1.0));
                }
            };
            // Peaks up to the threshold all ask for no gain change.
            let floor = *threshold;
            for frame in audio.samples.chunks_exact(channels) {
                lookahead.take(frame, floor, &mut give);
            }
            if last {
                lookahead.finish(&mut give);
            }
            audio.samples = out;
        }
    }
    let state = if last {
        // The host drops the state after the last block.
        Vec::new()
    } else {
        plan.write(rate, channels)
    };
    Ok(BlockOutput { audio, state })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrated::{lufs, BINS, BIN_LU, FLOOR_LUFS, LOSS_BINS};
    use crate::limiter::lookahead_frames;
    use crate::MAX_RATE;
    use voxpipe_plugin_audio::MAX_STATE_BYTES;

    /// Mean power of a block in the middle of histogram bin `b`.
    fn power_of_bin(b: usize) -> f64 {
        let l = FLOOR_LUFS + (b as f64 + 0.5) * BIN_LU;
        let p = 10f64.powf((l - lufs(1.0)) / 10.0);
        assert!((lufs(p) - l).abs() < 1e-9);
        p
    }

    /// The largest state the stage can carry: pass 0 at 192 kHz, eight
    /// channels, the widest probe grid (`max_gain_db` 60, ceiling −20
    /// dBTP: 48 probes), every probe limiting (full envelope rings), the
    /// detector holding its most frames with a decreasing peak list, every
    /// histogram bin and every loss bin taken. Each of those has a fixed
    /// cap, so nothing a longer utterance does can make it bigger.
    #[test]
    fn the_largest_possible_state_fits_the_limit() {
        let c = voxpipe_plugin_audio::Config::parse(
            r#"{"max_gain_db": 60, "true_peak_dbtp": -20, "target_lufs": -5}"#,
        )
        .unwrap();
        let settings = Settings::from_config(&c).unwrap();
        let (rate, channels) = (MAX_RATE, 8);
        let mut m = Measuring::new(rate, channels, &settings);
        // Peaks over +6 dBTP (out of range, but finite) engage every probe;
        // falling ones keep every held frame a candidate maximum.
        let frames = 3 * lookahead_frames(rate);
        let samples: Vec<f32> = (0..frames)
            .flat_map(|i| {
                let v = 4.0 - 2.0 * i as f32 / frames as f32;
                vec![if i % 2 == 0 { v } else { -v }; channels]
            })
            .collect();
        m.take(&samples);
        for b in 0..BINS {
            m.histogram.add(power_of_bin(b));
        }
        assert_eq!(m.histogram.len(), BINS);
        let probes = m.probes.as_mut().unwrap();
        let mut count = 0;
        for (loss, limiting) in probes.losses_mut() {
            assert!(limiting);
            for b in 0..LOSS_BINS {
                loss.add(power_of_bin(b * 7), power_of_bin(b * 7) / 2.0);
            }
            assert_eq!(loss.len(), LOSS_BINS);
            count += 1;
        }
        assert_eq!(count, crate::makeup::MAX_PROBES);
        let size = m.write().len();
        println!(
            "largest state: {size} bytes ({:.1} % of {MAX_STATE_BYTES})",
            100.0 * size as f64 / MAX_STATE_BYTES as f64
        );
        assert!(size <= MAX_STATE_BYTES);
    }
}
