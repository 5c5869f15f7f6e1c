//! The first-party plugins (plugins/*) built as components and run through
//! the host, as a pipeline runs them: realistic inputs, config from TOML,
//! and independent references where the output is a measurement.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use voxpipe::pipeline::blocks::run_alone;
use voxpipe_plugin::{LoadedPlugin, PluginLimits, PluginRuntime, StageConfig};
use voxpipe_types::{Audio, AudioMode, BlockPosition, RequestContext, Style, StyleOutcome};

fn ctx() -> RequestContext {
    RequestContext {
        request_id: "fp-1".into(),
        language: "en-US".into(),
        voice: "v".into(),
        pipeline: "p".into(),
        style: None,
    }
}

fn load(runtime: &PluginRuntime, name: &str) -> Arc<LoadedPlugin> {
    runtime.load(&common::plugin(name)).unwrap()
}

fn config(toml_text: &str) -> StageConfig {
    StageConfig::from_toml(&toml_text.parse::<toml::Table>().unwrap())
}

fn text(p: &LoadedPlugin, cfg: &StageConfig, input: &str) -> String {
    p.check_config(&PluginLimits::default(), cfg).unwrap();
    p.call_text(&PluginLimits::default(), &ctx(), cfg, input)
        .unwrap_or_else(|e| panic!("{input:?}: {e}"))
}

/// One whole utterance through an audio plugin, driven block by block as a
/// pipeline stage is.
fn audio(p: &Arc<LoadedPlugin>, cfg: &StageConfig, ctx: &RequestContext, a: &Audio) -> Audio {
    p.check_config(&PluginLimits::default(), cfg).unwrap();
    run_alone(p.clone(), &PluginLimits::default(), cfg, ctx, a.clone()).unwrap()
}

/// Utterance `utterance` of a stream through a two-pass plugin, as one block
/// per pass (as a stream's sentence shorter than a block is).
fn sentence(p: &LoadedPlugin, cfg: &StageConfig, a: &Audio, utterance: u32) -> Audio {
    let limits = PluginLimits::default();
    let frames = (a.samples.len() / usize::from(a.channels)) as u64;
    let at = |pass| BlockPosition {
        utterance,
        pass,
        index: 0,
        offset: 0,
        last: true,
        total_frames: (pass == 1).then_some(frames),
    };
    let (measured, state) = p
        .call_block(&limits, &ctx(), cfg, a.clone(), at(0), &[])
        .unwrap();
    assert!(measured.samples.is_empty(), "no audio out of pass 0");
    p.call_block(&limits, &ctx(), cfg, a.clone(), at(1), &state)
        .unwrap()
        .0
}

/// Real speech from espeak-ng (22.05 kHz mono), installed by .ci/setup.
fn speech(dir: &Path) -> Audio {
    let wav = dir.join("speech.wav");
    let status = Command::new("espeak-ng")
        .arg("-w")
        .arg(&wav)
        .arg("The quick brown fox jumps over the lazy dog. Every request should sound equally loud, whoever sends it.")
        .status()
        .expect("espeak-ng (apt-get install espeak-ng; .ci/setup does)");
    assert!(status.success());
    voxpipe_codec::wav::read(&wav).unwrap()
}

fn tone(rate: u32, channels: u16, freq: f32, amplitude: f32, seconds: f32) -> Audio {
    let frames = (rate as f32 * seconds) as usize;
    let mut samples = Vec::with_capacity(frames * channels as usize);
    for i in 0..frames {
        let v = amplitude * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin();
        samples.extend(std::iter::repeat_n(v, channels as usize));
    }
    Audio {
        sample_rate: rate,
        channels,
        samples,
    }
}

