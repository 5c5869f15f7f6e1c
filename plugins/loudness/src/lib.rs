//! `loudness`: normalizes an utterance to a target integrated loudness
//! (ITU-R BS.1770-4 / EBU R128), under a true-peak ceiling.
//!
//! 1. Measure the gated integrated loudness (K-weighting derived for the
//!    actual sample rate, 400 ms blocks every 100 ms, −70 LUFS absolute and
//!    −10 LU relative gates, surround channels weighted 1.41).
//! 2. Gain = target − measured, capped at `max_gain_db`. The target is
//!    `target_lufs` plus the style's `volume` (dB), kept in −80..=−5 LUFS:
//!    "speak softly" (volume −6) ends 6 LU below plain speech. The stage
//!    declares that it applies `volume`.
//! 3. Measure the true peak (4× oversampling, BS.1770 Annex 2). If the peak
//!    after the gain stays under `true_peak_dbtp`, the output is the input
//!    times that one gain (nothing else touches it).
//! 4. Otherwise, with `limiter = true` (the default), apply the full gain
//!    and run a look-ahead true-peak limiter (5 ms linear attack ramp, 80 ms
//!    exponential release, all channels linked, no added latency), then
//!    re-measure and add make-up gain until the output is within ±0.1 LU of
//!    the target (see the `limiter` module). Needed because speech is peaky:
//!    espeak-ng speech has a peak-to-loudness ratio of ~18.6 dB, so a single
//!    gain under a −1 dBTP ceiling stops near −19.3 LUFS instead of −16.
//!    With `limiter = false` the gain is lowered until the true peak sits
//!    exactly on the ceiling: quieter than the target, but a pure gain.
//!
//! Audio with undefined loudness — shorter than one 400 ms block, or digital
//! silence / everything below −70 LUFS — is returned unchanged (logged at
//! info level). Not streamable: the gain depends on the whole utterance.
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
mod settings;
mod true_peak;

pub use input::{MAX_RATE, MIN_RATE};
pub use kweight::{k_weighting, Biquad};
pub use settings::Settings;

use voxpipe_plugin_audio::{
    log, Audio, AudioStage, ChunkPosition, Config, Context, PluginInfo, StageError,
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

pub struct Loudness;

impl AudioStage for Loudness {
    fn info() -> PluginInfo {
        PluginInfo::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            "Normalizes integrated loudness (BS.1770-4 / EBU R128) plus the style's volume under a true-peak ceiling",
        )
        .applies(&["volume"])
    }

    fn check_config(config: &Config) -> Result<(), StageError> {
        Settings::from_config(config).map(|_| ())
    }

    fn process(
        ctx: &Context,
        config: &Config,
        mut audio: Audio,
        _position: ChunkPosition,
    ) -> Result<Audio, StageError> {
        let mut settings = Settings::from_config(config)?;
        settings.target_lufs = target_with_volume(settings.target_lufs, ctx);
        if let Some(why) = input::problem(&audio.samples, audio.channels, audio.sample_rate) {
            return Err(StageError::InvalidInput(why));
        }
        let channels = usize::from(audio.channels);
        let Some(loudness) = integrated::integrated(&audio.samples, channels, audio.sample_rate)
        else {
            log::info("loudness: undefined (shorter than 400 ms or silent); audio left unchanged");
            return Ok(audio);
        };
        // With the limiter on, measure the per-frame peaks it needs right
        // away: their maximum is exactly the true peak, so this saves a pass.
        let frame_peaks = settings
            .limiter
            .then(|| true_peak::frame_peaks(&audio.samples, channels));
        let peak = true_peak::to_db(match &frame_peaks {
            Some(p) => p.iter().copied().fold(0.0, f64::max),
            None => true_peak::true_peak_linear(&audio.samples, channels),
        });
        let plan = plan_gain(loudness, peak, &settings);
        if let (Some(peaks), Limit::TruePeak) = (&frame_peaks, plan.limit) {
            return Ok(limited(audio, peaks, loudness, peak, &settings));
        }
        log::info(&format!(
            "loudness: measured {loudness:.2} LUFS, true peak {peak:.2} dBTP; gain {:+.2} dB ({:?})",
            plan.gain_db, plan.limit
        ));
        let factor = 10f64.powf(plan.gain_db / 20.0);
        for s in &mut audio.samples {
            // The ceiling is at most 0 dBTP, so the clamp never engages; it
            // only guards the [-1, 1] contract against rounding.
            *s = ((f64::from(*s) * factor) as f32).clamp(-1.0, 1.0);
        }
        Ok(audio)
    }
}

/// The configured target moved by the style's volume (dB = LU), kept in
/// −80..=−5 LUFS: louder than −5 LUFS cannot stay under a true-peak
/// ceiling with speech's peak-to-loudness ratio.
pub fn target_with_volume(target_lufs: f64, ctx: &Context) -> f64 {
    let volume = ctx.style.as_ref().and_then(|s| s.volume).unwrap_or(0.0);
    (target_lufs + f64::from(volume)).clamp(-80.0, -5.0)
}

/// The limiter path of `process`: the gain the ceiling would have cut
/// (target, or `max_gain_db`), then the limiter and make-up rounds.
fn limited(
    mut audio: Audio,
    peaks: &[f64],
    loudness: f64,
    peak: f64,
    settings: &Settings,
) -> Audio {
    // The plan without the ceiling: peak −inf never exceeds it.
    let free = plan_gain(loudness, f64::NEG_INFINITY, settings);
    let channels = usize::from(audio.channels);
    let (samples, out) = limiter::limit(
        &audio.samples,
        peaks,
        channels,
        audio.sample_rate,
        free.gain_db,
        loudness + free.gain_db,
        settings,
    );
    log::info(&format!(
        "loudness: measured {loudness:.2} LUFS, true peak {peak:.2} dBTP; gain {:+.2} dB ({:?}) \
         with limiter: max gain reduction {:.2} dB, {} pass(es), trim {:+.3} dB; \
         output {} LUFS, {:.2} dBTP",
        out.gain_db,
        free.limit,
        out.max_reduction_db,
        out.passes,
        out.trim_db,
        out.loudness_lufs
            .map_or_else(|| "undefined".to_string(), |l| format!("{l:.2}")),
        out.peak_dbtp,
    ));
    audio.samples = samples;
    audio
}

voxpipe_plugin_audio::export!(Loudness);

#[cfg(test)]
mod tests;
