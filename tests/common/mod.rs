//! Shared set-up of the end-to-end tests: build every plugin from source
//! (once per test binary) with the real `voxpipe plugin build`, and make
//! runtimes with a private compile cache.
#![allow(dead_code)]

pub mod components;
pub mod http;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use voxpipe_plugin::{PluginRuntime, RuntimeOptions};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The voxpipe binary under test.
pub fn voxpipe() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxpipe"));
    cmd.current_dir(root());
    cmd
}

/// The request context the plugin tests call with.
pub fn ctx() -> voxpipe_types::RequestContext {
    voxpipe_types::RequestContext {
        request_id: "test-1".into(),
        language: "en-US".into(),
        voice: "v".into(),
        pipeline: "p".into(),
        style: None,
    }
}

/// A stage config from a JSON object text.
pub fn config(json: &str) -> voxpipe_plugin::StageConfig {
    voxpipe_plugin::StageConfig::from_json(json).expect("json object")
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

/// `hostile-info` with its describe mode patched (see its source).
pub fn hostile_info(mode: &str) -> PathBuf {
    let bytes = std::fs::read(plugin("hostile-info")).unwrap();
    write_plugin(
        &format!("hostile-info-{mode}"),
        &components::patch_hostile_info(&bytes, mode),
    )
}

/// Write `bytes` as `<name>.wasm` next to the built test plugins.
pub fn write_plugin(name: &str, bytes: &[u8]) -> PathBuf {
    let path = plugins().join(format!("{name}.wasm"));
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

pub fn plugin(name: &str) -> PathBuf {
    plugins().join(format!("{name}.wasm"))
}

/// The Python plugin `tests/plugins/python/app.py`, built with
/// componentize-py (installed by .ci/setup): a WASI component made by a
/// non-Rust toolchain.
pub fn python_plugin() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let out = root().join("target/test-plugins/py-title.wasm");
        let status = Command::new("componentize-py")
            .current_dir(root().join("tests/plugins/python"))
            .args([
                "-d",
                "../../../wit",
                "-w",
                "text-stage",
                "componentize",
                "app",
                "-o",
            ])
            .arg(&out)
            .status()
            .expect("run componentize-py (pip install componentize-py; .ci/setup does)");
        assert!(status.success(), "componentize-py failed");
        out
    })
}

/// The JavaScript plugin `tests/plugins/js/app.js`, built with
/// componentize-js through `node build.mjs` (the exact version is pinned in
/// its package-lock.json; `npm ci` there first if node_modules is missing,
/// as .ci/setup does): a style stage made by the JavaScript toolchain.
pub fn js_plugin() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = root().join("tests/plugins/js");
        if !dir.join("node_modules").is_dir() {
            let status = Command::new("npm")
                .current_dir(&dir)
                .args(["ci", "--silent", "--no-audit", "--no-fund"])
                .status()
                .expect("run npm (apt install nodejs npm; .ci/setup does)");
            assert!(status.success(), "npm ci in tests/plugins/js failed");
        }
        let out = root().join("target/test-plugins/js-dialect.wasm");
        // componentize-js output is not reproducible (a new sha256, so a new
        // compile, every build): rebuild only when a source is newer.
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let built = modified(&out);
        let fresh = built.is_some()
            && ["app.js", "build.mjs", "package-lock.json"]
                .iter()
                .all(|f| modified(&dir.join(f)) <= built)
            && modified(&root().join("wit/stages.wit")) <= built;
        if fresh {
            return out;
        }
        let status = Command::new("node")
            .current_dir(&dir)
            .arg("build.mjs")
            .arg(&out)
            .status()
            .expect("run node (apt install nodejs; .ci/setup does)");
        assert!(
            status.success(),
            "building tests/plugins/js with componentize-js failed (node ^20.19 or >= 22.12 needed)"
        );
        out
    })
}

/// Everything `f` logs through `tracing`, as plain text lines.
pub fn capture_logs(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buf.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
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

/// Integrated loudness of WAV files by pyloudnorm (tests/loudness/measure.py).
pub fn pyloudnorm(files: &[PathBuf]) -> Vec<f64> {
    let out = Command::new("python3")
        .arg(root().join("tests/loudness/measure.py"))
        .args(files)
        .output()
        .expect("python3 with pyloudnorm (.ci/setup installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["lufs"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

/// A voices folder with joe and the Mandarin test voice (links).
pub fn voices_with_zh() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (from, name) in [
        ("voices", "en_US-joe-medium"),
        ("tests/fixtures/voices", "test-zh"),
    ] {
        for ext in [".onnx", ".onnx.json"] {
            let file = format!("{name}{ext}");
            // Canonical: test-zh.onnx is itself a link to the shared weights.
            let target = std::fs::canonicalize(root().join(from).join(&file)).unwrap();
            std::os::unix::fs::symlink(target, dir.path().join(&file)).unwrap();
        }
    }
    dir
}
