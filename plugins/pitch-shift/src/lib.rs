//! `pitch-shift`: shifts the pitch of synthesized speech by a number of
//! semitones without changing its duration, and optionally changes the
//! tempo without changing the pitch.
//!
//! The shift is the style's `pitch` (set by the style stage, e.g. "speak
//! higher") plus the config's `semitones`; the total is clamped to ±12
//! semitones (a warning is logged) rather than refused, because the style
//! comes from a free-form instruction. The style's `speed` is *not* applied
//! here: the voice model already synthesizes at that speed, and applying it
//! twice would square it. Use `tempo` for a fixed time-stretch of a
//! pipeline.
//!
//! Method: a phase vocoder with identity phase locking stretches time by
//! `pitch / tempo` (see [`vocoder`]), then a Kaiser-windowed sinc resampler
//! reads the result at `pitch` times the rate (see [`resample`]), which
//! restores the duration (exactly: the output has as many frames as the
//! input when `tempo` is 1) and moves the pitch. Channels are processed
//! independently. A total shift of 0 (below 1 cent) with tempo 1 returns
//! every block untouched, bit for bit, carrying nothing.
//!
//! Blocks: one pass. A block's output lags its input by about half a frame
//! times `1 + tempo / pitch` plus a hop (the vocoder waits for the input
//! its frames read, and for the frames that overlap a sample) and the
//! resampler's reach: at 22.05 kHz 33 ms at +12 semitones, 63 ms at −12,
//! 111 ms at −12 with tempo 2, 1.5 ms where pitch and tempo cancel (pure
//! resampling). What is held back comes out with the `last` block, so the
//! utterance's output has the same length, and the same samples bit for
//! bit, as the whole-utterance algorithm before blocks gave. The state
//! carries, per channel, the vocoder's previous analysis and synthesis
//! spectra, the input its next frames read and the overlap-add sums still
//! open (each under one frame), and the resampler's next position and the
//! input within its reach: about 20 KB per channel at 22.05 kHz (frame
//! 1024) and 80 KB at 96 kHz (frame 4096), whatever the utterance's length,
//! so 8 channels at 96 kHz stay under 660 KB of the 1 MiB allowed.
//!
//! ```toml
//! [stages.config]
//! semitones = 2.0   # -12..=12, default 0, added to the style's pitch
//! tempo = 1.0       # 0.5..=2.0, default 1; output lasts 1/tempo
//! ```
//!
//! Input limits (refused as invalid input): 8000..=96000 Hz, at least one
//! channel, a sample count that is a whole number of frames. Non-finite
//! samples are read as silence.

pub mod fft;
pub mod resample;
mod settings;
mod shift;
pub mod vocoder;

use voxpipe_plugin_audio::state::{Reader, Writer};
use voxpipe_plugin_audio::{
    log, Audio, AudioStage, Block, BlockOutput, Config, Context, PluginInfo, StageError,
};

pub use settings::{Settings, Shift};
pub use shift::{frame_size, ChannelState, Shifter};

/// Sample rates the stage accepts; the frame size is scaled within them.
pub const SAMPLE_RATES: std::ops::RangeInclusive<u32> = 8000..=96000;

/// Refuse audio the stage cannot process (before the fast path, so that a
/// bad stream fails the same way whatever the style says).
fn check_audio(audio: &Audio) -> Result<(), StageError> {
    if audio.channels == 0 {
        return Err(StageError::InvalidInput("audio has 0 channels".into()));
    }
    if !audio.samples.len().is_multiple_of(audio.channels as usize) {
        return Err(StageError::InvalidInput(format!(
            "{} samples is not a whole number of {}-channel frames",
            audio.samples.len(),
            audio.channels
        )));
    }
    if !SAMPLE_RATES.contains(&audio.sample_rate) {
        return Err(StageError::InvalidInput(format!(
            "sample rate {} Hz is outside {}..={} Hz",
            audio.sample_rate,
            SAMPLE_RATES.start(),
            SAMPLE_RATES.end()
        )));
    }
    Ok(())
}

pub struct PitchShift;

