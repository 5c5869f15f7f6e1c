//! `voxpipe-bench`: measures what the project promises, printing tables.
//!
//! `cargo run --release --bin voxpipe-bench -- runtime` — per-call overhead of
//! the plugin runtime (fresh store + instantiate + call) and cold start
//! (compile vs compiled cache vs in-memory).
//!
//! `cargo run --release --bin voxpipe-bench -- plugins` — per-call time of
//! every first-party plugin through the host on realistic inputs (a 1 KB
//! paragraph; 10 s of audio).
//!
//! `cargo run --release --bin voxpipe-bench -- engine` — the native voice
//! against ONNX Runtime (tests/engine/ort_bench.py) on the same voice file and
//! the same sentences, in one run: wall time, RTF, ratio; and memory.
//!
//! `cargo run --release --bin voxpipe-bench -- conv` — the engine's direct convolution
//! against candle's im2col `conv1d` on the model's shapes, one and two threads.
//!
//! `cargo run --release --bin voxpipe-bench -- http` — the real server under
//! load (see http.rs): throughput and latency per concurrency, 2× saturation,
//! streamed vs whole first byte, host overhead.
//!
//! `cargo run --release --bin voxpipe-bench -- sandbox` — each class of
//! hostile plugin: time to its typed error, peak RSS of the host.
//!
//! `cargo run --release --bin voxpipe-bench -- ssml` — parse + lowering of a
//! 5 000-character SSML document against its synthesis (see ssml.rs).
//!
//! `cargo run --release --bin voxpipe-bench -- timestamps` — word timestamps
//! against the audio's own boundaries, per pipeline, and their cost (see
//! timestamps.rs).
//!
//! `cargo run --release --bin voxpipe-bench -- wyoming` — voxpipe's Wyoming
//! listener next to wyoming-piper in one wyoming-bench run (see wyoming.rs).

mod bf16;
mod bounded;
mod conv;
mod engine;
mod http;
mod longform;
mod process;
mod sandbox;
mod ssml;
mod telemetry;
mod timestamps;
mod wyoming;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};

use voxpipe::pipeline::blocks::run_alone;
use voxpipe::plugin_build::{build_workspace, Route};
use voxpipe_plugin::{LoadedPlugin, PluginLimits, PluginRuntime, RuntimeOptions, StageConfig};
use voxpipe_types::{Audio, RequestContext};

