//! The stage's config table: every key optional, every key checked.
//!
//! Keys are read one by one with `Config::get`, so a wrong type is reported
//! with the key's name (`` `liang`: invalid type … ``), and any key not in
//! [`KEYS`] is refused so a typo never silently does nothing.

use std::collections::BTreeMap;

use serde::Deserialize;
use voxpipe_plugin_text::{Config, StageError};

use crate::readings::{DEFAULT_CONTEXT_WORDS, DEFAULT_UNITS};

/// Every top-level key this stage understands.
pub const KEYS: &[&str] = &[
    "rules",
    "liang",
    "yao_for_one",
    "time_zheng",
    "digit_context_words",
    "units",
];

/// Longest accepted context word or unit, in characters: longer ones are
/// surely a mistake (a sentence pasted in the wrong place).
const MAX_WORD_CHARS: usize = 16;
/// Most context words / custom units accepted.
const MAX_ENTRIES: usize = 256;

/// Which families of number formats are recognized. Plain integers and
/// decimals are always read; each family here adds a special reading and
/// can be switched off on its own (`rules = { times = false }`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// `2026年`, `2026-11-21`, `2026/11/21`, `2026.11.21`, `2026-11`,
    /// `2020-2025年`: years digit by digit.
    pub dates: bool,
    /// `13:05`, `9:30`, `08:00`, `13:05:09`.
    pub times: bool,
    /// Phone numbers and codes read digit by digit: mobile numbers, numbers
    /// with leading zeros, numbers after a context word, letter+digits
    /// codes, dashed chains (010-12345678) and dotted ones (192.168.1.1).
    pub digits: bool,
    /// `50%` → 百分之五十.
    pub percentages: bool,
    /// `3/4` → 四分之三.
    pub fractions: bool,
    /// `3-5` / `3~5` → 三到五.
    pub ranges: bool,
    /// `5kg` → 五千克 (see the `units` key for the table).
    pub units: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            dates: true,
            times: true,
            digits: true,
            percentages: true,
            fractions: true,
            ranges: true,
            units: true,
        }
    }
}

/// The checked settings of one call.
#[derive(Debug, Clone)]
pub struct Settings {
    pub rules: Rules,
    /// Read a leading 2 as 两 before 百/千/万/亿 (两百, 两万), a bare 2 before
    /// a classifier (两个, 两点) and the hour 2 (两点整). Off: always 二.
    pub liang: bool,
    /// Read 1 as 幺 in digit strings (phones, codes). Never in years,
    /// decimals or ordinary numbers.
    pub yao_for_one: bool,
    /// `08:00` → 八点整 (on) or 八点 (off).
    pub time_zheng: bool,
    /// Words that make the number right after them a code (replaces the
    /// default list; an empty list turns the context rule off).
    pub digit_context_words: Vec<String>,
    /// Unit table after merging the config's `units` into the defaults,
    /// longest unit first (so `mm` wins over `m`).
    pub units: Vec<(String, String)>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rules: Rules::default(),
            liang: true,
            yao_for_one: true,
            time_zheng: true,
            digit_context_words: DEFAULT_CONTEXT_WORDS
                .iter()
                .map(|w| w.to_string())
                .collect(),
            units: merged_units(BTreeMap::new()),
        }
    }
}

/// Reads and checks the config table.
pub fn settings(config: &Config) -> Result<Settings, StageError> {
    config.only_keys(KEYS)?;
    let defaults = Settings::default();
    let words: Vec<String> = config.get_or("digit_context_words", defaults.digit_context_words)?;
    check_words("digit_context_words", words.iter().map(String::as_str))?;
    let custom_units: BTreeMap<String, String> = config.get_or("units", BTreeMap::new())?;
    check_units(&custom_units)?;
    Ok(Settings {
        rules: config.get_or("rules", defaults.rules)?,
        liang: config.get_or("liang", defaults.liang)?,
        yao_for_one: config.get_or("yao_for_one", defaults.yao_for_one)?,
        time_zheng: config.get_or("time_zheng", defaults.time_zheng)?,
        digit_context_words: words,
        units: merged_units(custom_units),
    })
}

fn invalid(message: String) -> StageError {
    StageError::InvalidConfig(message)
}

/// Context words and unit names: not blank, not absurdly long, and without
/// ASCII digits (a word containing digits could never sit *before* a
/// number the way the scanner looks for it).
fn check_words<'a>(key: &str, words: impl Iterator<Item = &'a str>) -> Result<(), StageError> {
    for (i, word) in words.enumerate() {
        if i >= MAX_ENTRIES {
            return Err(invalid(format!(
                "`{key}` has more than {MAX_ENTRIES} entries"
            )));
        }
        if word.trim().is_empty() {
            return Err(invalid(format!("`{key}` has an empty entry")));
        }
        if word.chars().count() > MAX_WORD_CHARS {
            return Err(invalid(format!(
                "`{key}` entry {word:?} is longer than {MAX_WORD_CHARS} characters"
            )));
        }
        if word.chars().any(|c| c.is_ascii_digit()) {
            return Err(invalid(format!("`{key}` entry {word:?} contains a digit")));
        }
    }
    Ok(())
}

/// Custom units: names as for context words, not starting with a space,
/// and readings without ASCII digits (so normalizing twice changes nothing).
fn check_units(units: &BTreeMap<String, String>) -> Result<(), StageError> {
    check_words("units", units.keys().map(String::as_str))?;
    for (unit, reading) in units {
        if unit.starts_with(char::is_whitespace) {
            return Err(invalid(format!(
                "`units` entry {unit:?} starts with a space"
            )));
        }
        if reading.chars().any(|c| c.is_ascii_digit()) {
            return Err(invalid(format!(
                "`units` reading of {unit:?} contains a digit: readings must be words"
            )));
        }
        if reading.chars().count() > MAX_WORD_CHARS {
            return Err(invalid(format!(
                "`units` reading of {unit:?} is longer than {MAX_WORD_CHARS} characters"
            )));
        }
    }
    Ok(())
}

/// The default unit table with the custom one laid over it: a custom entry
/// replaces a default of the same name, and an empty reading removes it.
/// Sorted longest name first, then by name, so matching is deterministic.
fn merged_units(custom: BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut table: BTreeMap<String, String> = DEFAULT_UNITS
        .iter()
        .map(|(u, r)| (u.to_string(), r.to_string()))
        .collect();
    table.extend(custom);
    let mut units: Vec<(String, String)> =
        table.into_iter().filter(|(_, r)| !r.is_empty()).collect();
    units.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    units
}