/// The loudness plugin brings speech and synthetic signals to the target
/// within ±0.5 LU as measured by an independent implementation (pyloudnorm),
/// and its own meter agrees with pyloudnorm on the inputs.
#[test]
fn loudness_hits_target_as_measured_by_pyloudnorm() {
    let runtime = common::runtime();
    let p = load(&runtime, "loudness");
    let dir = tempfile::tempdir().unwrap();
    let inputs = [
        ("speech", speech(dir.path())),
        ("tone-1k-quiet", tone(22050, 1, 1000.0, 0.05, 5.0)),
        ("tone-440-stereo-48k", tone(48000, 2, 440.0, 0.3, 4.0)),
        ("tone-100-loud-44k", tone(44100, 1, 100.0, 0.9, 3.0)),
    ];
    for target in [-16.0f64, -23.0] {
        let cfg = config(&format!("target_lufs = {target}"));
        let mut files = Vec::new();
        let mut input_files = Vec::new();
        for (name, a) in &inputs {
            let out = audio(&p, &cfg, &ctx(), a);
            assert_eq!(out.samples.len(), a.samples.len(), "{name}");
            let f = dir.path().join(format!("{name}-{target}.wav"));
            voxpipe_codec::wav::write(&f, &out).unwrap();
            files.push(f);
            let f = dir.path().join(format!("{name}-in.wav"));
            voxpipe_codec::wav::write(&f, a).unwrap();
            input_files.push(f);
        }
        for ((name, _), lufs) in inputs.iter().zip(common::pyloudnorm(&files)) {
            eprintln!("loudness {name}: target {target} → pyloudnorm {lufs:.2} LUFS");
            assert!(
                (lufs - target).abs() <= 0.5,
                "{name}: {lufs:.2} LUFS, target {target}"
            );
        }
        for ((name, a), reference) in inputs.iter().zip(common::pyloudnorm(&input_files)) {
            let ours = loudness::integrated_lufs(&a.samples, a.channels, a.sample_rate)
                .expect("measurable");
            eprintln!("meter {name}: ours {ours:.2}, pyloudnorm {reference:.2}");
            assert!(
                (ours - reference).abs() <= 0.5,
                "{name}: ours {ours:.2} vs {reference:.2}"
            );
        }
    }
}

/// trim-fade on real speech: leading/trailing silence goes (down to the
/// configured margin), the ends fade to exactly zero, and sentence chunks
/// after the first get the configured pause before them.
#[test]
fn trim_fade_trims_speech_and_pauses_between_sentences() {
    let runtime = common::runtime();
    let p = load(&runtime, "trim-fade");
    assert_eq!(p.mode, AudioMode::TwoPass);
    let dir = tempfile::tempdir().unwrap();
    let s = speech(dir.path());
    // Pad with 0.5 s of silence on both sides.
    let pad = vec![0.0f32; 11025];
    let padded = Audio {
        samples: [pad.clone(), s.samples.clone(), pad].concat(),
        ..s.clone()
    };
    let cfg = config("keep_ms = 30\nfade_in_ms = 5\nfade_out_ms = 10");
    let out = audio(&p, &cfg, &ctx(), &padded);
    let removed = padded.samples.len() - out.samples.len();
    assert!(
        removed >= 2 * 11025 - 2 * 662,
        "removed only {removed} samples"
    );
    assert!(
        out.samples.len() >= s.samples.len() / 2,
        "trimmed into the speech"
    );
    assert_eq!(out.samples[0], 0.0);
    assert_eq!(*out.samples.last().unwrap(), 0.0);

    // In a stream each sentence is an utterance to a two-pass stage: every
    // one after the first starts with the 200 ms pause, the first with none.
    let cfg = config("sentence_pause_ms = 200");
    let first = sentence(&p, &cfg, &s, 0);
    let second = sentence(&p, &cfg, &s, 1);
    let head = &second.samples[..4410];
    assert!(head.iter().all(|v| *v == 0.0), "pause is silent");
    assert_eq!(second.samples.len(), first.samples.len() + 4410);
    assert_eq!(
        &second.samples[4410..],
        &first.samples[..],
        "same sentence after it"
    );
    let err = p
        .check_config(&PluginLimits::default(), &config("threshold_db = 5"))
        .unwrap_err();
    assert!(err.to_string().contains("threshold_db"), "{err}");
}

