//! The plugin runtime: one shared wasmtime `Engine` (pooling allocator, epoch
//! interruption), one `Linker`, and the set of loaded plugins.
//!
//! Each plugin is compiled once (or loaded from the disk cache) and
//! pre-instantiated; every call then gets a fresh `Store`, so no state leaks
//! between calls and a trap never poisons the next one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::{v1, v2, v3};
use super::cache::{default_cache_dir, CompileCache};
use super::compile::{self, CompileOptions, Compiled};
use super::error::LoadError;
use super::loaded::{LoadedPlugin, Origin, StagePre};
use super::store::{CallState, MAX_INSTANCES, MAX_MEMORIES, MAX_TABLES};
use voxpipe_types::StageKind;

/// How often the epoch advances: the resolution of call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Bytes of a plugin's memory kept resident between calls (and reset by
/// zeroing dirty pages); beyond it, memory is returned to the OS.
const KEEP_RESIDENT: usize = 4 << 20;

/// Settings of the runtime as a whole (per-call limits live in
/// [`super::PluginLimits`]).
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where compiled plugins are cached; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Instance slots of the pooling allocator: the most plugin calls that
    /// can run at once. A call beyond it fails fast as `Overloaded`.
    pub max_concurrent_calls: u32,
    /// Ceiling on any plugin's memory limit, in bytes.
    pub max_memory_bytes: usize,
    /// Size bound of the disk cache of compiled plugins; the least recently
    /// used entries are removed past it.
    pub cache_max_bytes: u64,
    /// File size, time and memory bounds of compiling a plugin.
    pub compile: CompileOptions,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: default_cache_dir(),
            max_concurrent_calls: 64,
            max_memory_bytes: 512 << 20,
            cache_max_bytes: 1 << 30,
            compile: CompileOptions::default(),
        }
    }
}

/// The engine configuration. The compile worker uses the same settings
/// without the pooling allocator (which only decides where instances live,
/// not the code), so its artifacts load here.
fn engine_config(options: &RuntimeOptions, pooling: bool) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true).max_wasm_stack(1 << 20);
    if pooling {
        let slots = options.max_concurrent_calls.max(1);
        let mut pool = PoolingAllocationConfig::default();
        // A stage component holds a few core instances (the module plus the
        // adapter shims that wit-component adds; about ten for componentize-py).
        // The per-component caps keep one call from taking a share of the pool
        // that the memory budget would not allow anyway.
        pool.total_component_instances(slots)
            .total_core_instances(slots * 8)
            .total_memories(slots * 2)
            .total_tables(slots * 8)
            .max_core_instances_per_component(MAX_INSTANCES as u32)
            .max_memories_per_component(MAX_MEMORIES as u32)
            .max_tables_per_component(MAX_TABLES as u32)
            .max_memories_per_module(2)
            .max_memory_size(options.max_memory_bytes)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20)
            // Reset a slot by zeroing only the pages the last call dirtied
            // (found with Linux's PAGEMAP_SCAN, kernel ≥ 6.7) instead of
            // madvise + page faults on the next call: this is most of the
            // per-call cost otherwise. Falls back to madvise elsewhere.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(64 << 10);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// The body of the hidden `voxpipe __compile-plugin` command (see
/// `compile.rs`); returns the exit code.
pub fn compile_worker(options: &RuntimeOptions, core_module: bool) -> i32 {
    match Engine::new(&engine_config(options, false)) {
        Ok(engine) => compile::worker_main(&engine, core_module),
        Err(e) => {
            eprintln!("{e:#}");
            1
        }
    }
}

/// Counters that tell what loading cost (tests use them to prove that a
/// reload never recompiles an unchanged plugin).
#[derive(Debug, Default)]
pub struct RuntimeStats {
    /// Components compiled by Cranelift.
    pub compiles: AtomicU64,
    /// Components loaded from the disk cache.
    pub disk_cache_hits: AtomicU64,
    /// Loads answered by a plugin already in memory.
    pub memory_hits: AtomicU64,
}

pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<CallState>,
    options: RuntimeOptions,
    cache: Option<CompileCache>,
    /// Loaded plugins by sha256; weak, so plugins no pipeline uses are freed.
    loaded: Mutex<HashMap<String, Weak<LoadedPlugin>>>,
    stats: RuntimeStats,
}

impl PluginRuntime {
    pub fn new(options: RuntimeOptions) -> anyhow::Result<PluginRuntime> {
        let engine = Engine::new(&engine_config(&options, true))?;
        spawn_epoch_ticker(&engine);

        let mut linker = Linker::new(&engine);
        // The `log` import of every WIT version the host loads.
        v3::text::TextStage::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
        v2::text::TextStage::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
        v1::text::TextStage::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
        // Components built for wasm32-wasip2 import WASI; link it, grant
        // nothing, and bound every wait by the call's deadline.
        super::wasi::add_to_linker(&mut linker)?;

        let cache = options
            .cache_dir
            .as_deref()
            .map(|d| CompileCache::new(d, &engine, options.cache_max_bytes));
        Ok(PluginRuntime {
            engine,
            linker,
            options,
            cache,
            loaded: Mutex::new(HashMap::new()),
            stats: RuntimeStats::default(),
        })
    }

    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    pub fn stats(&self) -> &RuntimeStats {
        &self.stats
    }

    /// Load a plugin file: a component, or a core module carrying a
    /// component type (as `wit-bindgen` emits for wasm32-unknown-unknown).
    /// The same bytes loaded twice share one compiled plugin.
    pub fn load(&self, path: &Path) -> Result<Arc<LoadedPlugin>, LoadError> {
        let bytes = self.read(path)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if let Some(p) = self.lookup(&sha256) {
            self.stats.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(p);
        }
        let started = Instant::now();
        let (component, origin) = self.component(path, &sha256, &bytes)?;
        let plugin = self.prepare(path, sha256.clone(), component, origin, started)?;
        let plugin = Arc::new(plugin);
        self.loaded
            .lock()
            .unwrap()
            .insert(sha256, Arc::downgrade(&plugin));
        Ok(plugin)
    }

