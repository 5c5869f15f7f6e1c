//! The stage's config table and the shift a request asks for.

use voxpipe_plugin_audio::{Config, Context, StageError};

/// Largest pitch shift, in semitones, either way (one octave).
pub const MAX_SEMITONES: f32 = 12.0;
/// Allowed `tempo` range (duration multiplier `1/tempo`).
pub const TEMPO_RANGE: std::ops::RangeInclusive<f64> = 0.5..=2.0;
/// Shifts smaller than this (1 cent) are inaudible and treated as none, so
/// that rounding noise from a style stage still takes the exact fast path.
pub const SEMITONE_EPSILON: f32 = 0.01;
/// Tempo this close to 1 is treated as exactly 1.
pub const TEMPO_EPSILON: f64 = 1e-4;
/// The keys the config table may hold.
const KEYS: [&str; 2] = ["semitones", "tempo"];

/// The config table. Every key is optional; `{}` means "only apply the
/// style's pitch". Read key by key (not with `serde`'s derive) so that a
/// type error names its key.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Pitch shift in semitones, added to the style's `pitch`. −12..=12.
    pub semitones: f32,
    /// Time-stretch without pitch change: the output lasts `1/tempo` of the
    /// input. 0.5..=2.0. The style's `speed` is deliberately *not* applied
    /// here: the voice model already speaks at that speed.
    /// `f64` so that a round duration (`0.8` → 27 563 frames from 22 050)
    /// comes out as written.
    pub tempo: f64,
}

impl Settings {
    /// Parse and validate the config table; errors name the key.
    pub fn from_config(config: &Config) -> Result<Settings, StageError> {
        config.only_keys(&KEYS)?;
        let s = Settings {
            semitones: config.get_or("semitones", 0.0)?,
            tempo: config.get_or("tempo", 1.0)?,
        };
        if !(-MAX_SEMITONES..=MAX_SEMITONES).contains(&s.semitones) {
            return Err(StageError::InvalidConfig(format!(
                "`semitones` = {} is outside -{MAX_SEMITONES}..={MAX_SEMITONES}",
                s.semitones
            )));
        }
        if !TEMPO_RANGE.contains(&s.tempo) {
            return Err(StageError::InvalidConfig(format!(
                "`tempo` = {} is outside {}..={}",
                s.tempo,
                TEMPO_RANGE.start(),
                TEMPO_RANGE.end()
            )));
        }
        Ok(s)
    }
}

/// What one request asks for: the total shift and the tempo.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    /// Total semitones (style + config), clamped to ±12, 0 when inaudible.
    pub semitones: f32,
    /// Tempo, 1 when within [`TEMPO_EPSILON`].
    pub tempo: f64,
    /// True when the style + config total had to be clamped.
    pub clamped: bool,
}

impl Shift {
    /// Combine the style's `pitch` with the config. A total beyond ±12
    /// semitones is clamped (and reported through `clamped`) rather than
    /// refused: the style comes from a free-form instruction, and "much
    /// higher" stacked on a configured shift should still be served. A
    /// non-finite style pitch is a broken upstream stage: refused.
    pub fn for_request(ctx: &Context, settings: &Settings) -> Result<Shift, StageError> {
        let style = ctx.style.as_ref().and_then(|s| s.pitch).unwrap_or(0.0);
        if !style.is_finite() {
            return Err(StageError::InvalidInput(format!(
                "the style's pitch ({style}) is not a finite number"
            )));
        }
        let total = style + settings.semitones;
        let clamped_total = total.clamp(-MAX_SEMITONES, MAX_SEMITONES);
        let semitones = if clamped_total.abs() < SEMITONE_EPSILON {
            0.0
        } else {
            clamped_total
        };
        let tempo = if (settings.tempo - 1.0).abs() < TEMPO_EPSILON {
            1.0
        } else {
            settings.tempo
        };
        Ok(Shift {
            semitones,
            tempo,
            clamped: clamped_total != total,
        })
    }

    /// True when the request needs no processing at all.
    pub fn is_identity(&self) -> bool {
        self.semitones == 0.0 && self.tempo == 1.0
    }

    /// Frequency ratio of the pitch shift, `2^(semitones/12)`.
    pub fn pitch_ratio(&self) -> f64 {
        2f64.powf(self.semitones as f64 / 12.0)
    }
}
