//! `trim-fade`: trims leading and trailing silence from TTS output, fades
//! the ends in and out so the cut never clicks, and can put a pause before
//! each sentence of a stream but the first.
//!
//! ```toml
//! [stages.config]
//! threshold_db = -50.0      # a window with RMS below this (dBFS) is silent; -120..=0
//! window_ms = 10.0          # RMS window; 1..=1000
//! keep_ms = 30.0            # margin kept before the first / after the last sound; 0..=5000
//! fade_in_ms = 5.0          # 0..=5000
//! fade_out_ms = 10.0        # 0..=5000
//! fade_shape = "cosine"     # or "linear"
//! sentence_pause_ms = 0.0   # silence before every streamed sentence but the first; 0..=5000
//! ```
//!
//! # What happens to an utterance
//!
//! 1. **Trim.** Silence is found with [`detect`] (RMS windows over all
//!    channels together, edge refined to the first/last frame with a sample
//!    at or above the threshold). `keep_ms` of the *original* audio is kept
//!    on each trimmed side, so soft onsets are not clipped.
//! 2. **Fade** ([`fade`]): the outermost frame of a faded end is exactly 0.
//! 3. **Pause**: in a stream, `sentence_pause_ms` of digital silence is put
//!    before the sentence (see below).
//!
//! # Two passes over blocks
//!
//! The host hands the stage an utterance in blocks of at most 10 s, each
//! call in a fresh instance, so the stage is declared two-pass:
//!
//! * **Pass 0** (measuring) finds where the sound starts and ends and
//!   returns no audio. The leading edge is found with windows aligned to the
//!   start of the utterance, the trailing edge with windows aligned to its
//!   end, exactly as a scan of the whole utterance would. The state carries
//!   the leading window being filled, a few running edge candidates and the
//!   utterance's last frames — at most 2 s and 768 KiB of them — so that the
//!   end-aligned scan can run once the last block gives the length ([`detect`]
//!   says what happens when more than that tail is silent). The state is at
//!   most [`MAX_STATE`] bytes however long the utterance.
//! * **Pass 1** (applying) starts from the measured span (a few numbers) and
//!   returns each block's part of the kept audio, faded where the fades fall.
//!   Its output is the whole-utterance result, cut where the blocks are cut.
//!
//! # Pauses between sentences
//!
//! A two-pass stage sees each sentence of a streamed response as its own
//! utterance (`position.utterance` counts them), and trims and fades each:
//! the silence the engine leaves between sentences is cut to `keep_ms` on
//! either side (0.2 trimmed only the stream's outer ends).
//! For `utterance > 0`, `sentence_pause_ms` of digital silence is put
//! *before* the sentence's audio: since every sentence is faded out at its
//! end and in at its start, both sides of the pause are faded, and a jump to
//! digital silence cannot click. The first sentence, and a whole (not
//! streamed) response, which is one utterance, get no pause.
//!
//! # Edge cases
//!
//! * Empty input → empty output (no pause is added either: there is no
//!   sentence to pause before).
//! * A silent utterance becomes `keep_ms` of digital silence (never longer
//!   than the input), after the pause if one is due: a valid short buffer
//!   rather than a zero-length one, which some players and clients treat as
//!   an error. With `keep_ms = 0` it becomes empty (or just the pause).
//! * Multi-channel audio is trimmed on whole frames, all channels together.
//! * Invalid audio (0 channels, a sample count that is not a multiple of the
//!   channels, a sample rate of 0 or above 768 kHz, a rate or channel count
//!   that changes within an utterance, a pause over [`MAX_PAUSE_SAMPLES`]) is
//!   `InvalidInput`.

pub mod detect;
pub mod fade;
pub mod settings;

use voxpipe_plugin_audio::state::{Reader, Writer};
use voxpipe_plugin_audio::{
    log, Audio, AudioStage, Block, BlockOutput, BlockPosition, Config, Context, PluginInfo,
    StageError,
};

use detect::{Gate, Measure, Span};
use fade::Fades;
use settings::{frames, Settings};

/// Highest sample rate accepted; keeps every ms → frames conversion small.
pub const MAX_SAMPLE_RATE: u32 = 768_000;

/// Most samples a pause may add (64 MiB of f32): refuses absurd channel
/// counts instead of trapping on an allocation.
pub const MAX_PAUSE_SAMPLES: usize = 1 << 24;