    /// Read a plugin file, refusing one over the size limit before reading it.
    fn read(&self, path: &Path) -> Result<Vec<u8>, LoadError> {
        use std::io::Read;
        let io = |source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let limit = self.options.compile.max_file_bytes;
        let too_large = |size: u64| LoadError::TooLarge {
            path: path.to_path_buf(),
            size,
            limit,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if size > limit as u64 {
            return Err(too_large(size));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        // The file may grow while it is read: never read past the limit.
        file.take(limit as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() > limit {
            return Err(too_large(bytes.len() as u64));
        }
        Ok(bytes)
    }

    fn lookup(&self, sha256: &str) -> Option<Arc<LoadedPlugin>> {
        let mut loaded = self.loaded.lock().unwrap();
        loaded.retain(|_, w| w.strong_count() > 0);
        loaded.get(sha256).and_then(Weak::upgrade)
    }

    /// Compile (or fetch from the disk cache) the component in `bytes`.
    fn component(
        &self,
        path: &Path,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<(Component, Origin), LoadError> {
        let is_component = wasmparser::Parser::is_component(bytes);
        if !is_component && !wasmparser::Parser::is_core_wasm(bytes) {
            return Err(LoadError::NotWasm(path.to_path_buf()));
        }
        let from_core = !is_component;
        if let Some(c) = self
            .cache
            .as_ref()
            .and_then(|c| c.get(&self.engine, sha256))
        {
            self.stats.disk_cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok((c, Origin::new(from_core, true)));
        }
        if from_core && !has_component_type(bytes) {
            return Err(LoadError::NotAComponent {
                path: path.to_path_buf(),
                reason: "it has no `component-type` custom section".to_string(),
            });
        }
        let component =
            match compile::compile(&self.engine, &self.options.compile, path, bytes, from_core)? {
                Compiled::Component(c) => {
                    if let Some(cache) = &self.cache {
                        cache.put(sha256, &c);
                    }
                    c
                }
                Compiled::Serialized(artifact) => {
                    // SAFETY: the artifact was just made by our own binary (the
                    // compile worker) with this engine's settings; wasmtime checks
                    // its header against the engine and refuses a mismatch.
                    let c = unsafe { Component::deserialize(&self.engine, &artifact) }.map_err(
                        |e| LoadError::Compile {
                            path: path.to_path_buf(),
                            reason: format!("loading the compiled code: {e:#}"),
                        },
                    )?;
                    if let Some(cache) = &self.cache {
                        cache.put_bytes(sha256, &artifact);
                    }
                    c
                }
            };
        self.stats.compiles.fetch_add(1, Ordering::Relaxed);
        Ok((component, Origin::new(from_core, false)))
    }

    /// Type-check the component against its stage world, pre-instantiate it
    /// and ask it to describe itself.
    fn prepare(
        &self,
        path: &Path,
        sha256: String,
        component: Component,
        origin: Origin,
        started: Instant,
    ) -> Result<LoadedPlugin, LoadError> {
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let world = [
            ("normalize", StageKind::Text),
            ("map-instruct", StageKind::Style),
            ("process-block", StageKind::Audio),
            ("process", StageKind::Audio),
        ]
        .into_iter()
        .find(|(f, _)| exports.iter().any(|e| e == f))
        .map(|(_, k)| k)
        .ok_or_else(|| LoadError::NoStageWorld {
            path: path.to_path_buf(),
            exports: if exports.is_empty() {
                "nothing".to_string()
            } else {
                exports.join(", ")
            },
        })?;
        let instance_pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| LoadError::Imports {
                    path: path.to_path_buf(),
                    reason: format!("{e:#}"),
                })?;
        // The current WIT version first, then the older ones the host still
        // loads; a component matching none is reported against the current.
        let world_name = world.world().unwrap_or("?");
        let mismatch = |e: wasmtime::Error| LoadError::WorldMismatch {
            path: path.to_path_buf(),
            world: world_name,
            reason: format!("{e:#}"),
        };
        let pre = match world {
            StageKind::Text => v3::text::TextStagePre::new(instance_pre.clone())
                .map(StagePre::Text)
                .or_else(|e| {
                    v2::text::TextStagePre::new(instance_pre.clone())
                        .map(StagePre::TextV2)
                        .or_else(|_| {
                            v1::text::TextStagePre::new(instance_pre).map(StagePre::TextV1)
                        })
                        .map_err(|_| e)
                }),
            StageKind::Style => v3::style::StyleStagePre::new(instance_pre.clone())
                .map(StagePre::Style)
                .or_else(|e| {
                    v2::style::StyleStagePre::new(instance_pre.clone())
                        .map(StagePre::StyleV2)
                        .or_else(|_| {
                            v1::style::StyleStagePre::new(instance_pre).map(StagePre::StyleV1)
                        })
                        .map_err(|_| e)
                }),
            _ => v3::audio::AudioStagePre::new(instance_pre.clone())
                .map(StagePre::Audio)
                .or_else(|e| {
                    v2::audio::AudioStagePre::new(instance_pre.clone())
                        .map(StagePre::AudioV2)
                        .or_else(|_| {
                            v1::audio::AudioStagePre::new(instance_pre).map(StagePre::AudioV1)
                        })
                        .map_err(|_| e)
                }),
        }
        .map_err(mismatch)?;
        LoadedPlugin::describe(
            path.to_path_buf(),
            sha256,
            self.engine.clone(),
            pre,
            origin,
            imports,
            exports,
            started.elapsed(),
            self.options.max_memory_bytes,
        )
    }
}

/// Whether a core module carries the `component-type:*` custom section that
/// wit-bindgen emits (and wit-component needs to build a component).
fn has_component_type(bytes: &[u8]) -> bool {
    wasmparser::Parser::new(0).parse_all(bytes).any(|payload| {
        matches!(payload, Ok(wasmparser::Payload::CustomSection(c)) if c.name().starts_with("component-type"))
    })
}

/// Advance the engine's epoch every [`EPOCH_TICK`] for as long as the engine
/// lives; call deadlines are counted in these ticks.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("voxpipe-epoch".to_string())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawn epoch ticker thread");
}
