//! Building plugin crates (a Cargo workspace of `cdylib` crates) to Wasm
//! components: `voxpipe plugin build`.
//!
//! Two routes, picked automatically:
//! - **wasip2**: where `rustup target list --installed` has `wasm32-wasip2`,
//!   `cargo build --target wasm32-wasip2` emits components directly.
//! - **offline**: without that target (no network to add it), Debian's
//!   `rustc-web` + `rust-web-src` + `lld` build the standard library for
//!   `wasm32-unknown-unknown` (`-Zbuild-std`); the host then wraps each core
//!   module into a component with `wit-component`.
//!
//! Outputs are written with write-then-rename, so a watching server never
//! loads half a file.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// How plugin crates are compiled to Wasm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Route {
    /// `cargo build --target wasm32-wasip2` (needs the rustup target).
    Wasip2,
    /// Debian's toolchain with `-Zbuild-std` for `wasm32-unknown-unknown`.
    Offline,
}

impl Route {
    fn triple(self) -> &'static str {
        match self {
            Route::Wasip2 => "wasm32-wasip2",
            Route::Offline => "wasm32-unknown-unknown",
        }
    }

    /// The route this machine supports, preferring the standard one.
    pub fn detect() -> anyhow::Result<Route> {
        let installed = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-wasip2"))
            .unwrap_or(false);
        if installed {
            return Ok(Route::Wasip2);
        }
        let debian = Path::new(OFFLINE_CARGO).exists()
            && Path::new("/usr/lib/rustlib/src/rust/library").exists();
        if debian && which("wasm-ld") {
            return Ok(Route::Offline);
        }
        bail!(
            "no way to build Wasm here: either `rustup target add wasm32-wasip2`, or \
             `apt-get install rustc-web rust-web-src lld` for the offline route"
        )
    }
}

const OFFLINE_CARGO: &str = "/usr/bin/cargo";

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/bin").join(program).is_file()
}

/// One built plugin.
#[derive(Debug, Clone)]
pub struct Built {
    /// The crate's package name, also the file stem: `text-replace`.
    pub name: String,
    pub path: PathBuf,
}

/// Build every `cdylib` crate of the workspace at `workspace` and write one
/// component per crate into `out_dir` as `<package-name>.wasm`.
pub fn build_workspace(
    workspace: &Path,
    out_dir: &Path,
    target_dir: &Path,
    route: Route,
) -> anyhow::Result<Vec<Built>> {
    // Cargo runs inside the workspace (for its .cargo/config.toml), so every
    // path handed to it must be absolute.
    let workspace = &std::path::absolute(workspace)?;
    let out_dir = &std::path::absolute(out_dir)?;
    let target_dir = &std::path::absolute(target_dir)?;
    let manifest = workspace.join("Cargo.toml");
    if !manifest.is_file() {
        bail!("{} has no Cargo.toml", workspace.display());
    }
    let crates = cdylib_crates(&manifest, route)?;
    if crates.is_empty() {
        bail!("{} has no cdylib crates to build", workspace.display());
    }
    let mut cmd = cargo(route);
    // Run inside the workspace so its `.cargo/config.toml` applies.
    cmd.current_dir(workspace)
        .arg("build")
        .arg("--release")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target")
        .arg(route.triple())
        .env("CARGO_TARGET_DIR", target_dir);
    for (package, _) in &crates {
        cmd.arg("-p").arg(package);
    }
    if route == Route::Offline {
        cmd.arg("-Zbuild-std=std,panic_abort");
    }
    let status = cmd
        .status()
        .with_context(|| format!("running cargo for {}", workspace.display()))?;
    if !status.success() {
        bail!("cargo build failed for {} ({status})", workspace.display());
    }
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let release = target_dir.join(route.triple()).join("release");
    let mut built = Vec::new();
    for (package, lib) in crates {
        let artifact = release.join(format!("{lib}.wasm"));
        let bytes =
            std::fs::read(&artifact).with_context(|| format!("reading {}", artifact.display()))?;
        let component = if wasmparser::Parser::is_component(&bytes) {
            bytes
        } else {
            voxpipe_plugin::wrap_core_module(&bytes).map_err(|e| {
                anyhow::anyhow!("turning {} into a component: {e}", artifact.display())
            })?
        };
        let path = out_dir.join(format!("{package}.wasm"));
        let tmp = out_dir.join(format!(".{package}.wasm.tmp"));
        std::fs::write(&tmp, &component).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        built.push(Built {
            name: package,
            path,
        });
    }
    Ok(built)
}

/// The cargo command of a route, with an environment that cannot leak the
/// calling toolchain (e.g. when run from `cargo test`) into the Wasm build.
fn cargo(route: Route) -> Command {
    match route {
        Route::Wasip2 => Command::new("cargo"),
        Route::Offline => {
            let mut cmd = Command::new(OFFLINE_CARGO);
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut dirs = vec![PathBuf::from("/usr/bin")];
            dirs.extend(std::env::split_paths(&path));
            cmd.env("PATH", std::env::join_paths(dirs).unwrap_or(path))
                .env("RUSTC", "/usr/bin/rustc")
                .env("RUSTC_BOOTSTRAP", "1")
                .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", "wasm-ld")
                .env_remove("RUSTC_WRAPPER")
                .env_remove("RUSTC_WORKSPACE_WRAPPER")
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .env_remove("RUSTUP_TOOLCHAIN");
            cmd
        }
    }
}

/// (package name, library name) of every cdylib crate in the workspace.
fn cdylib_crates(manifest: &Path, route: Route) -> anyhow::Result<Vec<(String, String)>> {
    let out = cargo(route)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed for {}: {}",
            manifest.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut crates = Vec::new();
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        for target in pkg["targets"].as_array().into_iter().flatten() {
            let is_cdylib = target["crate_types"]
                .as_array()
                .is_some_and(|t| t.iter().any(|k| k == "cdylib"));
            if is_cdylib {
                let package = pkg["name"].as_str().unwrap_or_default().to_string();
                let lib = target["name"]
                    .as_str()
                    .unwrap_or_default()
                    .replace('-', "_");
                crates.push((package, lib));
            }
        }
    }
    crates.sort();
    Ok(crates)
}