/// The largest state the stage returns: its tag and the audio format, then a
/// measure with a full tail (see `detect::Measure::encode`).
pub const MAX_STATE: usize = 1 + 2 * 8 + detect::MAX_MEASURE_BYTES;

const _: () = assert!(MAX_STATE <= voxpipe_plugin_audio::MAX_STATE_BYTES);

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

/// The utterance's sample format, from its first non-empty block on (zero
/// before): every later block must have the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Format {
    rate: u32,
    channels: u16,
}

impl Format {
    /// Checks a non-empty block, adopting its format if it is the first.
    fn check(&mut self, audio: &Audio) -> Result<usize, StageError> {
        let c = check_audio(audio)?;
        let got = Format {
            rate: audio.sample_rate,
            channels: audio.channels,
        };
        if *self == Format::default() {
            *self = got;
        } else if *self != got {
            return Err(StageError::InvalidInput(format!(
                "a block of {} Hz × {} channels in an utterance of {} Hz × {}",
                got.rate, got.channels, self.rate, self.channels
            )));
        }
        Ok(c)
    }

    fn gate(&self, s: &Settings) -> Gate {
        Gate::new(
            self.rate,
            usize::from(self.channels),
            frames(s.window_ms, self.rate),
            s.threshold_db,
        )
    }
}

/// What one call hands the next.
#[derive(Debug)]
enum State {
    /// Pass 0 under way.
    Measuring { format: Format, measure: Measure },
    /// Pass 0 done: the utterance's length and where its sound is (`None`
    /// when it is silent).
    Measured {
        format: Format,
        frames: u64,
        span: Option<Span>,
    },
}

const MEASURING: u8 = 1;
const MEASURED: u8 = 2;

impl State {
    fn encode(&self) -> Vec<u8> {
        let head = |tag: u8, f: &Format| {
            Writer::new()
                .u8(tag)
                .u64(f.rate.into())
                .u64(f.channels.into())
        };
        match self {
            State::Measuring { format, measure } => {
                measure.encode(head(MEASURING, format)).finish()
            }
            State::Measured {
                format,
                frames,
                span,
            } => {
                let (sound, span) = match span {
                    Some(s) => (1, *s),
                    None => (0, Span { start: 0, end: 0 }),
                };
                head(MEASURED, format)
                    .u64(*frames)
                    .u8(sound)
                    .u64(span.start)
                    .u64(span.end)
                    .finish()
            }
        }
    }

    fn decode(bytes: &[u8]) -> Result<State, StageError> {
        let mut r = Reader::new(bytes);
        let tag = r.u8()?;
        let format = Format {
            rate: int(r.u64()?)?,
            channels: int(r.u64()?)?,
        };
        let state = match tag {
            MEASURING => State::Measuring {
                format,
                measure: Measure::decode(&mut r)?,
            },
            MEASURED => {
                let frames = r.u64()?;
                let sound = r.u8()? != 0;
                let span = Span {
                    start: r.u64()?,
                    end: r.u64()?,
                };
                State::Measured {
                    format,
                    frames,
                    span: sound.then_some(span),
                }
            }
            _ => return Err(fault("the carried state is not this plugin's")),
        };
        r.end()?;
        Ok(state)
    }
}

fn int<T: TryFrom<u64>>(v: u64) -> Result<T, StageError> {
    T::try_from(v).map_err(|_| fault("the carried state holds an impossible format"))
}

fn fault(m: &str) -> StageError {
    StageError::PluginFault(m.into())
}

/// Frames of digital silence put before this utterance: `sentence_pause_ms`
/// for every sentence of a stream but the first, none otherwise.
fn pause_frames(s: &Settings, f: &Format, position: &BlockPosition) -> Result<usize, StageError> {
    if position.utterance == 0 {
        return Ok(0);
    }
    let pause = frames(s.sentence_pause_ms, f.rate);
    if pause.saturating_mul(usize::from(f.channels)) > MAX_PAUSE_SAMPLES {
        return Err(StageError::InvalidInput(format!(
            "a {} ms pause at {} Hz × {} channels is over {MAX_PAUSE_SAMPLES} samples",
            s.sentence_pause_ms, f.rate, f.channels
        )));
    }
    Ok(pause)
}

