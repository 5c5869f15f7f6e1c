//! Today's whole-utterance algorithm, kept verbatim from the 0.2 plugin
//! (`process_chunk`, `detect::Detector`, `fade::{gain, fade_in, fade_out}`)
//! as the reference the block-driven stage is compared with. Adapted only
//! so that it compiles: `ChunkPosition` is gone from the SDK, so a local
//! copy stands in for it, and the items the new crate still has come from
//! it (`settings`, `MAX_SAMPLE_RATE`, `MAX_PAUSE_SAMPLES`).

use crate::settings::{frames, Settings};
use crate::{MAX_PAUSE_SAMPLES, MAX_SAMPLE_RATE};
use voxpipe_plugin_audio::{log, Audio, StageError};

use detect::Detector;

/// The 0.2 SDK's chunk position.
#[derive(Debug, Clone, Copy)]
pub struct ChunkPosition {
    pub index: u32,
    pub last: bool,
}

impl ChunkPosition {
    pub const WHOLE: ChunkPosition = ChunkPosition {
        index: 0,
        last: true,
    };
}

/// The reference output for a whole utterance.
pub fn whole(s: &Settings, audio: Audio) -> Result<Audio, StageError> {
    process_chunk(s, audio, ChunkPosition::WHOLE)
}

fn check_audio(audio: &Audio) -> Result<usize, StageError> {
    let c = usize::from(audio.channels);
    if c == 0 {
        return Err(StageError::InvalidInput("audio has 0 channels".into()));
    }
    if !audio.samples.len().is_multiple_of(c) {
        return Err(StageError::InvalidInput(format!(
            "{} samples are not a whole number of {c}-channel frames",
            audio.samples.len()
        )));
    }
    if audio.sample_rate == 0 || audio.sample_rate > MAX_SAMPLE_RATE {
        return Err(StageError::InvalidInput(format!(
            "sample rate {} is outside 1..={MAX_SAMPLE_RATE}",
            audio.sample_rate
        )));
    }
    Ok(c)
}

/// Trim, fade and pad one chunk as the table in the crate docs says.
pub fn process_chunk(
    s: &Settings,
    mut audio: Audio,
    position: ChunkPosition,
) -> Result<Audio, StageError> {
    if audio.samples.is_empty() {
        return Ok(audio);
    }
    let c = check_audio(&audio)?;
    let rate = audio.sample_rate;
    let n = audio.samples.len() / c;
    let first = position.index == 0;
    let last = position.last;
    let pause = if last {
        0
    } else {
        frames(s.sentence_pause_ms, rate)
    };
    let pause_samples = pause.saturating_mul(c);
    if pause_samples > MAX_PAUSE_SAMPLES {
        return Err(StageError::InvalidInput(format!(
            "a {} ms pause at {rate} Hz × {c} channels is over {MAX_PAUSE_SAMPLES} samples",
            s.sentence_pause_ms
        )));
    }
    // Pauses are the same for every chunk of an utterance, so a later chunk
    // knows from the config whether one was put before it.
    let paused = frames(s.sentence_pause_ms, rate) > 0;

    if first || last {
        let keep = frames(s.keep_ms, rate);
        let window = frames(s.window_ms, rate).max(1);
        match Detector::new(&audio.samples, c, window, s.threshold_db).sound() {
            Some(span) => {
                let start = if first {
                    span.start.saturating_sub(keep)
                } else {
                    0
                };
                let end = if last {
                    span.end.saturating_add(keep).min(n)
                } else {
                    n
                };
                audio.samples.truncate(end * c);
                audio.samples.drain(..start * c);
                log::debug(&format!(
                    "trim-fade: kept frames {start}..{end} of {n} (chunk {}, last {last})",
                    position.index
                ));
            }
            None => {
                audio.samples.clear();
                audio.samples.resize(keep.min(n) * c, 0.0);
                log::debug(&format!(
                    "trim-fade: chunk {} is silent, {} frames kept",
                    position.index,
                    keep.min(n)
                ));
            }
        }
    }

    if first || paused {
        fade::fade_in(
            &mut audio.samples,
            c,
            frames(s.fade_in_ms, rate),
            s.fade_shape,
        );
    }
    if last || paused {
        fade::fade_out(
            &mut audio.samples,
            c,
            frames(s.fade_out_ms, rate),
            s.fade_shape,
        );
    }
    audio
        .samples
        .resize(audio.samples.len() + pause_samples, 0.0);
    Ok(audio)
}

