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
//! independently. A total shift of 0 (below 1 cent) with tempo 1 returns the
//! input untouched, bit for bit.
//!
//! Not streamable: the vocoder's phases are not carried across chunks.
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

use voxpipe_plugin_audio::{
    log, Audio, AudioStage, ChunkPosition, Config, Context, PluginInfo, StageError,
};

pub use settings::{Settings, Shift};
pub use shift::{frame_size, shift_channel};

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

    fn process(
        ctx: &Context,
        config: &Config,
        audio: Audio,
        _position: ChunkPosition,
    ) -> Result<Audio, StageError> {
        let settings = Settings::from_config(config)?;
        check_audio(&audio)?;
        let shift = Shift::for_request(ctx, &settings)?;
        if shift.clamped {
            log::warn(&format!(
                "request {}: pitch shift clamped to {} semitones (style + config exceed ±12)",
                ctx.request_id, shift.semitones
            ));
        }
        if shift.is_identity() {
            return Ok(audio);
        }
        let channels = audio.channels as usize;
        let frames = audio.samples.len() / channels;
        let out_frames = if shift.tempo == 1.0 {
            frames
        } else {
            (frames as f64 / shift.tempo).round() as usize
        };
        log::debug(&format!(
            "request {}: {} semitones, tempo {}, {} frames -> {}",
            ctx.request_id, shift.semitones, shift.tempo, frames, out_frames
        ));

        let mut samples = vec![0.0f32; out_frames * channels];
        for ch in 0..channels {
            let input: Vec<f32> = audio
                .samples
                .iter()
                .skip(ch)
                .step_by(channels)
                .map(|&s| if s.is_finite() { s } else { 0.0 })
                .collect();
            let out = shift_channel(
                &input,
                shift.pitch_ratio(),
                shift.tempo,
                audio.sample_rate,
                out_frames,
            );
            for (frame, s) in out.into_iter().enumerate() {
                samples[frame * channels + ch] = s;
            }
        }
        Ok(Audio {
            sample_rate: audio.sample_rate,
            channels: audio.channels,
            samples,
        })
    }
}

voxpipe_plugin_audio::export!(PitchShift);

#[cfg(test)]
mod tests;
