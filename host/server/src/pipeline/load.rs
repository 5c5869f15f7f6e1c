//! Loading a pipeline file: parse, validate every rule, load and check each
//! plugin, and report every problem with file, line, column and stage.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::definition::{line_col, LimitsDef, PipelineFile, StageDef};
use super::routes::{self, OnUnhonored};
use super::{Pipeline, PluginStage, Stage};
use voxpipe_engine::voice::VoiceEntry;
use voxpipe_plugin::{PluginLimits, PluginRuntime, StageConfig};
use voxpipe_types::StageKind;

/// One problem in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PipelineError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// The stage it concerns, e.g. `stage 2 "replace" (text)`.
    pub stage: Option<String>,
    pub reason: String,
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if let Some(stage) = &self.stage {
            write!(f, "{stage}: ")?;
        }
        f.write_str(&self.reason)
    }
}

/// All problems found in a pipeline file (at least one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PipelineErrors(pub Vec<PipelineError>);

impl fmt::Display for PipelineErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PipelineErrors {}

/// Where plugins are found and how they are run.
pub struct LoadContext<'a> {
    pub runtime: &'a PluginRuntime,
    /// Folders searched for `<plugin>.wasm` after the pipeline file's own.
    pub plugin_dirs: &'a [PathBuf],
    /// The voices the server has, when known: the pipeline's voice and its
    /// routes' voices and speakers are checked against them.
    pub voices: Option<&'a [VoiceEntry]>,
    /// How `oci://` plugins are pulled; `None`: such plugins are refused.
    pub oci: Option<&'a crate::oci::OciOptions>,
}

struct Reporter<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<PipelineError>,
}

impl Reporter<'_> {
    fn at(&mut self, offset: usize, stage: Option<&str>, reason: impl Into<String>) {
        let (line, column) = line_col(self.text, offset);
        self.errors.push(PipelineError {
            file: self.file.to_path_buf(),
            line,
            column,
            stage: stage.map(String::from),
            reason: reason.into(),
        });
    }
}

/// Pipeline names are used in URLs, metrics labels and file names.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn limits_from(
    base: PluginLimits,
    def: &LimitsDef,
    ceiling: usize,
    offset: usize,
    stage: Option<&str>,
    r: &mut Reporter,
) -> PluginLimits {
    let mut limits = base;
    // Each key, if set, must lie in 1..=max; the value is returned in range.
    let mut check = |key: &str, value: Option<u64>, max: u64| -> Option<u64> {
        let v = value?;
        if v == 0 || v > max {
            r.at(
                offset,
                stage,
                format!("limits.{key} = {v} is outside 1..={max}"),
            );
            return None;
        }
        Some(v)
    };
    if let Some(mb) = check("memory_mb", def.memory_mb, (ceiling >> 20) as u64) {
        limits.memory_bytes = (mb as usize) << 20;
    }
    if let Some(ms) = check("deadline_ms", def.deadline_ms, 600_000) {
        limits.deadline = Duration::from_millis(ms);
    }
    if let Some(kb) = check("max_output_kb", def.max_output_kb, 1 << 20) {
        limits.max_output_bytes = (kb as usize) << 10;
    }
    if let Some(kb) = check("max_text_kb", def.max_text_kb, 16 << 10) {
        limits.max_text_bytes = (kb as usize) << 10;
    }
    limits
}

/// Find a plugin file: a value with a `/` or ending in `.wasm` is a path
/// relative to the pipeline file; anything else is a name looked up as
/// `<name>.wasm` in the pipeline's folder, then in `plugin_dirs`.
pub fn resolve_plugin(
    reference: &str,
    pipeline_dir: &Path,
    plugin_dirs: &[PathBuf],
) -> Result<PathBuf, String> {
    if reference.contains('/') || reference.ends_with(".wasm") {
        let path = pipeline_dir.join(reference);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("plugin file {} not found", path.display()))
        };
    }
    let file = format!("{reference}.wasm");
    let dirs: Vec<&Path> = std::iter::once(pipeline_dir)
        .chain(plugin_dirs.iter().map(PathBuf::as_path))
        .collect();
    for dir in &dirs {
        let path = dir.join(&file);
        if path.is_file() {
            return Ok(path);
        }
    }
    let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(format!(
        "plugin `{reference}` not found: no {file} in {} (build plugins with `voxpipe plugin build`)",
        looked.join(", ")
    ))
}

