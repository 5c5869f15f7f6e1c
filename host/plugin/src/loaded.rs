//! A loaded plugin: its identity, its pre-instantiated component, and the
//! calls into it. Every call runs in a fresh `Store` with the call's limits.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::{Engine, Store, Trap};

use super::bindings::{v1, v2, v3, Info};
use super::config::StageConfig;
use super::error::{LoadError, PluginError};
use super::limits::PluginLimits;
use super::output;
use super::runtime::EPOCH_TICK;
use super::sanitize::{identifier_problem, one_line, MAX_DESCRIPTION, MAX_NAME};
use super::store::CallState;
use voxpipe_types::{
    Audio, AudioMode, BlockPosition, ChunkPosition, RequestContext, StageKind, StyleOutcome,
    MAX_STATE_BYTES,
};

/// The typed pre-instance of a plugin, one variant per stage world and
/// WIT version (no suffix: the current `voxpipe:stages@0.3.0`; `V2`:
/// 0.2.0; `V1`: 0.1.0).
pub(crate) enum StagePre {
    Text(v3::text::TextStagePre<CallState>),
    Style(v3::style::StyleStagePre<CallState>),
    Audio(v3::audio::AudioStagePre<CallState>),
    TextV2(v2::text::TextStagePre<CallState>),
    StyleV2(v2::style::StyleStagePre<CallState>),
    AudioV2(v2::audio::AudioStagePre<CallState>),
    TextV1(v1::text::TextStagePre<CallState>),
    StyleV1(v1::style::StyleStagePre<CallState>),
    AudioV1(v1::audio::AudioStagePre<CallState>),
}

/// `match` over every variant of a [`StagePre`] (or of the listed ones,
/// the rest being unreachable), binding the typed pre-instance to `$p` and
/// its version's bindings module to `$v`, so one body serves every version.
macro_rules! each_pre {
    ($pre:expr, $p:ident, $v:ident => $body:expr) => {
        each_pre!($pre, $p, $v => $body;
            Text v3, Style v3, Audio v3, TextV2 v2, StyleV2 v2, AudioV2 v2,
            TextV1 v1, StyleV1 v1, AudioV1 v1)
    };
    ($pre:expr, $p:ident, $v:ident => $body:expr; $($variant:ident $module:ident),+) => {
        match $pre {
            $(StagePre::$variant($p) => {
                use $module as $v;
                $body
            })+
            #[allow(unreachable_patterns)]
            _ => unreachable!("the caller checked the stage kind"),
        }
    };
}

