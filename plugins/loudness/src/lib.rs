//! `loudness`: normalizes an utterance to a target integrated loudness
//! (ITU-R BS.1770-4 / EBU R128), under a true-peak ceiling. A two-pass
//! block stage: pass 0 measures the utterance block by block, pass 1
//! applies what the measurement decided.
//!
//! 1. Measure (pass 0) the gated integrated loudness (K-weighting derived
//!    for the actual sample rate, 400 ms blocks every 100 ms, −70 LUFS
//!    absolute and −10 LU relative gates, surround channels weighted 1.41)
//!    and the true peak (4× oversampling, BS.1770 Annex 2). The gates need
//!    every 400 ms block of the utterance, which a histogram of block
//!    loudness in 0.01 LU bins holds in bounded space (see `integrated`).
//! 2. Gain = target − measured, capped at `max_gain_db`. The target is
//!    `target_lufs` plus the style's `volume` (dB), kept in −80..=−5 LUFS:
//!    "speak softly" (volume −6) ends 6 LU below plain speech. The stage
//!    declares that it applies `volume`.
//! 3. If the true peak after the gain stays under `true_peak_dbtp`, pass 1
//!    multiplies by that one gain (nothing else touches the audio).
//! 4. Otherwise, with `limiter = true` (the default), pass 1 applies the
//!    full gain plus a make-up gain and runs a look-ahead true-peak limiter
//!    (5 ms linear attack ramp, 80 ms exponential release, all channels
//!    linked; see the `limiter` module), which brings the output within
//!    ±0.1 LU of the target. Needed because speech is peaky: espeak-ng
//!    speech has a peak-to-loudness ratio of ~18.6 dB, so a single gain
//!    under a −1 dBTP ceiling stops near −19.3 LUFS instead of −16. The
//!    make-up gain is found in pass 0, which runs the limiter at a grid of
//!    thresholds while it measures (see the `makeup` module). The limiter
//!    holds back its look-ahead (5 ms and six frames) and returns it with
//!    the last block: the output is as long as the input.
//!    With `limiter = false` the gain is lowered until the true peak sits
//!    exactly on the ceiling: quieter than the target, but a pure gain.
//!
//! Audio with undefined loudness — shorter than one 400 ms block, or digital
//! silence / everything below −70 LUFS — is returned unchanged (logged at
//! info level). The gain depends on the whole utterance, so in a streamed
//! response each sentence is normalized on its own.
//!
//! What the stage carries from one block to the next depends on the rate,
//! the channels and the config, never on the utterance's length: tens of
//! KiB for speech at 22.05 kHz, well under the 1 MiB limit in the worst
//! case (192 kHz, eight channels, `max_gain_db` = 60; measured in the
//! tests).
//!
//! ```toml
//! [stages.config]
//! target_lufs = -16.0     # LUFS, -60..=-5
//! true_peak_dbtp = -1.0   # dBTP, -20..=0
//! max_gain_db = 20.0      # dB, 0..=60
//! limiter = true          # limit peaks to reach the target (false: lower the gain)
//! ```
//!
//! [`integrated_lufs`] and [`true_peak_dbtp`] are public so the measurement
//! can be checked against other implementations. They agree with libebur128
//! and with `pyloudnorm.Meter(rate, filter_class="DeMan")` (same filter
//! design); pyloudnorm's default filter class uses RBJ-cookbook
//! approximations that read 0.04 LU high at 48 kHz, 0.09 at 22.05 kHz and
//! 0.25 at 8 kHz, so compare against `DeMan`.

mod input;
mod integrated;
mod kweight;
mod limiter;
mod makeup;
mod settings;
mod stage;
mod true_peak;

pub use input::{MAX_RATE, MIN_RATE};
pub use kweight::{k_weighting, Biquad};
pub use settings::Settings;

use voxpipe_plugin_audio::{
    AudioStage, Block, BlockOutput, Config, Context, PluginInfo, StageError,
};

