//! Everything a plugin returns is checked here before the host uses it.
//!
//! A plugin's result is untrusted input to the host: a style's numbers reach
//! the voice model, an audio stage's format reaches the resampler and the
//! encoders, strings reach responses, headers, logs and spans. Numbers and
//! formats out of the documented ranges, and identifiers that are not
//! identifiers, are refused as [`PluginError::BadOutput`] (a fault of the
//! plugin, answered with a 5xx naming the stage) — never clamped silently,
//! never blamed on the client. Free text (labels, reasons, messages) is made
//! one line and cut to its documented length.

use super::error::PluginError;
use super::sanitize::{identifier_problem, one_line, MAX_ERROR_MESSAGE};
use voxpipe_types::{Audio, Style, StyleOutcome};

/// Inclusive ranges of a style's numbers (documented in `wit/stages.wit`).
pub const SPEED_RANGE: (f32, f32) = (0.25, 4.0);
pub const PITCH_RANGE: (f32, f32) = (-24.0, 24.0);
pub const VOLUME_RANGE: (f32, f32) = (-60.0, 24.0);
pub const NOISE_SCALE_RANGE: (f32, f32) = (0.0, 2.0);
pub const NOISE_W_RANGE: (f32, f32) = (0.0, 2.0);
/// Longest voice, language, speaker, dialect, emotion or `extra` key (bytes).
pub const MAX_STYLE_NAME: usize = 64;
/// Longest `extra` value (bytes).
pub const MAX_EXTRA_VALUE: usize = 1024;
/// Most emotions and most `extra` pairs a style may carry.
pub const MAX_STYLE_ITEMS: usize = 32;
/// Longest mapped label and unmapped reason (bytes); longer ones are cut.
pub const MAX_LABEL: usize = 256;
pub const MAX_REASON: usize = 512;
/// Sample rates and channel counts an audio stage may return: what the
/// host's resampler and encoders support.
pub const SAMPLE_RATE_RANGE: (u32, u32) = (8_000, 192_000);
pub const MAX_CHANNELS: u16 = 8;

fn bad(message: String) -> PluginError {
    PluginError::BadOutput(message)
}

fn check_number(field: &str, value: Option<f32>, (lo, hi): (f32, f32)) -> Result<(), PluginError> {
    match value {
        Some(v) if !(lo..=hi).contains(&v) => {
            Err(bad(format!("style.{field} = {v} is outside {lo}..={hi}")))
        }
        _ => Ok(()),
    }
}

fn check_name(field: &str, value: &str, max: usize) -> Result<(), PluginError> {
    match identifier_problem(value, max) {
        Some(problem) => Err(bad(format!(
            "style.{field} {:?} {problem}",
            one_line(value, 40)
        ))),
        None => Ok(()),
    }
}

/// Check a style's numbers and names.
pub fn check_style(s: &Style) -> Result<(), PluginError> {
    check_number("speed", s.speed, SPEED_RANGE)?;
    check_number("pitch", s.pitch, PITCH_RANGE)?;
    check_number("volume", s.volume, VOLUME_RANGE)?;
    check_number("noise-scale", s.noise_scale, NOISE_SCALE_RANGE)?;
    check_number("noise-w", s.noise_w, NOISE_W_RANGE)?;
    for (field, value) in [
        ("voice", &s.voice),
        ("language", &s.language),
        ("speaker", &s.speaker),
        ("dialect", &s.dialect),
    ] {
        if let Some(v) = value {
            check_name(field, v, MAX_STYLE_NAME)?;
        }
    }
    if s.emotions.len() > MAX_STYLE_ITEMS || s.extra.len() > MAX_STYLE_ITEMS {
        return Err(bad(format!(
            "a style carries at most {MAX_STYLE_ITEMS} emotions and {MAX_STYLE_ITEMS} extra pairs (got {} and {})",
            s.emotions.len(),
            s.extra.len()
        )));
    }
    for e in &s.emotions {
        check_name("emotions[]", e, MAX_STYLE_NAME)?;
    }
    for (k, v) in &s.extra {
        check_name("extra key", k, MAX_STYLE_NAME)?;
        if v.len() > MAX_EXTRA_VALUE || v.chars().any(char::is_control) {
            return Err(bad(format!(
                "style.extra value of `{}` is over {MAX_EXTRA_VALUE} bytes or has control characters",
                one_line(k, 40)
            )));
        }
    }
    Ok(())
}

