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

/// The most audio one `process-block` call gets, in seconds of its rate.
pub const MAX_BLOCK_SECONDS: u32 = 10;
/// The most state an audio stage may carry from one block to the next.
pub const MAX_STATE_BYTES: usize = 1 << 20;

/// Where a block sits in the utterance (see `block-position` in the WIT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockPosition {
    /// Which utterance of the response: 0 in a whole response and for
    /// one-pass stages; in a stream, a two-pass stage's sentences count 0, 1, 2….
    pub utterance: u32,
    /// 0, or 1 for the applying pass of a two-pass stage.
    pub pass: u8,
    /// 0 for the first block of the pass.
    pub index: u32,
    /// Frames of the utterance (at the stage's input) before this block.
    pub offset: u64,
    /// True for the final block of the pass.
    pub last: bool,
    /// The utterance's frames at the stage's input, known in pass 1.
    pub total_frames: Option<u64>,
}

/// How an audio stage takes an utterance: what its WIT version and its
/// `plugin-info` say. The host drives each accordingly
/// (`host/server/src/pipeline/blocks.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AudioMode {
    /// 0.3+: blocks in order, once, with a carried state.
    OnePass,
    /// 0.3+: a measuring pass over every block, then an applying pass.
    TwoPass,
    /// 0.1/0.2, `streamable`: chunk by chunk, nothing carried.
    Chunks,
    /// 0.1/0.2, not streamable: the whole utterance in one call, so the
    /// longest audio it takes is bounded by its memory.
    Whole,
}

impl AudioMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AudioMode::OnePass => "one-pass",
            AudioMode::TwoPass => "two-pass",
            AudioMode::Chunks => "chunks",
            AudioMode::Whole => "whole",
        }
    }

    /// Whether the host holds back a whole utterance (in a stream: a
    /// sentence) before this stage can return anything.
    pub fn buffers(self) -> bool {
        matches!(self, AudioMode::TwoPass | AudioMode::Whole)
    }
}
