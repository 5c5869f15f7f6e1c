//! The config schema: the mapping table from the pipeline file, parsed and
//! validated into a [`Table`] the matcher can use.
//!
//! All vocabulary lives in the config; the only built-in words are the
//! defaults of `negations` and `dialect_request`, which a config may
//! replace (or empty) like any other option. Every error names the key.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use voxpipe_plugin_style::{Config, StageError};

use crate::text::{normalize, Keyword};

/// Allowed speaking-rate multipliers.
pub const SPEED_RANGE: (f32, f32) = (0.25, 4.0);
/// Allowed pitch shifts, in semitones.
pub const PITCH_RANGE: (f32, f32) = (-12.0, 12.0);
/// Allowed volume changes, in dB.
pub const VOLUME_RANGE: (f32, f32) = (-30.0, 12.0);

/// The top-level keys of the config.
const KNOWN_KEYS: &[&str] = &[
    "dialects",
    "emotions",
    "speeds",
    "pitches",
    "volumes",
    "negations",
    "dialect_request",
    "max_emotions",
    "max_instruct_chars",
];

/// Default negation cues: a match preceded by one of these in the same
/// clause is ignored ("不要太快" does not mean fast). Bare `不` is left out on
/// purpose: it is part of too many ordinary words (`不过`, `不错`).
const DEFAULT_NEGATIONS: &[&str] = &[
    "不要",
    "不用",
    "不必",
    "不能",
    "不想",
    "不需要",
    "不太",
    "别",
    "勿",
    "don't",
    "dont",
    "do not",
    "not",
    "no",
    "never",
    "without",
];
/// Default Chinese suffixes that make a word look like a dialect request.
const DEFAULT_MARKERS: &[&str] = &["话", "语", "腔", "方言", "口音"];
/// Default English words that make a phrase look like a dialect request.
const DEFAULT_MARKER_WORDS: &[&str] = &["dialect", "accent"];
/// Default filler words skipped when naming an unmatched dialect request
/// (`请用火星话` names `火星话`, `这句话` names nothing).
const DEFAULT_FILLERS: &[&str] = &[
    "请", "用", "以", "说", "讲", "读", "念", "成", "的", "个", "带", "点", "这", "那", "句", "段",
    "些", "一", "我", "你", "他", "她", "想", "听", "要", "和", "跟", "换", "改", "种", "着", "地",
    "得", "把", "将", "给", "a", "an", "the", "in", "with", "some", "local", "strong", "heavy",
    "thick", "slight", "light", "your", "my", "his", "her", "their", "fake",
];

/// Default cap on the instruction length, in characters.
const DEFAULT_MAX_INSTRUCT_CHARS: usize = 1000;
/// Hard ceiling for `max_instruct_chars`: matching costs
/// keywords × characters, and instructions are short by nature.
const MAX_INSTRUCT_CHARS_CEILING: usize = 100_000;

/// The dimensions an instruction is mapped along, in label order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dim {
    Dialect,
    Emotion,
    Speed,
    Pitch,
    Volume,
}

impl Dim {
    /// All dimensions, in the fixed label order.
    pub const ALL: [Dim; 5] = [
        Dim::Dialect,
        Dim::Emotion,
        Dim::Speed,
        Dim::Pitch,
        Dim::Volume,
    ];

    /// The name used in labels (`dialect=…`).
    pub fn name(self) -> &'static str {
        match self {
            Dim::Dialect => "dialect",
            Dim::Emotion => "emotion",
            Dim::Speed => "speed",
            Dim::Pitch => "pitch",
            Dim::Volume => "volume",
        }
    }

    /// The config key holding this dimension's entries.
    pub fn key(self) -> &'static str {
        match self {
            Dim::Dialect => "dialects",
            Dim::Emotion => "emotions",
            Dim::Speed => "speeds",
            Dim::Pitch => "pitches",
            Dim::Volume => "volumes",
        }
    }
}

