//! The `info` event answering `describe`: one TTS program (voxpipe, with the
//! listener's pipeline in its description) and every voice in the voices
//! folder with its language, its speakers when it has several, `installed`
//! true (voices are local files), and streaming support. The pipeline's own
//! voice comes first: clients (Home Assistant) take the first voice's
//! language as the default.

use serde_json::{json, Value};

use super::event::Event;
use crate::pipeline::Pipeline;
use voxpipe_engine::voice::VoiceEntry;

/// Where Piper voices come from: the attribution of every voice.
const PIPER_URL: &str = "https://github.com/OHF-Voice/piper1-gpl";

pub fn info(pipeline_name: &str, pipeline: Option<&Pipeline>, catalog: &[VoiceEntry]) -> Event {
    let preferred = pipeline.map(|p| p.voice.as_str());
    let mut voices: Vec<&VoiceEntry> = catalog.iter().collect();
    // Stable: the pipeline's voice first, the rest by name as the folder sorts them.
    voices.sort_by_key(|v| Some(v.name.as_str()) != preferred);
    let voices: Vec<Value> = voices.into_iter().map(voice).collect();
    let description = match pipeline {
        Some(p) => format!(
            "voxpipe pipeline `{}` (version {}){}",
            p.name,
            p.version,
            p.description
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ),
        None => format!("voxpipe pipeline `{pipeline_name}` (not loaded)"),
    };
    let program = json!({
        "name": "voxpipe",
        "attribution": { "name": "voxpipe", "url": "" },
        "installed": true,
        "description": description,
        "version": env!("CARGO_PKG_VERSION"),
        "voices": voices,
        "supports_synthesize_streaming": true,
    });
    Event::new(
        "info",
        json!({
            "asr": [], "tts": [program], "handle": [], "intent": [],
            "wake": [], "mic": [], "snd": [],
        }),
    )
}

fn voice(v: &VoiceEntry) -> Value {
    let c = &v.config;
    // Wyoming languages are written as Piper writes them: `en_US`.
    let languages: Vec<String> = c.language.iter().map(|l| l.code.clone()).collect();
    let speakers = (c.num_speakers > 1).then(|| {
        c.speaker_names()
            .into_iter()
            .map(|name| json!({ "name": name }))
            .collect::<Vec<_>>()
    });
    let described = c
        .language
        .as_ref()
        .and_then(|l| l.name_english.clone())
        .map(|lang| {
            format!(
                "{lang}, {} quality",
                c.audio.quality.as_deref().unwrap_or("unknown")
            )
        });
    json!({
        "name": v.name,
        "attribution": {
            "name": c.dataset.clone().unwrap_or_else(|| "Piper".into()),
            "url": PIPER_URL,
        },
        "installed": true,
        "description": described,
        "version": null,
        "languages": languages,
        "speakers": speakers,
    })
}