/// Pass 0: measure the block; on the last one, decide the span.
fn measure_block(
    s: &Settings,
    audio: &Audio,
    position: &BlockPosition,
    mut format: Format,
    mut measure: Measure,
) -> Result<State, StageError> {
    if measure.frames() != position.offset {
        return Err(fault(
            "the carried state does not end where this block starts",
        ));
    }
    if !audio.samples.is_empty() {
        format.check(audio)?;
        // Refused here, before anything is heard, rather than in pass 1.
        pause_frames(s, &format, position)?;
        measure.push(&format.gate(s), &audio.samples);
    }
    if !position.last {
        return Ok(State::Measuring { format, measure });
    }
    let frames = measure.frames();
    let span = measure.finish(&format.gate(s));
    match span {
        Some(Span { start, end }) => log::debug(&format!(
            "trim-fade: sound in frames {start}..{end} of {frames}"
        )),
        None => log::debug(&format!("trim-fade: all {frames} frames are silent")),
    }
    Ok(State::Measured {
        format,
        frames,
        span,
    })
}

/// Pass 1: this block's part of the trimmed, faded utterance, after the
/// pause if this is the first block of a sentence that gets one.
fn apply_block(
    s: &Settings,
    audio: &Audio,
    position: &BlockPosition,
    mut format: Format,
    total: u64,
    span: Option<Span>,
) -> Result<Vec<f32>, StageError> {
    if position.total_frames != Some(total) {
        return Err(fault(
            "the utterance's length differs from the measured one",
        ));
    }
    let mut out = Vec::new();
    if audio.samples.is_empty() {
        return Ok(out);
    }
    let c = format.check(audio)?;
    let offset = position.offset;
    let end = offset + (audio.samples.len() / c) as u64;
    if end > total {
        return Err(fault("a block reaches past the measured utterance"));
    }
    if offset == 0 {
        out.resize(pause_frames(s, &format, position)? * c, 0.0);
    }
    let keep = frames(s.keep_ms, format.rate) as u64;
    // The kept frames `from..to` of the input; a silent utterance keeps
    // `keep` frames, made digital silence.
    let (from, to) = match span {
        Some(sp) => (sp.start.saturating_sub(keep), (sp.end + keep).min(total)),
        None => (0, keep.min(total)),
    };
    let (a, b) = (from.max(offset), to.min(end));
    if a < b {
        let here = |f: u64| (f - offset) as usize * c;
        if span.is_some() {
            let start = out.len();
            out.extend_from_slice(&audio.samples[here(a)..here(b)]);
            Fades::new(
                to - from,
                frames(s.fade_in_ms, format.rate) as u64,
                frames(s.fade_out_ms, format.rate) as u64,
                s.fade_shape,
            )
            .apply(&mut out[start..], c, a - from);
        } else {
            out.resize(out.len() + here(b) - here(a), 0.0);
        }
    }
    Ok(out)
}

pub struct TrimFade;

impl AudioStage for TrimFade {
    fn info() -> PluginInfo {
        PluginInfo::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            "Trims leading/trailing silence, fades the ends, optionally pauses between a stream's sentences",
        )
        .two_pass()
    }

    fn check_config(config: &Config) -> Result<(), StageError> {
        Settings::from_config(config).map(|_| ())
    }

    fn process_block(
        _ctx: &Context,
        config: &Config,
        block: Block,
    ) -> Result<BlockOutput, StageError> {
        let s = Settings::from_config(config)?;
        let Block {
            audio,
            position,
            state,
        } = block;
        let carried = if state.is_empty() {
            State::Measuring {
                format: Format::default(),
                measure: Measure::default(),
            }
        } else {
            State::decode(&state)?
        };
        let mut out = Audio {
            sample_rate: audio.sample_rate,
            channels: audio.channels,
            samples: Vec::new(),
        };
        let state = match (position.pass, carried) {
            (0, State::Measuring { format, measure }) => {
                measure_block(&s, &audio, &position, format, measure)?.encode()
            }
            (
                1,
                State::Measured {
                    format,
                    frames,
                    span,
                },
            ) => {
                out.samples = apply_block(&s, &audio, &position, format, frames, span)?;
                // Pass 1 only reads the measurement: hand it on unchanged.
                state
            }
            _ => return Err(fault("the carried state does not fit this pass")),
        };
        Ok(BlockOutput { audio: out, state })
    }
}

voxpipe_plugin_audio::export!(TrimFade);

#[cfg(test)]
mod tests;