/// What an entry contributes to the style when it matches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effect {
    pub dialect: Option<String>,
    pub language: Option<String>,
    pub voice: Option<String>,
    pub speaker: Option<String>,
    pub emotions: Vec<String>,
    pub speed: Option<f32>,
    pub pitch: Option<f32>,
    pub volume: Option<f32>,
    pub extra: Vec<(String, String)>,
}

/// One entry of the table: a name (used in the label), its keywords and
/// its effect.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub dim: Dim,
    pub name: String,
    pub keywords: Vec<Keyword>,
    pub effect: Effect,
}

/// The validated config.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// All entries, grouped by dimension (label order), by name within one.
    pub entries: Vec<Entry>,
    pub negations: Vec<Keyword>,
    pub markers: Vec<String>,
    pub marker_words: Vec<Keyword>,
    pub fillers: Vec<String>,
    pub max_emotions: usize,
    pub max_instruct_chars: usize,
}

/// `dialects.<name>`: a dialect, e.g. `sichuanese`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DialectEntry {
    keywords: Vec<String>,
    /// Value for `style.dialect`; the entry name when absent.
    #[serde(default)]
    dialect: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    voice: Option<String>,
    #[serde(default)]
    speaker: Option<String>,
    #[serde(default)]
    extra: BTreeMap<String, String>,
}

/// `emotions.<name>`: an emotion or manner, e.g. `sad`, `whisper`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmotionEntry {
    keywords: Vec<String>,
    /// Tags for `style.emotions`; `[<name>]` when absent.
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    speed: Option<f32>,
    #[serde(default)]
    pitch: Option<f32>,
    #[serde(default)]
    volume: Option<f32>,
    #[serde(default)]
    extra: BTreeMap<String, String>,
}

/// `speeds.<name>`, `pitches.<name>` and `volumes.<name>`: one number.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpeedEntry {
    keywords: Vec<String>,
    speed: f32,
    #[serde(default)]
    extra: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PitchEntry {
    keywords: Vec<String>,
    pitch: f32,
    #[serde(default)]
    extra: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VolumeEntry {
    keywords: Vec<String>,
    volume: f32,
    #[serde(default)]
    extra: BTreeMap<String, String>,
}

/// `dialect_request`: how an unmatched dialect request is recognized, so
/// that "the table lacks 上海话" is reported instead of silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DialectRequest {
    #[serde(default = "default_markers")]
    markers: Vec<String>,
    #[serde(default = "default_marker_words")]
    words: Vec<String>,
    #[serde(default = "default_fillers")]
    fillers: Vec<String>,
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}
fn default_markers() -> Vec<String> {
    strings(DEFAULT_MARKERS)
}
fn default_marker_words() -> Vec<String> {
    strings(DEFAULT_MARKER_WORDS)
}
fn default_fillers() -> Vec<String> {
    strings(DEFAULT_FILLERS)
}

fn invalid(message: String) -> StageError {
    StageError::InvalidConfig(message)
}

