//! A loaded plugin: its identity, its pre-instantiated component, and the
//! calls into it. Every call runs in a fresh `Store` with the call's limits.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::{Engine, Store, Trap};

use super::bindings::{v1, v2, Info};
use super::config::StageConfig;
use super::error::{LoadError, PluginError};
use super::limits::PluginLimits;
use super::output;
use super::runtime::EPOCH_TICK;
use super::sanitize::{identifier_problem, one_line, MAX_DESCRIPTION, MAX_NAME};
use super::store::CallState;
use voxpipe_types::{Audio, ChunkPosition, RequestContext, StageKind, StyleOutcome};

/// The typed pre-instance of a plugin, one variant per stage world and
/// WIT version (`V1`: `voxpipe:stages@0.1.0`).
pub(crate) enum StagePre {
    Text(v2::text::TextStagePre<CallState>),
    Style(v2::style::StyleStagePre<CallState>),
    Audio(v2::audio::AudioStagePre<CallState>),
    TextV1(v1::text::TextStagePre<CallState>),
    StyleV1(v1::style::StyleStagePre<CallState>),
    AudioV1(v1::audio::AudioStagePre<CallState>),
}

impl StagePre {
    /// The stage world the component exports.
    fn kind(&self) -> StageKind {
        match self {
            StagePre::Text(_) | StagePre::TextV1(_) => StageKind::Text,
            StagePre::Style(_) | StagePre::StyleV1(_) => StageKind::Style,
            StagePre::Audio(_) | StagePre::AudioV1(_) => StageKind::Audio,
        }
    }
}

/// How a plugin's component was obtained.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Origin {
    /// The file was a core module that the host wrapped into a component.
    pub from_core_module: bool,
    /// The compiled code came from the disk cache.
    pub from_disk_cache: bool,
}

impl Origin {
    pub(crate) fn new(from_core_module: bool, from_disk_cache: bool) -> Origin {
        Origin {
            from_core_module,
            from_disk_cache,
        }
    }
}

/// Who a plugin is: shown in listings and on every span of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginId {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

pub struct LoadedPlugin {
    pub id: PluginId,
    pub kind: StageKind,
    pub description: String,
    /// Audio stages: chunk-by-chunk processing is allowed.
    pub streamable: bool,
    /// Audio stages: the style fields the plugin applies to the audio
    /// (`plugin-info.applies`, checked: see [`voxpipe_types::Applies`]).
    /// Empty for plugins built against `voxpipe:stages@0.1.0`.
    pub applies: Vec<voxpipe_types::Applies>,
    /// The version of the WIT package the plugin was built against.
    pub wit_version: &'static str,
    pub path: PathBuf,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub origin: Origin,
    /// Time to read, compile (or load from cache), type-check and describe.
    pub load_time: Duration,
    engine: Engine,
    pre: StagePre,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn describe(
        path: PathBuf,
        sha256: String,
        engine: Engine,
        pre: StagePre,
        origin: Origin,
        imports: Vec<String>,
        exports: Vec<String>,
        load_time: Duration,
        max_memory: usize,
    ) -> Result<LoadedPlugin, LoadError> {
        let world = pre.kind();
        let mut plugin = LoadedPlugin {
            id: PluginId {
                name: String::new(),
                version: String::new(),
                sha256,
            },
            kind: world,
            description: String::new(),
            streamable: false,
            applies: Vec::new(),
            wit_version: "",
            path,
            imports,
            exports,
            origin,
            load_time,
            engine,
            pre,
        };
        let limits = PluginLimits {
            memory_bytes: max_memory.min(PluginLimits::default().memory_bytes),
            ..PluginLimits::default()
        };
        let info: Info = plugin
            .call(&limits, |store, pre| match pre {
                StagePre::Text(p) => p
                    .instantiate(&mut *store)?
                    .call_describe(store)
                    .map(v2::info),
                StagePre::Style(p) => p
                    .instantiate(&mut *store)?
                    .call_describe(store)
                    .map(v2::info),
                StagePre::Audio(p) => p
                    .instantiate(&mut *store)?
                    .call_describe(store)
                    .map(v2::info),
                StagePre::TextV1(p) => p
                    .instantiate(&mut *store)?
                    .call_describe(store)
                    .map(v1::info),
                StagePre::StyleV1(p) => p
                    .instantiate(&mut *store)?
                    .call_describe(store)
                    .map(v1::info),
                StagePre::AudioV1(p) => p
                    .instantiate(&mut *store)?
                    .call_describe(store)
                    .map(v1::info),
            })
            .map_err(|source| LoadError::Describe {
                path: plugin.path.clone(),
                source,
            })?;
        let said = info.kind;
        if said != world {
            return Err(LoadError::KindMismatch {
                path: plugin.path.clone(),
                said: said.as_str(),
                world: world.world().unwrap_or("?"),
            });
        }
        // The name and version are metric labels and on every span: they
        // must be short identifiers. The description is free text.
        for (field, value) in [("name", &info.name), ("version", &info.version)] {
            if let Some(problem) = identifier_problem(value, MAX_NAME) {
                return Err(LoadError::BadInfo {
                    path: plugin.path.clone(),
                    field,
                    problem,
                });
            }
        }
        plugin.applies = applies(&plugin.path, world, &info.applies)?;
        plugin.id.name = info.name;
        plugin.id.version = info.version;
        plugin.description = one_line(&info.description, MAX_DESCRIPTION);
        plugin.streamable = info.streamable;
        plugin.wit_version = info.wit;
        Ok(plugin)
    }

