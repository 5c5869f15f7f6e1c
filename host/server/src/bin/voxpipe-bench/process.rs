//! `voxpipe-bench process`: the whole process, start-up and voice loading included —
//! `voxpipe synth` against Piper's own command line (`piper`, piper-tts from PyPI) on the
//! same text and voice, alternating run by run (issue 18's "whole process" figure).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;

use super::engine::TEXTS;
use super::repo_root;
use super::wyoming::voxpipe_binary;

/// Wall time of one run, ms; `stdin` is written to the child.
fn timed(mut cmd: Command, stdin: Option<&str>) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let mut input = child.stdin.take().context("stdin")?;
    input.write_all(stdin.unwrap_or("").as_bytes())?;
    drop(input);
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "{cmd:?} failed: {status}");
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn process_bench(rounds: usize, voices: &Path, voice: &str) -> anyhow::Result<()> {
    let root = repo_root();
    let model = root.join(voices).join(format!("{voice}.onnx"));
    let dir = tempfile::tempdir()?;
    println!(
        "## Whole process: `voxpipe synth` vs Piper's CLI, {voice} (medians of {rounds}, alternating)\n"
    );
    println!("| text | voxpipe synth | piper | ratio |");
    println!("|---|---:|---:|---:|");
    let paragraph = TEXTS.join(" ");
    for (name, text) in [
        ("one short sentence", TEXTS[1]),
        ("five sentences", &paragraph),
    ] {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        // One untimed run each: the page cache holds the voice for both.
        for round in 0..=rounds {
            let mut v = Command::new(voxpipe_binary());
            v.args(["synth", "--voices"])
                .arg(root.join(voices))
                .args(["--voice", voice, "--text", text, "-o"])
                .arg(dir.path().join("voxpipe.wav"))
                .env("RUST_LOG", "warn");
            let t = timed(v, None)?;
            let mut p = Command::new("piper");
            p.arg("-m")
                .arg(&model)
                .arg("-f")
                .arg(dir.path().join("piper.wav"));
            let u = timed(p, Some(text)).context("piper (pip install piper-tts)")?;
            if round > 0 {
                ours.push(t);
                theirs.push(u);
            }
        }
        let (a, b) = (median(ours), median(theirs));
        println!("| {name} | {a:.0} ms | {b:.0} ms | {:.2} |", a / b);
    }
    Ok(())
}
