//! On-disk cache of compiled plugins, so a restart does not recompile.
//!
//! Entries are keyed by the plugin file's sha256 inside a folder named after
//! the host version and the engine's compatibility hash: a different
//! wasmtime, compiler setting or host build never reads a stale artifact.
//! Loading an artifact is `unsafe` in wasmtime (it is native code): the cache
//! folder must be writable only by the user running voxpipe.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::Engine;

pub(crate) struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    pub(crate) fn new(root: &Path, engine: &Engine) -> CompileCache {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let dir = root.join(format!(
            "v{}-{:016x}",
            env!("CARGO_PKG_VERSION"),
            h.finish()
        ));
        CompileCache { dir }
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
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable compiled plugin: {e:#}");
                None
            }
        }
    }

    /// Store a compiled component; failures only cost a recompile later.
    pub(crate) fn put(&self, sha256: &str, component: &Component) {
        let result = (|| -> anyhow::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let bytes = component.serialize()?;
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
    }
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