    /// Run `f` in a fresh store with `limits`, and classify any failure.
    fn call<R>(
        &self,
        limits: &PluginLimits,
        f: impl FnOnce(&mut Store<CallState>, &StagePre) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let mut store = Store::new(
            &self.engine,
            CallState::new(
                &self.id.name,
                limits.memory_bytes,
                Instant::now() + limits.deadline,
            ),
        );
        store.limiter(|s| &mut s.limiter);
        // Ticks are counted from now; +1 covers the tick already under way.
        let ticks = limits.deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64 + 1;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let result = f(&mut store, &self.pre);
        store.data_mut().finish();
        result.map_err(|e| classify(e, store.data(), limits))
    }

    fn check_output(size: usize, limits: &PluginLimits) -> Result<(), PluginError> {
        if size > limits.max_output_bytes {
            return Err(PluginError::OutputTooLarge {
                size,
                limit: limits.max_output_bytes,
            });
        }
        Ok(())
    }

    /// Ask the plugin whether `config` suits it.
    pub fn check_config(
        &self,
        limits: &PluginLimits,
        config: &StageConfig,
    ) -> Result<(), PluginError> {
        let c = config.wit();
        self.call(limits, |store, pre| {
            Ok(match pre {
                StagePre::Text(p) => p
                    .instantiate(&mut *store)?
                    .call_check_config(store, c)?
                    .map_err(v2::stage_error),
                StagePre::Style(p) => p
                    .instantiate(&mut *store)?
                    .call_check_config(store, c)?
                    .map_err(v2::stage_error),
                StagePre::Audio(p) => p
                    .instantiate(&mut *store)?
                    .call_check_config(store, c)?
                    .map_err(v2::stage_error),
                StagePre::TextV1(p) => p
                    .instantiate(&mut *store)?
                    .call_check_config(store, c)?
                    .map_err(v1::stage_error),
                StagePre::StyleV1(p) => p
                    .instantiate(&mut *store)?
                    .call_check_config(store, c)?
                    .map_err(v1::stage_error),
                StagePre::AudioV1(p) => p
                    .instantiate(&mut *store)?
                    .call_check_config(store, c)?
                    .map_err(v1::stage_error),
            })
        })?
    }

    fn wrong_kind(&self, wanted: StageKind) -> PluginError {
        PluginError::Internal(format!(
            "plugin {} is a {} stage, called as {wanted}",
            self.id.name, self.kind
        ))
    }

    /// Call a text stage.
    pub fn call_text(
        &self,
        limits: &PluginLimits,
        ctx: &RequestContext,
        config: &StageConfig,
        input: &str,
    ) -> Result<String, PluginError> {
        if self.kind != StageKind::Text {
            return Err(self.wrong_kind(StageKind::Text));
        }
        let c = config.wit();
        let out = self.call(limits, |store, pre| {
            Ok(match pre {
                StagePre::Text(p) => p
                    .instantiate(&mut *store)?
                    .call_normalize(store, &v2::context(ctx), c, input)?
                    .map_err(v2::stage_error),
                StagePre::TextV1(p) => p
                    .instantiate(&mut *store)?
                    .call_normalize(store, &v1::context(ctx), c, input)?
                    .map_err(v1::stage_error),
                _ => unreachable!("checked above"),
            })
        })??;
        Self::check_output(out.len(), limits)?;
        if out.len() > limits.max_text_bytes {
            return Err(PluginError::OutputTooLarge {
                size: out.len(),
                limit: limits.max_text_bytes,
            });
        }
        if let Some(at) = out.find('\0') {
            return Err(PluginError::BadOutput(format!(
                "returned text with a NUL character at byte {at}"
            )));
        }
        Ok(out)
    }