impl AudioStage for PitchShift {
    fn info() -> PluginInfo {
        PluginInfo::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            "Shifts pitch by the style's pitch plus configured semitones, keeping the duration",
        )
        .applies(&["pitch"])
    }

    fn check_config(config: &Config) -> Result<(), StageError> {
        Settings::from_config(config).map(|_| ())
    }

    fn process_block(
        ctx: &Context,
        config: &Config,
        block: Block,
    ) -> Result<BlockOutput, StageError> {
        let settings = Settings::from_config(config)?;
        check_audio(&block.audio)?;
        let shift = Shift::for_request(ctx, &settings)?;
        let position = block.position;
        if shift.clamped && position.index == 0 {
            log::warn(&format!(
                "request {}: pitch shift clamped to {} semitones (style + config exceed ±12)",
                ctx.request_id, shift.semitones
            ));
        }
        if shift.is_identity() {
            return Ok(BlockOutput::audio(block.audio));
        }
        let audio = block.audio;
        let channels = audio.channels as usize;
        let frames = position.offset + (audio.samples.len() / channels) as u64;
        let mut shifter = Shifter::new(&shift, audio.sample_rate)?;
        let mut states = if block.state.is_empty() {
            if position.index != 0 {
                return Err(StageError::PluginFault(format!(
                    "block {} came without the state of the blocks before it",
                    position.index
                )));
            }
            log::debug(&format!(
                "request {}: {} semitones, tempo {}",
                ctx.request_id, shift.semitones, shift.tempo
            ));
            vec![shifter.start(); channels]
        } else {
            read_state(&block.state, &audio, &shift, &shifter)?
        };
        if position.last {
            log::debug(&format!(
                "request {}: {} frames -> {}",
                ctx.request_id,
                frames,
                shifter.out_len(frames)
            ));
        }

        let mut outs: Vec<Vec<f32>> = Vec::with_capacity(channels);
        for (ch, state) in states.iter_mut().enumerate() {
            let input: Vec<f32> = audio
                .samples
                .iter()
                .skip(ch)
                .step_by(channels)
                .map(|&s| if s.is_finite() { s } else { 0.0 })
                .collect();
            let mut out = Vec::new();
            shifter.push(state, &input, frames, position.last, &mut out);
            outs.push(out);
        }
        // Every channel lets go of the same number of frames: how many are
        // final depends on positions only, never on the samples.
        let out_frames = outs.first().map_or(0, Vec::len);
        let mut samples = vec![0.0f32; out_frames * channels];
        for (ch, out) in outs.into_iter().enumerate() {
            for (frame, s) in out.into_iter().enumerate() {
                samples[frame * channels + ch] = s;
            }
        }
        Ok(BlockOutput {
            audio: Audio {
                sample_rate: audio.sample_rate,
                channels: audio.channels,
                samples,
            },
            // The host drops the state after the last block.
            state: if position.last {
                Vec::new()
            } else {
                write_state(&audio, &shift, &states)
            },
        })
    }
}

/// The state: what it was made for (rate, channels, shift), so that a
/// state handed to a call with other parameters is refused rather than
/// misread, then each channel's [`ChannelState`].
fn write_state(audio: &Audio, shift: &Shift, states: &[ChannelState]) -> Vec<u8> {
    let w = Writer::new()
        .u64(audio.sample_rate.into())
        .u64(audio.channels.into())
        .f32(shift.semitones)
        .f64(shift.tempo);
    states.iter().fold(w, |w, s| s.write(w)).finish()
}

fn read_state(
    bytes: &[u8],
    audio: &Audio,
    shift: &Shift,
    shifter: &Shifter,
) -> Result<Vec<ChannelState>, StageError> {
    let mut r = Reader::new(bytes);
    let made_for = (r.u64()?, r.u64()?, r.f32()?, r.f64()?);
    if made_for
        != (
            audio.sample_rate.into(),
            audio.channels.into(),
            shift.semitones,
            shift.tempo,
        )
    {
        return Err(StageError::PluginFault(
            "the carried state was made for another sample rate, channel count or shift".into(),
        ));
    }
    let states = (0..audio.channels)
        .map(|_| ChannelState::read(&mut r, shifter))
        .collect::<Result<_, _>>()?;
    r.end()?;
    Ok(states)
}

voxpipe_plugin_audio::export!(PitchShift);

#[cfg(test)]
mod tests;