/// Parse and validate the whole config.
pub fn parse(config: &Config) -> Result<Table, StageError> {
    config.only_keys(KNOWN_KEYS)?;
    let raw = config.table();

    let mut entries = Vec::new();
    for (name, e) in section::<DialectEntry>(raw, Dim::Dialect)? {
        let effect = Effect {
            dialect: Some(e.dialect.unwrap_or_else(|| name.clone())),
            language: e.language,
            voice: e.voice,
            speaker: e.speaker,
            extra: e.extra.into_iter().collect(),
            ..Effect::default()
        };
        entries.push(entry(Dim::Dialect, name, &e.keywords, effect)?);
    }
    for (name, e) in section::<EmotionEntry>(raw, Dim::Emotion)? {
        let path = format!("emotions.{name}");
        let effect = Effect {
            emotions: e.tags.unwrap_or_else(|| vec![name.clone()]),
            speed: check_range(&path, "speed", e.speed, SPEED_RANGE)?,
            pitch: check_range(&path, "pitch", e.pitch, PITCH_RANGE)?,
            volume: check_range(&path, "volume", e.volume, VOLUME_RANGE)?,
            extra: e.extra.into_iter().collect(),
            ..Effect::default()
        };
        if effect.emotions.iter().any(|t| t.trim().is_empty()) {
            return Err(invalid(format!("`{path}.tags` has an empty tag")));
        }
        entries.push(entry(Dim::Emotion, name, &e.keywords, effect)?);
    }
    for (name, e) in section::<SpeedEntry>(raw, Dim::Speed)? {
        let path = format!("speeds.{name}");
        let effect = Effect {
            speed: check_range(&path, "speed", Some(e.speed), SPEED_RANGE)?,
            extra: e.extra.into_iter().collect(),
            ..Effect::default()
        };
        entries.push(entry(Dim::Speed, name, &e.keywords, effect)?);
    }
    for (name, e) in section::<PitchEntry>(raw, Dim::Pitch)? {
        let path = format!("pitches.{name}");
        let effect = Effect {
            pitch: check_range(&path, "pitch", Some(e.pitch), PITCH_RANGE)?,
            extra: e.extra.into_iter().collect(),
            ..Effect::default()
        };
        entries.push(entry(Dim::Pitch, name, &e.keywords, effect)?);
    }
    for (name, e) in section::<VolumeEntry>(raw, Dim::Volume)? {
        let path = format!("volumes.{name}");
        let effect = Effect {
            volume: check_range(&path, "volume", Some(e.volume), VOLUME_RANGE)?,
            extra: e.extra.into_iter().collect(),
            ..Effect::default()
        };
        entries.push(entry(Dim::Volume, name, &e.keywords, effect)?);
    }
    check_unique_keywords(&entries)?;

    let negations = match raw.get("negations") {
        None => strings(DEFAULT_NEGATIONS),
        Some(v) => from_value::<Vec<String>>(v, "negations")?,
    };
    let negations = keyword_list("negations", &negations)?;

    let request: DialectRequest = match raw.get("dialect_request") {
        None => DialectRequest {
            markers: default_markers(),
            words: default_marker_words(),
            fillers: default_fillers(),
        },
        Some(v) => from_value(v, "dialect_request")?,
    };
    let markers = plain_list("dialect_request.markers", &request.markers)?;
    let marker_words = keyword_list("dialect_request.words", &request.words)?;
    let fillers = plain_list("dialect_request.fillers", &request.fillers)?;

    let max_emotions = match raw.get("max_emotions") {
        None => 1,
        Some(v) => from_value::<usize>(v, "max_emotions")?,
    };
    if !(1..=16).contains(&max_emotions) {
        return Err(invalid(format!(
            "`max_emotions` must be between 1 and 16, got {max_emotions}"
        )));
    }
    let max_instruct_chars = match raw.get("max_instruct_chars") {
        None => DEFAULT_MAX_INSTRUCT_CHARS,
        Some(v) => from_value::<usize>(v, "max_instruct_chars")?,
    };
    if !(1..=MAX_INSTRUCT_CHARS_CEILING).contains(&max_instruct_chars) {
        return Err(invalid(format!(
            "`max_instruct_chars` must be between 1 and {MAX_INSTRUCT_CHARS_CEILING}, got {max_instruct_chars}"
        )));
    }

    Ok(Table {
        entries,
        negations,
        markers,
        marker_words,
        fillers,
        max_emotions,
        max_instruct_chars,
    })
}

fn from_value<T: DeserializeOwned>(v: &Value, path: &str) -> Result<T, StageError> {
    serde_json::from_value(v.clone()).map_err(|e| invalid(format!("`{path}`: {e}")))
}

