//! `voxpipe-bench sandbox`: for each class of hostile plugin (issue #13),
//! the time from the call to its typed error and the process's peak RSS
//! during it (VmHWM, reset before each case through /proc/self/clear_refs).

use std::path::Path;
use std::time::{Duration, Instant};

use voxpipe_plugin::{
    CompileOptions, PluginError, PluginLimits, PluginRuntime, RuntimeOptions, StageConfig,
};
use voxpipe_types::{Audio, BlockPosition};

#[path = "../../../../../tests/common/components.rs"]
mod components;

/// Peak resident memory since the last reset, in MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn reset_peak() {
    // "5" resets the peak RSS (VmHWM) of the process to its current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn row(class: &str, what: &str, run: impl FnOnce() -> String) {
    reset_peak();
    let base = peak_mib();
    let started = Instant::now();
    let outcome = run();
    let took = started.elapsed();
    println!(
        "| {class} | {what} | {outcome} | {} | {:.0} MiB | +{:.0} MiB |",
        super::ms(took),
        peak_mib(),
        peak_mib() - base
    );
}

fn kind<T>(r: Result<T, PluginError>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(e) => e.kind().to_string(),
    }
}

pub fn sandbox_bench() -> anyhow::Result<()> {
    let out = super::built_plugins()?;
    let plugin = |name: &str| out.join(format!("{name}.wasm"));
    let runtime = PluginRuntime::new(RuntimeOptions {
        cache_dir: None,
        ..RuntimeOptions::default()
    })?;
    let ctx = super::ctx();
    let cfg = |json: &str| StageConfig::from_json(json).expect("json object");
    let limits = PluginLimits {
        deadline: Duration::from_millis(500),
        ..PluginLimits::default()
    };
    println!("## Hostile plugins: time to the typed error, peak RSS of the host\n");
    println!(
        "Limits: deadline {} ms, memory {} MiB per call; RSS is this process's VmHWM during the case (the runtime and plugins loaded: about {:.0} MiB before the first).\n",
        limits.deadline.as_millis(),
        limits.memory_bytes >> 20,
        peak_mib()
    );
    println!("| class | case | outcome | time | peak RSS | over baseline |");
    println!("|---|---|---|---:|---:|---:|");

    let wasi = runtime.load(&plugin("hostile-wasi"))?;
    for mode in ["block", "poll", "exit", "pollables"] {
        row("1 waiting WASI call", &format!("call: {mode}"), || {
            kind(wasi.call_text(&limits, &ctx, &cfg(&format!(r#"{{"mode":"{mode}"}}"#)), "x"))
        });
    }
    row("1 waiting WASI call", "check-config: block", || {
        kind(wasi.check_config(&limits, &cfg(r#"{"check":"block"}"#)))
    });

    let hostile = std::fs::read(plugin("hostile"))?;
    let dir = tempfile::tempdir()?;
    let write = |name: &str, bytes: &[u8]| -> std::path::PathBuf {
        let p = dir.path().join(format!("{name}.wasm"));
        std::fs::write(&p, bytes).expect("write a component");
        p
    };
    let seven = write("seven", &components::with_memory_hogs(&hostile, 7, 1, 127));
    let p = runtime.load(&seven)?;
    let small = PluginLimits {
        memory_bytes: 32 << 20,
        ..limits
    };
    row("2 memories", "7 instances × 8 MiB, limit 32 MiB", || {
        kind(p.call_text(&small, &ctx, &cfg(r#"{"mode":"echo"}"#), "x"))
    });
    for (what, count, grow) in [
        ("load: 7 start functions × 100 MiB", 7, 1600),
        ("load: 20 memories", 20, 0),
        ("load: 100 instances", 100, 0),
    ] {
        let file = write(
            &format!("hogs-{count}-{grow}"),
            &components::with_memory_hogs(&hostile, count, 1, grow),
        );
        row("2 memories", what, || match runtime.load(&file) {
            Ok(_) => "loaded".to_string(),
            Err(e) => load_error(&e.to_string()),
        });
    }

    let style = runtime.load(&plugin("hostile-style"))?;
    for mode in ["noise-w", "nan-speed", "many-emotions", "huge-label"] {
        row("3 style numbers, 7 strings", mode, || {
            kind(style.call_style(&limits, &ctx, &cfg(&format!(r#"{{"mode":"{mode}"}}"#)), "x"))
        });
    }
    let audio = runtime.load(&plugin("hostile-audio"))?;
    let speech = Audio {
        sample_rate: 22050,
        channels: 1,
        samples: vec![0.1; 22050],
    };
    for (what, json) in [
        ("rate 1", r#"{"mode":"rate","rate":1}"#),
        ("rate 4294967295", r#"{"mode":"rate","rate":4294967295}"#),
        ("40 000 channels", r#"{"mode":"channels","channels":40000}"#),
        ("NaN sample", r#"{"mode":"nan"}"#),
    ] {
        row("4 audio output", what, || {
            kind(audio.call_block(
                &limits,
                &ctx,
                &cfg(json),
                speech.clone(),
                BlockPosition {
                    last: true,
                    ..BlockPosition::default()
                },
                &[],
            ))
        });
    }
    let text = runtime.load(&plugin("hostile"))?;
    for (what, json) in [
        (
            "200 KB [[ ]] block",
            r#"{"mode":"expand","size_kb":200,"repeat":"[[ h ]] "}"#,
        ),
        ("600 KB of \"hello \"", r#"{"mode":"expand","size_kb":600}"#),
        ("invalid UTF-8", r#"{"mode":"invalid-utf8"}"#),
        ("10 MB error message", r#"{"mode":"huge-error"}"#),
    ] {
        row("4 text output, 8 malformed", what, || {
            kind(text.call_text(&limits, &ctx, &cfg(json), "x"))
        });
    }
    let info = std::fs::read(plugin("hostile-info"))?;
    for mode in ["name-huge", "name-newline"] {
        let file = write(mode, &components::patch_hostile_info(&info, mode));
        row(
            "7 strings",
            &format!("describe: {mode}"),
            || match runtime.load(&file) {
                Ok(_) => "loaded".to_string(),
                Err(e) => load_error(&e.to_string()),
            },
        );
    }

    // Compiles in the worker: the voxpipe binary next to this one.
    let exe = std::env::current_exe()?.with_file_name("voxpipe");
    let slow = write("slow", &components::with_dead_code(&hostile, 3000, 400));
    let size = std::fs::metadata(&slow)?.len();
    for (what, compile) in [
        (
            format!("{:.1} MB component, timeout 1 s", size as f64 / 1e6),
            CompileOptions {
                timeout: Duration::from_secs(1),
                ..CompileOptions::default()
            },
        ),
        (
            format!("{:.1} MB component, memory 96 MiB", size as f64 / 1e6),
            CompileOptions {
                memory_bytes: 96 << 20,
                ..CompileOptions::default()
            },
        ),
        (
            format!("{:.1} MB component, unbounded", size as f64 / 1e6),
            CompileOptions::default(),
        ),
    ] {
        let bounded = PluginRuntime::new(RuntimeOptions {
            cache_dir: None,
            compile: CompileOptions {
                worker: exe.exists().then(|| exe.clone()),
                ..compile
            },
            ..RuntimeOptions::default()
        })?;
        row("6 compile (child process)", &what, || {
            match bounded.load(Path::new(&slow)) {
                Ok(_) => "loaded".to_string(),
                Err(e) => load_error(&e.to_string()),
            }
        });
    }
    println!();
    Ok(())
}

/// A load error's kind, shortened for the table.
fn load_error(message: &str) -> String {
    let m = message.split_once(": ").map_or(message, |(_, rest)| rest);
    voxpipe_plugin::one_line(m, 70)
}
