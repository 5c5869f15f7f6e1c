//! The plugin runtime with real components built from source: a chain of
//! stages configured from TOML, hostile plugins that must not hurt the host,
//! loading failures, and the compile cache.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use voxpipe::pipeline::{load_pipeline, LoadContext};
use voxpipe_plugin::{LoadError, LoadedPlugin, PluginError, PluginLimits, StageConfig};
use voxpipe_types::{Audio, StageKind, StyleOutcome};

use common::{config, ctx};

fn limits(deadline_ms: u64, memory_mb: usize, output_kb: usize) -> PluginLimits {
    PluginLimits {
        memory_bytes: memory_mb << 20,
        deadline: Duration::from_millis(deadline_ms),
        max_output_bytes: output_kb << 10,
        ..PluginLimits::default()
    }
}

/// A whole pipeline of real plugins, with config from the TOML reaching each.
#[test]
fn chain_of_real_plugins_follows_its_config() {
    let runtime = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chain.toml");
    let text = r#"
voice = "v"
[[stages]]
kind = "text"
plugin = "text-replace"
config = { replace = { "&" = "and" } }
[[stages]]
kind = "text"
name = "second"
plugin = "text-replace"
config = { replace = { "Tom" = "Thomas" } }
[[stages]]
kind = "style"
plugin = "style-table"
config = { rules = [ { keywords = ["四川话"], label = "dialect=sichuanese", dialect = "sichuanese" },
                     { keywords = ["loud"], label = "volume=loud", volume = 6.0 } ] }
[[stages]]
kind = "model"
[[stages]]
kind = "audio"
plugin = "audio-gain"
config = { gain_db = -6.0 }
"#;
    std::fs::write(&file, text).unwrap();
    let dirs = vec![common::plugins().to_path_buf()];
    let lctx = LoadContext {
        runtime: &runtime,
        plugin_dirs: &dirs,
        voices: None,
        oci: None,
    };
    let p = load_pipeline(&file, text, &lctx).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.name, "chain");
    assert_eq!(p.stages.len(), 5);

    let out = p.run_text(&ctx(), "Tom  &  Jerry".into()).unwrap();
    assert_eq!(out, "Thomas and Jerry");

    let mapped = p
        .run_style(&ctx(), "用四川话, loud please")
        .unwrap()
        .unwrap();
    let StyleOutcome::Mapped { style, label } = mapped else {
        panic!("expected mapped, got {mapped:?}")
    };
    assert_eq!(label, "dialect=sichuanese;volume=loud");
    assert_eq!(style.dialect.as_deref(), Some("sichuanese"));
    // An instruction the table lacks is reported, not dropped.
    let unmapped = p.run_style(&ctx(), "请用上海话").unwrap().unwrap();
    assert!(
        matches!(unmapped, StyleOutcome::Unmapped { .. }),
        "{unmapped:?}"
    );

    // The style reaches audio stages through the context: -6 dB + 6 dB = 0 dB.
    let mut c = ctx();
    c.style = Some(style);
    let audio = Audio {
        sample_rate: 22050,
        channels: 1,
        samples: vec![0.5; 100],
    };
    let out = p.run_audio(&c, audio.clone()).unwrap();
    assert!((out.samples[0] - 0.5).abs() < 1e-4, "{}", out.samples[0]);
    let out = p.run_audio(&ctx(), audio).unwrap();
    assert!((out.samples[0] - 0.5 * 10f32.powf(-6.0 / 20.0)).abs() < 1e-4);
    assert!(p.audio_per_window());
}

fn hostile(runtime: &voxpipe_plugin::PluginRuntime) -> Arc<LoadedPlugin> {
    runtime
        .load(&common::plugin("hostile"))
        .expect("load hostile")
}

