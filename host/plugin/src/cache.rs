//! On-disk cache of compiled plugins, so a restart does not recompile.
//!
//! Entries are keyed by the plugin file's sha256 inside a folder named after
//! the host version and the engine's compatibility hash: a different
//! wasmtime, compiler setting or host build never reads a stale artifact.
//! Loading an artifact is `unsafe` in wasmtime (it is native code): the cache
//! folder must be writable only by the user running voxpipe.
//!
//! The folder is bounded: after each write, the least recently used entries
//! (by modification time, which a cache hit refreshes) are removed until the
//! folder is under its size bound, and folders of other host versions or
//! engine settings are removed with them.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::Engine;

pub(crate) struct CompileCache {
    root: PathBuf,
    dir: PathBuf,
    max_bytes: u64,
}

impl CompileCache {
    pub(crate) fn new(root: &Path, engine: &Engine, max_bytes: u64) -> CompileCache {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let dir = root.join(format!(
            "v{}-{:016x}",
            env!("CARGO_PKG_VERSION"),
            h.finish()
        ));
        CompileCache {
            root: root.to_path_buf(),
            dir,
            max_bytes,
        }
    }

    fn entry(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.cwasm"))
    }

    /// The cached component for `sha256`, if there is a usable one.
    pub(crate) fn get(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.entry(sha256);
        // Read into memory rather than mmap the file: a cache file truncated
        // under a running server must not turn into a SIGBUS.
        let bytes = std::fs::read(&path).ok()?;
        // SAFETY: the artifact was written by `put` below with an engine of
        // the same compatibility hash (the folder name); the cache folder is
        // documented as private to the voxpipe user. wasmtime still checks
        // the header and refuses artifacts of another engine configuration.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(c) => {
                // Mark it recently used, for eviction.
                let _ = std::fs::File::options()
                    .append(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                Some(c)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable compiled plugin: {e:#}");
                None
            }
        }
    }

    /// Store a compiled component; failures only cost a recompile later.
    pub(crate) fn put(&self, sha256: &str, component: &Component) {
        match component.serialize() {
            Ok(bytes) => self.put_bytes(sha256, &bytes),
            Err(e) => tracing::warn!("cannot serialize compiled plugin: {e:#}"),
        }
    }

    /// Store a serialized component, then bring the folder under its bound.
    pub(crate) fn put_bytes(&self, sha256: &str, bytes: &[u8]) {
        if bytes.len() as u64 > self.max_bytes {
            return;
        }
        let result = (|| -> anyhow::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            // Write then rename, so a concurrent reader never sees half a file.
            let tmp = self
                .dir
                .join(format!(".{sha256}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, self.entry(sha256))?;
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(dir = %self.dir.display(), "cannot cache compiled plugin: {e:#}");
        }
        self.evict();
    }

    /// Remove stale folders (other host versions or engine settings), then
    /// the least recently used entries until the cache fits its bound.
    fn evict(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name();
                if path != self.dir && is_cache_folder(&name.to_string_lossy()) && path.is_dir() {
                    let _ = std::fs::remove_dir_all(&path);
                }
            }
        }
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                let is_entry = e.file_name().to_string_lossy().ends_with(".cwasm");
                (m.is_file() && is_entry).then(|| {
                    (
                        m.modified().unwrap_or(std::time::UNIX_EPOCH),
                        m.len(),
                        e.path(),
                    )
                })
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        if total <= self.max_bytes {
            return;
        }
        files.sort();
        for (_, size, path) in files {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                tracing::info!(path = %path.display(), "compiled plugin evicted from the cache");
                total -= size;
            }
        }
    }
}

/// Whether `name` is a folder this cache makes: `v<host version>-<16 hex digits>`.
fn is_cache_folder(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('v') else {
        return false;
    };
    let Some((version, hash)) = rest.rsplit_once('-') else {
        return false;
    };
    !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.')
        && hash.len() == 16
        && hash.chars().all(|c| c.is_ascii_hexdigit())
}

/// `$VOXPIPE_CACHE_DIR`, else `$XDG_CACHE_HOME/voxpipe`, else `~/.cache/voxpipe`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("VOXPIPE_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("voxpipe"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("voxpipe"))
}
