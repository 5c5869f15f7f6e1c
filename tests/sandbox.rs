//! The sandbox holds: no plugin, however hostile, can stop, starve or kill
//! the host (issue #13). Each class of escape has a hostile component built
//! from source in the test run (`tests/plugins/hostile-*`, and binaries
//! made from them in `tests/common/components.rs`); each must end as a typed
//! error within its deadline and a small margin, with the host's memory
//! bounded, and the next call served normally. The server-level tests also
//! check that `/healthz` answers within 100 ms throughout.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::components;
use common::http::{get, peak_rss, post_json, Server};
use serde_json::json;
use voxpipe_plugin::{
    CompileOptions, LoadError, LoadedPlugin, PluginError, PluginLimits, PluginRuntime,
    RuntimeOptions,
};
use voxpipe_types::{Audio, BlockPosition, StyleOutcome};

use common::{config, ctx};

fn limits(deadline_ms: u64, memory_mb: usize) -> PluginLimits {
    PluginLimits {
        memory_bytes: memory_mb << 20,
        deadline: Duration::from_millis(deadline_ms),
        ..PluginLimits::default()
    }
}

/// How late a typed error may come after its deadline.
const MARGIN: Duration = Duration::from_millis(300);

fn load(runtime: &PluginRuntime, name: &str) -> Arc<LoadedPlugin> {
    runtime
        .load(&common::plugin(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Waiting WASI calls (`pollable.block`, `poll`) end at the call's deadline,
/// in a call and in `check-config`; `exit` and resource floods are typed.
#[test]
fn waiting_wasi_calls_end_at_the_deadline() {
    let runtime = common::runtime();
    let p = load(&runtime, "hostile-wasi");
    let l = limits(250, 32);
    for mode in ["block", "poll"] {
        let started = Instant::now();
        let err = p
            .call_text(&l, &ctx(), &config(&format!(r#"{{"mode":"{mode}"}}"#)), "x")
            .unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, PluginError::Timeout(_)), "{mode}: {err:?}");
        assert!(took < l.deadline + MARGIN, "{mode}: took {took:?}");
        let err = p
            .check_config(&l, &config(&format!(r#"{{"check":"{mode}"}}"#)))
            .unwrap_err();
        assert!(
            matches!(err, PluginError::Timeout(_)),
            "check {mode}: {err:?}"
        );
        assert_eq!(
            p.call_text(&l, &ctx(), &config("{}"), "next").unwrap(),
            "next"
        );
    }
    let err = p
        .call_text(&l, &ctx(), &config(r#"{"mode":"exit"}"#), "x")
        .unwrap_err();
    assert!(
        matches!(&err, PluginError::BadOutput(m) if m.contains("exit(1)")),
        "{err:?}"
    );
    assert!(err.is_plugin_fault());
    // Pollables without end: the WASI resource table is small and bounded.
    let before = common::rss_bytes();
    let err = p
        .call_text(&l, &ctx(), &config(r#"{"mode":"pollables"}"#), "x")
        .unwrap_err();
    assert!(matches!(err, PluginError::Trap(_)), "{err:?}");
    assert!(
        common::rss_bytes().saturating_sub(before) < 32 << 20,
        "pollables grew the host"
    );
    // The same plugin loads in a pipeline whose check-config would block:
    // refused with a timeout, worded as such (not as a refused config).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blocks.toml");
    let text = format!(
        "voice = \"v\"\n[limits]\ndeadline_ms = 200\n[[stages]]\nkind = \"text\"\nplugin = \"{}\"\nconfig = {{ check = \"block\" }}\n[[stages]]\nkind = \"model\"\n",
        common::plugin("hostile-wasi").display()
    );
    let started = Instant::now();
    let err = voxpipe::pipeline::load_pipeline(
        &file,
        &text,
        &voxpipe::pipeline::LoadContext {
            runtime: &runtime,
            plugin_dirs: &[],
            voices: None,
            oci: None,
        },
    )
    .err()
    .expect("refused");
    assert!(started.elapsed() < Duration::from_millis(200) + MARGIN);
    let msg = err.to_string();
    assert!(
        msg.contains("failed while checking its config (timeout)"),
        "{msg}"
    );
}

/// One memory budget per call covers every memory of every core instance,
/// start functions included, at load (`describe`) and per call; the pool
/// caps how many instances a component may have.
#[test]
fn one_memory_budget_covers_every_memory_of_a_call() {
    let runtime = common::runtime();
    let hostile = std::fs::read(common::plugin("hostile")).unwrap();
    let echo = config(r#"{"mode":"echo"}"#);

    // 20 instances, each with its own memory: more memories than a component
    // may have (the pool's cap, checked when it is compiled).
    let twenty = common::write_plugin(
        "hostile-20-memories",
        &components::with_memory_hogs(&hostile, 20, 1, 0),
    );
    match runtime.load(&twenty) {
        Err(LoadError::Invalid { reason, .. }) => {
            assert!(reason.contains("linear memories"), "{reason}")
        }
        other => panic!("{other:?}"),
    }

    // 7 instances × 8 MiB, filled by their start functions: 56 MiB in all.
    // Loads (describe's budget is 128 MiB) but a stage limited to 32 MiB
    // fails on every call, however small each single memory is.
    let seven = common::write_plugin(
        "hostile-7-memories",
        &components::with_memory_hogs(&hostile, 7, 1, 127),
    );
    let p = runtime.load(&seven).expect("56 MiB in 7 memories loads");
    let before = peak_rss(std::process::id());
    let started = Instant::now();
    let err = p
        .call_text(&limits(2000, 32), &ctx(), &echo, "x")
        .unwrap_err();
    assert!(matches!(err, PluginError::MemoryLimit(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        p.call_text(&limits(2000, 128), &ctx(), &echo, "hi")
            .unwrap(),
        "hi"
    );
    // The calls above used at most 128 MiB more than before, never 7 × 128.
    let grew = peak_rss(std::process::id()).saturating_sub(before);
    assert!(grew < 200 << 20, "peak RSS grew by {} MiB", grew >> 20);

    // 7 instances growing 100 MiB each in their start functions: refused
    // while loading (describe), as a memory limit.
    let greedy = common::write_plugin(
        "hostile-7-greedy-starts",
        &components::with_memory_hogs(&hostile, 7, 1, 1600),
    );
    match runtime.load(&greedy) {
        Err(LoadError::Describe {
            source: PluginError::MemoryLimit(_),
            ..
        }) => {}
        other => panic!("{other:?}"),
    }

    // 100 instances: more than a component may have.
    let hundred = common::write_plugin(
        "hostile-100-instances",
        &components::with_memory_hogs(&hostile, 100, 1, 0),
    );
    assert!(runtime.load(&hundred).is_err());
    // The runtime is unharmed.
    let p = load(&runtime, "hostile");
    assert_eq!(
        p.call_text(&limits(1000, 32), &ctx(), &echo, "ok").unwrap(),
        "ok"
    );
}

/// Everything a plugin returns is checked before the host uses it: style
/// numbers and names, audio formats, text size and content, error messages
/// and log lines. A violation is the plugin's fault, never the client's.
#[test]
fn plugin_results_are_validated_before_use() {
    let runtime = common::runtime();
    let l = limits(2000, 64);

    let style = load(&runtime, "hostile-style");
    let map = |mode: &str| {
        style.call_style(
            &l,
            &ctx(),
            &config(&format!(r#"{{"mode":"{mode}"}}"#)),
            "speak",
        )
    };
    for mode in ["noise-w", "nan-speed", "many-emotions"] {
        let err = map(mode).unwrap_err();
        assert!(matches!(err, PluginError::BadOutput(_)), "{mode}: {err:?}");
    }
    let Ok(StyleOutcome::Mapped { label, .. }) = map("control-label") else {
        panic!()
    };
    assert!(!label.contains(['\n', '\r', '\u{1b}']), "{label:?}");
    let Ok(StyleOutcome::Mapped { label, .. }) = map("huge-label") else {
        panic!()
    };
    assert!(label.len() <= voxpipe_plugin::MAX_LABEL);
    assert!(map("ok").is_ok());

    let audio_plugin = load(&runtime, "hostile-audio");
    let speech = Audio {
        sample_rate: 22050,
        channels: 1,
        samples: vec![0.25; 1000],
    };
    let process = |cfg: &str| {
        audio_plugin
            .call_block(
                &l,
                &ctx(),
                &config(cfg),
                speech.clone(),
                BlockPosition {
                    last: true,
                    ..BlockPosition::default()
                },
                &[],
            )
            .map(|(audio, _state)| audio)
    };
    for cfg in [
        r#"{"mode":"rate","rate":1}"#,
        r#"{"mode":"rate","rate":4294967295}"#,
        r#"{"mode":"channels","channels":40000}"#,
        r#"{"mode":"ragged"}"#,
        r#"{"mode":"nan"}"#,
    ] {
        let err = process(cfg).unwrap_err();
        assert!(matches!(err, PluginError::BadOutput(_)), "{cfg}: {err:?}");
        assert!(err.is_plugin_fault());
    }
    let stereo = process(r#"{"mode":"stereo"}"#).unwrap();
    assert_eq!((stereo.channels, stereo.samples.len()), (2, 2000));

    let text = load(&runtime, "hostile");
    let call = |cfg: &str| text.call_text(&l, &ctx(), &config(cfg), "hello");
    let err = call(r#"{"mode":"invalid-utf8"}"#).unwrap_err();
    assert!(matches!(err, PluginError::Trap(_)), "{err:?}");
    assert!(!err.to_string().contains("backtrace"), "{err}");
    // A giant phoneme block or word flood is refused at the text limit.
    let err = call(r#"{"mode":"expand","size_kb":200,"repeat":"[[ h ]] "}"#).unwrap_err();
    assert!(
        matches!(err, PluginError::OutputTooLarge { limit, .. } if limit == 64 << 10),
        "{err:?}"
    );
    // A 10 MB error message is cut to one line.
    let err = call(r#"{"mode":"huge-error"}"#).unwrap_err();
    let PluginError::InvalidInput(m) = &err else {
        panic!("{err:?}")
    };
    assert!(m.len() <= 512 && !m.contains('\n'), "{} bytes", m.len());
    // Log lines cannot forge other lines.
    let logs = common::capture_logs(|| {
        call(r#"{"mode":"forged-log"}"#).unwrap();
    });
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(
        lines.iter().filter(|l| l.contains("forged")).count(),
        1,
        "{logs}"
    );
    assert!(!logs.contains('\u{1b}'), "{logs}");
}

/// A plugin's name and version are identifiers (refused otherwise), its
/// `applies` a short list for audio stages only; its description is cut and
/// cleaned.
#[test]
fn describe_strings_are_checked_or_cut() {
    let runtime = common::runtime();
    for (mode, field) in [
        ("name-nul", "name"),
        ("name-newline", "name"),
        ("name-huge", "name"),
        ("version-space", "version"),
        ("applies-text", "applies"),
        ("applies-many", "applies"),
    ] {
        let before = common::rss_bytes();
        match runtime.load(&common::hostile_info(mode)) {
            Err(LoadError::BadInfo { field: f, .. }) => assert_eq!(f, field, "{mode}"),
            other => panic!("{mode}: {other:?}"),
        }
        assert!(common::rss_bytes().saturating_sub(before) < 64 << 20);
    }
    let p = runtime.load(&common::hostile_info("desc-huge")).unwrap();
    assert!(p.description.len() <= 256);
    assert!(!p.description.contains(['\n', '\u{1b}']));
    let p = runtime.load(&common::hostile_info("default")).unwrap();
    assert_eq!(p.id.name, "hostile-info");
}

fn worker_runtime(cache: Option<&Path>, compile: CompileOptions) -> PluginRuntime {
    PluginRuntime::new(RuntimeOptions {
        cache_dir: cache.map(Path::to_path_buf),
        compile: CompileOptions {
            worker: Some(env!("CARGO_BIN_EXE_voxpipe").into()),
            ..compile
        },
        ..RuntimeOptions::default()
    })
    .unwrap()
}

/// A component whose compile takes seconds: the hostile plugin with a large
/// module that is never instantiated.
fn slow_to_compile() -> std::path::PathBuf {
    let hostile = std::fs::read(common::plugin("hostile")).unwrap();
    common::write_plugin(
        "hostile-slow-compile",
        &components::with_dead_code(&hostile, 3000, 400),
    )
}

/// Compiling runs in a child process bounded in time and memory; files over
/// the size limit are not even read; normal plugins compile there fine.
#[test]
fn compiling_is_bounded_in_size_time_and_memory() {
    let runtime = worker_runtime(None, CompileOptions::default());
    let p = load(&runtime, "text-replace");
    assert!(!p.origin.from_disk_cache);

    let big = slow_to_compile();
    let size = std::fs::metadata(&big).unwrap().len();
    let tight = worker_runtime(
        None,
        CompileOptions {
            max_file_bytes: (size - 1) as usize,
            ..CompileOptions::default()
        },
    );
    assert!(matches!(tight.load(&big), Err(LoadError::TooLarge { .. })));

    let quick = worker_runtime(
        None,
        CompileOptions {
            timeout: Duration::from_millis(500),
            ..CompileOptions::default()
        },
    );
    let started = Instant::now();
    match quick.load(&big) {
        Err(LoadError::CompileTimeout { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_millis(500) + MARGIN);

    let small = worker_runtime(
        None,
        CompileOptions {
            memory_bytes: 96 << 20,
            ..CompileOptions::default()
        },
    );
    match small.load(&big) {
        Err(LoadError::CompileMemory { .. }) => {}
        other => panic!("{other:?}"),
    }
    // Still usable for what fits.
    load(&small, "audio-gain");
}

/// The compiled-code cache stays under its size bound, evicting the least
/// recently used entries and folders of other engine settings.
#[test]
fn compile_cache_is_bounded() {
    let cache = tempfile::tempdir().unwrap();
    let stale = cache.path().join("v0.0.1-0123456789abcdef");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("x.cwasm"), vec![0u8; 1 << 20]).unwrap();
    let kept = cache.path().join("not-ours");
    std::fs::create_dir_all(&kept).unwrap();
    let bound = 1_500_000u64;
    let runtime = PluginRuntime::new(RuntimeOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        cache_max_bytes: bound,
        ..RuntimeOptions::default()
    })
    .unwrap();
    for name in [
        "text-replace",
        "audio-gain",
        "style-table",
        "trim-fade",
        "hostile",
    ] {
        load(&runtime, name);
    }
    let mut total = 0;
    let mut entries = 0;
    for dir in std::fs::read_dir(cache.path()).unwrap() {
        let dir = dir.unwrap().path();
        for f in std::fs::read_dir(&dir).unwrap() {
            total += f.unwrap().metadata().unwrap().len();
            entries += 1;
        }
    }
    assert!(total <= bound, "{total} bytes in the cache");
    assert!(entries >= 1);
    assert!(!stale.exists(), "a stale engine's folder is removed");
    assert!(
        kept.exists(),
        "folders the cache did not make are left alone"
    );
}

/// Polls `/healthz` every 10 ms until stopped; the slowest answer in ms.
struct HealthWatch {
    stop: Arc<AtomicBool>,
    worst_ms: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HealthWatch {
    fn start(port: u16) -> HealthWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let worst_ms = Arc::new(AtomicU64::new(0));
        let (s, w) = (stop.clone(), worst_ms.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let started = Instant::now();
                let r = get(port, "/healthz");
                assert_eq!(r.status, 200);
                w.fetch_max(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        HealthWatch {
            stop,
            worst_ms,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("healthz poller");
        self.worst_ms.load(Ordering::Relaxed)
    }
}

/// The two server tests share the machine's two cores: one at a time.
static SERVER: Mutex<()> = Mutex::new(());

/// A pipeline file using `stage` (TOML of one `[[stages]]` table) before or
/// after the model.
fn pipeline(dir: &Path, name: &str, before_model: &str, after_model: &str) {
    let text = format!(
        "voice = \"en_US-joe-medium\"\n[limits]\ndeadline_ms = 300\n{before_model}\n[[stages]]\nkind = \"model\"\n{after_model}\n"
    );
    std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
}

/// Hostile pipelines served by the real binary: every request ends as a
/// typed error (5xx naming the stage when the plugin is at fault) within its
/// deadline and a margin; `/healthz` answers within 100 ms throughout; the
/// server's peak memory stays under 1 GiB; the next request is served.
#[test]
fn hostile_pipelines_never_stop_the_server() {
    let _one = SERVER.lock().unwrap_or_else(|p| p.into_inner());
    let dir = common::http::default_pipelines();
    let d = dir.path();
    pipeline(
        d,
        "wasi",
        "[[stages]]\nkind = \"text\"\nplugin = \"hostile-wasi\"\nconfig = { mode = \"block\" }",
        "",
    );
    // check-config blocks: refused while loading, and the server starts anyway.
    pipeline(
        d,
        "blockload",
        "[[stages]]\nkind = \"text\"\nplugin = \"hostile-wasi\"\nconfig = { check = \"block\" }",
        "",
    );
    for (name, mode) in [
        ("noise", "noise-w"),
        ("nanspeed", "nan-speed"),
        ("novoice", "unknown-voice"),
        ("nospeaker", "unknown-speaker"),
    ] {
        pipeline(
            d,
            name,
            &format!("[[stages]]\nkind = \"style\"\nplugin = \"hostile-style\"\nconfig = {{ mode = \"{mode}\" }}"),
            "",
        );
    }
    for (name, cfg) in [
        ("rate1", "{ mode = \"rate\", rate = 1 }"),
        ("ratemax", "{ mode = \"rate\", rate = 4294967295 }"),
        ("channels", "{ mode = \"channels\", channels = 40000 }"),
        ("rate44", "{ mode = \"rate\", rate = 44100 }"),
        ("stereo", "{ mode = \"stereo\" }"),
        // The rules of blocks (WIT 0.3) across calls.
        ("statehuge", "{ mode = \"state-huge\" }"),
        ("grow", "{ mode = \"grow\" }"),
        ("rateflip", "{ mode = \"rate-flip\" }"),
    ] {
        pipeline(
            d,
            name,
            "",
            &format!("[[stages]]\nkind = \"audio\"\nplugin = \"hostile-audio\"\nconfig = {cfg}"),
        );
    }
    pipeline(
        d,
        "leak",
        "",
        "[[stages]]\nkind = \"audio\"\nplugin = \"hostile-two-pass\"\nconfig = { mode = \"leak\" }",
    );
    pipeline(
        d,
        "expand",
        "[[stages]]\nkind = \"text\"\nplugin = \"hostile\"\nconfig = { mode = \"expand\", size_kb = 600 }",
        "",
    );
    pipeline(
        d,
        "phonemes",
        "[[stages]]\nkind = \"text\"\nplugin = \"hostile\"\nconfig = { mode = \"expand\", size_kb = 200, repeat = \"[[ h ]] \" }\nlimits = { max_text_kb = 256 }",
        "",
    );
    let started = Instant::now();
    let server = Server::start(d, &["--concurrency", "2"], &[]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a blocking check-config held the start"
    );
    let pipelines = get(server.port, "/v1/pipelines").json();
    let errors = pipelines["errors"].to_string();
    assert!(
        errors.contains("blockload.toml") && errors.contains("(timeout)"),
        "{errors}"
    );

    let health = HealthWatch::start(server.port);
    let tts = |pipeline: &str, extra: serde_json::Value| {
        let mut body = json!({"text": "Hello there.", "pipeline": pipeline, "instruct": "speak"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let started = Instant::now();
        let r = post_json(server.port, "/v1/tts", &body);
        (r, started.elapsed())
    };
    // (pipeline, extra fields, status, error type, stage named in the message)
    let cases: &[(&str, serde_json::Value, u16, &str)] = &[
        ("wasi", json!({}), 504, "stage_timeout"),
        ("noise", json!({}), 502, "plugin_fault"),
        ("nanspeed", json!({}), 502, "plugin_fault"),
        ("novoice", json!({}), 502, "plugin_fault"),
        ("nospeaker", json!({}), 502, "plugin_fault"),
        ("rate1", json!({"sample_rate": 48000}), 502, "plugin_fault"),
        ("ratemax", json!({"sample_rate": 8000}), 502, "plugin_fault"),
        ("channels", json!({}), 502, "plugin_fault"),
        ("statehuge", json!({}), 502, "plugin_fault"),
        ("statehuge", json!({"stream": true}), 502, "plugin_fault"),
        ("grow", json!({}), 502, "plugin_fault"),
        // Two blocks: a sentence of more than one decoder window.
        (
            "rateflip",
            json!({"text": "This sentence is long enough that the voice makes it in more than one window of the decoder, and so in more than one block"}),
            502,
            "plugin_fault",
        ),
        ("leak", json!({}), 502, "plugin_fault"),
        ("leak", json!({"stream": true}), 502, "plugin_fault"),
        ("expand", json!({}), 502, "plugin_fault"),
        ("phonemes", json!({}), 413, "request_too_large"),
        (
            "default",
            json!({"text": "hello\u{0}world"}),
            422,
            "invalid_input",
        ),
    ];
    for (pipeline, extra, status, kind) in cases {
        let (r, took) = tts(pipeline, extra.clone());
        let body = r.text();
        assert_eq!(r.status, *status, "{pipeline}: {body}");
        assert_eq!(r.json()["error"]["type"], *kind, "{pipeline}: {body}");
        assert!(took < Duration::from_secs(5), "{pipeline}: took {took:?}");
        if *status == 502 || *status == 504 {
            assert!(
                body.contains("stage "),
                "{pipeline}: no stage named: {body}"
            );
        }
    }
    // Valid format changes are honoured, whole and streamed.
    let (r, _) = tts("rate44", json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(wav_format(&r.body), (44100, 1));
    let (r, _) = tts("rate44", json!({"stream": true}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        wav_format(&r.body),
        (22050, 1),
        "streams keep the announced rate"
    );
    let (r, _) = tts("stereo", json!({"stream": true}));
    assert_eq!(wav_format(&r.body), (22050, 2));
    let (r, _) = tts("stereo", json!({"format": "mp3"}));
    assert_eq!(r.status, 200, "{}", r.text());
    // And the server still serves normally.
    let (r, _) = tts("default", json!({}));
    assert_eq!(r.status, 200, "{}", r.text());

    let worst = health.finish();
    assert!(worst < 100, "/healthz took {worst} ms at worst");
    let peak = peak_rss(server.child.id());
    println!(
        "server peak RSS: {} MiB; /healthz worst {worst} ms",
        peak >> 20
    );
    assert!(peak < 1 << 30, "server peak RSS {} MiB", peak >> 20);
}

/// (sample rate, channels) of a WAV header.
fn wav_format(wav: &[u8]) -> (u32, u16) {
    assert_eq!(
        &wav[..4],
        b"RIFF",
        "not a WAV: {:?}",
        &wav[..wav.len().min(64)]
    );
    let channels = u16::from_le_bytes([wav[22], wav[23]]);
    let rate = u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]);
    (rate, channels)
}

/// A pipeline whose plugin takes long to compile is refused at the compile
/// limit, while `/healthz`, `/v1/pipelines` and synthesis keep answering.
#[test]
fn a_slow_reload_never_freezes_http() {
    let _one = SERVER.lock().unwrap_or_else(|p| p.into_inner());
    let dir = common::http::default_pipelines();
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "[plugins]\ncompile_timeout_s = 1.5\n").unwrap();
    let server = Server::start(dir.path(), &["--config", config.to_str().unwrap()], &[]);
    let big = slow_to_compile();
    let health = HealthWatch::start(server.port);
    std::fs::write(
        dir.path().join("big.toml"),
        format!(
            "voice = \"en_US-joe-medium\"\n[[stages]]\nkind = \"text\"\nplugin = \"{}\"\n[[stages]]\nkind = \"model\"\n",
            big.display()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let mut worst_listing = Duration::ZERO;
    let refused = loop {
        let t = Instant::now();
        let r = get(server.port, "/v1/pipelines");
        worst_listing = worst_listing.max(t.elapsed());
        assert_eq!(r.status, 200);
        let errors = r.json()["errors"].to_string();
        if errors.contains("big.toml") {
            break errors;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no refusal: {}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        refused.contains("compiling took longer than 1.5 s"),
        "{refused}"
    );
    let r = post_json(server.port, "/v1/tts", &json!({"text": "Still here."}));
    assert_eq!(r.status, 200);
    let worst = health.finish();
    assert!(worst < 100, "/healthz took {worst} ms at worst");
    assert!(
        worst_listing < Duration::from_millis(100),
        "/v1/pipelines took {worst_listing:?}"
    );
}