/// Check a style outcome; the label and reason come back one line and cut.
pub fn check_outcome(o: StyleOutcome) -> Result<StyleOutcome, PluginError> {
    match o {
        StyleOutcome::Mapped { style, label } => {
            check_style(&style)?;
            Ok(StyleOutcome::Mapped {
                style,
                label: one_line(&label, MAX_LABEL),
            })
        }
        StyleOutcome::Unmapped { reason } => Ok(StyleOutcome::Unmapped {
            reason: one_line(&reason, MAX_REASON),
        }),
    }
}

/// Check the audio an audio stage returned.
pub fn check_audio(a: &Audio) -> Result<(), PluginError> {
    let (lo, hi) = SAMPLE_RATE_RANGE;
    if !(lo..=hi).contains(&a.sample_rate) {
        return Err(bad(format!(
            "audio sample rate {} Hz is outside {lo}..={hi}",
            a.sample_rate
        )));
    }
    if a.channels == 0 || a.channels > MAX_CHANNELS {
        return Err(bad(format!(
            "audio has {} channels (1 to {MAX_CHANNELS} are supported)",
            a.channels
        )));
    }
    if !a.samples.len().is_multiple_of(usize::from(a.channels)) {
        return Err(bad(format!(
            "{} samples are not whole frames of {} channels",
            a.samples.len(),
            a.channels
        )));
    }
    if !all_finite(&a.samples) {
        let i = a.samples.iter().position(|s| !s.is_finite()).unwrap_or(0);
        return Err(bad(format!("audio sample {i} is not a finite number")));
    }
    Ok(())
}

/// Whether every sample is finite. Branch-free over blocks so that it
/// vectorises: an exponent of all ones is NaN or infinity.
fn all_finite(samples: &[f32]) -> bool {
    samples.chunks(256).all(|block| {
        block.iter().fold(0u32, |acc, s| {
            acc | u32::from(s.to_bits() & 0x7f80_0000 == 0x7f80_0000)
        }) == 0
    })
}

/// A `stage-error` message, made fit for a response body and a log line.
pub fn error_message(m: &str) -> String {
    one_line(m, MAX_ERROR_MESSAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn style_numbers_out_of_range_are_refused() {
        let ok = Style {
            speed: Some(1.5),
            noise_w: Some(0.8),
            pitch: Some(-3.0),
            ..Style::default()
        };
        assert!(check_style(&ok).is_ok());
        for s in [
            Style {
                noise_w: Some(5.0),
                ..Style::default()
            },
            Style {
                speed: Some(f32::NAN),
                ..Style::default()
            },
            Style {
                volume: Some(f32::INFINITY),
                ..Style::default()
            },
            Style {
                noise_scale: Some(-0.1),
                ..Style::default()
            },
            Style {
                voice: Some("a\nb".into()),
                ..Style::default()
            },
            Style {
                emotions: vec!["x".into(); 33],
                ..Style::default()
            },
        ] {
            let e = check_style(&s).expect_err(&format!("{s:?}"));
            assert_eq!(e.kind(), "bad_output");
            assert!(e.is_plugin_fault());
        }
    }

    #[test]
    fn labels_and_reasons_are_cut_to_one_line() {
        let o = check_outcome(StyleOutcome::Mapped {
            style: Style::default(),
            label: format!("a\r\nb{}", "x".repeat(10_000)),
        })
        .unwrap();
        let StyleOutcome::Mapped { label, .. } = o else {
            panic!()
        };
        assert!(label.starts_with("a  b"));
        assert!(label.len() <= MAX_LABEL);
    }

    #[test]
    fn audio_formats_the_host_cannot_use_are_refused() {
        let a = |rate, channels, samples: Vec<f32>| Audio {
            sample_rate: rate,
            channels,
            samples,
        };
        assert!(check_audio(&a(22050, 1, vec![0.0; 10])).is_ok());
        assert!(check_audio(&a(48000, 2, vec![0.0; 10])).is_ok());
        assert!(check_audio(&a(1, 1, vec![0.0; 10])).is_err());
        assert!(check_audio(&a(u32::MAX, 1, vec![0.0; 10])).is_err());
        assert!(check_audio(&a(22050, 0, vec![])).is_err());
        assert!(check_audio(&a(22050, 40_000, vec![0.0; 40_000])).is_err());
        assert!(check_audio(&a(22050, 2, vec![0.0; 3])).is_err());
        assert!(check_audio(&a(22050, 1, vec![0.0, f32::NAN])).is_err());
    }
}
