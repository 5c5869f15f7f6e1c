//! The stage's config table, read key by key so that every error names the
//! key it is about (a whole-struct `serde` error does not say which field had
//! the wrong type).

use voxpipe_plugin_audio::{Config, StageError};

/// Shape of the fade curves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FadeShape {
    /// Gain rises in a straight line.
    Linear,
    /// Raised cosine (half a Hann window): zero slope at both ends, so the
    /// fade itself adds no corner to the waveform. The default.
    Cosine,
}

/// Validated settings; every field has a default so `{}` is a valid config.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// A window whose RMS is below this level (dBFS, RMS relative to a
    /// sample value of 1.0) is silent.
    pub threshold_db: f64,
    /// Length of the RMS windows.
    pub window_ms: f64,
    /// Margin of original audio kept before the first and after the last
    /// sound, so soft consonant onsets and releases survive.
    pub keep_ms: f64,
    pub fade_in_ms: f64,
    pub fade_out_ms: f64,
    pub fade_shape: FadeShape,
    /// Silence put before every sentence of a stream but the first.
    pub sentence_pause_ms: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            threshold_db: -50.0,
            window_ms: 10.0,
            keep_ms: 30.0,
            fade_in_ms: 5.0,
            fade_out_ms: 10.0,
            fade_shape: FadeShape::Cosine,
            sentence_pause_ms: 0.0,
        }
    }
}

/// Every key the stage understands; anything else is refused, so a typo
/// (`fade_ms`) fails at pipeline load instead of being silently ignored.
const KEYS: &[&str] = &[
    "threshold_db",
    "window_ms",
    "keep_ms",
    "fade_in_ms",
    "fade_out_ms",
    "fade_shape",
    "sentence_pause_ms",
];

/// Longest duration any `*_ms` key accepts: 5 s is far beyond any sensible
/// margin, fade or pause, and bounds the memory a pause can allocate.
pub const MAX_MS: f64 = 5000.0;

impl Settings {
    /// Read and validate the config table.
    pub fn from_config(config: &Config) -> Result<Settings, StageError> {
        config.only_keys(KEYS)?;
        let d = Settings::default();
        let fade_shape = match config.get::<String>("fade_shape")?.as_deref() {
            None | Some("cosine") => FadeShape::Cosine,
            Some("linear") => FadeShape::Linear,
            Some(other) => {
                return Err(StageError::InvalidConfig(format!(
                    "`fade_shape` = {other:?} is not \"linear\" or \"cosine\""
                )))
            }
        };
        Ok(Settings {
            threshold_db: config.number_in("threshold_db", d.threshold_db, -120.0, 0.0)?,
            // A zero-length window could not measure anything.
            window_ms: config.number_in("window_ms", d.window_ms, 1.0, 1000.0)?,
            keep_ms: config.number_in("keep_ms", d.keep_ms, 0.0, MAX_MS)?,
            fade_in_ms: config.number_in("fade_in_ms", d.fade_in_ms, 0.0, MAX_MS)?,
            fade_out_ms: config.number_in("fade_out_ms", d.fade_out_ms, 0.0, MAX_MS)?,
            fade_shape,
            sentence_pause_ms: config.number_in(
                "sentence_pause_ms",
                d.sentence_pause_ms,
                0.0,
                MAX_MS,
            )?,
        })
    }
}

/// Whole frames in `ms` milliseconds at `sample_rate` (rounded to nearest).
/// Inputs are validated (ms ≤ 5000, rate ≤ 768 kHz), so this cannot overflow.
pub fn frames(ms: f64, sample_rate: u32) -> usize {
    (ms * f64::from(sample_rate) / 1000.0).round() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        match Settings::from_config(&Config::parse(json).unwrap()) {
            Err(StageError::InvalidConfig(m)) => m,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn empty_config_gives_the_documented_defaults() {
        let s = Settings::from_config(&Config::parse("{}").unwrap()).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.threshold_db, -50.0);
        assert_eq!(s.fade_shape, FadeShape::Cosine);
    }

    #[test]
    fn full_config_is_read() {
        let s = Settings::from_config(
            &Config::parse(
                r#"{"threshold_db": -60, "window_ms": 20, "keep_ms": 0, "fade_in_ms": 2.5,
                    "fade_out_ms": 0, "fade_shape": "linear", "sentence_pause_ms": 250}"#,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(s.threshold_db, -60.0);
        assert_eq!(s.window_ms, 20.0);
        assert_eq!(s.fade_in_ms, 2.5);
        assert_eq!(s.fade_shape, FadeShape::Linear);
        assert_eq!(s.sentence_pause_ms, 250.0);
    }

    #[test]
    fn errors_name_the_key() {
        assert!(err(r#"{"threshold_db": 3}"#).contains("threshold_db"));
        assert!(err(r#"{"threshold_db": -121}"#).contains("threshold_db"));
        assert!(err(r#"{"window_ms": 0}"#).contains("window_ms"));
        assert!(err(r#"{"keep_ms": -1}"#).contains("keep_ms"));
        assert!(err(r#"{"fade_in_ms": 5001}"#).contains("fade_in_ms"));
        assert!(err(r#"{"fade_out_ms": "long"}"#).contains("fade_out_ms"));
        assert!(err(r#"{"sentence_pause_ms": 9000}"#).contains("sentence_pause_ms"));
        assert!(err(r#"{"fade_shape": "expo"}"#).contains("fade_shape"));
        assert!(err(r#"{"fade_shape": 1}"#).contains("fade_shape"));
        assert!(err(r#"{"fade_ms": 5}"#).contains("fade_ms"));
    }

    #[test]
    fn frames_round_to_nearest() {
        assert_eq!(frames(10.0, 22050), 221);
        assert_eq!(frames(30.0, 16000), 480);
        assert_eq!(frames(0.0, 48000), 0);
    }
}
