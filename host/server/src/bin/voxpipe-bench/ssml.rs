//! `voxpipe-bench ssml`: what the SSML front end costs. A document of about
//! 5 000 characters (sentences in `s`, breaks, prosody, say-as, sub) is
//! parsed and lowered many times (median), then synthesized whole through the
//! real server and the default pipeline; the table gives both and their
//! ratio (issue 17's goal: parsing and lowering under 1 % of synthesis).
//! Then a streamed document of one long block: the server's peak memory
//! above idle (such a block is spoken a few sentences at a time).

use std::time::Instant;

use super::bounded::{reset_peak, status_bytes};
use super::http::{call, start_with};
use voxpipe::tts::ssml;

/// An SSML document of about `chars` characters.
pub fn document(chars: usize) -> String {
    const SENTENCES: &[&str] = &[
        "The river ran high that spring, and the old bridge groaned under every cart.",
        "Nobody in the village could remember a flood like it.",
        "By the third week the miller had moved his sacks to the loft.",
        "Children thought it was the best thing that had ever happened to them.",
    ];
    let mut doc =
        String::from("<?xml version=\"1.0\"?>\n<speak version=\"1.1\" xml:lang=\"en-US\">\n<p>");
    let mut i = 0usize;
    while doc.len() < chars.saturating_sub(40) {
        let s = SENTENCES[i % SENTENCES.len()];
        match i % 6 {
            0 => doc.push_str(&format!("<s>{s}</s><break time=\"300ms\"/>")),
            1 => doc.push_str(&format!(
                "<s><prosody rate=\"90%\" volume=\"-2dB\">{s}</prosody></s>"
            )),
            2 => doc.push_str(&format!(
                "<s>On <say-as interpret-as=\"date\" format=\"mdy\">5/{}/2024</say-as> {s}</s>",
                i % 28 + 1
            )),
            3 => doc.push_str(&format!(
                "<s>Room <say-as interpret-as=\"characters\">b{}</say-as>: {s}</s>",
                i % 9
            )),
            4 => doc.push_str(&format!(
                "<s><sub alias=\"Doctor\">Dr.</sub> Smith said: {s}</s>"
            )),
            _ => doc.push_str(&format!("<s>{s}</s>\n")),
        }
        i += 1;
    }
    doc.push_str("</p>\n</speak>");
    doc
}

pub fn ssml_bench(chars: usize, parses: usize, stream_chars: usize) -> anyhow::Result<()> {
    let doc = document(chars);
    let mut times = Vec::with_capacity(parses);
    let mut blocks = 0;
    for _ in 0..parses {
        let started = Instant::now();
        let lowered = ssml::parse(&doc).map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(started.elapsed().as_secs_f64());
        blocks = lowered.len();
    }
    times.sort_by(f64::total_cmp);
    let parse = times[times.len() / 2];
    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];

    let roomy =
        std::env::temp_dir().join(format!("voxpipe-bench-ssml-{}.toml", std::process::id()));
    std::fs::write(
        &roomy,
        "[limits]\nrequest_timeout_s = 900.0\nmax_text_chars = 8000\n[wyoming]\nmax_event_kib = 64\n",
    )?;
    let server = start_with(
        &["--config", &roomy.to_string_lossy(), "--cache-mb", "0"],
        &[("RUST_LOG", "warn")],
    )?;
    let body = serde_json::json!({"text": doc, "input_format": "ssml"}).to_string();
    // Warm up (plugins compiled, voice loaded); then idle is the baseline.
    call(
        server.1,
        "POST",
        "/v1/tts",
        &serde_json::json!({"text": "<speak>Hello.</speak>", "input_format": "ssml"}).to_string(),
    )?;
    let idle = status_bytes(&server, "VmRSS:")?;

    // A streamed document of one long block (spoken a few sentences at a
    // time, as plain text is): the server's peak memory above idle.
    let sentence = "The river ran high that spring, and the old bridge groaned under every cart. ";
    let long = sentence.repeat(stream_chars / sentence.len());
    let stream_doc = format!("<speak><prosody rate=\"fast\">{long}</prosody></speak>");
    let stream_body = serde_json::json!({"text": stream_doc, "input_format": "ssml", "stream": true, "format": "pcm"}).to_string();
    reset_peak(&server)?;
    let started = Instant::now();
    let streamed = call(server.1, "POST", "/v1/tts", &stream_body)?;
    let stream_wall = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        streamed.status == 200,
        "stream: {} {}",
        streamed.status,
        String::from_utf8_lossy(&streamed.body)
    );
    let stream_peak = status_bytes(&server, "VmHWM:")?.saturating_sub(idle);
    let stream_audio = streamed.body.len() as f64 / 2.0 / 22_050.0;

    let started = Instant::now();
    let reply = call(server.1, "POST", "/v1/tts", &body)?;
    let synth = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        reply.status == 200,
        "synthesis: {} {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
    let audio = reply.body.len().saturating_sub(44) as f64 / 2.0 / 22_050.0;
    println!("## SSML: parse + lowering against synthesis (default pipeline, joe)\n");
    println!("| document | blocks | parse + lower (median of {parses}) | p99 | synthesis (whole, one request) | audio | share |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} chars | {blocks} | {:.3} ms | {:.3} ms | {synth:.1} s | {audio:.0} s | {:.4} % |",
        doc.chars().count(),
        parse * 1e3,
        p99 * 1e3,
        100.0 * parse / synth
    );
    println!(
        "\n| streamed document, one block | audio | wall | first audio | peak RSS above idle |"
    );
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {} chars | {stream_audio:.0} s | {stream_wall:.1} s | {:.2} s | {} MiB |",
        stream_doc.chars().count(),
        streamed.first_byte.as_secs_f64(),
        stream_peak >> 20
    );
    Ok(())
}
