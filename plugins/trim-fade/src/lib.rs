//! `trim-fade`: trims leading and trailing silence from TTS output, fades
//! the ends in and out so the cut never clicks, and can insert a pause
//! between sentence chunks.
//!
//! ```toml
//! [stages.config]
//! threshold_db = -50.0      # a window with RMS below this (dBFS) is silent; -120..=0
//! window_ms = 10.0          # RMS window; 1..=1000
//! keep_ms = 30.0            # margin kept before the first / after the last sound; 0..=5000
//! fade_in_ms = 5.0          # 0..=5000
//! fade_out_ms = 10.0        # 0..=5000
//! fade_shape = "cosine"     # or "linear"
//! sentence_pause_ms = 0.0   # silence appended after every non-last chunk; 0..=5000
//! ```
//!
//! # What happens to one call's audio
//!
//! 1. **Trim.** Silence is found with [`detect`] (RMS windows over all
//!    channels together, edge refined to the first/last frame with a sample
//!    at or above the threshold). `keep_ms` of the *original* audio is kept
//!    on each trimmed side, so soft onsets are not clipped.
//! 2. **Fade** ([`fade`]): the outermost frame of a faded end is exactly 0.
//! 3. **Pause**: `sentence_pause_ms` of digital silence is appended.
//!
//! # Per chunk (why the stage is declared streamable)
//!
//! A chunk is processed alone, so each step applies only where it belongs:
//!
//! | chunk                        | leading trim | fade-in          | trailing trim | fade-out          | pause appended |
//! |------------------------------|--------------|------------------|---------------|-------------------|----------------|
//! | first (`index 0`, not last)  | yes          | yes              | no            | if pause > 0      | yes            |
//! | middle                       | no           | if pause > 0     | no            | if pause > 0      | yes            |
//! | last (`index > 0`, last)     | no           | if pause > 0     | yes           | yes               | no             |
//! | whole (`ChunkPosition::WHOLE`)| yes         | yes              | yes           | yes               | no             |
//!
//! With `sentence_pause_ms = 0` (the default) the concatenated chunk outputs
//! equal the output for the whole utterance: the leading edge is found with
//! windows aligned to the start and the trailing edge with windows aligned
//! to the end, so the first chunk sees the same leading edge as the whole
//! and the last chunk the same trailing edge; nothing touches the inner
//! chunk boundaries. That is the contract of `streamable`, so the stage
//! declares it. The equality needs, as sentence chunks from a TTS engine
//! give, that the first and the last chunk each contain sound and are
//! longer than their fades; a first chunk of pure silence cannot know that
//! the next chunk's leading silence should go too.
//!
//! With `sentence_pause_ms > 0` the chunked result deliberately differs
//! from the whole one: that is the feature (a whole utterance is one
//! sentence to this stage, and gets no pause). It assumes the host cuts
//! chunks at sentence boundaries; fed fixed-size blocks it would put a
//! pause after each block. Both sides of an inserted pause are faded
//! (fade-out before it, fade-in on the next chunk, which knows from
//! `index > 0` and the config that a pause precedes it), since a sentence
//! chunk need not end or start at a zero crossing and a jump to digital
//! silence would click.
//!
//! # Edge cases
//!
//! * Empty input → empty output, unchanged (no pause is added either: there
//!   is no sentence to pause after).
//! * A chunk that gets any trimming and is silent throughout becomes
//!   `keep_ms` of digital silence (never longer than the input), plus the
//!   pause if not last: a valid short buffer rather than a zero-length one,
//!   which some players and clients treat as an error. With `keep_ms = 0`
//!   it becomes empty. A silent middle chunk is passed through untouched.
//! * Multi-channel audio is trimmed on whole frames, all channels together.
//! * Invalid audio (0 channels, a sample count that is not a multiple of the
//!   channels, a sample rate of 0 or above 768 kHz) is `InvalidInput`.

pub mod detect;
pub mod fade;
pub mod settings;

use voxpipe_plugin_audio::{
    log, Audio, AudioStage, ChunkPosition, Config, Context, PluginInfo, StageError,
};

use detect::Detector;
use settings::{frames, Settings};

/// Highest sample rate accepted; keeps every ms → frames conversion small.
pub const MAX_SAMPLE_RATE: u32 = 768_000;

/// Most samples a pause may add (64 MiB of f32): refuses absurd channel
/// counts instead of trapping on an allocation.
pub const MAX_PAUSE_SAMPLES: usize = 1 << 24;

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

pub struct TrimFade;

impl AudioStage for TrimFade {
    fn info() -> PluginInfo {
        PluginInfo::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            "Trims leading/trailing silence, fades the ends, optionally pauses between sentence chunks",
        )
        .streamable()
    }

    fn check_config(config: &Config) -> Result<(), StageError> {
        Settings::from_config(config).map(|_| ())
    }

    fn process(
        _ctx: &Context,
        config: &Config,
        audio: Audio,
        position: ChunkPosition,
    ) -> Result<Audio, StageError> {
        process_chunk(&Settings::from_config(config)?, audio, position)
    }
}

voxpipe_plugin_audio::export!(TrimFade);

#[cfg(test)]
mod tests;
