//! Core domain types shared by the pipeline, the plugin runtime and (later)
//! the engine and HTTP layers. They mirror `wit/stages.wit` but carry no Wasm
//! or telemetry machinery, so every layer can use them.

mod applies;

pub use applies::{Applies, StyleField};
use serde::Serialize;
use std::fmt;

/// The kinds of stage a pipeline can have. `Model` is the native voice
/// (phonemes + inference); the others are plugin stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    Text,
    Style,
    Model,
    Audio,
}

impl StageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::Text => "text",
            StageKind::Style => "style",
            StageKind::Model => "model",
            StageKind::Audio => "audio",
        }
    }

    pub fn parse(s: &str) -> Option<StageKind> {
        match s {
            "text" => Some(StageKind::Text),
            "style" => Some(StageKind::Style),
            "model" => Some(StageKind::Model),
            "audio" => Some(StageKind::Audio),
            _ => None,
        }
    }

    /// The WIT world a plugin of this kind must implement.
    pub fn world(self) -> Option<&'static str> {
        match self {
            StageKind::Text => Some("text-stage"),
            StageKind::Style => Some("style-stage"),
            StageKind::Audio => Some("audio-stage"),
            StageKind::Model => None,
        }
    }
}

impl fmt::Display for StageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A concrete speaking style (see `style` in the WIT).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Style {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialect: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pitch: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise_scale: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise_w: Option<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub emotions: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<(String, String)>,
}

/// What a style stage made of an instruction.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum StyleOutcome {
    /// Understood; `label` becomes the span attribute `instruct_mapped`.
    Mapped { style: Style, label: String },
    /// Not understood, and why: recorded as a warning, never dropped.
    Unmapped { reason: String },
}

/// The request a stage call belongs to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestContext {
    pub request_id: String,
    pub language: String,
    pub voice: String,
    pub pipeline: String,
    /// Set once the style stage has run.
    pub style: Option<Style>,
}

/// Interleaved f32 PCM.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Audio {
    pub sample_rate: u32,
    pub channels: u16,
    pub samples: Vec<f32>,
}

impl Audio {
    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        let frames = self.samples.len() / usize::from(self.channels.max(1));
        frames as f64 / f64::from(self.sample_rate.max(1))
    }
}

/// Where an audio chunk sits in the utterance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPosition {
    pub index: u32,
    pub last: bool,
}

impl ChunkPosition {
    /// A whole utterance processed at once.
    pub const WHOLE: ChunkPosition = ChunkPosition {
        index: 0,
        last: true,
    };
}
