//! `voxpipe voices`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use voxpipe_engine::voice;

#[derive(Args)]
pub struct VoicesArgs {
    /// Folder of Piper voices (NAME.onnx + NAME.onnx.json).
    #[arg(long, default_value = "voices", value_name = "DIR")]
    voices: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl VoicesArgs {
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let (voices, errors) = voice::scan(&self.voices)?;
        for e in &errors {
            eprintln!("warning: {e}");
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&voices_json(&voices))?);
        } else if voices.is_empty() {
            eprintln!(
                "no voices in {} (`.ci/setup` fetches the default one)",
                self.voices.display()
            );
        } else {
            println!(
                "{:<28} {:<9} {:<8} {:>7} {:>8} {:<8} {:>7}",
                "voice", "language", "quality", "rate", "speakers", "espeak", "size"
            );
            for v in &voices {
                let c = &v.config;
                println!(
                    "{:<28} {:<9} {:<8} {:>7} {:>8} {:<8} {:>4} MB",
                    v.name,
                    c.language_tag().unwrap_or_else(|| "?".into()),
                    c.audio.quality.as_deref().unwrap_or("?"),
                    c.audio.sample_rate,
                    c.num_speakers,
                    c.espeak.voice,
                    v.model_bytes >> 20
                );
            }
        }
        Ok(if errors.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

fn voices_json(voices: &[voice::VoiceEntry]) -> serde_json::Value {
    serde_json::Value::Array(
        voices
            .iter()
            .map(|v| {
                serde_json::json!({
                    "name": v.name,
                    "model": v.model,
                    "model_bytes": v.model_bytes,
                    "language": v.config.language_tag(),
                    "quality": v.config.audio.quality,
                    "sample_rate": v.config.audio.sample_rate,
                    "speakers": v.config.num_speakers,
                    "speaker_names": v.config.speaker_id_map.keys().collect::<Vec<_>>(),
                    "espeak_voice": v.config.espeak.voice,
                    "inference": v.config.inference,
                })
            })
            .collect(),
    )
}