/// The entries of one dimension, sorted by name, each deserialized with its
/// path in the error message.
fn section<T: DeserializeOwned>(
    raw: &serde_json::Map<String, Value>,
    dim: Dim,
) -> Result<Vec<(String, T)>, StageError> {
    let key = dim.key();
    let map = match raw.get(key) {
        None => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(invalid(format!(
                "`{key}` must be a table of entries, e.g. {key}.<name> = {{ keywords = [..] }}"
            )))
        }
    };
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        check_name(key, name)?;
        out.push((name.clone(), from_value(value, &format!("{key}.{name}"))?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Entry names end up in labels (`dialect=<name>`), which must stay short
/// and parseable: lowercase ASCII letters, digits, `_`, `-`.
fn check_name(key: &str, name: &str) -> Result<(), StageError> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "`{key}.{name}`: entry names must be 1–40 characters of a-z, 0-9, `_` or `-` (they appear in labels)"
        )))
    }
}

fn entry(dim: Dim, name: String, keywords: &[String], effect: Effect) -> Result<Entry, StageError> {
    let path = format!("{}.{name}.keywords", dim.key());
    let keywords = keyword_list(&path, keywords)?;
    if keywords.is_empty() {
        return Err(invalid(format!(
            "`{path}` is empty: an entry needs a keyword"
        )));
    }
    if effect.extra.iter().any(|(k, _)| k.trim().is_empty()) {
        return Err(invalid(format!(
            "`{}.{name}.extra` has an empty key",
            dim.key()
        )));
    }
    Ok(Entry {
        dim,
        name,
        keywords,
        effect,
    })
}

/// Parse keywords; an empty one is an error, duplicates are dropped.
fn keyword_list(path: &str, raw: &[String]) -> Result<Vec<Keyword>, StageError> {
    let mut out: Vec<Keyword> = Vec::with_capacity(raw.len());
    for (i, k) in raw.iter().enumerate() {
        let kw = Keyword::parse(k).ok_or_else(|| invalid(format!("`{path}[{i}]` is empty")))?;
        if !out.contains(&kw) {
            out.push(kw);
        }
    }
    Ok(out)
}

/// Normalized, non-empty strings.
fn plain_list(path: &str, raw: &[String]) -> Result<Vec<String>, StageError> {
    raw.iter()
        .enumerate()
        .map(|(i, s)| {
            let n = normalize(s);
            if n.is_empty() {
                Err(invalid(format!("`{path}[{i}]` is empty")))
            } else {
                Ok(n)
            }
        })
        .collect()
}

fn check_range(
    path: &str,
    field: &str,
    value: Option<f32>,
    (lo, hi): (f32, f32),
) -> Result<Option<f32>, StageError> {
    match value {
        Some(v) if !(v.is_finite() && (lo..=hi).contains(&v)) => Err(invalid(format!(
            "`{path}.{field}` must be between {lo} and {hi}, got {v}"
        ))),
        other => Ok(other),
    }
}

