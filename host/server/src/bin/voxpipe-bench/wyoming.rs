//! `voxpipe-bench wyoming`: voxpipe's Wyoming listener next to `wyoming-piper`
//! (what Home Assistant users run today) on the same voice and texts, in one
//! run of the public `wyoming-bench` (both servers, non-streaming and
//! streaming). Prints each server's means and the ratios the project's goals
//! are stated in: non-streaming total time and streaming time to first
//! audio, voxpipe ÷ wyoming-piper (goal ≤ 0.5).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::repo_root;

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited ({status}) before listening");
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("{what} did not listen on {port} within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The `voxpipe` next to this benchmark's binary (the same build), else target/release.
pub(crate) fn voxpipe_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("voxpipe")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| repo_root().join("target/release/voxpipe"))
}

/// One row of wyoming-bench's summary: (TTFT mean, total mean), ms.
#[derive(Debug, Clone, Copy)]
struct Row {
    ok: u32,
    ttft_ms: f64,
    total_ms: f64,
}

/// The `Summary` tables of wyoming-bench's report: mode → server → row.
fn parse_summary(report: &str, server: &str, mode: &str) -> Option<Row> {
    let summary = report.split("Summary (lower is better)").nth(1)?;
    let section = summary.split(&format!("[{mode}]")).nth(1)?;
    let section = section.split("\n[").next()?;
    let line = section
        .lines()
        .find(|l| l.trim_start().starts_with(server))?;
    // server label, ok, TTFT_mean, TTFT_p95, Total_mean, RTF_norm, RTF_adj, RTF_act, audio_dur
    let fields: Vec<&str> = line.split_whitespace().collect();
    let n = fields.len();
    if n < 9 {
        return None;
    }
    Some(Row {
        ok: fields[n - 8].parse().ok()?,
        ttft_ms: fields[n - 7].parse().ok()?,
        total_ms: fields[n - 5].parse().ok()?,
    })
}

