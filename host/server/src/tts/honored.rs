//! Which fields of a request's style reached the audio, and which did not.
//!
//! A style stage that maps "用四川话说" to `dialect=sichuanese` has understood
//! the instruction (`X-Style-Mapped`); whether anything *applies* the dialect
//! is a separate question, answered here for every field:
//!
//! | field | honored when |
//! |---|---|
//! | `voice`, `speaker` | the voice (speaker) the style named is the one that speaks (a request's own `voice` / `speaker` overrides it) |
//! | `speed`, `noise-scale`, `noise-w` | always: the host gives them to the model |
//! | `language` | the speaking voice's language has the same primary subtag, or the route that chose the voice matched on the language |
//! | `dialect` | the route that chose the voice matched on the dialect |
//! | each emotion | the route matched on it, or an audio stage applies `emotions` or `emotion:NAME` |
//! | `pitch`, `volume` | 0 (no change), or an audio stage applies it |
//! | each `extra` key | an audio stage applies `extra:KEY` |
//!
//! What is left is reported (header `X-Style-Unhonored`, span attribute
//! `style.unhonored`, `tts_style_unhonored_total{pipeline,field}`) or, under
//! `on_unhonored = "refuse"`, refused before any synthesis.

use voxpipe_types::{Applies, Style, StyleField};

use crate::pipeline::routes::{language_matches, Matched, Route};

/// What the host knows was done with a style.
pub struct Applied<'a> {
    /// The voice that speaks, and its language tag.
    pub voice: &'a str,
    pub voice_language: Option<&'a str>,
    /// The request named its own speaker (over the style's).
    pub speaker_overridden: bool,
    /// The route that chose the voice, and what it matched.
    pub route: Option<&'a Matched>,
    /// Every `applies` entry of the pipeline's audio stages.
    pub audio: &'a [&'a Applies],
}

/// One style field set but not honored, with its value as labels show it.
#[derive(Debug, Clone, PartialEq)]
pub struct UnhonoredField {
    pub field: StyleField,
    pub value: String,
}

/// `dialect=sichuanese;emotion=happy`: the shape of `X-Style-Mapped` labels.
pub fn label(fields: &[UnhonoredField]) -> String {
    fields
        .iter()
        .map(|f| format!("{}={}", f.field, f.value))
        .collect::<Vec<_>>()
        .join(";")
}

fn number(v: f32) -> String {
    format!("{v:+}")
}

/// The fields of `style` that nothing in `applied` honors, in field order.
pub fn unhonored(style: &Style, applied: &Applied<'_>) -> Vec<UnhonoredField> {
    let mut out = Vec::new();
    let mut miss = |field: StyleField, value: String| out.push(UnhonoredField { field, value });
    let audio_applies = |field: StyleField| {
        applied
            .audio
            .iter()
            .any(|a| matches!(a, Applies::Field(f) if *f == field))
    };
    if let Some(voice) = &style.voice {
        if voice != applied.voice {
            miss(StyleField::Voice, voice.clone());
        }
    }
    if let Some(language) = &style.language {
        let primary = language.split(['-', '_']).next().unwrap_or("");
        let by_voice = applied
            .voice_language
            .is_some_and(|tag| language_matches(primary, tag));
        let by_route = applied.route.is_some_and(|m| m.language);
        if !(by_voice || by_route || audio_applies(StyleField::Language)) {
            miss(StyleField::Language, language.clone());
        }
    }
    if let Some(speaker) = &style.speaker {
        if applied.speaker_overridden {
            miss(StyleField::Speaker, speaker.clone());
        }
    }
    if let Some(dialect) = &style.dialect {
        let by_route = applied.route.is_some_and(|m| m.dialect);
        if !(by_route || audio_applies(StyleField::Dialect)) {
            miss(StyleField::Dialect, dialect.clone());
        }
    }
    for (field, value) in [
        (StyleField::Pitch, style.pitch),
        (StyleField::Volume, style.volume),
    ] {
        if let Some(v) = value.filter(|v| *v != 0.0) {
            if !audio_applies(field) {
                miss(field, number(v));
            }
        }
    }
    for emotion in &style.emotions {
        let by_route = applied
            .route
            .is_some_and(|m| m.emotions.iter().any(|e| e == emotion));
        let by_audio = applied.audio.iter().any(|a| match a {
            Applies::Field(StyleField::Emotion) => true,
            Applies::Emotion(name) => name.eq_ignore_ascii_case(emotion),
            _ => false,
        });
        if !(by_route || by_audio) {
            miss(StyleField::Emotion, emotion.clone());
        }
    }
    for (key, _) in &style.extra {
        let by_audio = applied
            .audio
            .iter()
            .any(|a| matches!(a, Applies::Extra(k) if k == key));
        if !by_audio {
            miss(StyleField::Extra, key.clone());
        }
    }
    out
}