/// A keyword must mean one thing: it may not appear in two entries, in the
/// same dimension or across dimensions (give an emotion a `volume` instead
/// of listing `whisper` under both `emotions` and `volumes`).
fn check_unique_keywords(entries: &[Entry]) -> Result<(), StageError> {
    let mut seen: BTreeMap<&str, &Entry> = BTreeMap::new();
    for e in entries {
        for k in &e.keywords {
            if let Some(other) = seen.get(k.text.as_str()) {
                return Err(invalid(format!(
                    "keyword \"{}\" appears in both `{}.{}` and `{}.{}`",
                    k.text,
                    other.dim.key(),
                    other.name,
                    e.dim.key(),
                    e.name
                )));
            }
            seen.insert(k.text.as_str(), e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_json(v: Value) -> Result<Table, StageError> {
        parse(&Config::from_value(v).unwrap())
    }

    fn err(v: Value) -> String {
        match parse_json(v) {
            Err(StageError::InvalidConfig(m)) => m,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn empty_config_is_valid_with_defaults() {
        let t = parse_json(json!({})).unwrap();
        assert!(t.entries.is_empty());
        assert_eq!(t.max_emotions, 1);
        assert!(!t.negations.is_empty());
        assert!(t.markers.contains(&"话".to_string()));
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        assert!(err(json!({"dialect": {}})).contains("`dialect`"));
        let m = err(json!({"dialects": {"x": {"keywords": ["x话"], "langauge": "zh"}}}));
        assert!(m.contains("dialects.x") && m.contains("langauge"), "{m}");
        assert!(err(json!({"dialect_request": {"marker": []}})).contains("dialect_request"));
    }

    #[test]
    fn wrong_types_are_refused_with_their_path() {
        assert!(
            err(json!({"speeds": {"slow": {"keywords": ["慢"], "speed": "slow"}}}))
                .contains("speeds.slow")
        );
        assert!(err(json!({"emotions": []})).contains("`emotions`"));
        assert!(err(json!({"max_emotions": "two"})).contains("max_emotions"));
        assert!(err(json!({"negations": "不要"})).contains("negations"));
    }

    #[test]
    fn out_of_range_numbers_are_refused() {
        let m = err(json!({"speeds": {"slow": {"keywords": ["慢"], "speed": 0.1}}}));
        assert!(m.contains("speeds.slow.speed"), "{m}");
        assert!(
            err(json!({"pitches": {"up": {"keywords": ["高音"], "pitch": 13}}}))
                .contains("pitches.up.pitch")
        );
        assert!(
            err(json!({"volumes": {"up": {"keywords": ["大声"], "volume": 20}}}))
                .contains("volumes.up.volume")
        );
        assert!(
            err(json!({"emotions": {"sad": {"keywords": ["sad"], "volume": -31}}}))
                .contains("emotions.sad.volume")
        );
        assert!(err(json!({"max_emotions": 0})).contains("max_emotions"));
        assert!(err(json!({"max_instruct_chars": 0})).contains("max_instruct_chars"));
    }

    #[test]
    fn empty_and_missing_keywords_are_refused() {
        assert!(err(json!({"dialects": {"x": {"keywords": []}}})).contains("dialects.x.keywords"));
        assert!(
            err(json!({"dialects": {"x": {"keywords": [" "]}}})).contains("dialects.x.keywords[0]")
        );
        assert!(err(json!({"dialects": {"x": {}}})).contains("keywords"));
    }

    #[test]
    fn shared_keywords_are_refused() {
        let m = err(json!({"dialects": {
            "a": {"keywords": ["川话"]},
            "b": {"keywords": ["Sichuan", "川话"]}
        }}));
        assert!(
            m.contains("川话") && m.contains("dialects.a") && m.contains("dialects.b"),
            "{m}"
        );
        // Case and width differences do not make a keyword different.
        let m = err(json!({
            "emotions": {"whisper": {"keywords": ["Whisper"]}},
            "volumes": {"soft": {"keywords": ["whisper"], "volume": -6}}
        }));
        assert!(
            m.contains("emotions.whisper") && m.contains("volumes.soft"),
            "{m}"
        );
    }

    #[test]
    fn bad_entry_names_are_refused() {
        assert!(
            err(json!({"dialects": {"Sichuan Dialect": {"keywords": ["川话"]}}}))
                .contains("entry names")
        );
        assert!(err(json!({"dialects": {"a;b": {"keywords": ["川话"]}}})).contains("a;b"));
    }

    #[test]
    fn dialect_value_defaults_to_the_entry_name() {
        let t = parse_json(json!({"dialects": {
            "sichuanese": {"keywords": ["四川话"]},
            "sh": {"keywords": ["上海话"], "dialect": "shanghainese", "language": "zh-CN"}
        }}))
        .unwrap();
        let by = |n: &str| {
            t.entries
                .iter()
                .find(|e| e.name == n)
                .unwrap()
                .effect
                .clone()
        };
        assert_eq!(by("sichuanese").dialect.as_deref(), Some("sichuanese"));
        assert_eq!(by("sh").dialect.as_deref(), Some("shanghainese"));
        assert_eq!(by("sh").language.as_deref(), Some("zh-CN"));
    }
}
