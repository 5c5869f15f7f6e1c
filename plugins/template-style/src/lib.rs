//! `template-style`: the template for a team shipping a dialect-mapping
//! plugin. It maps instructions that ask for *one* dialect (Cantonese here)
//! to a style, with its keywords, voice and speaking rate taken from the
//! pipeline config, so the team can tune it without rebuilding.
//!
//! The path of a plugin author (details in docs/plugins.md):
//! 1. `cp -r plugins/template-style plugins/my-dialect`, rename the package in
//!    Cargo.toml, add `"my-dialect"` to `members` in plugins/Cargo.toml.
//! 2. Edit the places marked `EDIT:` below; keep the unit tests passing:
//!    `cargo test -p my-dialect` (natively, in plugins/).
//! 3. Build: `voxpipe plugin build plugins` → `target/plugins/my-dialect.wasm`.
//! 4. Try it: `voxpipe plugin run target/plugins/my-dialect.wasm --stage style --input '用粤语讲'`.
//! 5. Drop the `.wasm` next to a pipeline (or leave it in target/plugins) and
//!    set `plugin = "my-dialect"` on the pipeline's style stage; a running
//!    server picks the edit up and `GET /v1/pipelines` shows the new version.

use serde::Deserialize;
use voxpipe_plugin_style::{
    log, Config, Context, PluginInfo, StageError, Style, StyleOutcome, StyleStage,
};

/// EDIT: the dialect this plugin speaks for, as it appears in labels.
const DIALECT: &str = "cantonese";

/// EDIT: keywords used when the config gives none.
const DEFAULT_KEYWORDS: &[&str] = &["粤语", "广东话", "白话", "cantonese"];

/// The stage's `config` table. Unknown keys are refused, so a typo in the
/// pipeline file is caught when the pipeline loads, not at request time.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Words that ask for this dialect (matched case-insensitively).
    #[serde(default)]
    keywords: Option<Vec<String>>,
    /// The voice that speaks the dialect, if the pipeline has one.
    #[serde(default)]
    voice: Option<String>,
    /// Language tag to speak with, e.g. `yue-HK`.
    #[serde(default = "default_language")]
    language: String,
    /// Speaking-rate multiplier for this dialect.
    #[serde(default = "one")]
    speed: f32,
}

fn default_language() -> String {
    "yue-HK".to_string() // EDIT
}

fn one() -> f32 {
    1.0
}

fn settings(config: &Config) -> Result<Settings, StageError> {
    let s: Settings = config.deserialize()?;
    if !(0.25..=4.0).contains(&s.speed) {
        return Err(StageError::InvalidConfig(format!(
            "`speed` = {} is outside 0.25..=4.0",
            s.speed
        )));
    }
    if s.keywords
        .as_ref()
        .is_some_and(|k| k.iter().all(|w| w.trim().is_empty()))
    {
        return Err(StageError::InvalidConfig(
            "`keywords` has no keyword".to_string(),
        ));
    }
    Ok(s)
}

pub struct TemplateStyle;

impl StyleStage for TemplateStyle {
    fn info() -> PluginInfo {
        PluginInfo::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            "Template: maps requests for one dialect to a style (copy me)",
        )
    }

    fn check_config(config: &Config) -> Result<(), StageError> {
        settings(config).map(|_| ())
    }

    fn map_instruct(
        ctx: &Context,
        config: &Config,
        instruct: &str,
    ) -> Result<StyleOutcome, StageError> {
        let s = settings(config)?;
        let text = instruct.to_lowercase();
        let hit = match &s.keywords {
            Some(words) => words
                .iter()
                .any(|w| !w.trim().is_empty() && text.contains(&w.to_lowercase())),
            None => DEFAULT_KEYWORDS.iter().any(|w| text.contains(w)),
        };
        if !hit {
            // Never fall back silently: the host records this reason.
            return Ok(StyleOutcome::Unmapped(format!(
                "the instruction does not ask for {DIALECT}"
            )));
        }
        log::debug(&format!("request {}: mapped to {DIALECT}", ctx.request_id));
        Ok(StyleOutcome::Mapped {
            style: Style {
                dialect: Some(DIALECT.to_string()),
                language: Some(s.language),
                voice: s.voice,
                speed: (s.speed != 1.0).then_some(s.speed),
                ..Style::default()
            },
            label: format!("dialect={DIALECT}"),
        })
    }
}

voxpipe_plugin_style::export!(TemplateStyle);

#[cfg(test)]
mod tests {
    use super::*;

    fn map(config: &str, instruct: &str) -> StyleOutcome {
        let c = Config::parse(config).unwrap();
        TemplateStyle::check_config(&c).unwrap();
        TemplateStyle::map_instruct(&Context::default(), &c, instruct).unwrap()
    }

    #[test]
    fn default_keywords_map_to_the_dialect() {
        let StyleOutcome::Mapped { style, label } = map("{}", "请用粤语讲这句话") else {
            panic!("unmapped")
        };
        assert_eq!(label, "dialect=cantonese");
        assert_eq!(style.language.as_deref(), Some("yue-HK"));
    }

    #[test]
    fn config_keywords_replace_the_defaults() {
        let cfg = r#"{"keywords": ["港式"], "speed": 0.9, "voice": "yue-voice"}"#;
        assert!(matches!(map(cfg, "用粤语"), StyleOutcome::Unmapped(_)));
        let StyleOutcome::Mapped { style, .. } = map(cfg, "港式口音") else {
            panic!("unmapped")
        };
        assert_eq!(style.speed, Some(0.9));
        assert_eq!(style.voice.as_deref(), Some("yue-voice"));
    }

    #[test]
    fn other_instructions_are_reported_unmapped() {
        let StyleOutcome::Unmapped(reason) = map("{}", "用四川话说") else {
            panic!("mapped")
        };
        assert!(reason.contains("cantonese"));
    }

    #[test]
    fn bad_config_is_refused() {
        for bad in [
            r#"{"speed": 9}"#,
            r#"{"keywords": [""]}"#,
            r#"{"kewords": []}"#,
        ] {
            let c = Config::parse(bad).unwrap();
            assert!(TemplateStyle::check_config(&c).is_err(), "{bad}");
        }
    }
}
