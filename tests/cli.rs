//! The `voxpipe` command line as a user runs it.

mod common;

use std::process::Output;

fn run(args: &[&str]) -> Output {
    common::plugins();
    let cache = common::root().join("target/test-cache");
    common::voxpipe()
        .arg("--cache-dir")
        .arg(&cache)
        .args(args)
        .output()
        .expect("run voxpipe")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

fn plugin(name: &str) -> String {
    common::plugin(name).display().to_string()
}

fn plugin_dir() -> String {
    common::plugins().display().to_string()
}

#[test]
fn default_pipeline_checks_out() {
    let o = run(&[
        "pipeline",
        "check",
        "pipelines/default.toml",
        "--plugin-dir",
        &plugin_dir(),
    ]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}{}", out, text(&o.stderr));
    assert!(out.contains("pipeline \"default\""), "{out}");
    for stage in [
        "normalize",
        "instruct",
        "model",
        "pitch",
        "trim",
        "loudness",
        "en-normalize 0.1.0",
    ] {
        assert!(out.contains(stage), "{stage} missing in\n{out}");
    }
    let o = run(&[
        "pipeline",
        "check",
        "pipelines/default.toml",
        "--plugin-dir",
        &plugin_dir(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["stages"][1]["plugin"]["name"], "instruct-style");
    // The style table comes from its config_file.
    assert!(v[0]["stages"][1]["plugin"]["config"]["dialects"]["sichuanese"].is_object());
    assert_eq!(v[0]["stages"][3]["plugin"]["audio_mode"], "one-pass");
    assert_eq!(v[0]["stages"][4]["plugin"]["audio_mode"], "two-pass");
    assert_eq!(v[0]["stages"][5]["plugin"]["audio_mode"], "two-pass");
}

#[test]
fn every_shipped_pipeline_checks_out() {
    let root = common::root();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root.join("pipelines")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let o = run(&[
                "pipeline",
                "check",
                &path.display().to_string(),
                "--plugin-dir",
                &plugin_dir(),
            ]);
            assert!(
                o.status.success(),
                "{}: {}{}",
                path.display(),
                text(&o.stdout),
                text(&o.stderr)
            );
            names.push(path.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    names.sort();
    assert_eq!(names, ["default", "home-assistant"]);
}

#[test]
fn broken_pipeline_reports_every_problem_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    let check = |toml: &str| -> String {
        std::fs::write(&file, toml).unwrap();
        let (f, d) = (file.to_str().unwrap(), plugin_dir());
        let o = run(&["pipeline", "check", f, "--plugin-dir", &d]);
        assert_eq!(o.status.code(), Some(1));
        text(&o.stderr)
    };

    let err = check(
        "voice = \"v\"\n[[stages]]\nkind = \"text\"\nplugin = \"missing\"\n\
         [[stages]]\nkind = \"text\"\nplugin = \"text-replace\"\nconfig = { replace = 5 }\n\
         [[stages]]\nkind = \"model\"\n",
    );
    let missing = "broken.toml:4:10: stage 1 \"missing\" (text): plugin `missing` not found";
    assert!(err.contains(missing), "{err}");
    let refused = "broken.toml:8:10: stage 2 \"text-replace\" (text): plugin `text-replace` refused its config";
    assert!(err.contains(refused), "{err}");

    // Order: text stages run before the style stage.
    let err = check(
        "voice = \"v\"\n[[stages]]\nkind = \"style\"\nplugin = \"style-table\"\n\
         config = { rules = [] }\n[[stages]]\nkind = \"text\"\nplugin = \"text-replace\"\n\
         [[stages]]\nkind = \"model\"\n",
    );
    let order =
        "broken.toml:6:1: stage 2 \"text-replace\" (text): text stages come before the style stage";
    assert!(err.contains(order), "{err}");

    // A TOML syntax error names its line too.
    let err = check("voice = \"v\"\n[[stages]\n");
    assert!(err.contains("broken.toml:2:"), "{err}");
}

#[test]
fn inspect_shows_world_identity_and_imports() {
    let o = run(&["plugin", "inspect", &plugin("style-table"), "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["world"], "voxpipe:stages/style-stage@0.3.0");
    assert_eq!(v["wit"], "0.3.0");
    assert_eq!(v["name"], "style-table");
    assert_eq!(v["version"], "0.1.0");
    assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
    assert!(v["imports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i == "voxpipe:stages/log@0.3.0"));

    let o = run(&["plugin", "inspect", &plugin("audio-gain")]);
    let out = text(&o.stdout);
    assert!(
        out.contains("world        voxpipe:stages/audio-stage@0.3.0"),
        "{out}"
    );
    assert!(out.contains("takes audio  one-pass"), "{out}");
    assert!(out.contains("applies      volume"), "{out}");
    // A text stage that reads SSML say-as hints says so, as it declared it.
    let o = run(&["plugin", "inspect", &plugin("en-normalize"), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["applies"], serde_json::json!(["say-as"]));
    let o = run(&["plugin", "inspect", &plugin("text-replace"), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["applies"], serde_json::json!([]));
    // Built against the frozen 0.1.0 WIT: still loads, declares nothing.
    let o = run(&["plugin", "inspect", &plugin("legacy-gain")]);
    let out = text(&o.stdout);
    assert!(
        out.contains("world        voxpipe:stages/audio-stage@0.1.0")
            && out.contains("applies      nothing (built against 0.1.0"),
        "{out}"
    );

    let o = run(&["plugin", "inspect", "Cargo.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("is not a WebAssembly file"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn run_executes_each_stage_kind_standalone() {
    let o = run(&[
        "plugin",
        "run",
        &plugin("text-replace"),
        "--stage",
        "text",
        "--input",
        "Tom  &  Jerry",
        "--config",
        "replace={\"&\"=\"and\"}",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "Tom and Jerry");

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rules]]\nkeywords = [\"悲伤\"]\nlabel = \"emotion=sad\"\nemotions = [\"sad\"]\n",
    )
    .unwrap();
    let o = run(&[
        "plugin",
        "run",
        &plugin("style-table"),
        "--stage",
        "style",
        "--input",
        "用悲伤的语气朗读",
        "--config-file",
        rules.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outcome"], "mapped");
    assert_eq!(v["label"], "emotion=sad");

    // Audio: a WAV in, a quieter WAV out.
    let input = dir.path().join("in.wav");
    let output = dir.path().join("out.wav");
    let tone: Vec<f32> = (0..22050).map(|i| 0.5 * (i as f32 * 0.05).sin()).collect();
    voxpipe_codec::wav::write(
        &input,
        &voxpipe_types::Audio {
            sample_rate: 22050,
            channels: 1,
            samples: tone,
        },
    )
    .unwrap();
    let o = run(&[
        "plugin",
        "run",
        &plugin("audio-gain"),
        "--stage",
        "audio",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--config",
        "gain_db=-6",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let peak_in = voxpipe_codec::wav::read(&input)
        .unwrap()
        .samples
        .iter()
        .fold(0f32, |m, s| m.max(s.abs()));
    let peak_out = voxpipe_codec::wav::read(&output)
        .unwrap()
        .samples
        .iter()
        .fold(0f32, |m, s| m.max(s.abs()));
    assert!(
        (peak_out / peak_in - 0.501).abs() < 0.01,
        "{peak_in} → {peak_out}"
    );

    // Typed failures, clearly worded.
    let audio_gain = plugin("audio-gain");
    let hostile = plugin("hostile");
    fails_with(
        &[
            "plugin",
            "run",
            &audio_gain,
            "--stage",
            "text",
            "--input",
            "x",
        ],
        "run it with --stage audio",
    );
    fails_with(
        &[
            "plugin",
            "run",
            &hostile,
            "--stage",
            "text",
            "--input",
            "x",
            "--config",
            "mode=loop",
            "--deadline-ms",
            "100",
        ],
        "exceeded its deadline of 100 ms",
    );
    fails_with(
        &[
            "plugin",
            "run",
            &audio_gain,
            "--stage",
            "audio",
            "--input",
            "x.wav",
            "-o",
            "y.wav",
            "--config",
            "gain_db=500",
        ],
        "refused the config",
    );
}

/// Run voxpipe, expect exit code 1 and `needle` in its stderr.
fn fails_with(args: &[&str], needle: &str) {
    let o = run(args);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
}

#[test]
fn help_explains_the_commands() {
    let o = run(&["--help"]);
    let out = text(&o.stdout);
    for word in ["pipeline", "plugin", "--cache-dir", "plugin build plugins"] {
        assert!(out.contains(word), "{word} missing in --help:\n{out}");
    }
    let o = run(&["plugin", "run", "--help"]);
    assert!(text(&o.stdout).contains("KEY=VALUE"));
}

#[test]
fn voices_lists_the_default_voice() {
    let o = run(&["voices", "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let joe = v
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "en_US-joe-medium")
        .expect("the default voice (fetched by .ci/setup)");
    assert_eq!(joe["sample_rate"], 22050);
    assert_eq!(joe["language"], "en-US");
    assert_eq!(joe["speakers"], 1);
    assert_eq!(joe["espeak_voice"], "en-us");
    fails_with(
        &["voices", "--voices", "no-such-dir"],
        "cannot read no-such-dir",
    );
}

#[test]
fn synth_speaks_text_into_a_wav() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hello.wav");
    let o = run(&[
        "synth",
        "--text",
        "Hello, world. This is voxpipe.",
        "-o",
        out.to_str().unwrap(),
        "--seed",
        "3",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("2 sentences"),
        "{}",
        text(&o.stderr)
    );
    let audio = voxpipe_codec::wav::read(&out).unwrap();
    assert_eq!(audio.sample_rate, 22050);
    assert!(
        (1.0..6.0).contains(&audio.seconds()),
        "{} s",
        audio.seconds()
    );
    let rms =
        (audio.samples.iter().map(|s| s * s).sum::<f32>() / audio.samples.len() as f32).sqrt();
    assert!(rms > 0.01, "silent output (rms {rms})");
    // The same seed gives the same audio; captions and word timings beside
    // it change nothing in it.
    let again = dir.path().join("again.wav");
    let (vtt, words) = (dir.path().join("again.vtt"), dir.path().join("again.json"));
    let o = run(&[
        "synth",
        "--text",
        "Hello, world. This is voxpipe.",
        "-o",
        again.to_str().unwrap(),
        "--seed",
        "3",
        "--vtt",
        vtt.to_str().unwrap(),
        "--words",
        words.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    let words: serde_json::Value = serde_json::from_slice(&std::fs::read(&words).unwrap()).unwrap();
    let said: Vec<&str> = words
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["text"].as_str().unwrap())
        .collect();
    assert_eq!(said, ["Hello,", "world.", "This", "is", "voxpipe."]);
    let last = words[4]["end"].as_f64().unwrap();
    assert!(
        last <= audio.seconds() + 1e-3 && last > audio.seconds() - 0.5,
        "{last}"
    );
    let vtt = std::fs::read_to_string(&vtt).unwrap();
    assert!(
        vtt.starts_with("WEBVTT\n\n00:00:00.") && vtt.contains("This is voxpipe."),
        "{vtt}"
    );
    fails_with(
        &[
            "synth",
            "--voice",
            "xx_XX-nobody",
            "--text",
            "hi",
            "-o",
            "x.wav",
        ],
        "unknown voice `xx_XX-nobody`; available: en_US-joe-medium",
    );
}

/// The multi-speaker, high-quality (ResBlock1) test voice of tests/engine/make_test_voice.py:
/// listed with its speakers, and `--speaker` picks one by name or id.
#[test]
fn synth_picks_a_speaker_of_a_multi_speaker_voice() {
    let voices = common::root().join("tests/fixtures/voices");
    let voices = voices.to_str().unwrap();
    let o = run(&["voices", "--voices", voices, "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["name"], "test-multi-high");
    assert_eq!(v[0]["speakers"], 3);
    assert_eq!(v[0]["quality"], "high");
    assert_eq!(
        v[0]["speaker_names"],
        serde_json::json!(["alice", "bob", "carol"])
    );

    let dir = tempfile::tempdir().unwrap();
    let synth = |speaker: &str, file: &str| {
        let out = dir.path().join(file);
        let o = run(&[
            "synth",
            "--voices",
            voices,
            "--voice",
            "test-multi-high",
            "--speaker",
            speaker,
            "--text",
            "Hello there.",
            "--noise-scale",
            "0",
            "--noise-w",
            "0",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{speaker}: {}", text(&o.stderr));
        std::fs::read(out).unwrap()
    };
    let bob = synth("bob", "bob.wav");
    // A name and its id are the same speaker; another speaker sounds different.
    assert_eq!(bob, synth("1", "one.wav"));
    assert_ne!(bob, synth("alice", "alice.wav"));
    fails_with(
        &[
            "synth",
            "--voices",
            voices,
            "--voice",
            "test-multi-high",
            "--speaker",
            "dave",
            "--text",
            "hi",
            "-o",
            "x.wav",
        ],
        "has no speaker `dave`; it has: alice, bob, carol",
    );
}
