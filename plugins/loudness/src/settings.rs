//! The stage's config table: every key optional, validated key by key so
//! error messages name the offending key.

use voxpipe_plugin_audio::{Config, StageError};

/// Keys this stage understands; anything else is a typo and refused.
const KNOWN_KEYS: [&str; 4] = ["target_lufs", "true_peak_dbtp", "max_gain_db", "limiter"];

/// Validated settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Integrated loudness to aim for, LUFS. −16 suits speech on the web
    /// and podcasts; EBU R128 broadcast is −23.
    pub target_lufs: f64,
    /// Ceiling for the true peak after the gain, dBTP. −1 leaves headroom for
    /// lossy encoders, whose decoded peaks overshoot the source.
    pub true_peak_dbtp: f64,
    /// Largest boost allowed, dB, so near-silent or noise-only utterances
    /// are not blown up to the target.
    pub max_gain_db: f64,
    /// Reach the target even when the true peak would exceed the ceiling,
    /// by limiting the few peaks above it (look-ahead limiter). `false`
    /// instead lowers the single gain until the peak fits, leaving peaky
    /// audio (speech!) quieter than the target.
    pub limiter: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            target_lufs: -16.0,
            true_peak_dbtp: -1.0,
            max_gain_db: 20.0,
            limiter: true,
        }
    }
}

impl Settings {
    /// Read and check the config table.
    pub fn from_config(config: &Config) -> Result<Settings, StageError> {
        config.only_keys(&KNOWN_KEYS)?;
        let d = Settings::default();
        Ok(Settings {
            target_lufs: config.number_in("target_lufs", d.target_lufs, -60.0, -5.0)?,
            true_peak_dbtp: config.number_in("true_peak_dbtp", d.true_peak_dbtp, -20.0, 0.0)?,
            max_gain_db: config.number_in("max_gain_db", d.max_gain_db, 0.0, 60.0)?,
            limiter: config.get_or("limiter", d.limiter)?,
        })
    }
}
