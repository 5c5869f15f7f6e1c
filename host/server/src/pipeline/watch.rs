//! Watching the pipeline and plugin folders and rescanning on change.
//!
//! Any event in a watched folder triggers a rescan once the folder has been
//! quiet for [`DEBOUNCE`], which covers editors that write a temporary file
//! and rename it over the original, and Kubernetes ConfigMaps that swap a
//! `..data` symlink (the rescan reads through the symlinks and compares
//! content). A slow poll catches anything the OS did not report.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use notify::{RecursiveMode, Watcher as _};

use super::PipelineRegistry;

/// Quiet time after the last event before a rescan.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// Longest a burst of events can delay a rescan.
const MAX_DELAY: Duration = Duration::from_secs(1);

/// Keeps watching while alive.
pub struct Watcher {
    _watcher: notify::RecommendedWatcher,
}

/// Start watching the registry's folders; rescans also run every `poll`.
pub fn watch(registry: Arc<PipelineRegistry>, poll: Duration) -> anyhow::Result<Watcher> {
    let (tx, rx) = mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = tx.send(());
        }
    })
    .context("starting the file watcher")?;
    let options = registry.options().clone();
    watcher
        .watch(&options.pipeline_dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", options.pipeline_dir.display()))?;
    for dir in &options.plugin_dirs {
        if let Err(e) = watch_dir(&mut watcher, dir) {
            tracing::warn!(dir = %dir.display(), "not watching plugin folder (the poll still covers it): {e}");
        }
    }
    std::thread::Builder::new()
        .name("voxpipe-reload".to_string())
        .spawn(move || reload_loop(&registry, &rx, poll))
        .context("starting the reload thread")?;
    Ok(Watcher { _watcher: watcher })
}

fn watch_dir(watcher: &mut notify::RecommendedWatcher, dir: &Path) -> notify::Result<()> {
    watcher.watch(dir, RecursiveMode::NonRecursive)
}

fn reload_loop(registry: &PipelineRegistry, rx: &mpsc::Receiver<()>, poll: Duration) {
    loop {
        match rx.recv_timeout(poll) {
            Ok(()) => {
                // Wait for the burst to settle.
                let started = Instant::now();
                while started.elapsed() < MAX_DELAY {
                    match rx.recv_timeout(DEBOUNCE) {
                        Ok(()) => continue,
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // The watcher was dropped: stop.
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        registry.rescan();
    }
}
