//! Voice routing: which voice (and speaker, and style defaults) speaks a
//! request, chosen by its style. A pipeline's `[[routes]]` are tried in
//! order and the first whose `when` holds wins; a route without `when` is
//! the default and must be last. With no route matching, the pipeline's
//! `voice` speaks.
//!
//! ```toml
//! [[routes]]
//! when = { dialect = ["sichuanese", "chongqing"] }
//! voice = "zh_CN-huayan-medium"
//!
//! [[routes]]
//! when = { language = "zh" }     # zh, zh-CN, zh-TW… (a tag matches its subtags)
//! voice = "zh_CN-huayan-medium"
//!
//! [[routes]]
//! when = { emotion = ["sad", "gentle"] }
//! speaker = "soft"               # on the pipeline's voice
//! speed = 0.9                    # style defaults: used where the style is silent
//! ```
//!
//! A route that matched on a dialect, a language or an emotion is what makes
//! that part of a style *honored* (see `tts/honored.rs`): routing a dialect
//! to a voice is how an operator says the voice speaks it.

use serde::Serialize;
use voxpipe_engine::voice::VoiceEntry;
use voxpipe_types::Style;

use super::definition::{OneOrMany, RouteDef};
use toml::Spanned;

/// What a pipeline does when a request's style has fields nothing applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnhonored {
    /// Speak anyway and report them (header, span, metric).
    #[default]
    Warn,
    /// Refuse the request: 422 `style_unsupported`.
    Refuse,
}

impl OnUnhonored {
    pub fn parse(s: &str) -> Option<OnUnhonored> {
        match s {
            "warn" => Some(OnUnhonored::Warn),
            "refuse" => Some(OnUnhonored::Refuse),
            _ => None,
        }
    }
}

/// A route's conditions; an empty list is no condition on that field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct When {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dialect: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub language: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub emotion: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub speaker: Vec<String>,
}

impl When {
    fn is_default(&self) -> bool {
        self.conditions().iter().all(|(_, v)| v.is_empty())
    }

    fn conditions(&self) -> [(&'static str, &Vec<String>); 4] {
        [
            ("dialect", &self.dialect),
            ("language", &self.language),
            ("emotion", &self.emotion),
            ("speaker", &self.speaker),
        ]
    }

    /// Every style `other` matches is matched by `self` too: each field
    /// `self` constrains, `other` constrains to a subset of its values.
    fn covers(&self, other: &When) -> bool {
        self.conditions().iter().zip(other.conditions().iter()).all(
            |((field, mine), (_, theirs))| {
                mine.is_empty()
                    || (!theirs.is_empty()
                        && theirs.iter().all(|t| {
                            mine.iter().any(|m| match *field {
                                "language" => language_matches(m, t),
                                _ => m.eq_ignore_ascii_case(t),
                            })
                        }))
            },
        )
    }
}

/// Style fields a route fills where the style left them unset.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StyleDefaults {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pitch: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise_scale: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise_w: Option<f32>,
}

/// One checked route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// 1-based position in the file, as messages and listings show it.
    pub number: usize,
    pub when: When,
    /// `None`: the pipeline's voice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
    #[serde(flatten)]
    pub defaults: StyleDefaults,
}

impl std::fmt::Display for Route {
    /// `route 2: when dialect=sichuanese|chongqing → voice zh_CN-x, speed 0.9`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "route {}: ", self.number)?;
        let conditions: Vec<String> = self
            .when
            .conditions()
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(field, v)| format!("{field}={}", v.join("|")))
            .collect();
        if conditions.is_empty() {
            f.write_str("default")?;
        } else {
            write!(f, "when {}", conditions.join(" and "))?;
        }
        let mut chosen = vec![format!(
            "voice {}",
            self.voice.as_deref().unwrap_or("(the pipeline's)")
        )];
        if let Some(s) = &self.speaker {
            chosen.push(format!("speaker {s}"));
        }
        let d = &self.defaults;
        for (key, value) in [
            ("speed", d.speed),
            ("pitch", d.pitch),
            ("volume", d.volume),
            ("noise_scale", d.noise_scale),
            ("noise_w", d.noise_w),
        ] {
            if let Some(v) = value {
                chosen.push(format!("{key} {v}"));
            }
        }
        write!(f, " → {}", chosen.join(", "))
    }
}

