//! The style fields a stage can apply to the audio: what an audio plugin
//! declares in `plugin-info.applies` (WIT 0.2.0), and what the host's
//! accounting of honored fields speaks of.

use serde::Serialize;
use std::fmt;

/// A field of [`crate::Style`], as named in labels, headers and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StyleField {
    Voice,
    Language,
    Speaker,
    Dialect,
    Speed,
    Pitch,
    Volume,
    NoiseScale,
    NoiseW,
    Emotion,
    Extra,
}

impl StyleField {
    pub const ALL: [StyleField; 11] = [
        StyleField::Voice,
        StyleField::Language,
        StyleField::Speaker,
        StyleField::Dialect,
        StyleField::Speed,
        StyleField::Pitch,
        StyleField::Volume,
        StyleField::NoiseScale,
        StyleField::NoiseW,
        StyleField::Emotion,
        StyleField::Extra,
    ];

    /// The WIT spelling, also the `field` label of
    /// `tts_style_unhonored_total` and the key in `X-Style-Unhonored`.
    pub fn as_str(self) -> &'static str {
        match self {
            StyleField::Voice => "voice",
            StyleField::Language => "language",
            StyleField::Speaker => "speaker",
            StyleField::Dialect => "dialect",
            StyleField::Speed => "speed",
            StyleField::Pitch => "pitch",
            StyleField::Volume => "volume",
            StyleField::NoiseScale => "noise-scale",
            StyleField::NoiseW => "noise-w",
            StyleField::Emotion => "emotion",
            StyleField::Extra => "extra",
        }
    }
}

impl fmt::Display for StyleField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of an audio plugin's `applies`; serialized as it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applies {
    /// A whole field: `pitch`, `volume`, …; `emotions` is every emotion tag.
    Field(StyleField),
    /// One emotion tag: `emotion:whisper`.
    Emotion(String),
    /// One `extra` key: `extra:reverb`.
    Extra(String),
}

impl Applies {
    /// Parse a declared entry; the error says what is accepted.
    pub fn parse(entry: &str) -> Result<Applies, String> {
        let named = |prefix: &str| -> Option<Result<String, String>> {
            let name = entry.strip_prefix(prefix)?;
            Some(
                if name.is_empty()
                    || name.len() > 64
                    || name.chars().any(|c| c.is_control() || c.is_whitespace())
                {
                    Err(format!(
                        "`{entry}`: the name after `{prefix}` must be 1-64 characters without spaces"
                    ))
                } else {
                    Ok(name.to_string())
                },
            )
        };
        if let Some(name) = named("emotion:") {
            return name.map(Applies::Emotion);
        }
        if let Some(name) = named("extra:") {
            return name.map(Applies::Extra);
        }
        if entry == "emotions" {
            return Ok(Applies::Field(StyleField::Emotion));
        }
        StyleField::ALL
            .into_iter()
            .filter(|f| !matches!(f, StyleField::Emotion | StyleField::Extra))
            .find(|f| f.as_str() == entry)
            .map(Applies::Field)
            .ok_or_else(|| {
                let shown: String = entry.chars().take(64).collect();
                format!(
                    "`{}` is not a style field; expected one of voice, language, speaker, \
                     dialect, speed, pitch, volume, noise-scale, noise-w, emotions, \
                     emotion:NAME, extra:KEY",
                    shown.escape_debug()
                )
            })
    }
}

impl Serialize for Applies {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Applies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Applies::Field(StyleField::Emotion) => f.write_str("emotions"),
            Applies::Field(field) => f.write_str(field.as_str()),
            Applies::Emotion(name) => write!(f, "emotion:{name}"),
            Applies::Extra(key) => write!(f, "extra:{key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_and_print_back() {
        for entry in [
            "pitch",
            "volume",
            "noise-w",
            "emotions",
            "emotion:whisper",
            "extra:reverb",
        ] {
            let a = Applies::parse(entry).unwrap();
            assert_eq!(a.to_string(), entry);
        }
        assert_eq!(
            Applies::parse("emotions").unwrap(),
            Applies::Field(StyleField::Emotion)
        );
    }

    #[test]
    fn unknown_or_malformed_entries_are_refused() {
        for bad in [
            "",
            "Pitch",
            "emotion",
            "extra",
            "emotion:",
            "extra:a b",
            "loudness",
        ] {
            assert!(Applies::parse(bad).is_err(), "{bad}");
        }
        let e = Applies::parse("loud\nness").unwrap_err();
        assert!(!e.contains('\n'), "{e}");
    }
}