/// Gated integrated loudness in LUFS of interleaved `samples`, or `None`
/// when the input is invalid (0 channels, rate outside 8000..=192000, a
/// partial frame, non-finite samples) or the loudness is undefined (shorter
/// than 400 ms, or nothing above the −70 LUFS gate).
pub fn integrated_lufs(samples: &[f32], channels: u16, rate: u32) -> Option<f64> {
    if input::problem(samples, channels, rate).is_some() {
        return None;
    }
    integrated::integrated(samples, usize::from(channels), rate)
}

/// True peak in dBTP (4× oversampled, BS.1770-4 Annex 2) of interleaved
/// `samples`: the largest over all channels, `-inf` for silence or empty
/// input, `None` when the input is invalid (as for [`integrated_lufs`]).
pub fn true_peak_dbtp(samples: &[f32], channels: u16, rate: u32) -> Option<f64> {
    if input::problem(samples, channels, rate).is_some() {
        return None;
    }
    Some(true_peak::to_db(true_peak::true_peak_linear(
        samples,
        usize::from(channels),
    )))
}

/// What decided the gain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The gain reaches the target loudness.
    Target,
    /// Capped by `max_gain_db`.
    MaxGain,
    /// Lowered so the true peak sits on `true_peak_dbtp`.
    TruePeak,
}

/// The gain to apply, in dB, and why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GainPlan {
    pub gain_db: f64,
    pub limit: Limit,
}

/// Gain for audio measuring `loudness_lufs` with true peak `peak_dbtp`,
/// as a single static gain (the whole story with `limiter = false`; with
/// the limiter on, [`Limit::TruePeak`] is the cue to limit instead).
/// The true peak scales exactly with a static gain, so the peak after the
/// gain is `peak_dbtp + gain_db`: no second measurement is needed.
pub fn plan_gain(loudness_lufs: f64, peak_dbtp: f64, settings: &Settings) -> GainPlan {
    let mut plan = GainPlan {
        gain_db: settings.target_lufs - loudness_lufs,
        limit: Limit::Target,
    };
    if plan.gain_db > settings.max_gain_db {
        plan = GainPlan {
            gain_db: settings.max_gain_db,
            limit: Limit::MaxGain,
        };
    }
    if peak_dbtp + plan.gain_db > settings.true_peak_dbtp {
        plan = GainPlan {
            gain_db: settings.true_peak_dbtp - peak_dbtp,
            limit: Limit::TruePeak,
        };
    }
    plan
}

/// The configured target moved by the style's volume (dB = LU), kept in
/// −80..=−5 LUFS: louder than −5 LUFS cannot stay under a true-peak
/// ceiling with speech's peak-to-loudness ratio.
pub fn target_with_volume(target_lufs: f64, ctx: &Context) -> f64 {
    let volume = ctx.style.as_ref().and_then(|s| s.volume).unwrap_or(0.0);
    (target_lufs + f64::from(volume)).clamp(-80.0, -5.0)
}

pub struct Loudness;

impl AudioStage for Loudness {
    fn info() -> PluginInfo {
        PluginInfo::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            "Normalizes integrated loudness (BS.1770-4 / EBU R128) plus the style's volume under a true-peak ceiling",
        )
        .applies(&["volume"])
        .two_pass()
    }

    fn check_config(config: &Config) -> Result<(), StageError> {
        Settings::from_config(config).map(|_| ())
    }

    fn process_block(
        ctx: &Context,
        config: &Config,
        block: Block,
    ) -> Result<BlockOutput, StageError> {
        let mut settings = Settings::from_config(config)?;
        settings.target_lufs = target_with_volume(settings.target_lufs, ctx);
        let Block {
            audio,
            position,
            state,
        } = block;
        if let Some(why) = input::problem(&audio.samples, audio.channels, audio.sample_rate) {
            return Err(StageError::InvalidInput(why));
        }
        match position.pass {
            0 => stage::measure(audio, position.last, &state, &settings),
            1 => stage::apply(audio, position.last, &state),
            pass => Err(StageError::InvalidInput(format!(
                "pass {pass} of a stage that has two (0 and 1)"
            ))),
        }
    }
}

voxpipe_plugin_audio::export!(Loudness);

#[cfg(test)]
mod tests;
