//! `voxpipe-bench timestamps`: how well word timestamps agree with the audio
//! (issue 17's measure), and what asking for them costs.
//!
//! SSML documents with breaks and commas are synthesized whole with
//! `timestamps: true` through several pipelines: `default` (pitch, trim,
//! loudness), the same at 16 kHz, `trimmed` (trim-fade only), a stretched
//! copy of `default` (pitch-shift `tempo = 0.8`: the audio stages make it
//! 25 % longer) and `bare` (no audio stage). Where the audio shows a word
//! boundary — a speech region's edges by silence detection
//! (`voxpipe_codec::regions`: 40 dB under the loudest 5 ms, pauses ≥ 150 ms)
//! — the first word's start and the last word's end in the region are
//! compared with it. The server moves a word edge that meets a pause onto
//! the pause's edge in the audio (within 100 ms); a second server with
//! `VOXPIPE_WORD_SNAP_MS=0` shows the model's durations alone. Then the
//! same whole request with and without timestamps, alternating, median wall
//! time.

use std::path::Path;
use std::time::Instant;

use base64::Engine as _;

use super::http::{call, start_with};

/// Documents with breaks and pauses inside sentences.
const DOCS: &[&str] = &[
    "<speak>Hello there <break time=\"400ms\"/> wonderful world of speech. \
     <break time=\"600ms\"/> It costs $3.50 today. <break time=\"300ms\"/> \
     Goodbye, my friend!</speak>",
    "<speak>The river ran high that spring. <break time=\"500ms\"/> Nobody in the \
     village, not even the miller, could remember a flood like it. <break time=\"1s\"/> \
     On May 5th, 2024, the bridge finally gave way. <break time=\"350ms\"/> \
     Children thought it was the best thing that had ever happened to them.</speak>",
];

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn wav_samples(body: &[u8]) -> anyhow::Result<(u32, Vec<f32>)> {
    anyhow::ensure!(body.len() > 44 && &body[0..4] == b"RIFF", "not a WAV");
    let rate = u32::from_le_bytes(body[24..28].try_into()?);
    let data = body
        .windows(4)
        .position(|w| w == b"data")
        .ok_or_else(|| anyhow::anyhow!("no data chunk"))?;
    let samples = body[data + 8..]
        .chunks_exact(2)
        .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
        .collect();
    Ok((rate, samples))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// For each pipeline (and rate): "pipeline | rate" and the errors, in ms,
/// of every speech region's first word start and last word end.
fn accuracy(port: u16) -> anyhow::Result<Vec<(String, Vec<f64>)>> {
    let mut rows = Vec::new();
    for (pipeline, rate) in [
        ("default", None),
        ("default", Some(16000)),
        ("trimmed", None),
        ("stretched", None),
        ("bare", None),
    ] {
        let mut errors = Vec::new();
        for doc in DOCS {
            let mut body = serde_json::json!({
                "text": doc, "input_format": "ssml", "timestamps": true, "pipeline": pipeline,
            });
            if let Some(rate) = rate {
                body["sample_rate"] = rate.into();
            }
            let reply = call(port, "POST", "/v1/tts", &body.to_string())?;
            anyhow::ensure!(
                reply.status == 200,
                "{pipeline}: {} {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            );
            let j: serde_json::Value = serde_json::from_slice(&reply.body)?;
            let audio = base64::engine::general_purpose::STANDARD
                .decode(j["audio"].as_str().unwrap_or_default())?;
            let (got_rate, samples) = wav_samples(&audio)?;
            let words: Vec<(f64, f64)> = j["words"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|w| {
                            (
                                w["start"].as_f64().unwrap_or(0.0),
                                w["end"].as_f64().unwrap_or(0.0),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            for (a, b) in voxpipe_codec::regions::speech_regions(&samples, got_rate, -40.0, 0.15) {
                let inside: Vec<&(f64, f64)> = words
                    .iter()
                    .filter(|w| (w.0 + w.1) / 2.0 > a && (w.0 + w.1) / 2.0 < b)
                    .collect();
                if let (Some(first), Some(last)) = (inside.first(), inside.last()) {
                    errors.push((first.0 - a).abs() * 1000.0);
                    errors.push((last.1 - b).abs() * 1000.0);
                }
            }
        }
        let rate = rate.map_or("voice's".to_string(), |r| format!("{r} Hz"));
        rows.push((format!("{pipeline} | {rate}"), errors));
    }
    Ok(rows)
}

pub fn timestamps_bench(repeats: usize) -> anyhow::Result<()> {
    let root = super::repo_root();
    let dir = std::env::temp_dir().join(format!("voxpipe-bench-ts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&root.join("pipelines"), &dir)?;
    let default = std::fs::read_to_string(dir.join("default.toml"))?;
    let stretched = default
        .replacen("name = \"default\"", "name = \"stretched\"", 1)
        .replacen(
            "plugin = \"pitch-shift\"",
            "plugin = \"pitch-shift\"\nconfig = { tempo = 0.8 }",
            1,
        );
    std::fs::write(dir.join("stretched.toml"), stretched)?;
    let bare = "voice = \"en_US-joe-medium\"\nlanguage = \"en-US\"\n[[stages]]\nkind = \"model\"\n";
    std::fs::write(dir.join("bare.toml"), format!("name = \"bare\"\n{bare}"))?;
    std::fs::write(
        dir.join("trimmed.toml"),
        format!(
            "name = \"trimmed\"\n{bare}[[stages]]\nkind = \"audio\"\nname = \"trim\"\n\
             plugin = \"trim-fade\"\n"
        ),
    )?;
    let started = (|| -> anyhow::Result<_> {
        let pipelines = dir.to_string_lossy().to_string();
        let args = ["--pipelines", pipelines.as_str(), "--cache-mb", "0"];
        let model_only = start_with(
            &args,
            &[("RUST_LOG", "warn"), ("VOXPIPE_WORD_SNAP_MS", "0")],
        )?;
        let rows_model = accuracy(model_only.1)?;
        drop(model_only);
        let server = start_with(&args, &[("RUST_LOG", "warn")])?;
        let rows = accuracy(server.1)?;
        Ok((server, rows, rows_model))
    })();
    let (server, rows, rows_model) = match started {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let port = server.1;

    println!("## Word timestamps against the audio's own boundaries\n");
    println!("| pipeline | rate | edges | median error | p90 | max | within 20 ms | model only: median | p90 | max | within 20 ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let stats = |errors: &mut Vec<f64>| -> String {
        let n = errors.len();
        if n == 0 {
            return "— | — | — | —".into();
        }
        let within = errors.iter().filter(|&&e| e <= 20.0).count();
        let med = median(errors);
        format!(
            "{med:.1} ms | {:.1} ms | {:.1} ms | {within}/{n}",
            errors[(n * 9 / 10).min(n - 1)],
            errors[n - 1]
        )
    };
    let (mut all, mut all_model) = (Vec::new(), Vec::new());
    for ((label, mut errors), (_, mut model)) in rows.into_iter().zip(rows_model) {
        all.extend_from_slice(&errors);
        all_model.extend_from_slice(&model);
        println!(
            "| {label} | {} | {} | {} |",
            errors.len(),
            stats(&mut errors),
            stats(&mut model)
        );
    }
    println!(
        "| **all** | | {} | {} | {} |",
        all.len(),
        stats(&mut all),
        stats(&mut all_model)
    );

    // The cost: the same whole request with and without timestamps, alternating.
    let text = DOCS[1];
    let mut with = Vec::new();
    let mut without = Vec::new();
    for _ in 0..repeats.max(1) {
        for (timestamps, times) in [(false, &mut without), (true, &mut with)] {
            let body = serde_json::json!({
                "text": text, "input_format": "ssml", "timestamps": timestamps,
            });
            let started = Instant::now();
            let reply = call(port, "POST", "/v1/tts", &body.to_string())?;
            anyhow::ensure!(reply.status == 200, "cost run: {}", reply.status);
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let (w, wo) = (median(&mut with), median(&mut without));
    println!("\n| whole request (default pipeline) | without timestamps | with | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| document 2, median of {} | {wo:.0} ms | {w:.0} ms | {:.3} |",
        repeats.max(1),
        w / wo
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
