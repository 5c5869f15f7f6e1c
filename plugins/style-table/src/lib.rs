//! `style-table`: maps an instruction to a style with keyword rules from the
//! pipeline config. Every rule whose keyword occurs in the instruction
//! (case-insensitively) contributes; an instruction no rule matches is
//! reported as unmapped, never silently ignored.
//!
//! ```toml
//! [[stages.config.rules]]
//! keywords = ["sad", "悲伤"]
//! label = "emotion=sad"
//! emotions = ["sad"]
//! speed = 0.9
//! ```

use serde::Deserialize;
use voxpipe_plugin_style::{
    Config, Context, PluginInfo, StageError, Style, StyleOutcome, StyleStage,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    keywords: Vec<String>,
    label: String,
    #[serde(default)]
    dialect: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    voice: Option<String>,
    #[serde(default)]
    emotions: Vec<String>,
    #[serde(default)]
    speed: Option<f32>,
    #[serde(default)]
    pitch: Option<f32>,
    #[serde(default)]
    volume: Option<f32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    rules: Vec<Rule>,
}

fn settings(config: &Config) -> Result<Settings, StageError> {
    let s: Settings = config.deserialize()?;
    for (i, r) in s.rules.iter().enumerate() {
        if r.keywords.iter().all(|k| k.trim().is_empty()) {
            return Err(StageError::InvalidConfig(format!(
                "rules[{i}] has no keyword"
            )));
        }
    }
    Ok(s)
}

pub struct StyleTable;

impl StyleStage for StyleTable {
    fn info() -> PluginInfo {
        PluginInfo::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            "Maps instructions to styles with keyword rules from the config",
        )
    }

    fn check_config(config: &Config) -> Result<(), StageError> {
        settings(config).map(|_| ())
    }

    fn map_instruct(
        _ctx: &Context,
        config: &Config,
        instruct: &str,
    ) -> Result<StyleOutcome, StageError> {
        let s = settings(config)?;
        let needle = instruct.to_lowercase();
        let mut style = Style::default();
        let mut labels = Vec::new();
        for rule in &s.rules {
            let hit = rule
                .keywords
                .iter()
                .any(|k| !k.trim().is_empty() && needle.contains(&k.to_lowercase()));
            if !hit {
                continue;
            }
            labels.push(rule.label.clone());
            style.dialect = rule.dialect.clone().or(style.dialect);
            style.language = rule.language.clone().or(style.language);
            style.voice = rule.voice.clone().or(style.voice);
            style.speed = rule.speed.or(style.speed);
            style.pitch = rule.pitch.or(style.pitch);
            style.volume = rule.volume.or(style.volume);
            style.emotions.extend(rule.emotions.iter().cloned());
        }
        if labels.is_empty() {
            return Ok(StyleOutcome::Unmapped(format!(
                "no rule matches the instruction ({} rules)",
                s.rules.len()
            )));
        }
        Ok(StyleOutcome::Mapped {
            style,
            label: labels.join(";"),
        })
    }
}

voxpipe_plugin_style::export!(StyleTable);

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"{"rules": [
        {"keywords": ["四川话"], "label": "dialect=sichuanese", "dialect": "sichuanese"},
        {"keywords": ["sad", "悲伤"], "label": "emotion=sad", "emotions": ["sad"], "speed": 0.9}
    ]}"#;

    fn map(instruct: &str) -> StyleOutcome {
        let c = Config::parse(RULES).unwrap();
        StyleTable::map_instruct(&Context::default(), &c, instruct).unwrap()
    }

    #[test]
    fn dimensions_combine() {
        let StyleOutcome::Mapped { style, label } = map("用四川话, 悲伤地说") else {
            panic!("unmapped")
        };
        assert_eq!(label, "dialect=sichuanese;emotion=sad");
        assert_eq!(style.dialect.as_deref(), Some("sichuanese"));
        assert_eq!(style.speed, Some(0.9));
    }

    #[test]
    fn unknown_dialect_is_unmapped_not_dropped() {
        assert!(matches!(map("请用上海话"), StyleOutcome::Unmapped(_)));
    }

    #[test]
    fn rule_without_keywords_is_refused() {
        let c = Config::parse(r#"{"rules": [{"keywords": [" "], "label": "x"}]}"#).unwrap();
        assert!(StyleTable::check_config(&c).is_err());
    }
}
