//! The stage's config table.
//!
//! ```toml
//! [stages.config]
//! rules = { urls = false }                      # every family defaults to on
//! abbreviations = { "Corp." = "Corporation" }   # custom, override built-ins
//! replacements = { "&" = "and" }                # custom word -> word
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use voxpipe_plugin_text::{Config, StageError};

/// Most entries a custom table may have: the tables are scanned at every
/// word start, so they must stay small for the stage to stay fast.
pub const MAX_TABLE_ENTRIES: usize = 1000;
/// Longest custom key, in characters.
pub const MAX_KEY_CHARS: usize = 64;
/// Longest custom value, in characters.
pub const MAX_VALUE_CHARS: usize = 256;

/// Which families of rewrites run; each defaults to on.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// Cardinals, negatives, decimals, thousands commas.
    pub numbers: bool,
    /// "21st" → "twenty-first".
    pub ordinals: bool,
    /// Four-digit years and decades ("1990s").
    pub years: bool,
    /// $, €, £, ¥ amounts.
    pub currency: bool,
    /// "3.5%".
    pub percent: bool,
    /// "3:30 pm", "15:05".
    pub time: bool,
    /// ISO, US and "Nov. 21, 2026" dates.
    pub dates: bool,
    /// Built-in abbreviations ("Dr.", "etc.", …).
    pub abbreviations: bool,
    /// Units after numbers ("5 kg").
    pub units: bool,
    /// "10-20" → "ten to twenty".
    pub ranges: bool,
    /// Phone numbers read digit by digit.
    pub phones: bool,
    /// URLs and e-mail addresses.
    pub urls: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            numbers: true,
            ordinals: true,
            years: true,
            currency: true,
            percent: true,
            time: true,
            dates: true,
            abbreviations: true,
            units: true,
            ranges: true,
            phones: true,
            urls: true,
        }
    }
}

/// The whole config table.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub rules: Rules,
    /// Custom abbreviations, matched literally at word boundaries; they
    /// take precedence over the built-in ones and run even when
    /// `rules.abbreviations` is off (the user asked for them explicitly).
    #[serde(default)]
    pub abbreviations: BTreeMap<String, String>,
    /// Custom word replacements, matched literally at word boundaries
    /// before every other rule.
    #[serde(default)]
    pub replacements: BTreeMap<String, String>,
}

fn check_table(name: &str, table: &BTreeMap<String, String>) -> Result<(), StageError> {
    let bad = |m: String| Err(StageError::InvalidConfig(m));
    if table.len() > MAX_TABLE_ENTRIES {
        return bad(format!(
            "`{name}` has {} entries; at most {MAX_TABLE_ENTRIES} are allowed",
            table.len()
        ));
    }
    for (k, v) in table {
        if k.trim().is_empty() {
            return bad(format!("`{name}` has an empty key"));
        }
        if k.chars().any(char::is_whitespace) && name == "abbreviations" {
            return bad(format!(
                "`{name}.{k}`: an abbreviation may not contain spaces"
            ));
        }
        if k.chars().count() > MAX_KEY_CHARS {
            return bad(format!(
                "`{name}.{k}`: key longer than {MAX_KEY_CHARS} characters"
            ));
        }
        if v.chars().count() > MAX_VALUE_CHARS {
            return bad(format!(
                "`{name}.{k}`: value longer than {MAX_VALUE_CHARS} characters"
            ));
        }
    }
    Ok(())
}

/// Reads and validates the config; every key is optional.
pub fn settings(config: &Config) -> Result<Settings, StageError> {
    let s: Settings = config.deserialize().map_err(|e| match e {
        StageError::InvalidConfig(m) => {
            StageError::InvalidConfig(format!("en-normalize config: {m}"))
        }
        other => other,
    })?;
    check_table("abbreviations", &s.abbreviations)?;
    check_table("replacements", &s.replacements)?;
    Ok(s)
}
