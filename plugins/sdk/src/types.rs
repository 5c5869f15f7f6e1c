//! Plain Rust mirrors of the WIT types in `wit/stages.wit`.

use std::fmt;

/// What a plugin says about itself. The stage kind is filled in by the
/// world crate's `export!`, so it always agrees with the exported world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    /// Audio stages: one pass over an utterance's blocks, or a measuring
    /// pass then an applying pass (see [`Passes`]).
    pub passes: Passes,
    /// Audio stages: the style fields this stage applies to the audio
    /// (`pitch`, `volume`, `emotions`, `emotion:whisper`, `extra:KEY`, …; see
    /// `applies` in wit/stages.wit). The host reports fields a request set
    /// that no stage applies as unhonored.
    pub applies: Vec<String>,
}

impl PluginInfo {
    /// Usually `PluginInfo::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), "…")`.
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        PluginInfo {
            name: name.to_string(),
            version: version.to_string(),
            description: description.to_string(),
            passes: Passes::One,
            applies: Vec::new(),
        }
    }

    /// Declare the style fields this (audio) stage applies, e.g.
    /// `.applies(&["pitch"])`.
    pub fn applies(mut self, fields: &[&str]) -> Self {
        self.applies = fields.iter().map(|f| f.to_string()).collect();
        self
    }

    /// Declare an (audio) stage that measures the utterance before it
    /// applies anything ([`Passes::Two`]).
    pub fn two_pass(mut self) -> Self {
        self.passes = Passes::Two;
        self
    }
}

/// How an audio stage goes over an utterance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Passes {
    /// Every block once, in order, carrying what it needs in the state.
    #[default]
    One,
    /// A measuring pass (0) over every block, returning no audio, then an
    /// applying pass (1) that starts from the state the first one ended with.
    Two,
}

/// A concrete speaking style; `None` fields leave the pipeline's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Style {
    pub voice: Option<String>,
    pub language: Option<String>,
    pub speaker: Option<String>,
    pub dialect: Option<String>,
    /// Speaking-rate multiplier (1.0 = normal).
    pub speed: Option<f32>,
    /// Pitch shift in semitones.
    pub pitch: Option<f32>,
    /// Volume change in dB.
    pub volume: Option<f32>,
    pub noise_scale: Option<f32>,
    pub noise_w: Option<f32>,
    pub emotions: Vec<String>,
    pub extra: Vec<(String, String)>,
}

/// The request a call belongs to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    pub request_id: String,
    pub language: String,
    pub voice: String,
    pub pipeline: String,
    /// The style chosen by the style stage; `None` before it has run.
    pub style: Option<Style>,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageError {
    /// The input cannot be processed: the caller's fault (4xx).
    InvalidInput(String),
    /// The config table is wrong: refused at pipeline load.
    InvalidConfig(String),
    /// The plugin failed on its own (5xx).
    PluginFault(String),
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StageError::InvalidInput(m) => write!(f, "invalid input: {m}"),
            StageError::InvalidConfig(m) => write!(f, "invalid config: {m}"),
            StageError::PluginFault(m) => write!(f, "plugin fault: {m}"),
        }
    }
}

impl std::error::Error for StageError {}

/// The result of mapping an instruction.
#[derive(Debug, Clone, PartialEq)]
pub enum StyleOutcome {
    /// Understood: the style and a short label, e.g. `dialect=sichuanese;emotion=sad`.
    Mapped { style: Style, label: String },
    /// Not understood, and why. Never map silently to a default.
    Unmapped(String),
}

/// Interleaved f32 PCM.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Audio {
    pub sample_rate: u32,
    pub channels: u16,
    pub samples: Vec<f32>,
}

/// The most audio one block holds, in seconds (10 × sample-rate frames).
pub const MAX_BLOCK_SECONDS: u32 = 10;
/// The most state a stage may carry between blocks, in bytes.
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
    /// Frames of the utterance (at this stage's input) before this block.
    pub offset: u64,
    /// True for the final block of the pass.
    pub last: bool,
    /// The utterance's frames at this stage's input: known in pass 1 only.
    pub total_frames: Option<u64>,
}

/// One call's input: a block of audio, where it sits, and the state the
/// previous call of this utterance returned (empty on the first call).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Block {
    pub audio: Audio,
    pub position: BlockPosition,
    pub state: Vec<u8>,
}

/// One call's output: audio (empty in pass 0) and the state for the next call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockOutput {
    pub audio: Audio,
    pub state: Vec<u8>,
}

impl BlockOutput {
    /// Audio out, nothing to remember.
    pub fn audio(audio: Audio) -> Self {
        BlockOutput {
            audio,
            state: Vec::new(),
        }
    }
}