fn default_table() -> StageConfig {
    let text = std::fs::read_to_string(common::root().join("pipelines/tables/instruct-style.toml"))
        .unwrap();
    config(&text)
}

fn style(p: &LoadedPlugin, cfg: &StageConfig, instruct: &str) -> StyleOutcome {
    p.call_style(&PluginLimits::default(), &ctx(), cfg, instruct)
        .unwrap_or_else(|e| panic!("{instruct}: {e}"))
}

/// instruct-style with the shipped table: the seeds' examples map, several
/// dimensions combine, and a dialect the table lacks is reported by name,
/// never silently dropped.
#[test]
fn instruct_style_maps_the_seed_examples_and_names_unknown_dialects() {
    let runtime = common::runtime();
    let p = load(&runtime, "instruct-style");
    let table = default_table();
    p.check_config(&PluginLimits::default(), &table).unwrap();
    let cases = [
        ("用四川话说这句话", "dialect=sichuanese"),
        ("请用上海话", "dialect=shanghainese"),
        ("用粤语讲", "dialect=cantonese"),
        ("用悲伤的语气朗读", "emotion=sad"),
        ("speak slowly and softly", "speed=slow;volume=soft"),
        ("whisper", "emotion=whisper"),
        ("excited!", "emotion=excited"),
        (
            "用四川话, 开心地, 慢一点说",
            "dialect=sichuanese;emotion=happy;speed=slow",
        ),
    ];
    for (instruct, label) in cases {
        match style(&p, &table, instruct) {
            StyleOutcome::Mapped { label: got, .. } => assert_eq!(got, label, "{instruct}"),
            other => panic!("{instruct}: {other:?}"),
        }
    }
    let StyleOutcome::Mapped { style: s, .. } = style(&p, &table, "用四川话说这句话")
    else {
        unreachable!()
    };
    assert_eq!(s.dialect.as_deref(), Some("sichuanese"));

    // The seed's incident: the frontend sends 上海话 but the table lacks it.
    let text = std::fs::read_to_string(common::root().join("pipelines/tables/instruct-style.toml"))
        .unwrap();
    let mut t = text.parse::<toml::Table>().unwrap();
    t["dialects"].as_table_mut().unwrap().remove("shanghainese");
    let without = StageConfig::from_toml(&t);
    match style(&p, &without, "请用上海话") {
        StyleOutcome::Unmapped { reason } => assert!(reason.contains("上海话"), "{reason}"),
        other => panic!("expected unmapped, got {other:?}"),
    }
    match style(&p, &table, "请用火星话") {
        StyleOutcome::Unmapped { reason } => assert!(reason.contains("火星话"), "{reason}"),
        other => panic!("expected unmapped, got {other:?}"),
    }
    let bad = config("[speeds.slow]\nkeywords = [\"slow\"]\nspeed = 9.0");
    assert!(p.check_config(&PluginLimits::default(), &bad).is_err());
}

/// zh-normalize reads numbers, dates, times, percentages and phone numbers
/// in Chinese, and running it twice changes nothing.
#[test]
fn zh_normalize_reads_numbers_dates_and_phones() {
    let runtime = common::runtime();
    let p = load(&runtime, "zh-normalize");
    let empty = StageConfig::empty();
    let cases = [
        ("2026年11月21日", "二零二六年十一月二十一日"),
        ("增长3.5%", "增长百分之三点五"),
        ("13:05开会", "十三点零五分开会"),
        ("电话13812345678", "电话幺三八幺二三四五六七八"),
        ("共20000元", "共两万元"),
        ("室温25°C", "室温二十五摄氏度"),
    ];
    for (input, want) in cases {
        let once = text(&p, &empty, input);
        assert_eq!(once, want, "{input}");
        assert_eq!(text(&p, &empty, &once), once, "not idempotent: {input}");
    }
    assert_eq!(text(&p, &config("liang = false"), "共20000元"), "共二万元");
    assert!(p
        .check_config(&PluginLimits::default(), &config("lian = true"))
        .is_err());
}

