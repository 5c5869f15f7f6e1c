//! The registry of current pipelines, and reloading them from their folder.
//!
//! A rescan reads every `*.toml` in the pipeline folder and rebuilds only the
//! files whose fingerprint (their text plus the identity of the plugin files
//! they name) changed. A new version is built off to the side and swapped in
//! atomically; a file that fails to load leaves the previous version serving
//! and its error on record until a later edit fixes it.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::definition::file_refs;
use super::load::{load_pipeline, resolve_plugin, LoadContext};
use super::Pipeline;
use voxpipe_plugin::PluginRuntime;

/// Where pipelines and plugins live.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// The folder of `*.toml` pipeline files.
    pub pipeline_dir: PathBuf,
    /// Folders searched for `<plugin>.wasm` after the pipeline folder.
    pub plugin_dirs: Vec<PathBuf>,
    /// The voices folder, when pipelines are to be checked against it
    /// (their voice, their routes' voices and speakers).
    pub voices_dir: Option<PathBuf>,
    /// How `oci://` plugins are pulled (`None`: such plugins are refused).
    pub oci: Option<crate::oci::OciOptions>,
}

/// A pipeline file that failed to (re)load.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadError {
    pub file: PathBuf,
    /// Fingerprint of the refused content.
    pub fingerprint: String,
    /// Every problem, one per line, each with file:line:column.
    pub message: String,
    /// When it was refused, seconds since the Unix epoch.
    pub at_unix: u64,
}

/// What a rescan did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ScanReport {
    /// (name, version) of each pipeline (re)loaded.
    pub loaded: Vec<(String, u64)>,
    pub refused: Vec<ReloadError>,
    /// Names of pipelines whose file disappeared.
    pub removed: Vec<String>,
}

struct FileState {
    fingerprint: String,
    /// The pipeline this file currently serves, if any.
    serving: Option<String>,
    error: Option<ReloadError>,
}

#[derive(Default)]
struct ScanState {
    files: BTreeMap<PathBuf, FileState>,
    /// Last version given to each name; versions never go back, even when a
    /// file is removed and added again.
    versions: HashMap<String, u64>,
}