/// The local file of a plugin reference: an `oci://` reference is pulled
/// (digest-verified, cached) first; anything else is [`resolve_plugin`].
fn plugin_file(reference: &str, pipeline_dir: &Path, ctx: &LoadContext) -> Result<PathBuf, String> {
    if !crate::oci::is_oci(reference) {
        return resolve_plugin(reference, pipeline_dir, ctx.plugin_dirs);
    }
    let parsed = crate::oci::Reference::parse(reference).map_err(|e| e.to_string())?;
    let Some(options) = ctx.oci else {
        return Err(format!(
            "plugin `{reference}`: OCI references are not enabled here"
        ));
    };
    let pulled = crate::oci::pull(&parsed, options)
        .map_err(|e| format!("plugin pull failed ({}): {e}", e.kind()))?;
    tracing::info!(
        plugin = %parsed,
        layer = %pulled.layer_digest,
        bytes = pulled.size,
        from_cache = pulled.from_cache,
        ms = pulled.elapsed.as_millis() as u64,
        "plugin pulled from an OCI registry"
    );
    Ok(pulled.path)
}

/// The table in a stage's `config_file`.
fn read_config_file(path: &Path) -> Result<toml::Table, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("config_file {}: {e}", path.display()))?;
    text.parse::<toml::Table>().map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| line_col(&text, s.start));
        format!(
            "config_file {}:{line}:{column}: {}",
            path.display(),
            e.message().trim_end()
        )
    })
}