pub(super) fn wyoming_bench(
    rounds: usize,
    warmup: usize,
    voice: &str,
    voices: &str,
    pipelines: &[String],
) -> anyhow::Result<()> {
    let root = repo_root();
    let plugins = super::built_plugins()?;
    let (http, piper) = (free_port()?, free_port()?);
    // One Wyoming listener per pipeline, in one server.
    let listeners: Vec<(String, u16)> = pipelines
        .iter()
        .map(|p| Ok((p.clone(), free_port()?)))
        .collect::<anyhow::Result<_>>()?;
    let mut command = Command::new(voxpipe_binary());
    command
        .current_dir(&root)
        .args(["serve", "--bind", &format!("127.0.0.1:{http}")]);
    for (pipeline, port) in &listeners {
        command.args([
            "--wyoming",
            &format!("tcp://127.0.0.1:{port}?pipeline={pipeline}"),
        ]);
    }
    let mut voxpipe = Running(
        command
            .arg("--plugin-dir")
            .arg(&plugins)
            .args(["--voices", voices])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("voxpipe (cargo build --release -p voxpipe)")?,
    );
    for (_, port) in &listeners {
        wait_for_port(*port, &mut voxpipe.0, "voxpipe")?;
    }
    let mut wyoming_piper = Running(
        Command::new("python3")
            .current_dir(&root)
            .args([
                "-m",
                "wyoming_piper",
                "--voice",
                voice,
                "--data-dir",
                voices,
            ])
            .args([
                "--uri",
                &format!("tcp://127.0.0.1:{piper}"),
                "--local-files-only",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("python3 -m wyoming_piper (.ci/setup installs it)")?,
    );
    wait_for_port(piper, &mut wyoming_piper.0, "wyoming-piper")?;
    let vox_names: Vec<(String, String)> = listeners
        .iter()
        .map(|(pipeline, port)| (pipeline.clone(), format!("127.0.0.1:{port}")))
        .collect();
    let piper_name = format!("127.0.0.1:{piper}");
    let config = format!("{{\"voice\":\"{voice}\"}}");
    eprintln!("wyoming-bench: voxpipe {vox_names:?}, wyoming-piper {piper_name}, {rounds} rounds");
    let out = Command::new("wyoming-bench")
        .arg("tts")
        .args(vox_names.iter().map(|(_, name)| name))
        .args([&piper_name, "--config", &config])
        .args([
            "--rounds",
            &rounds.to_string(),
            "--warmup",
            &warmup.to_string(),
        ])
        .args(["--timeout", "120"])
        .output()
        .context("wyoming-bench (.ci/setup installs it)")?;
    let report = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wyoming-bench failed:\n{report}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let row = |server: &str, mode: &str| {
        parse_summary(&report, server, mode)
            .with_context(|| format!("no {mode} summary for {server} in:\n{report}"))
    };
    println!("\n## Wyoming: voxpipe vs wyoming-piper 2.5.2 ({voice}, wyoming-bench 2026.10.0, means of {rounds} rounds × its 4 texts)\n");
    println!("| mode | server | ok | time to first audio (ms) | total (ms) |");
    println!("|---|---|---:|---:|---:|");
    let mut ratios = Vec::new();
    for mode in ["non_streaming", "streaming"] {
        let p = row(&piper_name, mode)?;
        for (pipeline, vox_name) in &vox_names {
            let v = row(vox_name, mode)?;
            println!(
                "| {mode} | voxpipe (pipeline {pipeline}) | {} | {:.1} | {:.1} |",
                v.ok, v.ttft_ms, v.total_ms
            );
            ratios.push((
                mode,
                pipeline,
                v.ttft_ms / p.ttft_ms,
                v.total_ms / p.total_ms,
            ));
        }
        println!(
            "| {mode} | wyoming-piper | {} | {:.1} | {:.1} |",
            p.ok, p.ttft_ms, p.total_ms
        );
    }
    println!("\n| ratio voxpipe ÷ wyoming-piper | pipeline | time to first audio | total | goal |");
    println!("|---|---|---:|---:|---|");
    for (mode, pipeline, ttft, total) in ratios {
        let goal = if mode == "non_streaming" {
            format!(
                "total ≤ 0.5: {}",
                if total <= 0.5 { "met" } else { "not met" }
            )
        } else {
            format!(
                "first audio ≤ 0.5: {}",
                if ttft <= 0.5 { "met" } else { "not met" }
            )
        };
        println!("| {mode} | {pipeline} | {ttft:.2} | {total:.2} | {goal} |");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_summary_tables() {
        let report = "\
==============================================================================
Summary (lower is better)
==============================================================================

[non_streaming]
  server                              ok   TTFT_mean    TTFT_p95  Total_mean  RTF_norm   RTF_adj   RTF_act   audio_dur
  127.0.0.1:1 (voxpipe)                4        87.3        90.1       324.4      0.08      1.00      0.08       3.96s
  127.0.0.1:2 (piper)                  4       700.0       800.0      1000.0      0.28      1.00      0.25       3.96s

[streaming]
  server                              ok   TTFT_mean    TTFT_p95  Total_mean  RTF_norm   RTF_adj   RTF_act   audio_dur
  127.0.0.1:1 (voxpipe)                4       169.4       170.0       417.4      0.12      1.00      0.12       3.56s
";
        let r = parse_summary(report, "127.0.0.1:1", "streaming").unwrap();
        assert_eq!((r.ok, r.ttft_ms, r.total_ms), (4, 169.4, 417.4));
        let r = parse_summary(report, "127.0.0.1:2", "non_streaming").unwrap();
        assert_eq!((r.ok, r.ttft_ms, r.total_ms), (4, 700.0, 1000.0));
        assert!(parse_summary(report, "127.0.0.1:2", "streaming").is_none());
    }
}