fn call(p: &LoadedPlugin, l: &PluginLimits, mode: &str) -> Result<String, PluginError> {
    p.call_text(
        l,
        &ctx(),
        &config(&format!(r#"{{"mode": "{mode}", "size_mb": 4}}"#)),
        "hello",
    )
}

/// Each hostile behaviour ends as a typed error within its deadline (plus a
/// margin), and the very next call on the same runtime succeeds.
#[test]
fn hostile_plugins_end_as_typed_errors_and_the_next_call_succeeds() {
    let runtime = common::runtime();
    let p = hostile(&runtime);
    let deadline = 200;
    let l = limits(deadline, 32, 1024);
    let margin = Duration::from_millis(300);
    type Expect = fn(&PluginError) -> bool;
    let cases: &[(&str, Expect)] = &[
        ("loop", |e| matches!(e, PluginError::Timeout(_))),
        ("membomb", |e| matches!(e, PluginError::MemoryLimit(_))),
        ("recursion", |e| matches!(e, PluginError::Trap(_))),
        (
            "panic",
            |e| matches!(e, PluginError::Trap(m) if m.contains("unreachable")),
        ),
        ("huge-output", |e| {
            matches!(e, PluginError::OutputTooLarge { .. })
        }),
        ("fault", |e| matches!(e, PluginError::Fault(_))),
        ("invalid", |e| matches!(e, PluginError::InvalidInput(_))),
    ];
    for (mode, expected) in cases {
        let started = Instant::now();
        let err = call(&p, &l, mode).expect_err(mode);
        let took = started.elapsed();
        assert!(expected(&err), "{mode}: unexpected error {err:?}");
        assert!(
            took < Duration::from_millis(deadline) + margin,
            "{mode}: took {took:?}"
        );
        assert_eq!(call(&p, &l, "echo").unwrap(), "hello", "after {mode}");
    }
    assert!(PluginError::Timeout(Duration::ZERO).is_plugin_fault());
    assert!(!PluginError::InvalidInput(String::new()).is_plugin_fault());
}

/// The SDK's arena allocator inside Wasm gives the same results as the
/// native allocator, across arena exhaustion, frees and reallocations.
#[test]
fn sdk_allocator_is_correct_inside_wasm() {
    let runtime = common::runtime();
    let p = hostile(&runtime);
    let out = call(&p, &limits(5000, 64, 1024), "churn").unwrap();
    assert_eq!(out, hostile::churn().to_string());
    // And again in a fresh instance: no state carried over.
    assert_eq!(call(&p, &limits(5000, 64, 1024), "churn").unwrap(), out);
}

/// Host memory stays flat across 1 000 hostile calls.
#[test]
fn host_memory_does_not_grow_across_1000_hostile_calls() {
    let runtime = common::runtime();
    let p = hostile(&runtime);
    let l = limits(20, 16, 256);
    let modes = [
        "membomb",
        "panic",
        "huge-output",
        "recursion",
        "loop",
        "echo",
    ];
    // Warm up: let the allocator and the instance pool reach steady state.
    for i in 0..60 {
        let _ = call(&p, &l, modes[i % modes.len()]);
    }
    let before = common::rss_bytes();
    let mut errors = 0;
    for i in 0..1000 {
        if call(&p, &l, modes[i % modes.len()]).is_err() {
            errors += 1;
        }
    }
    let after = common::rss_bytes();
    let echoes = (0..1000)
        .filter(|i| modes[i % modes.len()] == "echo")
        .count();
    assert_eq!(errors, 1000 - echoes);
    let growth = after.saturating_sub(before);
    assert!(
        growth < 24 << 20,
        "RSS grew by {} MiB ({} → {} MiB)",
        growth >> 20,
        before >> 20,
        after >> 20
    );
}

/// A flood of log lines is capped per call, and the lines that pass carry
/// the plugin's name inside the caller's span.
#[test]
fn plugin_logs_are_capped_and_land_in_the_callers_span() {
    let runtime = common::runtime();
    let p = hostile(&runtime);
    let logs = common::capture_logs(|| {
        let span = tracing::info_span!("request", request_id = "req-42");
        let _g = span.enter();
        assert_eq!(
            call(&p, &limits(5000, 64, 1024), "log-flood").unwrap(),
            "hello"
        );
    });
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains("flood line")).collect();
    assert_eq!(lines.len(), voxpipe_plugin::MAX_LOG_LINES as usize);
    assert!(
        lines[0].contains("request_id=\"req-42\"")
            || lines[0].contains("request{request_id=\"req-42\"}"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("plugin=\"hostile\""), "{}", lines[0]);
    assert!(lines
        .iter()
        .all(|l| l.len() < voxpipe_plugin::MAX_LOG_LINE + 300));
    assert!(logs.contains("exceeded its log budget"), "{logs}");
}

/// Files that are not stage plugins are refused with a typed error that
/// says why.
#[test]
fn wrong_world_corrupt_and_foreign_files_are_refused() {
    let runtime = common::runtime();
    let dir = tempfile::tempdir().unwrap();

    let corrupt = dir.path().join("corrupt.wasm");
    let mut bytes = std::fs::read(common::plugin("text-replace")).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&corrupt, &bytes).unwrap();
    assert!(matches!(
        runtime.load(&corrupt),
        Err(LoadError::Invalid { .. })
    ));

    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"#!/bin/sh\necho not wasm\n").unwrap();
    assert!(matches!(runtime.load(&garbage), Err(LoadError::NotWasm(_))));

    // A core module without a component type.
    let bare = dir.path().join("bare.wasm");
    std::fs::write(&bare, b"\0asm\x01\0\0\0").unwrap();
    assert!(matches!(
        runtime.load(&bare),
        Err(LoadError::NotAComponent { .. })
    ));

    let missing = dir.path().join("missing.wasm");
    assert!(matches!(runtime.load(&missing), Err(LoadError::Io { .. })));

    // The wrong world for the stage: an audio plugin used as a text stage.
    let file = dir.path().join("wrong.toml");
    let text = format!(
        "voice = \"v\"\n[[stages]]\nkind = \"text\"\nplugin = \"{}\"\n[[stages]]\nkind = \"model\"\n",
        common::plugin("audio-gain").display()
    );
    std::fs::write(&file, &text).unwrap();
    let err = load_pipeline(
        &file,
        &text,
        &LoadContext {
            runtime: &runtime,
            plugin_dirs: &[],
            voices: None,
            oci: None,
        },
    )
    .err()
    .expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("wrong.toml:4:10"), "{msg}");
    assert!(msg.contains("implements the audio-stage world"), "{msg}");

    // Calling a plugin as the wrong kind is refused, not attempted.
    let audio = runtime.load(&common::plugin("audio-gain")).unwrap();
    let err = audio
        .call_text(&PluginLimits::default(), &ctx(), &StageConfig::empty(), "x")
        .unwrap_err();
    assert!(matches!(err, PluginError::Internal(_)));
}

