//! `voxpipe-bench longform`: long texts through the real server and the
//! default pipeline, whole and streamed — text length → status, audio,
//! wall time, RTF, time to first audio and the server's peak memory above
//! idle. The audio stages take bounded blocks (issue 22), so the memory of a
//! stream should not grow with its text, and a whole response's only with
//! its audio (which it returns in one piece).

use std::time::Instant;

use super::bounded::{reset_peak, status_bytes};
use super::http::{call, start_with};

/// Prose of at most `chars` characters (and within a sentence of it):
/// varied sentences, repeated.
fn prose(chars: usize) -> String {
    const SENTENCES: &[&str] = &[
        "The river ran high that spring, and the old bridge groaned under every cart that crossed it.",
        "Nobody in the village could remember a flood like it.",
        "By the third week the miller had moved his sacks to the loft, and the baker sold bread from a boat.",
        "Children thought it was the best thing that had ever happened to them.",
        "Their parents, counting the days until the fields would dry, were not so sure.",
        "On the first of May the water finally began to fall, leaving a line of mud on every wall.",
    ];
    let mut text = String::with_capacity(chars + 128);
    for s in SENTENCES.iter().cycle() {
        // Never over `chars`: the limits are tried at their exact length.
        if text.len() + s.len() > chars {
            break;
        }
        text.push_str(s);
        text.push(' ');
    }
    text.truncate(text.trim_end().len());
    text
}

pub fn longform_bench(whole: &[usize], streams: &[usize]) -> anyhow::Result<()> {
    let roomy = std::env::temp_dir().join(format!(
        "voxpipe-bench-longform-{}.toml",
        std::process::id()
    ));
    // Room for the slowest whole responses; a stream's deadline moves with it.
    std::fs::write(&roomy, "[limits]\nrequest_timeout_s = 900.0\n")?;
    let server = start_with(
        &["--config", &roomy.to_string_lossy()],
        &[("RUST_LOG", "warn")],
    )?;
    // Warm up (plugins compiled, voice loaded), then idle is the baseline.
    let warm = serde_json::json!({"text": prose(300)}).to_string();
    call(server.1, "POST", "/v1/tts", &warm)?;
    let idle = status_bytes(&server, "VmRSS:")?;
    println!(
        "## Long-form through the default pipeline (joe, 22.05 kHz WAV; idle RSS {} MiB)\n",
        idle >> 20
    );
    println!(
        "Peak: the server's VmHWM during the request (reset before it), minus its RSS just before \
         the request, and minus its idle RSS after warm-up.\n"
    );
    println!("| mode | characters | speed | status | audio | wall | RTF | first audio | peak RSS above the RSS before | peak RSS above idle |");
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    let mut runs: Vec<(bool, usize, f32)> = Vec::new();
    for &chars in whole {
        for speed in [1.0, 0.5] {
            runs.push((false, chars, speed));
        }
    }
    if let Some(&longest) = whole.iter().max() {
        runs.push((false, longest, 0.25));
    }
    for &chars in streams {
        runs.push((true, chars, 1.0));
    }
    for (stream, chars, speed) in runs {
        let text = prose(chars);
        let body = serde_json::json!({"text": text, "speed": speed, "stream": stream}).to_string();
        reset_peak(&server)?;
        let before = status_bytes(&server, "VmRSS:")?;
        let started = Instant::now();
        let reply = call(server.1, "POST", "/v1/tts", &body)?;
        let wall = started.elapsed().as_secs_f64();
        let hwm = status_bytes(&server, "VmHWM:")?;
        // Above the RSS before the request (what this request added), and
        // above idle (what the allocator kept from earlier requests counts).
        let peak = hwm.saturating_sub(before);
        let over_idle = hwm.saturating_sub(idle);
        let audio = reply.body.len().saturating_sub(44) as f64 / 2.0 / 22_050.0;
        let status = if reply.status == 200 {
            "200".to_string()
        } else {
            let kind = serde_json::from_slice::<serde_json::Value>(&reply.body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_default();
            format!("{} {kind}", reply.status)
        };
        let rtf = if audio > 0.0 { wall / audio } else { 0.0 };
        println!(
            "| {} | {} | {speed} | {status} | {audio:.0} s | {wall:.1} s | {rtf:.3} | {} | {} MiB | {} MiB |",
            if stream { "stream" } else { "whole" },
            text.chars().count(),
            if stream {
                format!("{:.2} s", reply.first_byte.as_secs_f64())
            } else {
                "—".to_string()
            },
            peak >> 20,
            over_idle >> 20
        );
    }
    Ok(())
}