    /// Call a style stage.
    pub fn call_style(
        &self,
        limits: &PluginLimits,
        ctx: &RequestContext,
        config: &StageConfig,
        instruct: &str,
    ) -> Result<StyleOutcome, PluginError> {
        if self.kind != StageKind::Style {
            return Err(self.wrong_kind(StageKind::Style));
        }
        let c = config.wit();
        let outcome = self.call(limits, |store, pre| {
            Ok(match pre {
                StagePre::Style(p) => p
                    .instantiate(&mut *store)?
                    .call_map_instruct(store, &v2::context(ctx), c, instruct)?
                    .map(v2::outcome)
                    .map_err(v2::stage_error),
                StagePre::StyleV1(p) => p
                    .instantiate(&mut *store)?
                    .call_map_instruct(store, &v1::context(ctx), c, instruct)?
                    .map(v1::outcome)
                    .map_err(v1::stage_error),
                _ => unreachable!("checked above"),
            })
        })??;
        let size = match &outcome {
            StyleOutcome::Mapped { style, label } => label.len() + style_bytes(style),
            StyleOutcome::Unmapped { reason } => reason.len(),
        };
        Self::check_output(size, limits)?;
        output::check_outcome(outcome)
    }

    /// Call an audio stage on one chunk (the whole utterance unless
    /// streamable). Takes the audio by value: the samples move into the call
    /// instead of being copied.
    pub fn call_audio(
        &self,
        limits: &PluginLimits,
        ctx: &RequestContext,
        config: &StageConfig,
        input: Audio,
        position: ChunkPosition,
    ) -> Result<Audio, PluginError> {
        if self.kind != StageKind::Audio {
            return Err(self.wrong_kind(StageKind::Audio));
        }
        let c = config.wit();
        let audio = self.call(limits, |store, pre| {
            Ok(match pre {
                StagePre::Audio(p) => p
                    .instantiate(&mut *store)?
                    .call_process(
                        store,
                        &v2::context(ctx),
                        c,
                        &v2::audio_to_wit(input),
                        v2::position(position),
                    )?
                    .map(v2::audio_from_wit)
                    .map_err(v2::stage_error),
                StagePre::AudioV1(p) => p
                    .instantiate(&mut *store)?
                    .call_process(
                        store,
                        &v1::context(ctx),
                        c,
                        &v1::audio_to_wit(input),
                        v1::position(position),
                    )?
                    .map(v1::audio_from_wit)
                    .map_err(v1::stage_error),
                _ => unreachable!("checked above"),
            })
        })??;
        Self::check_output(audio.samples.len() * 4, limits)?;
        output::check_audio(&audio)?;
        Ok(audio)
    }
}

/// The checked `applies` of a plugin: audio stages only, each entry one of
/// the documented fields ([`voxpipe_types::Applies`]), at most 32.
fn applies(
    path: &std::path::Path,
    kind: StageKind,
    entries: &[String],
) -> Result<Vec<voxpipe_types::Applies>, LoadError> {
    let bad = |problem: String| LoadError::BadInfo {
        path: path.to_path_buf(),
        field: "applies",
        problem,
    };
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    if kind != StageKind::Audio {
        return Err(bad(format!(
            "only audio stages apply style fields; a {kind} stage must leave it empty"
        )));
    }
    if entries.len() > MAX_APPLIES {
        return Err(bad(format!(
            "{} entries; at most {MAX_APPLIES}",
            entries.len()
        )));
    }
    entries
        .iter()
        .map(|e| voxpipe_types::Applies::parse(e).map_err(bad))
        .collect()
}

/// At most this many `applies` entries per plugin.
const MAX_APPLIES: usize = 32;

/// Bytes of text a style carries (what the output limit counts); numbers
/// are small and fixed, so only strings matter.
fn style_bytes(s: &voxpipe_types::Style) -> usize {
    let opt = |o: &Option<String>| o.as_ref().map_or(0, String::len);
    opt(&s.voice)
        + opt(&s.language)
        + opt(&s.speaker)
        + opt(&s.dialect)
        + s.emotions.iter().map(String::len).sum::<usize>()
        + s.extra
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

/// Turn a wasmtime error into the typed error of the call. Everything that
/// happens inside a call is the plugin's doing: what the host's limits
/// stopped is named after the limit, the rest is a trap or an unusable
/// result, with the cause in one line and no Wasm backtrace.
fn classify(e: wasmtime::Error, state: &CallState, limits: &PluginLimits) -> PluginError {
    if state.limiter.memory_hit {
        return PluginError::MemoryLimit(limits.memory_bytes);
    }
    if state.deadline_hit {
        return PluginError::Timeout(limits.deadline);
    }
    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return PluginError::Overloaded;
    }
    if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return PluginError::BadOutput(format!(
            "the plugin called exit({}) instead of returning",
            exit.0
        ));
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginError::Timeout(limits.deadline),
        Some(Trap::StackOverflow) => PluginError::Trap("stack overflow".to_string()),
        Some(Trap::UnreachableCodeReached) => {
            PluginError::Trap("unreachable code reached (a panic in the plugin)".to_string())
        }
        Some(trap) => PluginError::Trap(trap.to_string()),
        // Lifting a malformed result (invalid UTF-8, a pointer out of
        // bounds), an instance or resource count over its limit, a WASI
        // error that traps.
        None => PluginError::Trap(one_line(&e.root_cause().to_string(), 256)),
    }
}