/// Beyond the pool's instance slots, calls fail fast as Overloaded and the
/// runtime recovers as soon as slots free up.
#[test]
fn pool_exhaustion_is_overloaded_not_a_crash() {
    let runtime = common::runtime_with(None, 2);
    let p = hostile(&runtime);
    let slow = limits(400, 16, 64);
    std::thread::scope(|s| {
        let busy: Vec<_> = (0..2)
            .map(|_| s.spawn(|| call(&p, &slow, "loop")))
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let err = call(&p, &slow, "echo").unwrap_err();
        assert_eq!(err, PluginError::Overloaded);
        for b in busy {
            assert!(matches!(b.join().unwrap(), Err(PluginError::Timeout(_))));
        }
    });
    assert_eq!(call(&p, &slow, "echo").unwrap(), "hello");
}

/// The second runtime over the same cache folder loads compiled code instead
/// of compiling, and loading the same bytes twice shares one plugin.
#[test]
fn compiled_plugins_are_cached_on_disk_and_in_memory() {
    let cache = tempfile::tempdir().unwrap();
    let path = common::plugin("style-table");
    let first = common::runtime_with(Some(cache.path()), 4);
    let a = first.load(&path).unwrap();
    let b = first.load(&path).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    let stats = first.stats();
    assert_eq!(stats.compiles.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(
        stats.memory_hits.load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    let second = common::runtime_with(Some(cache.path()), 4);
    let c = second.load(&path).unwrap();
    assert!(c.origin.from_disk_cache);
    assert_eq!(
        second
            .stats()
            .compiles
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(c.id, a.id);

    // A damaged cache entry is ignored and rewritten, never trusted.
    for entry in walk(cache.path()) {
        std::fs::write(entry, b"junk").unwrap();
    }
    let third = common::runtime_with(Some(cache.path()), 4);
    let d = third.load(&path).unwrap();
    assert!(!d.origin.from_disk_cache);
    assert_eq!(
        third
            .stats()
            .compiles
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Plugin calls run on Tokio's blocking pool, not on executor threads.
#[test]
fn off_executor_keeps_the_async_threads_free() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let runtime = common::runtime();
    let p = hostile(&runtime);
    rt.block_on(async {
        let slow = tokio::spawn(voxpipe::blocking::off_executor(move || {
            call(&p, &limits(300, 16, 64), "loop")
        }));
        // The single worker thread runs other tasks while the plugin spins
        // (until its 300 ms deadline).
        tokio::spawn(async {}).await.unwrap();
        assert!(!slow.is_finished(), "a task ran only after the plugin call");
        assert!(matches!(slow.await.unwrap(), Err(PluginError::Timeout(_))));
    });
}

/// A WASI component from a non-Rust toolchain (Python, componentize-py)
/// loads and runs; what it prints and logs reaches the host's logs; and WASI
/// grants it nothing: no environment, no files, no network.
#[test]
fn python_wasi_component_runs_with_nothing_granted() {
    let cache = common::root().join("target/test-cache");
    let runtime = common::runtime_with(Some(&cache), 4);
    let p = runtime.load(common::python_plugin()).unwrap();
    assert_eq!(p.id.name, "py-title");
    assert!(
        p.imports.iter().any(|i| i.starts_with("wasi:cli/")),
        "{:?}",
        p.imports
    );
    let l = PluginLimits::default();

    let logs = common::capture_logs(|| {
        let out = p
            .call_text(
                &l,
                &ctx(),
                &config(r#"{"suffix": "!"}"#),
                "hello wasi world",
            )
            .unwrap();
        assert_eq!(out, "Hello Wasi World!");
    });
    assert!(
        logs.contains("py-title says hello through the log import"),
        "{logs}"
    );
    assert!(
        logs.contains("py-title: request test-1, 16 chars"),
        "{logs}"
    );

    let probe = p
        .call_text(&l, &ctx(), &config(r#"{"probe": true}"#), "")
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&probe).unwrap();
    assert_eq!(v["env"], 0, "{probe}");
    for what in ["root", "etc", "cwd", "net"] {
        assert_eq!(v[what], "denied", "{what}: {probe}");
    }

    let err = p.check_config(&l, &config(r#"{"suffix": 3}"#)).unwrap_err();
    assert_eq!(
        err,
        PluginError::InvalidConfig("`suffix` must be a string".into())
    );

    // Python's time.sleep waits in WASI (poll): cut at the deadline, in a
    // call and in check-config; os._exit is the plugin's fault, typed.
    let short = limits(300, 128, 1024);
    for (what, result) in [
        (
            "call",
            p.call_text(&short, &ctx(), &config(r#"{"sleep_s": 3600}"#), "x")
                .map(|_| ()),
        ),
        (
            "check-config",
            p.check_config(&short, &config(r#"{"check_sleep_s": 3600}"#)),
        ),
    ] {
        assert!(
            matches!(result, Err(PluginError::Timeout(_))),
            "{what}: {result:?}"
        );
    }
    let started = Instant::now();
    let err = p
        .call_text(&short, &ctx(), &config(r#"{"sleep_s": 3600}"#), "x")
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(800), "{err}");
    let err = p
        .call_text(&l, &ctx(), &config(r#"{"exit": 3}"#), "x")
        .unwrap_err();
    assert!(
        matches!(&err, PluginError::BadOutput(m) if m.contains("exit")),
        "{err:?}"
    );
}

/// A style stage written in JavaScript (tests/plugins/js/app.js) and built
/// with componentize-js: loads as a style stage; its variants, options and
/// thrown `{ tag, val }` errors cross the boundary as the WIT says; its log
/// line reaches the host's logs.
#[test]
fn js_style_component_maps_and_logs() {
    let cache = common::root().join("target/test-cache");
    let runtime = common::runtime_with(Some(&cache), 4);
    let p = runtime.load(common::js_plugin()).unwrap();
    assert_eq!(p.id.name, "js-dialect");
    assert_eq!(p.id.version, "0.1.0");
    assert_eq!(p.kind, StageKind::Style);
    assert_eq!(p.wit_version, "0.3.0");
    let l = PluginLimits::default();

    let logs = common::capture_logs(|| {
        let out = p
            .call_style(&l, &ctx(), &config("{}"), "用上海话讲")
            .unwrap();
        let StyleOutcome::Mapped { style, label } = out else {
            panic!("expected mapped, got {out:?}")
        };
        assert_eq!(label, "dialect=shanghainese");
        assert_eq!(style.dialect.as_deref(), Some("shanghainese"));
        assert_eq!(style.language.as_deref(), Some("zh-CN"));
        // Fields the plugin left `undefined` are `none`.
        assert_eq!(style.voice, None);
        assert_eq!(style.speed, None);
        assert!(style.emotions.is_empty());
    });
    assert!(
        logs.contains("js-dialect: request test-1, instruction of 5 chars"),
        "{logs}"
    );

    let out = p
        .call_style(&l, &ctx(), &config("{}"), "speak Cantonese please")
        .unwrap();
    assert!(
        matches!(&out, StyleOutcome::Mapped { style, label }
            if label == "dialect=cantonese" && style.dialect.as_deref() == Some("cantonese")),
        "{out:?}"
    );

    // An instruction it does not understand is reported, with the reason.
    let out = p
        .call_style(&l, &ctx(), &config("{}"), "speak sadly")
        .unwrap();
    assert!(
        matches!(&out, StyleOutcome::Unmapped { reason } if reason.contains("speak sadly")),
        "{out:?}"
    );

    // The config may extend the built-in table.
    let extended = config(r#"{"dialects": {"sichuanese": ["四川话"]}}"#);
    p.check_config(&l, &extended).unwrap();
    let out = p.call_style(&l, &ctx(), &extended, "用四川话").unwrap();
    assert!(
        matches!(&out, StyleOutcome::Mapped { label, .. } if label == "dialect=sichuanese"),
        "{out:?}"
    );

    // A thrown `{ tag: 'invalid-config', val }` is the typed error.
    let err = p
        .check_config(&l, &config(r#"{"dialects": 3}"#))
        .unwrap_err();
    assert!(matches!(err, PluginError::InvalidConfig(_)), "{err:?}");
    let err = p
        .call_style(&l, &ctx(), &config(r#"{"dialects": 3}"#), "用上海话讲")
        .unwrap_err();
    assert!(matches!(err, PluginError::InvalidConfig(_)), "{err:?}");
}