#[derive(Parser)]
#[command(about = "voxpipe benchmarks: each prints a Markdown table of medians and percentiles")]
struct Args {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Plugin runtime: per-call overhead and cold start.
    Runtime {
        /// Calls measured per text row (after warm-up).
        #[arg(long, default_value_t = 20_000)]
        calls: usize,
        /// Calls measured per audio row.
        #[arg(long, default_value_t = 200)]
        audio_calls: usize,
        /// Cold-start repetitions.
        #[arg(long, default_value_t = 5)]
        loads: usize,
    },
    /// The native voice vs ONNX Runtime, side by side.
    Engine {
        /// Repetitions per sentence (medians are reported).
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// ONNX Runtime intra-op threads.
        #[arg(long, default_value_t = 2)]
        ort_threads: usize,
        /// Where voxpipe's model runs: cpu, cuda, cuda:N, auto (ONNX Runtime stays on the CPU).
        #[arg(long, default_value = "cpu")]
        device: voxpipe_engine::device::DeviceSpec,
        /// The voice to time (speaker 0 of a multi-speaker voice).
        #[arg(long, default_value = "en_US-joe-medium")]
        voice: String,
        /// Folder of Piper voices.
        #[arg(long, default_value = "voices", value_name = "DIR")]
        voices: PathBuf,
        /// Decode each sentence in one piece, as ONNX Runtime does, instead of the
        /// server's windows with their recomputed context (DEFAULT_DECODER_CHUNKS).
        #[arg(long)]
        one_decode: bool,
    },
    /// bf16 fidelity: the voice with its flow's and decoder's convolutions rounded to
    /// bfloat16 (sums in f32, as a bf16 kernel computes; emulated, so no faster)
    /// against ONNX Runtime f32: durations, SNR, mel-cepstral distortion
    Bf16 {
        /// Timed runs per sentence and path (medians are reported).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// The voice to measure.
        #[arg(long, default_value = "en_US-joe-medium")]
        voice: String,
        /// Folder of Piper voices.
        #[arg(long, default_value = "voices", value_name = "DIR")]
        voices: PathBuf,
        /// The parts run in bf16: `flow`, `decoder` (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = ["flow".to_string(), "decoder".to_string()])]
        parts: Vec<String>,
    },
    /// The whole process, start-up and voice loading included: `voxpipe synth` vs Piper's
    /// command line (`piper`) on the same text and voice, alternating
    Process {
        /// Timed runs per text and program (medians are reported).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// The voice both speak with.
        #[arg(long, default_value = "en_US-joe-medium")]
        voice: String,
        /// Folder of Piper voices.
        #[arg(long, default_value = "voices", value_name = "DIR")]
        voices: PathBuf,
    },
    /// The engine's direct convolution vs candle's im2col conv1d, per model shape.
    Conv {
        /// Timed runs per cell (medians are reported).
        #[arg(long, default_value_t = 9)]
        reps: usize,
        /// Also time blocks of this register tile of the level in use (`8x3`: 8 output
        /// channels × 3 vectors), on one thread, beside the default plan.
        #[arg(long, value_name = "CBxNV")]
        tile: Option<String>,
    },
    /// The HTTP server under load: throughput, latency, saturation, first byte.
    Http {
        /// Requests per concurrency level.
        #[arg(long, default_value_t = 16)]
        requests: usize,
    },
    /// Cost of exporting traces and logs: request latency with the OTLP
    /// exporter off vs on (to a local sink), alternating requests.
    Telemetry {
        /// Requests per configuration.
        #[arg(long, default_value_t = 30)]
        requests: usize,
    },
    /// Hostile plugins: time to the typed error and peak RSS, per class.
    Sandbox,
    /// Bounded work per request: peak memory for the worst long inputs, time
    /// to first audio with a long first sentence, stopping at the deadline
    /// and on hang-up.
    Bounded {
        /// Run one table only: `memory`, `first-audio` or `stop`.
        #[arg(long)]
        only: Option<String>,
    },
    /// Long texts, whole and streamed, through the default pipeline: text
    /// length → status, audio, wall time, RTF, first audio, peak memory.
    Longform {
        /// Whole-response lengths, characters (each at speed 1 and 0.5; the
        /// longest also at 0.25).
        #[arg(long, value_delimiter = ',', default_values_t = [500usize, 2000, 5000])]
        whole: Vec<usize>,
        /// Stream lengths, characters (e.g. `--streams 5000,20000,100000`).
        #[arg(long, value_delimiter = ',', default_values_t = [5000usize, 20000])]
        streams: Vec<usize>,
    },
    /// An SSML document of `chars` characters: parse + lowering (median of
    /// `parses`) against its whole synthesis through the default pipeline.
    Ssml {
        #[arg(long, default_value_t = 5000)]
        chars: usize,
        #[arg(long, default_value_t = 200)]
        parses: usize,
        /// Characters of the streamed one-block document (`max_stream_chars` at most).
        #[arg(long, default_value_t = 20000)]
        stream_chars: usize,
    },
    /// Word timestamps against the audio's boundaries (silence detection),
    /// per pipeline, and the cost of asking for them.
    Timestamps {
        /// Alternating runs with and without timestamps for the cost.
        #[arg(long, default_value_t = 5)]
        repeats: usize,
    },
    /// The Wyoming front end next to wyoming-piper (same voice and texts),
    /// in one wyoming-bench run: time to first audio, total time, ratios.
    Wyoming {
        /// wyoming-bench rounds (each synthesizes its 4 texts per mode).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Untimed warm-up runs per mode and server.
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// The voice both servers speak with.
        #[arg(long, default_value = "en_US-joe-medium")]
        voice: String,
        /// Folder of Piper voices (both servers read it).
        #[arg(long, default_value = "voices", value_name = "DIR")]
        voices: String,
        /// voxpipe's pipeline(s) for the Wyoming listener, comma-separated:
        /// each gets its own listener and rows (e.g. `default,home-assistant`).
        #[arg(long, value_delimiter = ',', default_values_t = ["default".to_string()])]
        pipelines: Vec<String>,
    },
    /// First-party plugins: per-call time on realistic inputs.
    Plugins {
        /// Calls measured per text/style plugin.
        #[arg(long, default_value_t = 2000)]
        calls: usize,
        /// Calls measured per audio plugin.
        #[arg(long, default_value_t = 30)]
        audio_calls: usize,
        /// Only these plugins, comma-separated (e.g. `loudness,pitch-shift`).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    // As the server does (see voxpipe_engine::memory).
    voxpipe_engine::memory::keep_freed_memory();
    match Args::parse().bench {
        Bench::Runtime {
            calls,
            audio_calls,
            loads,
        } => runtime_bench(calls, audio_calls, loads),
        Bench::Plugins {
            calls,
            audio_calls,
            only,
        } => plugins_bench(calls, audio_calls, &only),
        Bench::Sandbox => sandbox::sandbox_bench(),
        Bench::Bounded { only } => bounded::bounded_bench(only.as_deref()),
        Bench::Longform { whole, streams } => longform::longform_bench(&whole, &streams),
        Bench::Ssml {
            chars,
            parses,
            stream_chars,
        } => ssml::ssml_bench(chars, parses, stream_chars),
        Bench::Timestamps { repeats } => timestamps::timestamps_bench(repeats),
        Bench::Process {
            rounds,
            voice,
            voices,
        } => process::process_bench(rounds.max(1), &voices, &voice),
        Bench::Conv { reps, tile } => conv::conv_bench(reps, tile.as_deref()),
        Bench::Bf16 {
            reps,
            voice,
            voices,
            parts,
        } => bf16::bf16_bench(&voices, &voice, reps, &parts),
        Bench::Wyoming {
            rounds,
            warmup,
            voice,
            voices,
            pipelines,
        } => wyoming::wyoming_bench(rounds, warmup, &voice, &voices, &pipelines),
        Bench::Http { requests } => http::http_bench(requests),
        Bench::Telemetry { requests } => telemetry::telemetry_bench(requests),
        Bench::Engine {
            reps,
            ort_threads,
            device,
            voice,
            voices,
            one_decode,
        } => engine::engine_bench(reps, ort_threads, device, &voices, &voice, one_decode),
    }
}

struct Stats {
    /// The fastest call: on a noisy machine the steadiest figure for
    /// comparing two builds of the same plugin.
    min: Duration,
    p50: Duration,
    p99: Duration,
    mean: Duration,
    max: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let total: Duration = samples.iter().sum();
    Stats {
        min: samples[0],
        p50: at(0.50),
        p99: at(0.99),
        mean: total / samples.len() as u32,
        max: samples[samples.len() - 1],
    }
}

fn us(d: Duration) -> String {
    if d >= Duration::from_millis(1) {
        return ms(d);
    }
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// The first `bytes` bytes (at most) of `text` repeated, cut at a char boundary.
fn paragraph(text: &str, bytes: usize) -> String {
    let mut out = String::new();
    for c in text.chars().cycle() {
        if out.len() + c.len_utf8() > bytes {
            break;
        }
        out.push(c);
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn measure(n: usize, mut f: impl FnMut()) -> Stats {
    for _ in 0..(n / 10).max(3) {
        f();
    }
    let samples = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    stats(samples)
}

fn ctx() -> RequestContext {
    RequestContext {
        request_id: "bench".into(),
        language: "en-US".into(),
        voice: "en_US-joe-medium".into(),
        pipeline: "bench".into(),
        style: None,
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Build the plugin workspaces into target/plugins and return that folder.
fn built_plugins() -> anyhow::Result<PathBuf> {
    let root = repo_root();
    let out = root.join("target/plugins");
    let target = root.join("target/wasm");
    let route = Route::detect()?;
    for ws in ["plugins", "tests/plugins"] {
        build_workspace(&root.join(ws), &out, &target, route)
            .with_context(|| format!("building {ws}"))?;
    }
    Ok(out)
}

/// 10 s of speech-like audio at 22.05 kHz: voiced segments (a 130 Hz
/// harmonic tone with syllable-rate amplitude modulation) between pauses.
fn speechlike() -> Audio {
    let rate = 22050;
    let samples = (0..rate * 10)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let voiced = (t % 2.0) < 1.6 && t > 0.3;
            if !voiced {
                return 0.0;
            }
            let envelope = 0.5 + 0.5 * (2.0 * std::f32::consts::PI * 4.0 * t).sin();
            let tone: f32 = (1..8)
                .map(|h| (2.0 * std::f32::consts::PI * 130.0 * h as f32 * t).sin() / h as f32)
                .sum();
            0.2 * envelope * tone
        })
        .collect();
    Audio {
        sample_rate: rate as u32,
        channels: 1,
        samples,
    }
}

/// About 10 s of real speech: the engine bench's voice speaking a short
/// paragraph (the audio stages' costs depend on the signal: the loudness
/// stage's make-up probes, for one, are only busy where the peaks reach them,
/// and speech from the voice reaches more of them than [`speechlike`]).
fn voice_speech() -> anyhow::Result<Audio> {
    use voxpipe_engine::phonemize::Phonemizer;
    use voxpipe_engine::synth::{LoadedVoice, SynthOptions};
    let voice = LoadedVoice::load(&repo_root().join("voices"), "en_US-joe-medium")?;
    let text = "Welcome home. The living room lights are on, the front door is locked, \
and the temperature inside is twenty one degrees. Tomorrow will be cloudy in the \
morning, with a chance of rain after three o'clock. Your next meeting starts at nine.";
    let mut samples = Vec::new();
    for ids in voice.sentence_ids(&Phonemizer::new()?, text)? {
        samples.extend(voice.synthesize(&ids, &SynthOptions::default())?.samples);
    }
    Ok(Audio {
        sample_rate: voice.sample_rate(),
        channels: 1,
        samples,
    })
}

fn plugins_bench(calls: usize, audio_calls: usize, only: &[String]) -> anyhow::Result<()> {
    let out = built_plugins()?;
    let runtime = PluginRuntime::new(RuntimeOptions {
        cache_dir: None,
        ..RuntimeOptions::default()
    })?;
    let limits = PluginLimits::default();
    let ctx = ctx();
    let en = paragraph(
        "On Nov. 21, 2026 at 3:30 pm, Dr. Smith paid $1,234.56 (about 15% more than \
in 1999) for 3 km of cable on Elm St.; call 555-123-4567 or mail jo.smith@mail.org. ",
        1024,
    );
    let zh = paragraph(
        "2026年11月21日13:05，气温25°C，增长了3.5%，共有1234567人参加，请拨打电话13812345678。",
        1024,
    );
    let table = std::fs::read_to_string(repo_root().join("pipelines/tables/instruct-style.toml"))?;
    let table = StageConfig::from_toml(&table.parse::<toml::Table>()?);
    let empty = StageConfig::empty();
    let audio = speechlike();
    let speech = voice_speech()?;
    let mut pitched = ctx.clone();
    pitched.style = Some(voxpipe_types::Style {
        pitch: Some(3.0),
        ..Default::default()
    });

    println!("## First-party plugins through the host (fresh instance per call)\n");
    println!("| plugin | input | calls | min | p50 | p99 |");
    println!("|---|---|---:|---:|---:|---:|");
    let row = |name: &str, input: &str, n: usize, s: Stats| {
        println!(
            "| {name} | {input} | {n} | {} | {} | {} |",
            us(s.min),
            us(s.p50),
            us(s.p99)
        );
    };
    let load = |name: &str| runtime.load(&out.join(format!("{name}.wasm")));
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);

    if wanted("en-normalize") {
        let p = load("en-normalize")?;
        let s = measure(calls, || {
            p.call_text(&limits, &ctx, &empty, &en).unwrap();
        });
        row(
            "en-normalize",
            &format!("{} B English paragraph", en.len()),
            calls,
            s,
        );
    }

    if wanted("zh-normalize") {
        let p = load("zh-normalize")?;
        let s = measure(calls, || {
            p.call_text(&limits, &ctx, &empty, &zh).unwrap();
        });
        row(
            "zh-normalize",
            &format!("{} B Chinese paragraph", zh.len()),
            calls,
            s,
        );
    }

    if wanted("instruct-style") {
        let p = load("instruct-style")?;
        let s = measure(calls, || {
            p.call_style(&limits, &ctx, &table, "请用四川话，开心地、慢一点说这句话")
                .unwrap();
        });
        row(
            "instruct-style",
            "instruct, default table (19 dialects)",
            calls,
            s,
        );
    }

    let voiced = format!(
        "{:.1} s of the voice's speech",
        speech.samples.len() as f64 / f64::from(speech.sample_rate)
    );
    for (name, c, input) in [
        ("loudness", &ctx, &audio),
        ("loudness", &ctx, &speech),
        ("trim-fade", &ctx, &audio),
        ("pitch-shift", &pitched, &audio),
        ("pitch-shift", &pitched, &speech),
    ] {
        if !wanted(name) {
            continue;
        }
        let p = load(name)?;
        let s = measure(audio_calls, || {
            run_alone(p.clone(), &limits, &empty, c, input.clone()).unwrap();
        });
        let what = if std::ptr::eq(input, &speech) {
            voiced.clone()
        } else {
            "10 s speech-like tones @ 22.05 kHz".to_string()
        };
        let what = if name == "pitch-shift" {
            format!("{what}, +3 semitones")
        } else {
            what
        };
        row(name, &what, audio_calls, s);
    }
    Ok(())
}

/// The per-request cost of voice routing and honored-field accounting
/// (`pipeline/routes.rs`, `tts/honored.rs`) on a Sichuanese style with three
/// routes and two audio stages' `applies`.
fn accounting_cost(n: usize) -> Stats {
    use voxpipe::pipeline::routes::{self, Route, StyleDefaults, Subject, When};
    use voxpipe::tts::honored;
    use voxpipe_types::{Applies, Style, StyleField};
    let route = |number, when| Route {
        number,
        when,
        voice: Some("zh_CN-huayan-medium".into()),
        speaker: None,
        defaults: StyleDefaults::default(),
    };
    let routes = [
        route(
            1,
            When {
                dialect: vec!["cantonese".into()],
                ..When::default()
            },
        ),
        route(
            2,
            When {
                dialect: vec!["sichuanese".into(), "chongqing".into()],
                ..When::default()
            },
        ),
        route(
            3,
            When {
                language: vec!["zh".into()],
                ..When::default()
            },
        ),
    ];
    let style = Style {
        dialect: Some("sichuanese".into()),
        language: Some("zh-CN".into()),
        emotions: vec!["happy".into()],
        pitch: Some(1.0),
        ..Style::default()
    };
    let (pitch, volume) = (
        Applies::Field(StyleField::Pitch),
        Applies::Field(StyleField::Volume),
    );
    let audio = [&pitch, &volume];
    measure(n, || {
        let mut style = std::hint::black_box(style.clone());
        let chosen = routes::choose(
            &routes,
            &Subject {
                style: &style,
                request_language: None,
            },
        );
        if let Some((r, _)) = &chosen {
            r.fill(&mut style);
        }
        let applied = honored::Applied {
            voice: "zh_CN-huayan-medium",
            voice_language: Some("zh-CN"),
            speaker_overridden: false,
            route: chosen.as_ref().map(|(_, m)| m),
            audio: &audio,
        };
        let fields = honored::unhonored(&style, &applied);
        assert_eq!(honored::label(&fields), "emotion=happy");
    })
}

fn runtime_bench(calls: usize, audio_calls: usize, loads: usize) -> anyhow::Result<()> {
    let out = built_plugins()?;
    let runtime = PluginRuntime::new(RuntimeOptions {
        cache_dir: None,
        ..RuntimeOptions::default()
    })?;
    let load = |name: &str| -> anyhow::Result<Arc<LoadedPlugin>> {
        Ok(runtime.load(&out.join(format!("{name}.wasm")))?)
    };
    let limits = PluginLimits::default();
    let ctx = ctx();

    println!("## Plugin runtime: one call = fresh store + instantiate + call\n");
    println!("| call | input | calls | p50 | p99 | mean |");
    println!("|---|---|---:|---:|---:|---:|");
    let row = |what: &str, input: &str, n: usize, s: Stats| {
        println!(
            "| {what} | {input} | {n} | {} | {} | {} |",
            us(s.p50),
            us(s.p99),
            us(s.mean)
        )
    };

    // 1 KB of text in and out.
    let text = paragraph("The quick brown fox jumps over the lazy dog. ", 1024);
    let echo = load("hostile")?;
    let echo_cfg = StageConfig::from_json(r#"{"mode":"echo"}"#).unwrap();
    let s = measure(calls, || {
        let out = echo.call_text(&limits, &ctx, &echo_cfg, &text).unwrap();
        assert_eq!(out.len(), 1024);
    });
    row("text, echo (pure overhead)", "1 KB", calls, s);

    let replace = load("text-replace")?;
    let cfg = StageConfig::from_json(r#"{"replace":{"&":"and","%":" percent"}}"#).unwrap();
    let s = measure(calls, || {
        replace.call_text(&limits, &ctx, &cfg, &text).unwrap();
    });
    row("text, text-replace", "1 KB", calls, s);

    let style = load("style-table")?;
    let style_cfg = StageConfig::from_json(
        r#"{"rules":[{"keywords":["四川话"],"label":"dialect=sichuanese","dialect":"sichuanese"},{"keywords":["sad","悲伤"],"label":"emotion=sad","emotions":["sad"]}]}"#,
    )
    .unwrap();
    let s = measure(calls, || {
        style
            .call_style(&limits, &ctx, &style_cfg, "用四川话, 悲伤地说")
            .unwrap();
    });
    let style_call = s.p50;
    row("style, style-table", "instruct, 2 rules", calls, s);

    // What the host adds per request with an instruct: choose the route and
    // account for every style field (issue 16). Plain Rust, no plugin call.
    let s = accounting_cost(calls * 10);
    let accounting = s.p50;
    row(
        "host: route + honored-field accounting",
        "3 routes, 4 style fields",
        calls * 10,
        s,
    );

    let gain = load("audio-gain")?;
    let gain_cfg = StageConfig::from_json(r#"{"gain_db":-3.0}"#).unwrap();
    let audio = Audio {
        sample_rate: 22050,
        channels: 1,
        samples: (0..220_500)
            .map(|i| (i as f32 * 0.01).sin() * 0.5)
            .collect(),
    };
    let s = measure(audio_calls, || {
        run_alone(gain.clone(), &limits, &gain_cfg, &ctx, audio.clone()).unwrap();
    });
    row("audio, audio-gain", "10 s @ 22.05 kHz", audio_calls, s);

    // The same text call through the blocking-pool hop the server uses.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()?;
    let echo2 = echo.clone();
    let s = rt.block_on(async {
        let mut samples = Vec::with_capacity(calls / 4);
        for _ in 0..calls / 4 {
            let (p, t, c, cx) = (echo2.clone(), text.clone(), echo_cfg.clone(), ctx.clone());
            let started = Instant::now();
            voxpipe::blocking::off_executor(move || p.call_text(&limits, &cx, &c, &t).unwrap())
                .await;
            samples.push(started.elapsed());
        }
        stats(samples)
    });
    row("text, echo via off_executor", "1 KB", calls / 4, s);
    println!(
        "\nRoute + accounting p50 = {:.1} % of one style-stage call's p50 (a synthesis \
         takes tens of milliseconds or more).",
        100.0 * accounting.as_secs_f64() / style_call.as_secs_f64()
    );

    println!(
        "\n## Cold start: loading a plugin (text-replace, {} KB)\n",
        std::fs::metadata(out.join("text-replace.wasm"))?.len() >> 10
    );
    println!("| load | runs | median | max |");
    println!("|---|---:|---:|---:|");
    let path = out.join("text-replace.wasm");
    let mut compile = Vec::new();
    let mut cached = Vec::new();
    let mut memory = Vec::new();
    for _ in 0..loads {
        let cache = tempfile::tempdir()?;
        let options = RuntimeOptions {
            cache_dir: Some(cache.path().to_path_buf()),
            ..RuntimeOptions::default()
        };
        let first = PluginRuntime::new(options.clone())?;
        let t = Instant::now();
        let p = first.load(&path)?;
        compile.push(t.elapsed());
        assert!(!p.origin.from_disk_cache);
        let t = Instant::now();
        let _again = first.load(&path)?;
        memory.push(t.elapsed());
        let second = PluginRuntime::new(options)?;
        let t = Instant::now();
        let p = second.load(&path)?;
        cached.push(t.elapsed());
        assert!(p.origin.from_disk_cache);
    }
    for (what, samples) in [
        ("first load: compile with Cranelift", compile),
        ("restart: compiled code from the disk cache", cached),
        ("reload: same bytes already in memory", memory),
    ] {
        let max = *samples.iter().max().unwrap();
        let s = stats(samples);
        println!("| {what} | {loads} | {} | {} |", ms(s.p50), ms(max));
    }
    Ok(())
}