/// Parse and validate the pipeline in `text` (read from `file`). The result
/// has version 0; the registry numbers versions.
pub fn load_pipeline(
    file: &Path,
    text: &str,
    ctx: &LoadContext,
) -> Result<Pipeline, PipelineErrors> {
    let mut r = Reporter {
        file,
        text,
        errors: Vec::new(),
    };
    let def: PipelineFile = match toml::from_str(text) {
        Ok(d) => d,
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            r.at(offset, None, e.message().trim_end().to_string());
            return Err(PipelineErrors(r.errors));
        }
    };

    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let name = match &def.name {
        Some(n) => {
            if !valid_name(n.get_ref()) {
                r.at(
                    n.span().start,
                    None,
                    format!(
                        "name `{}` must be 1-64 characters of letters, digits, `-`, `_` or `.`",
                        n.get_ref()
                    ),
                );
            }
            n.get_ref().clone()
        }
        None => {
            if !valid_name(stem) {
                r.at(
                    0,
                    None,
                    format!(
                        "the file name `{stem}` is not a valid pipeline name; set `name = \"…\"`"
                    ),
                );
            }
            stem.to_string()
        }
    };
    if def.voice.get_ref().trim().is_empty() {
        r.at(def.voice.span().start, None, "voice must not be empty");
    }
    if let Some(entries) = ctx.voices {
        let voice = def.voice.get_ref();
        if !voice.trim().is_empty() && !entries.iter().any(|e| &e.name == voice) {
            let have: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
            r.at(
                def.voice.span().start,
                None,
                format!(
                    "unknown voice `{voice}` (the voices folder has {})",
                    if have.is_empty() {
                        "no voices".to_string()
                    } else {
                        have.join(", ")
                    }
                ),
            );
        }
    }
    let on_unhonored = match &def.on_unhonored {
        None => OnUnhonored::default(),
        Some(v) => OnUnhonored::parse(v.get_ref()).unwrap_or_else(|| {
            r.at(
                v.span().start,
                None,
                format!(
                    "on_unhonored = `{}`: expected \"warn\" or \"refuse\"",
                    v.get_ref()
                ),
            );
            OnUnhonored::default()
        }),
    };
    let routes = routes::check(
        &def.routes,
        def.voice.get_ref(),
        ctx.voices,
        &mut |offset, reason| r.at(offset, None, reason),
    );
    if let Some(lang) = &def.language {
        if lang.get_ref().trim().is_empty() {
            r.at(
                lang.span().start,
                None,
                "language must not be empty when set",
            );
        }
    }

    let ceiling = ctx.runtime.options().max_memory_bytes;
    let default_limits = match &def.limits {
        Some(l) => limits_from(
            PluginLimits::default(),
            l.get_ref(),
            ceiling,
            l.span().start,
            None,
            &mut r,
        ),
        None => PluginLimits::default(),
    };

    let pipeline_dir = file.parent().unwrap_or(Path::new("."));
    let mut stages = Vec::new();
    let mut names = HashSet::new();
    let mut model_seen = false;
    let mut style_seen = false;
    for (index, spanned) in def.stages.iter().enumerate() {
        let stage_offset = spanned.span().start;
        let s: &StageDef = spanned.get_ref();
        let Some(kind) = StageKind::parse(s.kind.get_ref()) else {
            r.at(
                s.kind.span().start,
                Some(&format!("stage {}", index + 1)),
                format!(
                    "unknown stage kind `{}` (expected text, style, model or audio)",
                    s.kind.get_ref()
                ),
            );
            continue;
        };
        let default_name = match (&s.plugin, kind) {
            (_, StageKind::Model) => "model".to_string(),
            (Some(p), _) if crate::oci::is_oci(p.get_ref()) => {
                crate::oci::Reference::parse(p.get_ref())
                    .map_or("stage".to_string(), |r| r.name().to_string())
            }
            (Some(p), _) => Path::new(p.get_ref())
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("stage")
                .to_string(),
            (None, _) => format!("{kind}-{}", index + 1),
        };
        let stage_name = s
            .name
            .as_ref()
            .map_or(default_name, |n| n.get_ref().clone());
        let label = format!("stage {} \"{stage_name}\" ({kind})", index + 1);
        let label = Some(label.as_str());
        if !names.insert(stage_name.clone()) {
            let at = s.name.as_ref().map_or(stage_offset, |n| n.span().start);
            r.at(
                at,
                label,
                format!("another stage is already named `{stage_name}`"),
            );
        }

        // Order: text and style stages, then the model, then audio stages.
        match kind {
            StageKind::Model => {
                if model_seen {
                    r.at(
                        stage_offset,
                        label,
                        "a pipeline has exactly one model stage",
                    );
                }
                model_seen = true;
            }
            StageKind::Audio if !model_seen => {
                r.at(
                    stage_offset,
                    label,
                    "audio stages come after the model stage",
                );
            }
            StageKind::Text | StageKind::Style if model_seen => {
                r.at(
                    stage_offset,
                    label,
                    format!("{kind} stages come before the model stage"),
                );
            }
            StageKind::Style if style_seen => {
                r.at(
                    stage_offset,
                    label,
                    "a pipeline has at most one style stage",
                );
            }
            StageKind::Text if style_seen => {
                r.at(
                    stage_offset,
                    label,
                    "text stages come before the style stage",
                );
            }
            _ => {}
        }
        if kind == StageKind::Style {
            style_seen = true;
        }

        if kind == StageKind::Model {
            if s.plugin.is_some()
                || s.config.is_some()
                || s.config_file.is_some()
                || s.limits.is_some()
            {
                r.at(stage_offset, label, "the model stage takes no plugin, config or limits (the voice is set by `voice`)");
            }
            stages.push(Stage {
                index,
                name: stage_name,
                kind,
                plugin: None,
            });
            continue;
        }

        let limits = match &s.limits {
            Some(l) => limits_from(
                default_limits,
                l.get_ref(),
                ceiling,
                l.span().start,
                label,
                &mut r,
            ),
            None => default_limits,
        };
        let Some(plugin_ref) = &s.plugin else {
            r.at(
                stage_offset,
                label,
                format!("a {kind} stage needs `plugin = \"…\"`"),
            );
            continue;
        };
        let path = match plugin_file(plugin_ref.get_ref(), pipeline_dir, ctx) {
            Ok(p) => p,
            Err(reason) => {
                r.at(plugin_ref.span().start, label, reason);
                continue;
            }
        };
        let plugin = match ctx.runtime.load(&path) {
            Ok(p) => p,
            Err(e) => {
                r.at(plugin_ref.span().start, label, e.to_string());
                continue;
            }
        };
        if plugin.kind != kind {
            r.at(
                plugin_ref.span().start,
                label,
                format!(
                    "plugin `{}` implements the {} world, but the stage kind is `{kind}`",
                    plugin.id.name,
                    plugin.kind.world().unwrap_or("?"),
                ),
            );
            continue;
        }
        let mut table = toml::Table::new();
        if let Some(f) = &s.config_file {
            match read_config_file(&pipeline_dir.join(f.get_ref())) {
                Ok(t) => table = t,
                Err(reason) => {
                    r.at(f.span().start, label, reason);
                    continue;
                }
            }
        }
        if let Some(c) = &s.config {
            table.extend(c.get_ref().clone());
        }
        let config = StageConfig::from_toml(&table);
        if let Err(e) = plugin.check_config(&limits, &config) {
            let at = s.config.as_ref().map_or(stage_offset, |c| c.span().start);
            // Only `invalid-config` is the plugin refusing the table; a trap,
            // a timeout or a memory limit in check-config is its own failure.
            let reason = match &e {
                voxpipe_plugin::PluginError::InvalidConfig(_) => {
                    format!("plugin `{}` refused its config: {e}", plugin.id.name)
                }
                other => format!(
                    "plugin `{}` failed while checking its config ({}): {other}",
                    plugin.id.name,
                    other.kind()
                ),
            };
            r.at(at, label, reason);
            continue;
        }
        // A 0.1/0.2 stage that takes whole utterances is measured once
        // here: requests longer than it takes are refused before their
        // audio is made (blocks.rs).
        let whole_capacity = (plugin.mode == voxpipe_types::AudioMode::Whole).then(|| {
            let rate = ctx
                .voices
                .and_then(|v| v.iter().find(|e| &e.name == def.voice.get_ref()))
                .map_or(22_050, |e| e.config.audio.sample_rate);
            let capacity = super::WholeCapacity::measure(&plugin, &limits, &config, rate);
            tracing::info!(
                stage = %stage_name,
                plugin = %plugin.id.name,
                wit = plugin.wit_version,
                seconds = capacity.seconds,
                limit = capacity.limit.unwrap_or("none"),
                "measured the longest utterance a whole-utterance audio stage takes"
            );
            capacity
        });
        stages.push(Stage {
            index,
            name: stage_name,
            kind,
            plugin: Some(PluginStage {
                plugin,
                config,
                limits,
                whole_capacity,
            }),
        });
    }
    if !model_seen && r.errors.is_empty() {
        r.at(
            text.len(),
            None,
            "the pipeline has no model stage: add `[[stages]]` with `kind = \"model\"`",
        );
    }
    if !r.errors.is_empty() {
        return Err(PipelineErrors(r.errors));
    }
    Ok(Pipeline {
        name,
        description: def.description,
        voice: def.voice.into_inner(),
        language: def.language.map(|l| l.into_inner()),
        source: file.to_path_buf(),
        version: 0,
        loaded_at: SystemTime::now(),
        limits: default_limits,
        stages: stages.into_iter().map(Arc::new).collect(),
        routes,
        on_unhonored,
    })
}