impl StagePre {
    /// The stage world the component exports.
    fn kind(&self) -> StageKind {
        match self {
            StagePre::Text(_) | StagePre::TextV2(_) | StagePre::TextV1(_) => StageKind::Text,
            StagePre::Style(_) | StagePre::StyleV2(_) | StagePre::StyleV1(_) => StageKind::Style,
            StagePre::Audio(_) | StagePre::AudioV2(_) | StagePre::AudioV1(_) => StageKind::Audio,
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
    /// Audio stages: how the plugin takes an utterance (blocks with a
    /// state in one or two passes; 0.1/0.2 plugins: chunks or whole).
    pub mode: AudioMode,
    /// Audio stages: the style fields the plugin applies to the audio
    /// (`plugin-info.applies`, checked: see [`voxpipe_types::Applies`]).
    /// Empty for plugins built against `voxpipe:stages@0.1.0`.
    pub applies: Vec<voxpipe_types::Applies>,
    /// Text stages: the plugin declared `applies = ["say-as"]`: it reads
    /// SSML `say-as` hints from its config's `say_as` key (docs/ssml.md).
    pub say_as: bool,
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

impl LoadedPlugin {
    /// What the plugin declared in `plugin-info.applies`, as written: the style
    /// fields of an audio plugin, or `say-as` for a text plugin that reads SSML
    /// `say-as` hints (what `plugin inspect` and `GET /v1/pipelines` show).
    pub fn declared_applies(&self) -> Vec<String> {
        let mut all: Vec<String> = self.applies.iter().map(ToString::to_string).collect();
        if self.say_as {
            all.push("say-as".into());
        }
        all
    }
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
            mode: AudioMode::OnePass,
            applies: Vec::new(),
            say_as: false,
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
            .call(&limits, |store, pre| {
                each_pre!(pre, p, v => p
                    .instantiate(&mut *store)?
                    .call_describe(store)
                    .map(v::info))
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
        if world == StageKind::Text && !info.applies.is_empty() {
            plugin.say_as = text_applies(&plugin.path, &info.applies)?;
        } else {
            plugin.applies = applies(&plugin.path, world, &info.applies)?;
        }
        plugin.id.name = info.name;
        plugin.id.version = info.version;
        plugin.description = one_line(&info.description, MAX_DESCRIPTION);
        plugin.mode = info.mode;
        plugin.wit_version = info.wit;
        Ok(plugin)
    }

    /// Run `f` in a fresh store with `limits`, and classify any failure.
    fn call<R>(
        &self,
        limits: &PluginLimits,
        f: impl FnOnce(&mut Store<CallState>, &StagePre) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        self.call_peak(limits, f).0
    }

    /// [`LoadedPlugin::call`], also returning the most memory the call drew
    /// (memories never shrink, so what the limiter granted in all).
    fn call_peak<R>(
        &self,
        limits: &PluginLimits,
        f: impl FnOnce(&mut Store<CallState>, &StagePre) -> wasmtime::Result<R>,
    ) -> (Result<R, PluginError>, usize) {
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
        let peak = store.data().limiter.used;
        (result.map_err(|e| classify(e, store.data(), limits)), peak)
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
            Ok(each_pre!(pre, p, v => p
                .instantiate(&mut *store)?
                .call_check_config(store, c)?
                .map_err(v::stage_error)))
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
            Ok(each_pre!(pre, p, v => p
                .instantiate(&mut *store)?
                .call_normalize(store, &v::context(ctx), c, input)?
                .map_err(v::stage_error);
                Text v3, TextV2 v2, TextV1 v1))
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
            Ok(each_pre!(pre, p, v => p
                .instantiate(&mut *store)?
                .call_map_instruct(store, &v::context(ctx), c, instruct)?
                .map(v::outcome)
                .map_err(v::stage_error);
                Style v3, StyleV2 v2, StyleV1 v1))
        })??;
        let size = match &outcome {
            StyleOutcome::Mapped { style, label } => label.len() + style_bytes(style),
            StyleOutcome::Unmapped { reason } => reason.len(),
        };
        Self::check_output(size, limits)?;
        output::check_outcome(outcome)
    }

    /// Call a 0.1/0.2 audio stage on one chunk (the whole utterance unless
    /// it is streamable: [`AudioMode::Chunks`]). Takes the audio by value:
    /// the samples move into the call instead of being copied.
    pub fn call_audio(
        &self,
        limits: &PluginLimits,
        ctx: &RequestContext,
        config: &StageConfig,
        input: Audio,
        position: ChunkPosition,
    ) -> Result<Audio, PluginError> {
        if self.kind != StageKind::Audio
            || !matches!(self.mode, AudioMode::Chunks | AudioMode::Whole)
        {
            return Err(self.wrong_kind(StageKind::Audio));
        }
        let c = config.wit();
        let audio = self.call(limits, |store, pre| {
            Ok(each_pre!(pre, p, v => p
                .instantiate(&mut *store)?
                .call_process(store, &v::context(ctx), c, &v::audio_to_wit(input), v::position(position))?
                .map(v::audio_from_wit)
                .map_err(v::stage_error);
                AudioV2 v2, AudioV1 v1))
        })??;
        Self::check_output(audio.samples.len() * 4, limits)?;
        output::check_audio(&audio)?;
        Ok(audio)
    }

    /// Call a 0.3 audio stage on one block ([`AudioMode::OnePass`] or
    /// [`AudioMode::TwoPass`]) with the state its previous call returned;
    /// returns the audio out and the state for the next call. The state is
    /// capped at [`MAX_STATE_BYTES`]; audio out, when there is any, must be
    /// a format the host supports. (Rules across blocks — no audio out of a
    /// measuring pass, one format per utterance, bounded growth — are the
    /// driver's: `pipeline/blocks.rs` in the server.)
    pub fn call_block(
        &self,
        limits: &PluginLimits,
        ctx: &RequestContext,
        config: &StageConfig,
        input: Audio,
        position: BlockPosition,
        state: &[u8],
    ) -> Result<(Audio, Vec<u8>), PluginError> {
        if !matches!(self.pre, StagePre::Audio(_)) {
            return Err(self.wrong_kind(StageKind::Audio));
        }
        let c = config.wit();
        let (audio, state) = self.call(limits, |store, pre| {
            Ok(each_pre!(pre, p, v => p
                .instantiate(&mut *store)?
                .call_process_block(
                    store,
                    &v::context(ctx),
                    c,
                    &v::audio_to_wit(input),
                    v::block_position(position),
                    state,
                )?
                .map(|out| (v::audio_from_wit(out.audio), out.state))
                .map_err(v::stage_error);
                Audio v3))
        })??;
        Self::check_output(audio.samples.len() * 4 + state.len(), limits)?;
        if state.len() > MAX_STATE_BYTES {
            return Err(PluginError::BadOutput(format!(
                "returned a state of {} bytes; at most {MAX_STATE_BYTES} may be carried between blocks",
                state.len()
            )));
        }
        if !audio.samples.is_empty() {
            output::check_audio(&audio)?;
        }
        Ok((audio, state))
    }

    /// [`LoadedPlugin::call_audio`] on a whole utterance, also returning
    /// the most memory the call drew (bytes): how the host learns what a
    /// 0.1/0.2 whole-utterance stage needs per second of audio.
    pub fn call_audio_measured(
        &self,
        limits: &PluginLimits,
        ctx: &RequestContext,
        config: &StageConfig,
        input: Audio,
    ) -> (Result<Audio, PluginError>, usize) {
        if self.mode != AudioMode::Whole {
            return (Err(self.wrong_kind(StageKind::Audio)), 0);
        }
        let c = config.wit();
        let (out, peak) = self.call_peak(limits, |store, pre| {
            Ok(each_pre!(pre, p, v => p
                .instantiate(&mut *store)?
                .call_process(store, &v::context(ctx), c, &v::audio_to_wit(input), v::position(ChunkPosition::WHOLE))?
                .map(v::audio_from_wit)
                .map_err(v::stage_error);
                AudioV2 v2, AudioV1 v1))
        });
        (out.and_then(|r| r), peak)
    }
}

/// What a text stage may declare in `applies`: exactly `say-as` (it takes
/// SSML `say-as` hints, docs/ssml.md). True when it did.
fn text_applies(path: &std::path::Path, entries: &[String]) -> Result<bool, LoadError> {
    match entries {
        [one] if one == SAY_AS => Ok(true),
        _ => Err(LoadError::BadInfo {
            path: path.to_path_buf(),
            field: "applies",
            problem: format!(
                "{entries:?}: a text stage may declare only [\"{SAY_AS}\"] (it reads SSML say-as \
                 hints), or nothing"
            ),
        }),
    }
}

/// The `applies` entry of a text stage that reads `say-as` hints.
pub const SAY_AS: &str = "say-as";

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
