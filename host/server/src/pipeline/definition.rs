//! The pipeline file format (TOML), parsed with source positions so every
//! error can name its file, line and stage.
//!
//! ```toml
//! name = "default"               # optional: defaults to the file stem
//! description = "…"
//! voice = "en_US-joe-medium"
//! language = "en-US"             # optional default language of requests
//!
//! [limits]                       # defaults for every plugin stage
//! memory_mb = 128
//! deadline_ms = 5000
//! max_output_kb = 32768
//!
//! [[stages]]
//! kind = "text"                  # text | style | model | audio
//! plugin = "text-replace"        # a name (searched) or a path ending in .wasm
//! name = "replace"               # optional: defaults to the plugin's name
//! config = { replace = { "&" = "and" } }
//! config_file = "tables/x.toml"  # optional: config from a file, `config` overrides
//! limits = { deadline_ms = 200 } # optional per-stage override
//!
//! [[stages]]
//! kind = "model"                 # the native voice, exactly once
//!
//! on_unhonored = "warn"          # or "refuse": see `routes.rs`
//! [[routes]]                     # which voice speaks a style; first match wins
//! when = { dialect = ["sichuanese"] }  # dialect, language, emotion, speaker
//! voice = "zh_CN-huayan-medium"  # then: voice, speaker, style defaults
//! ```

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PipelineFile {
    pub name: Option<Spanned<String>>,
    pub description: Option<String>,
    pub voice: Spanned<String>,
    pub language: Option<Spanned<String>>,
    #[serde(default)]
    pub limits: Option<Spanned<LimitsDef>>,
    #[serde(default)]
    pub stages: Vec<Spanned<StageDef>>,
    pub on_unhonored: Option<Spanned<String>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RouteDef>>,
}

/// One `[[routes]]` entry: conditions on the style, then what it chooses.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteDef {
    /// No `when`: the default route, which matches every style.
    pub when: Option<Spanned<WhenDef>>,
    pub voice: Option<Spanned<String>>,
    pub speaker: Option<Spanned<String>>,
    pub speed: Option<Spanned<f32>>,
    pub pitch: Option<Spanned<f32>>,
    pub volume: Option<Spanned<f32>>,
    pub noise_scale: Option<Spanned<f32>>,
    pub noise_w: Option<Spanned<f32>>,
}

/// A route's conditions: every one given must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WhenDef {
    pub dialect: Option<Spanned<OneOrMany>>,
    pub language: Option<Spanned<OneOrMany>>,
    pub emotion: Option<Spanned<OneOrMany>>,
    pub speaker: Option<Spanned<OneOrMany>>,
}

/// A condition's values: `"x"` or `["x", "y"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn values(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsDef {
    pub memory_mb: Option<u64>,
    pub deadline_ms: Option<u64>,
    pub max_output_kb: Option<u64>,
    pub max_text_kb: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StageDef {
    pub kind: Spanned<String>,
    pub name: Option<Spanned<String>>,
    pub plugin: Option<Spanned<String>>,
    pub config: Option<Spanned<toml::Table>>,
    /// A TOML file (relative to the pipeline file) holding the config table;
    /// keys of `config` override its top-level keys.
    pub config_file: Option<Spanned<String>>,
    pub limits: Option<Spanned<LimitsDef>>,
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The files a pipeline text refers to, without validating anything else:
/// used to notice when a plugin or config file changes under a pipeline.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct FileRefs {
    /// `plugin` values (names or paths).
    pub plugins: Vec<String>,
    /// `config_file` values (paths relative to the pipeline file).
    pub config_files: Vec<String>,
}

pub(crate) fn file_refs(text: &str) -> FileRefs {
    let Ok(table) = text.parse::<toml::Table>() else {
        return FileRefs::default();
    };
    let stages = table.get("stages").and_then(|s| s.as_array());
    let values = |key: &str| -> Vec<String> {
        stages
            .into_iter()
            .flatten()
            .filter_map(|s| s.get(key).and_then(|p| p.as_str()).map(String::from))
            .collect()
    };
    FileRefs {
        plugins: values("plugin"),
        config_files: values("config_file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 9), (2, 4));
    }

    #[test]
    fn file_refs_survive_other_errors() {
        let t = "voice = 3\n[[stages]]\nkind = \"text\"\nplugin = \"a\"\nconfig_file = \"t.toml\"\n[[stages]]\nkind = \"model\"\n";
        let refs = file_refs(t);
        assert_eq!(refs.plugins, vec!["a".to_string()]);
        assert_eq!(refs.config_files, vec!["t.toml".to_string()]);
        assert_eq!(file_refs("[[broken"), FileRefs::default());
    }
}
