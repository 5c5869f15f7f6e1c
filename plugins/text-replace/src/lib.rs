//! `text-replace`: replaces words and symbols from a table in the pipeline
//! config, then tidies whitespace.
//!
//! ```toml
//! [stages.config]
//! replace = { "&" = "and", "w/" = "with" }   # longest key wins
//! collapse_whitespace = true                 # default
//! ```

use serde::Deserialize;
use voxpipe_plugin_text::{Config, Context, PluginInfo, StageError, TextStage};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    replace: std::collections::BTreeMap<String, String>,
    #[serde(default = "yes")]
    collapse_whitespace: bool,
}

fn yes() -> bool {
    true
}

fn settings(config: &Config) -> Result<Settings, StageError> {
    let s: Settings = config.deserialize()?;
    if s.replace.keys().any(|k| k.is_empty()) {
        return Err(StageError::InvalidConfig(
            "`replace` has an empty key".to_string(),
        ));
    }
    Ok(s)
}

/// Apply the table left to right; at each position the longest matching key wins.
fn replace_all(text: &str, table: &std::collections::BTreeMap<String, String>) -> String {
    let mut keys: Vec<&String> = table.keys().collect();
    keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while let Some(c) = rest.chars().next() {
        for k in &keys {
            if rest.starts_with(k.as_str()) {
                out.push_str(&table[*k]);
                rest = &rest[k.len()..];
                continue 'outer;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

pub struct TextReplace;

impl TextStage for TextReplace {
    fn info() -> PluginInfo {
        PluginInfo::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            "Replaces words from a config table and tidies whitespace",
        )
    }

    fn check_config(config: &Config) -> Result<(), StageError> {
        settings(config).map(|_| ())
    }

    fn normalize(_ctx: &Context, config: &Config, text: String) -> Result<String, StageError> {
        let s = settings(config)?;
        let text = if s.replace.is_empty() {
            text
        } else {
            replace_all(&text, &s.replace)
        };
        Ok(if s.collapse_whitespace {
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        } else {
            text
        })
    }
}

voxpipe_plugin_text::export!(TextReplace);

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: &str, text: &str) -> Result<String, StageError> {
        let config = Config::parse(config)?;
        TextReplace::check_config(&config)?;
        TextReplace::normalize(&Context::default(), &config, text.to_string())
    }

    #[test]
    fn longest_key_wins_and_whitespace_collapses() {
        let out = run(
            r#"{"replace": {"Dr": "Drive", "Dr.": "Doctor"}}"#,
            "Dr.  Who  on Dr",
        )
        .unwrap();
        assert_eq!(out, "Doctor Who on Drive");
    }

    #[test]
    fn unknown_keys_and_empty_keys_are_refused() {
        assert!(matches!(
            run(r#"{"replac": {}}"#, "x"),
            Err(StageError::InvalidConfig(_))
        ));
        assert!(matches!(
            run(r#"{"replace": {"": "x"}}"#, "x"),
            Err(StageError::InvalidConfig(_))
        ));
    }

    #[test]
    fn multibyte_text_is_safe() {
        assert_eq!(
            run(r#"{"replace": {"号": "號"}}"#, "3号 ok").unwrap(),
            "3號 ok"
        );
    }
}