/// What the style is matched on: its own fields, and the request's language
/// when the style names none.
pub struct Subject<'a> {
    pub style: &'a Style,
    pub request_language: Option<&'a str>,
}

impl Subject<'_> {
    fn language(&self) -> Option<&str> {
        self.style.language.as_deref().or(self.request_language)
    }
}

/// Which conditions of a route held for a request: what it honors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matched {
    pub dialect: bool,
    pub language: bool,
    /// The style's emotions the route matched on.
    pub emotions: Vec<String>,
}

impl Route {
    /// Whether the route's conditions hold; if so, which fields it matched.
    pub fn matches(&self, s: &Subject<'_>) -> Option<Matched> {
        let one_of = |values: &[String], v: Option<&str>| {
            values.is_empty() || v.is_some_and(|v| values.iter().any(|x| x.eq_ignore_ascii_case(v)))
        };
        if !one_of(&self.when.dialect, s.style.dialect.as_deref())
            || !one_of(&self.when.speaker, s.style.speaker.as_deref())
        {
            return None;
        }
        if !self.when.language.is_empty()
            && !s
                .language()
                .is_some_and(|l| self.when.language.iter().any(|r| language_matches(r, l)))
        {
            return None;
        }
        let emotions: Vec<String> = s
            .style
            .emotions
            .iter()
            .filter(|e| self.when.emotion.iter().any(|w| w.eq_ignore_ascii_case(e)))
            .cloned()
            .collect();
        if !self.when.emotion.is_empty() && emotions.is_empty() {
            return None;
        }
        Some(Matched {
            dialect: !self.when.dialect.is_empty(),
            language: !self.when.language.is_empty(),
            emotions,
        })
    }

    /// The style with this route's defaults filled in where it is silent.
    pub fn fill(&self, style: &mut Style) {
        let d = &self.defaults;
        for (slot, value) in [
            (&mut style.speed, d.speed),
            (&mut style.pitch, d.pitch),
            (&mut style.volume, d.volume),
            (&mut style.noise_scale, d.noise_scale),
            (&mut style.noise_w, d.noise_w),
        ] {
            if slot.is_none() {
                *slot = value;
            }
        }
    }
}

/// The first route whose conditions hold, and what it matched.
pub fn choose<'r>(routes: &'r [Route], s: &Subject<'_>) -> Option<(&'r Route, Matched)> {
    routes.iter().find_map(|r| r.matches(s).map(|m| (r, m)))
}

