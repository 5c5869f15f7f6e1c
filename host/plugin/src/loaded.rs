//! A loaded plugin: its identity, its pre-instantiated component, and the
//! calls into it. Every call runs in a fresh `Store` with the call's limits.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::{Engine, Store, Trap};

use super::bindings::{self, audio, style, text, wit};
use super::config::StageConfig;
use super::error::{LoadError, PluginError};
use super::limits::PluginLimits;
use super::output;
use super::runtime::EPOCH_TICK;
use super::sanitize::{identifier_problem, one_line, MAX_DESCRIPTION, MAX_NAME};
use super::store::CallState;
use voxpipe_types::{Audio, ChunkPosition, RequestContext, StageKind, StyleOutcome};

/// The typed pre-instance of a plugin, one variant per stage world.
pub(crate) enum StagePre {
    Text(text::TextStagePre<CallState>),
    Style(style::StyleStagePre<CallState>),
    Audio(audio::AudioStagePre<CallState>),
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
        let world = match &pre {
            StagePre::Text(_) => StageKind::Text,
            StagePre::Style(_) => StageKind::Style,
            StagePre::Audio(_) => StageKind::Audio,
        };
        let mut plugin = LoadedPlugin {
            id: PluginId {
                name: String::new(),
                version: String::new(),
                sha256,
            },
            kind: world,
            description: String::new(),
            streamable: false,
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
        let info = plugin
            .call(&limits, |store, pre| match pre {
                StagePre::Text(p) => p.instantiate(&mut *store)?.call_describe(store),
                StagePre::Style(p) => p.instantiate(&mut *store)?.call_describe(store),
                StagePre::Audio(p) => p.instantiate(&mut *store)?.call_describe(store),
            })
            .map_err(|source| LoadError::Describe {
                path: plugin.path.clone(),
                source,
            })?;
        let said = bindings::kind_from_wit(info.kind);
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
        plugin.id.name = info.name;
        plugin.id.version = info.version;
        plugin.description = one_line(&info.description, MAX_DESCRIPTION);
        plugin.streamable = info.streamable;
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

    /// A plugin's own error; its message goes into responses and logs, so
    /// it is made one line and cut.
    fn stage_error(e: wit::StageError) -> PluginError {
        match e {
            wit::StageError::InvalidInput(m) => {
                PluginError::InvalidInput(output::error_message(&m))
            }
            wit::StageError::InvalidConfig(m) => {
                PluginError::InvalidConfig(output::error_message(&m))
            }
            wit::StageError::PluginFault(m) => PluginError::Fault(output::error_message(&m)),
        }
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
        self.call(limits, |store, pre| match pre {
            StagePre::Text(p) => p
                .instantiate(&mut *store)?
                .call_check_config(store, config.wit()),
            StagePre::Style(p) => p
                .instantiate(&mut *store)?
                .call_check_config(store, config.wit()),
            StagePre::Audio(p) => p
                .instantiate(&mut *store)?
                .call_check_config(store, config.wit()),
        })?
        .map_err(Self::stage_error)
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
        let StagePre::Text(_) = &self.pre else {
            return Err(self.wrong_kind(StageKind::Text));
        };
        let ctx = bindings::context_to_wit(ctx);
        let out = self
            .call(limits, |store, pre| match pre {
                StagePre::Text(p) => {
                    p.instantiate(&mut *store)?
                        .call_normalize(store, &ctx, config.wit(), input)
                }
                _ => unreachable!("checked above"),
            })?
            .map_err(Self::stage_error)?;
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
        let StagePre::Style(_) = &self.pre else {
            return Err(self.wrong_kind(StageKind::Style));
        };
        let ctx = bindings::context_to_wit(ctx);
        let out = self
            .call(limits, |store, pre| match pre {
                StagePre::Style(p) => p.instantiate(&mut *store)?.call_map_instruct(
                    store,
                    &ctx,
                    config.wit(),
                    instruct,
                ),
                _ => unreachable!("checked above"),
            })?
            .map_err(Self::stage_error)?;
        let outcome = bindings::outcome_from_wit(out);
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
        let StagePre::Audio(_) = &self.pre else {
            return Err(self.wrong_kind(StageKind::Audio));
        };
        let ctx = bindings::context_to_wit(ctx);
        let wit_audio = wit::Audio {
            sample_rate: input.sample_rate,
            channels: input.channels,
            samples: input.samples,
        };
        let position = bindings::position_to_wit(position);
        let out = self
            .call(limits, |store, pre| match pre {
                StagePre::Audio(p) => p.instantiate(&mut *store)?.call_process(
                    store,
                    &ctx,
                    config.wit(),
                    &wit_audio,
                    position,
                ),
                _ => unreachable!("checked above"),
            })?
            .map_err(Self::stage_error)?;
        Self::check_output(out.samples.len() * 4, limits)?;
        let audio = bindings::audio_from_wit(out);
        output::check_audio(&audio)?;
        Ok(audio)
    }
}

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