/// `detect.rs` of 0.2, without its tests.
mod detect {
    /// Span of sound, in frames: `[start, end)`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Span {
        pub start: usize,
        pub end: usize,
    }

    /// Loudness test over interleaved samples with `channels` per frame.
    pub struct Detector<'a> {
        samples: &'a [f32],
        channels: usize,
        frames: usize,
        window: usize,
        /// Threshold amplitude squared (a mean square is compared to it).
        thr2: f64,
    }

    impl<'a> Detector<'a> {
        /// `samples.len()` must be a multiple of `channels` (checked by the
        /// caller); `window` is clamped to at least one frame.
        pub fn new(samples: &'a [f32], channels: usize, window: usize, threshold_db: f64) -> Self {
            let channels = channels.max(1);
            let thr = 10f64.powf(threshold_db / 20.0);
            Detector {
                samples,
                channels,
                frames: samples.len() / channels,
                window: window.max(1),
                thr2: thr * thr,
            }
        }

        fn frame(&self, f: usize) -> &[f32] {
            let c = self.channels;
            self.samples.get(f * c..(f + 1) * c).unwrap_or(&[])
        }

        /// Mean square over frames `[from, to)` ≥ threshold². NaN counts as
        /// loud: garbage is never trimmed away silently.
        fn loud_window(&self, from: usize, to: usize) -> bool {
            let c = self.channels;
            let s = self.samples.get(from * c..to * c).unwrap_or(&[]);
            if s.is_empty() {
                return false;
            }
            let sum: f64 = s.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            self.at_or_above(sum / s.len() as f64)
        }

        /// `power ≥ threshold²`, with NaN counted as loud.
        fn at_or_above(&self, power: f64) -> bool {
            power.is_nan() || power >= self.thr2
        }

        fn loud_frame(&self, f: usize) -> bool {
            self.frame(f)
                .iter()
                .any(|&x| self.at_or_above(f64::from(x) * f64::from(x)))
        }

        /// First loud frame, found through start-aligned windows.
        fn first(&self) -> Option<usize> {
            let mut from = 0;
            while from < self.frames {
                let to = (from + self.window).min(self.frames);
                if self.loud_window(from, to) {
                    return (from..to).find(|&f| self.loud_frame(f));
                }
                from = to;
            }
            None
        }

        /// One past the last loud frame, found through end-aligned windows.
        fn last_end(&self) -> Option<usize> {
            let mut to = self.frames;
            while to > 0 {
                let from = to.saturating_sub(self.window);
                if self.loud_window(from, to) {
                    return (from..to)
                        .rev()
                        .find(|&f| self.loud_frame(f))
                        .map(|f| f + 1);
                }
                to = from;
            }
            None
        }

        /// The span of sound, or `None` when every window is silent. The two
        /// scans use different window grids, so in rare borderline cases only
        /// one of them sees a loud window; the span then covers what either saw.
        pub fn sound(&self) -> Option<Span> {
            match (self.first(), self.last_end()) {
                (Some(s), Some(e)) => Some(Span {
                    start: s.min(e.saturating_sub(1)),
                    end: e.max(s + 1),
                }),
                (Some(s), None) => Some(Span {
                    start: s,
                    end: s + 1,
                }),
                (None, Some(e)) => Some(Span {
                    start: e - 1,
                    end: e,
                }),
                (None, None) => None,
            }
        }
    }
}

/// `fade.rs` of 0.2, without its tests.
mod fade {
    use crate::settings::FadeShape;

    /// Gain at position `x` ∈ [0, 1] of a ramp going from 0 up to 1.
    pub fn gain(shape: FadeShape, x: f64) -> f32 {
        let x = x.clamp(0.0, 1.0);
        let g = match shape {
            FadeShape::Linear => x,
            FadeShape::Cosine => 0.5 - 0.5 * (std::f64::consts::PI * x).cos(),
        };
        g as f32
    }

    fn scale_frame(samples: &mut [f32], channels: usize, frame: usize, g: f32) {
        if let Some(fr) = samples.get_mut(frame * channels..(frame + 1) * channels) {
            for s in fr {
                *s *= g;
            }
        }
    }

    /// Fade the first `len` frames in from silence.
    pub fn fade_in(samples: &mut [f32], channels: usize, len: usize, shape: FadeShape) {
        let channels = channels.max(1);
        let len = len.min(samples.len() / channels);
        for i in 0..len {
            scale_frame(samples, channels, i, gain(shape, i as f64 / len as f64));
        }
    }

    /// Fade the last `len` frames out to silence.
    pub fn fade_out(samples: &mut [f32], channels: usize, len: usize, shape: FadeShape) {
        let channels = channels.max(1);
        let frames = samples.len() / channels;
        let len = len.min(frames);
        for j in 0..len {
            let g = gain(shape, (len - 1 - j) as f64 / len as f64);
            scale_frame(samples, channels, frames - len + j, g);
        }
    }
}