/// BCP 47 tags, `_` or `-`, any case: `rule` matches `tag` when equal or a
/// prefix at a subtag boundary (`zh` matches `zh-CN`; `zh-CN` not `zh`).
pub fn language_matches(rule: &str, tag: &str) -> bool {
    let norm = |t: &str| t.replace('_', "-").to_ascii_lowercase();
    let (rule, tag) = (norm(rule), norm(tag));
    tag == rule
        || tag
            .strip_prefix(&rule)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// Check the `[[routes]]` of a pipeline whose voice is `pipeline_voice`.
/// `voices` is the server's voice folder when known (unknown voices and
/// speakers are then refused); `report(offset, reason)` records a problem.
pub(crate) fn check(
    defs: &[Spanned<RouteDef>],
    pipeline_voice: &str,
    voices: Option<&[VoiceEntry]>,
    report: &mut dyn FnMut(usize, String),
) -> Vec<Route> {
    let mut routes: Vec<Route> = Vec::new();
    for (i, spanned) in defs.iter().enumerate() {
        let number = i + 1;
        let at = spanned.span().start;
        let def = spanned.get_ref();
        let mut when = When::default();
        if let Some(w) = &def.when {
            let w = w.get_ref();
            for (field, slot, value) in [
                ("dialect", &mut when.dialect, &w.dialect),
                ("language", &mut when.language, &w.language),
                ("emotion", &mut when.emotion, &w.emotion),
                ("speaker", &mut when.speaker, &w.speaker),
            ] {
                let Some(value) = value else { continue };
                *slot = condition_values(value, field, number, report);
            }
            if when.is_default() && def.when.is_some() {
                report(
                    at,
                    format!(
                        "route {number}: `when` has no condition; leave it out for the default route"
                    ),
                );
            }
        }
        let mut defaults = StyleDefaults::default();
        for (key, slot, value, range) in [
            ("speed", &mut defaults.speed, &def.speed, 0.25..=4.0),
            ("pitch", &mut defaults.pitch, &def.pitch, -24.0..=24.0),
            ("volume", &mut defaults.volume, &def.volume, -60.0..=24.0),
            (
                "noise_scale",
                &mut defaults.noise_scale,
                &def.noise_scale,
                0.0..=2.0,
            ),
            ("noise_w", &mut defaults.noise_w, &def.noise_w, 0.0..=2.0),
        ] {
            let Some(v) = value else { continue };
            if !range.contains(v.get_ref()) {
                report(
                    v.span().start,
                    format!(
                        "route {number}: {key} = {} is outside {}..={}",
                        v.get_ref(),
                        range.start(),
                        range.end()
                    ),
                );
            }
            *slot = Some(*v.get_ref());
        }
        let voice_name = def.voice.as_ref().map(|v| v.get_ref().as_str());
        if let Some(entries) = voices {
            let name = voice_name.unwrap_or(pipeline_voice);
            let voice_at = def.voice.as_ref().map_or(at, |v| v.span().start);
            match entries.iter().find(|e| e.name == name) {
                None if def.voice.is_some() => report(
                    voice_at,
                    format!(
                        "route {number}: unknown voice `{name}` (the voices folder has {})",
                        names(entries)
                    ),
                ),
                None => {} // the pipeline's own voice is reported once, by the loader
                Some(entry) => {
                    if let Some(speaker) = &def.speaker {
                        if entry.config.speaker_id(speaker.get_ref()).is_none() {
                            report(
                                speaker.span().start,
                                format!(
                                    "route {number}: voice `{name}` has no speaker `{}` ({})",
                                    speaker.get_ref(),
                                    entry.config.speakers_hint()
                                ),
                            );
                        }
                    }
                }
            }
        }
        let route = Route {
            number,
            when,
            voice: voice_name.map(String::from),
            speaker: def.speaker.as_ref().map(|s| s.get_ref().clone()),
            defaults,
        };
        if let Some(earlier) = routes.iter().find(|r| r.when.covers(&route.when)) {
            let what = if earlier.when == route.when {
                format!("duplicates the conditions of route {}", earlier.number)
            } else if earlier.when.is_default() {
                format!(
                    "is unreachable: route {} (the default, no `when`) matches every style; \
                     the default route goes last",
                    earlier.number
                )
            } else {
                format!(
                    "is unreachable: route {} matches every style it does",
                    earlier.number
                )
            };
            report(at, format!("route {number} {what}"));
        }
        routes.push(route);
    }
    routes
}

fn condition_values(
    value: &Spanned<OneOrMany>,
    field: &str,
    number: usize,
    report: &mut dyn FnMut(usize, String),
) -> Vec<String> {
    let values = value.get_ref().values();
    if values.is_empty() {
        report(
            value.span().start,
            format!("route {number}: when.{field} is an empty list"),
        );
    }
    for v in &values {
        if v.trim().is_empty() || v.len() > 64 || v.chars().any(char::is_control) {
            report(
                value.span().start,
                format!(
                    "route {number}: when.{field} value `{}` must be 1-64 characters",
                    v.escape_debug()
                ),
            );
        }
    }
    values
}

fn names(entries: &[VoiceEntry]) -> String {
    if entries.is_empty() {
        return "no voices".to_string();
    }
    entries
        .iter()
        .map(|e| e.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(number: usize, when: When, voice: &str) -> Route {
        Route {
            number,
            when,
            voice: Some(voice.to_string()),
            speaker: None,
            defaults: StyleDefaults::default(),
        }
    }

    fn when_dialect(d: &[&str]) -> When {
        When {
            dialect: d.iter().map(|s| s.to_string()).collect(),
            ..When::default()
        }
    }

    #[test]
    fn languages_match_at_subtag_boundaries() {
        assert!(language_matches("zh", "zh-CN"));
        assert!(language_matches("zh", "zh_TW"));
        assert!(language_matches("zh-CN", "ZH_cn"));
        assert!(!language_matches("zh-CN", "zh"));
        assert!(!language_matches("z", "zh-CN"));
        assert!(!language_matches("en", "eng"));
    }

    #[test]
    fn the_first_matching_route_wins_and_says_what_it_matched() {
        let routes = [
            route(1, when_dialect(&["sichuanese", "chongqing"]), "zh-a"),
            route(
                2,
                When {
                    language: vec!["zh".into()],
                    ..When::default()
                },
                "zh-b",
            ),
            route(
                3,
                When {
                    emotion: vec!["sad".into()],
                    ..When::default()
                },
                "en-sad",
            ),
            route(4, When::default(), "en"),
        ];
        let pick = |style: Style, lang: Option<&str>| {
            let (r, m) = choose(
                &routes,
                &Subject {
                    style: &style,
                    request_language: lang,
                },
            )
            .unwrap();
            (r.number, m)
        };
        let sichuanese = Style {
            dialect: Some("Sichuanese".into()),
            language: Some("zh-CN".into()),
            emotions: vec!["happy".into()],
            ..Style::default()
        };
        let (n, m) = pick(sichuanese, None);
        assert_eq!(n, 1);
        assert!(m.dialect && !m.language && m.emotions.is_empty());
        // A dialect without a route falls to the language route.
        let shanghainese = Style {
            dialect: Some("shanghainese".into()),
            language: Some("zh-CN".into()),
            ..Style::default()
        };
        let (n, m) = pick(shanghainese, None);
        assert_eq!((n, m.dialect, m.language), (2, false, true));
        // The request's language counts when the style names none.
        assert_eq!(pick(Style::default(), Some("zh_TW")).0, 2);
        let sad = Style {
            emotions: vec!["excited".into(), "sad".into()],
            ..Style::default()
        };
        let (n, m) = pick(sad, Some("en-US"));
        assert_eq!((n, m.emotions), (3, vec!["sad".to_string()]));
        assert_eq!(pick(Style::default(), None).0, 4);
    }

    #[test]
    fn defaults_fill_only_what_the_style_leaves_unset() {
        let mut r = route(1, When::default(), "v");
        r.defaults.speed = Some(0.8);
        r.defaults.pitch = Some(-2.0);
        let mut style = Style {
            speed: Some(1.5),
            ..Style::default()
        };
        r.fill(&mut style);
        assert_eq!((style.speed, style.pitch), (Some(1.5), Some(-2.0)));
    }

    #[test]
    fn coverage_finds_unreachable_routes() {
        let broad = when_dialect(&["a", "b"]);
        assert!(broad.covers(&when_dialect(&["a"])));
        assert!(!when_dialect(&["a"]).covers(&broad));
        let narrower = When {
            emotion: vec!["sad".into()],
            ..when_dialect(&["a"])
        };
        assert!(broad.covers(&narrower));
        assert!(!narrower.covers(&broad));
        assert!(When::default().covers(&narrower));
        let lang = |l: &str| When {
            language: vec![l.into()],
            ..When::default()
        };
        assert!(lang("zh").covers(&lang("zh-CN")));
        assert!(!lang("zh-CN").covers(&lang("zh")));
    }
}
