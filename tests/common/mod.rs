//! Shared set-up of the end-to-end tests: build every plugin from source
//! (once per test binary) with the real `voxpipe plugin build`, and make
//! runtimes with a private compile cache.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use voxpipe::plugin::{PluginRuntime, RuntimeOptions};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The voxpipe binary under test.
pub fn voxpipe() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxpipe"));
    cmd.current_dir(root());
    cmd
}

/// The folder of components built from `plugins/` and `tests/plugins/`.
pub fn plugins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = root().join("target/test-plugins");
        let status = voxpipe()
            .args(["plugin", "build", "plugins", "tests/plugins", "--out"])
            .arg(&out)
            .status()
            .expect("run voxpipe plugin build");
        assert!(status.success(), "building the plugins failed");
        out
    })
}

pub fn plugin(name: &str) -> PathBuf {
    plugins().join(format!("{name}.wasm"))
}

/// A runtime with its own compile cache in `cache` (None: no disk cache).
pub fn runtime_with(cache: Option<&Path>, slots: u32) -> Arc<PluginRuntime> {
    Arc::new(
        PluginRuntime::new(RuntimeOptions {
            cache_dir: cache.map(Path::to_path_buf),
            max_concurrent_calls: slots,
            ..RuntimeOptions::default()
        })
        .expect("runtime"),
    )
}

pub fn runtime() -> Arc<PluginRuntime> {
    runtime_with(None, 16)
}

/// Resident memory of this process, in bytes.
pub fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}