/// Dominant frequency of a mono signal from its zero crossings (good enough
/// for the pure tones used here).
fn frequency(a: &Audio) -> f64 {
    let s = &a.samples[a.samples.len() / 4..a.samples.len() * 3 / 4];
    let crossings = s.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
    crossings as f64 * a.sample_rate as f64 / s.len() as f64
}

/// pitch-shift takes the semitones from the style (as a style stage sets
/// them) plus its config, keeps the duration, and moves a tone's pitch.
#[test]
fn pitch_shift_follows_the_style_and_keeps_duration() {
    let runtime = common::runtime();
    let p = load(&runtime, "pitch-shift");
    let input = tone(22050, 1, 220.0, 0.5, 2.0);
    let mut c = ctx();
    c.style = Some(Style {
        pitch: Some(12.0),
        ..Style::default()
    });
    let up = audio(&p, &StageConfig::empty(), &c, &input);
    assert_eq!(up.samples.len(), input.samples.len());
    let f = frequency(&up);
    assert!((f / 440.0 - 1.0).abs() < 0.01, "{f} Hz");
    // Style +12 and config -5 add up to +7 (329.6 Hz).
    let fifth = audio(&p, &config("semitones = -5.0"), &c, &input);
    let f = frequency(&fifth);
    assert!((f / 329.63 - 1.0).abs() < 0.01, "{f} Hz");
    // No shift: the input comes back bit for bit.
    let same = audio(&p, &StageConfig::empty(), &ctx(), &input);
    assert_eq!(same.samples, input.samples);
}

/// en-normalize reads the written forms aloud, honours its config, and is
/// idempotent.
#[test]
fn en_normalize_reads_written_forms_aloud() {
    let runtime = common::runtime();
    let p = load(&runtime, "en-normalize");
    let empty = StageConfig::empty();
    let input = "Dr. Smith lives on Elm Dr. and paid $3.50 on 2026-11-21 at 3:30 pm; call (555) 123-4567 or see https://example.com/a.";
    let out = text(&p, &empty, input);
    assert_eq!(
        out,
        "Doctor Smith lives on Elm Drive and paid three dollars and fifty cents on November twenty-first, twenty twenty-six at three thirty p m; call five five five, one two three, four five six seven or see example dot com slash a."
    );
    assert_eq!(text(&p, &empty, &out), out, "not idempotent");
    for (input, want) in [
        ("the 21st time", "the twenty-first time"),
        ("in 1999", "in nineteen ninety-nine"),
        ("3.5%", "three point five percent"),
        ("20°C", "twenty degrees Celsius"),
        ("5 kg", "five kilograms"),
        ("€1", "one euro"),
    ] {
        assert_eq!(text(&p, &empty, input), want, "{input}");
    }
    assert_eq!(
        text(
            &p,
            &config("rules.currency = false\nrules.numbers = false"),
            "$5"
        ),
        "$5"
    );
    let custom = config("replacements = { \"voxpipe\" = \"vox pipe\" }");
    assert_eq!(text(&p, &custom, "voxpipe rocks"), "vox pipe rocks");
    assert!(p
        .check_config(&PluginLimits::default(), &config("rules.numbrs = false"))
        .is_err());
}

/// The plugin-author template works as shipped: it maps its dialect and
/// reports anything else as unmapped.
#[test]
fn template_style_maps_its_dialect() {
    let runtime = common::runtime();
    let p = load(&runtime, "template-style");
    let empty = StageConfig::empty();
    match style(&p, &empty, "请用粤语讲这句话") {
        StyleOutcome::Mapped { label, style } => {
            assert_eq!(label, "dialect=cantonese");
            assert_eq!(style.language.as_deref(), Some("yue-HK"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        style(&p, &empty, "用四川话说"),
        StyleOutcome::Unmapped { .. }
    ));
    let cfg = config("keywords = [\"港式\"]\nvoice = \"yue-voice\"");
    match style(&p, &cfg, "港式口音") {
        StyleOutcome::Mapped { style, .. } => assert_eq!(style.voice.as_deref(), Some("yue-voice")),
        other => panic!("{other:?}"),
    }
}