pub struct PipelineRegistry {
    runtime: Arc<PluginRuntime>,
    options: RegistryOptions,
    current: ArcSwap<BTreeMap<String, Arc<Pipeline>>>,
    /// Refused files, published at the end of each rescan so readers never
    /// wait for a rescan (which may be compiling a large plugin).
    errors: ArcSwap<Vec<ReloadError>>,
    /// Also serializes rescans.
    scan: Mutex<ScanState>,
    accepted: AtomicU64,
    refused: AtomicU64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl PipelineRegistry {
    /// An empty registry; call [`PipelineRegistry::rescan`] to load.
    pub fn new(runtime: Arc<PluginRuntime>, options: RegistryOptions) -> PipelineRegistry {
        PipelineRegistry {
            runtime,
            options,
            current: ArcSwap::from_pointee(BTreeMap::new()),
            errors: ArcSwap::from_pointee(Vec::new()),
            scan: Mutex::new(ScanState::default()),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    pub fn runtime(&self) -> &Arc<PluginRuntime> {
        &self.runtime
    }

    /// The current version of pipeline `name`. Hold on to the `Arc` for the
    /// whole request.
    pub fn get(&self, name: &str) -> Option<Arc<Pipeline>> {
        self.current.load().get(name).cloned()
    }

    /// Every current pipeline, by name.
    pub fn all(&self) -> Arc<BTreeMap<String, Arc<Pipeline>>> {
        self.current.load_full()
    }

    /// Files whose latest content was refused (their previous version, if
    /// any, keeps serving), as of the last finished rescan. Never waits for a
    /// rescan in progress (which may be compiling a large plugin): HTTP
    /// handlers call this.
    pub fn errors(&self) -> Vec<ReloadError> {
        self.errors.load().as_ref().clone()
    }

    /// (accepted, refused) reloads since start.
    pub fn reload_counts(&self) -> (u64, u64) {
        (
            self.accepted.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }

    /// The fingerprint of the last content seen for `file`, and whether it
    /// was refused. Waits for a rescan in progress: not for HTTP handlers.
    pub fn file_status(&self, file: &Path) -> Option<(String, Option<ReloadError>)> {
        let scan = self.scan.lock().unwrap();
        scan.files
            .get(file)
            .map(|f| (f.fingerprint.clone(), f.error.clone()))
    }

    /// The fingerprint of pipeline text `text` read from `file`: the text,
    /// the identity (inode, size, mtime) of every plugin file it names, and
    /// the content of every config file it names, so rebuilding a plugin or
    /// editing a table reloads the pipelines that use them.
    pub fn fingerprint(&self, file: &Path, text: &str) -> String {
        let mut h = Sha256::new();
        h.update(text.as_bytes());
        let dir = file.parent().unwrap_or(Path::new("."));
        let refs = file_refs(text);
        for reference in refs.plugins {
            // An `oci://` reference is in the text: pinned by digest, its
            // content cannot change under the same text.
            if crate::oci::is_oci(&reference) {
                continue;
            }
            if let Ok(path) = resolve_plugin(&reference, dir, &self.options.plugin_dirs) {
                if let Ok(m) = std::fs::metadata(&path) {
                    h.update(path.to_string_lossy().as_bytes());
                    h.update(m.ino().to_le_bytes());
                    h.update(m.size().to_le_bytes());
                    h.update(m.mtime_nsec().to_le_bytes());
                    h.update(m.mtime().to_le_bytes());
                }
            }
        }
        for config_file in refs.config_files {
            h.update(config_file.as_bytes());
            if let Ok(bytes) = std::fs::read(dir.join(&config_file)) {
                h.update(Sha256::digest(&bytes));
            }
        }
        // The voices a pipeline is checked against: a pipeline refused for
        // naming a voice the folder lacked loads at the next rescan after
        // the voice is added.
        if let Some(voices) = &self.options.voices_dir {
            let mut names: Vec<String> = std::fs::read_dir(voices)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .filter(|n| n.ends_with(".onnx.json"))
                .collect();
            names.sort();
            h.update(names.join("\n").as_bytes());
        }
        hex::encode(&h.finalize()[..16])
    }

    fn pipeline_files(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.options.pipeline_dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // Hidden entries are editor temporaries and Kubernetes' `..data`
            // machinery; the visible names are symlinks into it.
            if name.starts_with('.') || !name.ends_with(".toml") {
                continue;
            }
            if path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }

    /// Reload every pipeline file whose fingerprint changed.
    pub fn rescan(&self) -> ScanReport {
        let mut report = ScanReport::default();
        let mut scan = self.scan.lock().unwrap_or_else(|p| p.into_inner());
        let files = match self.pipeline_files() {
            Ok(f) => f,
            Err(e) => {
                // An unreadable folder (mid-swap, say) changes nothing.
                tracing::warn!(dir = %self.options.pipeline_dir.display(), "cannot list pipelines: {e}");
                return report;
            }
        };
        let mut map: BTreeMap<String, Arc<Pipeline>> = (**self.current.load()).clone();
        // The voices folder is read (every voice's JSON parsed) only when a
        // file is actually (re)loaded, not on every poll.
        let voices = std::cell::OnceCell::new();
        let read_voices = || {
            self.options.voices_dir.as_deref().map(|dir| {
                voxpipe_engine::voice::scan(dir)
                    .map(|(v, _)| v)
                    .unwrap_or_default()
            })
        };

        for file in &files {
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(file = %file.display(), "cannot read pipeline: {e}");
                    continue;
                }
            };
            let fingerprint = self.fingerprint(file, &text);
            let previous = scan.files.get(file);
            if previous.is_some_and(|p| p.fingerprint == fingerprint) {
                continue;
            }
            let serving = previous.and_then(|p| p.serving.clone());
            let ctx = LoadContext {
                runtime: &self.runtime,
                plugin_dirs: &self.options.plugin_dirs,
                voices: voices.get_or_init(read_voices).as_deref(),
                oci: self.options.oci.as_ref(),
            };
            let result = load_pipeline(file, &text, &ctx).map_err(|e| e.to_string());
            let result = result.and_then(|p| {
                let owner = scan
                    .files
                    .iter()
                    .find(|(f, s)| *f != file && s.serving.as_deref() == Some(p.name.as_str()));
                match owner {
                    Some((other, _)) => Err(format!(
                        "{}:1:1: pipeline name `{}` is already served from {}",
                        file.display(),
                        p.name,
                        other.display()
                    )),
                    None => Ok(p),
                }
            });
            match result {
                Ok(mut pipeline) => {
                    let version = scan.versions.entry(pipeline.name.clone()).or_insert(0);
                    *version += 1;
                    pipeline.version = *version;
                    let name = pipeline.name.clone();
                    if let Some(old) = serving.filter(|old| *old != name) {
                        map.remove(&old);
                    }
                    tracing::info!(pipeline = %name, version = pipeline.version, file = %file.display(), "pipeline loaded");
                    report.loaded.push((name.clone(), pipeline.version));
                    map.insert(name.clone(), Arc::new(pipeline));
                    scan.files.insert(
                        file.clone(),
                        FileState {
                            fingerprint,
                            serving: Some(name),
                            error: None,
                        },
                    );
                    self.accepted.fetch_add(1, Ordering::Relaxed);
                    crate::telemetry::metrics::pipeline_reload(true);
                }
                Err(message) => {
                    tracing::error!(file = %file.display(), "pipeline edit refused; the previous version keeps serving:\n{message}");
                    crate::telemetry::metrics::pipeline_reload(false);
                    let error = ReloadError {
                        file: file.clone(),
                        fingerprint: fingerprint.clone(),
                        message,
                        at_unix: unix_now(),
                    };
                    report.refused.push(error.clone());
                    scan.files.insert(
                        file.clone(),
                        FileState {
                            fingerprint,
                            serving,
                            error: Some(error),
                        },
                    );
                    self.refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }

        let gone: Vec<PathBuf> = scan
            .files
            .keys()
            .filter(|f| !files.contains(f))
            .cloned()
            .collect();
        for file in gone {
            if let Some(name) = scan.files.remove(&file).and_then(|s| s.serving) {
                tracing::info!(pipeline = %name, file = %file.display(), "pipeline file removed");
                map.remove(&name);
                report.removed.push(name);
            }
        }
        self.current.store(Arc::new(map));
        let errors = scan
            .files
            .values()
            .filter_map(|f| f.error.clone())
            .collect();
        self.errors.store(Arc::new(errors));
        report
    }
}