/// For a refusal: who in this pipeline could have served `field`, e.g.
/// "dialect=sichuanese is served by route 2 (voice zh_CN-huayan-medium) …";
/// for a language no route serves, the server's voices that speak it
/// (`catalog`: name and language tag of each voice).
pub fn who_serves(
    f: &UnhonoredField,
    routes: &[Route],
    pipeline_voice: &str,
    catalog: &[(String, String)],
) -> String {
    let serving: Vec<String> = routes
        .iter()
        .filter(|r| {
            let values = match f.field {
                StyleField::Dialect => &r.when.dialect,
                StyleField::Emotion => &r.when.emotion,
                StyleField::Language => &r.when.language,
                _ => return false,
            };
            values.iter().any(|v| match f.field {
                StyleField::Language => language_matches(v, &f.value),
                _ => v.eq_ignore_ascii_case(&f.value),
            })
        })
        .map(|r| {
            format!(
                "route {} (voice {})",
                r.number,
                r.voice.as_deref().unwrap_or(pipeline_voice)
            )
        })
        .collect();
    match f.field {
        _ if !serving.is_empty() => format!(
            "{}={} is served by {} when the request names no voice",
            f.field,
            f.value,
            serving.join(", ")
        ),
        StyleField::Language => {
            let primary = f.value.split(['-', '_']).next().unwrap_or("");
            let speaking: Vec<&str> = catalog
                .iter()
                .filter(|(_, tag)| language_matches(primary, tag))
                .map(|(name, _)| name.as_str())
                .collect();
            if speaking.is_empty() {
                format!("{}={}: no voice of this server speaks it", f.field, f.value)
            } else {
                format!(
                    "{}={}: no route of this pipeline serves it; voices that speak it: {} \
                     (add a route)",
                    f.field,
                    f.value,
                    speaking.join(", ")
                )
            }
        }
        StyleField::Dialect | StyleField::Emotion => format!(
            "{}={}: no voice of this pipeline serves it (add a route)",
            f.field, f.value
        ),
        StyleField::Voice | StyleField::Speaker => format!(
            "{}={}: the request named its own {}",
            f.field, f.value, f.field
        ),
        _ => format!(
            "{}={}: no audio stage of this pipeline applies {}",
            f.field, f.value, f.field
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied<'a>(audio: &'a [&'a Applies], route: Option<&'a Matched>) -> Applied<'a> {
        Applied {
            voice: "en_US-joe-medium",
            voice_language: Some("en-US"),
            speaker_overridden: false,
            route,
            audio,
        }
    }

    #[test]
    fn a_dialect_without_a_route_is_unhonored_and_pitch_needs_a_stage() {
        let style = Style {
            dialect: Some("sichuanese".into()),
            language: Some("zh-CN".into()),
            emotions: vec!["happy".into()],
            pitch: Some(2.0),
            volume: Some(0.0),
            speed: Some(0.8),
            ..Style::default()
        };
        let got = unhonored(&style, &applied(&[], None));
        assert_eq!(
            label(&got),
            "language=zh-CN;dialect=sichuanese;pitch=+2;emotion=happy"
        );
        let pitch = Applies::Field(StyleField::Pitch);
        let happy = Applies::Emotion("happy".into());
        let got = unhonored(&style, &applied(&[&pitch, &happy], None));
        assert_eq!(label(&got), "language=zh-CN;dialect=sichuanese");
        // A route that matched the dialect honors it; the zh voice honors
        // the language.
        let m = Matched {
            dialect: true,
            language: false,
            emotions: vec![],
        };
        let audio = [&pitch];
        let a = Applied {
            voice: "test-zh",
            voice_language: Some("zh-CN"),
            ..applied(&audio, Some(&m))
        };
        assert_eq!(label(&unhonored(&style, &a)), "emotion=happy");
    }

    #[test]
    fn voice_speaker_and_extra_are_accounted() {
        let style = Style {
            voice: Some("other".into()),
            speaker: Some("bob".into()),
            extra: vec![("reverb".into(), "hall".into())],
            ..Style::default()
        };
        let a = Applied {
            speaker_overridden: true,
            ..applied(&[], None)
        };
        assert_eq!(
            label(&unhonored(&style, &a)),
            "voice=other;speaker=bob;extra=reverb"
        );
        let reverb = Applies::Extra("reverb".into());
        let audio = [&reverb];
        let a = Applied {
            voice: "other",
            ..applied(&audio, None)
        };
        assert!(unhonored(&style, &a).is_empty());
    }
}
