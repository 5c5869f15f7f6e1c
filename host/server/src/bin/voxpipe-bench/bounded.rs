//! `voxpipe-bench bounded`: the work one request may start, through the real
//! server and the default pipeline.
//!
//! Tables: peak memory above the loaded voice for the worst 5000-character
//! inputs (a fresh server per input, since the peak is per process); time to
//! first audio of a stream whose first sentence is long vs short; how long the
//! server takes to stop a 5000-character synthesis after its deadline and
//! after the client hangs up.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::http::{call, start_with, Server};
use super::{ms, stats};

/// A field of the server process's `/proc/PID/status`, bytes.
pub(super) fn status_bytes(server: &Server, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.0.id()))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context(field.to_string())?;
    Ok(kb << 10)
}

/// Resets the process's peak RSS to its current RSS (Linux: `clear_refs` 5), so
/// the peak of the voice's load does not hide the synthesis's.
pub(super) fn reset_peak(server: &Server) -> anyhow::Result<()> {
    std::fs::write(format!("/proc/{}/clear_refs", server.0.id()), "5")
        .context("resetting VmHWM (needs Linux ≥ 4.0 and owning the process)")
}

/// Syntheses the server runs now, from `/metrics`.
fn in_flight(port: u16) -> Option<f64> {
    let body = call(port, "GET", "/metrics", "").ok()?.body;
    String::from_utf8_lossy(&body)
        .lines()
        .find(|l| l.starts_with("tts_requests_in_flight"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// 5000 characters of `unit`, repeated.
fn fill(unit: &str) -> String {
    unit.chars().cycle().take(5000).collect()
}

/// The worst inputs we know of: no sentence ends, and text stages expand them.
fn worst_inputs() -> Vec<(&'static str, String)> {
    let words = [
        "time", "people", "water", "number", "sound", "little", "house", "picture", "again",
        "change",
    ];
    let prose: String = (0..1000)
        .map(|i| words[i * 7 % words.len()])
        .flat_map(|w| [w, " "])
        .flat_map(str::chars)
        .take(5000)
        .collect();
    vec![
        ("digits `1` × 5000", fill("1")),
        ("one word repeated", fill("hello ")),
        ("prose, no punctuation", prose),
        ("CJK, no punctuation", fill("我们今天说四川话天气很好")),
        ("emoji", fill("😀🎉🚀")),
        ("digits in groups", fill("1234567 ")),
    ]
}

fn body(text: &str, stream: bool) -> String {
    serde_json::json!({ "text": text, "stream": stream }).to_string()
}

pub fn bounded_bench(only: Option<&str>) -> anyhow::Result<()> {
    if let Some(part) = only {
        anyhow::ensure!(
            ["memory", "first-audio", "stop"].contains(&part),
            "--only takes memory, first-audio or stop, not {part:?}"
        );
    }
    let run = |part: &str| only.is_none_or(|o| o == part);
    let quiet = [("RUST_LOG", "warn")];
    let roomy =
        std::env::temp_dir().join(format!("voxpipe-bench-roomy-{}.toml", std::process::id()));
    std::fs::write(
        &roomy,
        "[limits]\nmax_request_phonemes = 1000000\nrequest_timeout_s = 600.0\n",
    )?;

    if run("memory") {
        println!(
            "## Peak memory per 5000-character input (default pipeline, a fresh server each)\n"
        );
        println!(
            "With `max_request_phonemes` and the deadline raised so that every input runs \
         (by default the first and fourth are refused at once: 413 request_too_large, \
         50 331 and 63 145 ids).\n"
        );
        println!("Streamed (the default pipeline's audio stages see each sentence) and whole (they see the utterance).\n");
        println!("| input | mode | status | audio | wall | peak RSS above the loaded voice |");
        println!("|---|---|---:|---:|---:|---:|");
        for (name, text) in worst_inputs() {
            for stream in [true, false] {
                let server = start_with(&["--config", &roomy.to_string_lossy()], &quiet)?;
                reset_peak(&server)?;
                let before = status_bytes(&server, "VmRSS:")?;
                let started = Instant::now();
                let reply = call(server.1, "POST", "/v1/tts", &body(&text, stream))?;
                let wall = started.elapsed();
                let grew = status_bytes(&server, "VmHWM:")?.saturating_sub(before);
                let seconds = reply.body.len().saturating_sub(44) as f64 / 2.0 / 22_050.0;
                let status = if reply.status == 200 {
                    "200".to_string()
                } else {
                    let kind = serde_json::from_slice::<serde_json::Value>(&reply.body)
                        .ok()
                        .and_then(|v| v["error"]["type"].as_str().map(str::to_string))
                        .unwrap_or_default();
                    format!("{} {kind}", reply.status)
                };
                println!(
                    "| {name} | {} | {status} | {seconds:.0} s | {:.1} s | {} MiB |",
                    if stream { "stream" } else { "whole" },
                    wall.as_secs_f64(),
                    grew >> 20
                );
            }
        }
    }
    if run("first-audio") {
        println!("\n## Time to first audio of a stream (median of 7)\n");
        println!(
            "`default`: its trim and loudness stages are two-pass (they measure a sentence \
         before they answer), so each sentence (or piece of one) goes out whole; its first \
         model call is kept short instead. `windows`: the same text stage and a one-pass audio \
         stage (pitch-shift, at pitch 0), so the decoder's windows go out as they are made: \
         the first after 32 frames, even in a 3 s sentence (paced windows).\n"
        );
        println!("| pipeline | first sentence | first audio | whole stream |");
        println!("|---|---|---:|---:|");
        let dir =
            std::env::temp_dir().join(format!("voxpipe-bench-pipelines-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("tables"))?;
        let root = super::repo_root();
        std::fs::copy(
            root.join("pipelines/default.toml"),
            dir.join("default.toml"),
        )?;
        std::fs::copy(
            root.join("pipelines/tables/instruct-style.toml"),
            dir.join("tables/instruct-style.toml"),
        )?;
        std::fs::write(
            dir.join("windows.toml"),
            "name = \"windows\"\nvoice = \"en_US-joe-medium\"\nlanguage = \"en-US\"\n\n\
         [[stages]]\nkind = \"text\"\nname = \"normalize\"\nplugin = \"en-normalize\"\n\n\
         [[stages]]\nkind = \"model\"\n\n\
         [[stages]]\nkind = \"audio\"\nname = \"pitch\"\nplugin = \"pitch-shift\"\n",
        )?;
        let server = start_with(&["--pipelines", &dir.to_string_lossy()], &quiet)?;
        let long =
            "Loudness normalization, sentence splitting and pitch shifting all run as sandboxed \
                plugins, while the voice itself runs natively, sentence by sentence, on the CPU \
                or a GPU, and every stage appears as one span in a trace that an operator can \
                open from a user's trace id. Then a short one.";
        let long_no_commas = long.replace(',', "");
        for pipeline in ["default", "windows"] {
            for (name, text) in [
                (
                    "short (\"Hi there.\")",
                    "Hi there. Then the rest of the text follows.",
                ),
                (
                    "3 s (\"The weather today…\")",
                    "The weather today is sunny and warm with a light breeze. Then a short one.",
                ),
                ("~620 ids, with commas", long),
                ("~620 ids, no commas", long_no_commas.as_str()),
            ] {
                let mut first = Vec::new();
                let mut total = Vec::new();
                for i in 0..8 {
                    let b = serde_json::json!({
                        "text": text, "stream": true, "seed": i, "pipeline": pipeline
                    })
                    .to_string();
                    let reply = call(server.1, "POST", "/v1/tts", &b)?;
                    anyhow::ensure!(reply.status == 200, "status {}", reply.status);
                    if i > 0 {
                        // The first is a warm-up.
                        first.push(reply.first_byte);
                        total.push(reply.total);
                    }
                }
                let (first, total) = (stats(first), stats(total));
                println!(
                    "| {pipeline} | {name} | {} | {} |",
                    ms(first.p50),
                    ms(total.p50)
                );
            }
        }
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
    if run("stop") {
        println!("\n## Stopping a 5000-character synthesis (streamed, default pipeline)\n");
        println!("| event | the server stopped after |");
        println!("|---|---:|");
        let config =
            std::env::temp_dir().join(format!("voxpipe-bench-{}.toml", std::process::id()));
        std::fs::write(&config, "[limits]\nrequest_timeout_s = 5.0\n")?;
        let server = start_with(&["--config", &config.to_string_lossy()], &quiet)?;
        let text = fill("The quick brown fox jumps over the lazy dog near the river bank ");
        // Deadline: the response ends (cut short) at 5 s; the synthesis stops then.
        let started = Instant::now();
        let _ = call(server.1, "POST", "/v1/tts", &body(&text, true));
        let until_idle = |port: u16| {
            let t = Instant::now();
            while in_flight(port).is_some_and(|n| n > 0.0) && t.elapsed() < Duration::from_secs(120)
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        until_idle(server.1);
        let after_deadline = started.elapsed().saturating_sub(Duration::from_secs(5));
        println!("| the 5 s deadline | {} |", ms(after_deadline));
        // Hang-up: read the first audio, then close the connection.
        let mut s = TcpStream::connect(("127.0.0.1", server.1))?;
        let b = body(&text, true);
        write!(
        s,
        "POST /v1/tts HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
        b.len()
    )?;
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf)?;
        std::thread::sleep(Duration::from_millis(500));
        drop(s);
        let closed = Instant::now();
        until_idle(server.1);
        println!("| the client hanging up | {} |", ms(closed.elapsed()));
        let _ = std::fs::remove_file(&config);
    }
    let _ = std::fs::remove_file(&roomy);
    Ok(())
}
