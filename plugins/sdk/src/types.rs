//! Plain Rust mirrors of the WIT types in `wit/stages.wit`.

use std::fmt;

/// What a plugin says about itself. The stage kind is filled in by the
/// world crate's `export!`, so it always agrees with the exported world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    /// Audio stages: true when chunk-by-chunk processing equals whole-utterance processing.
    pub streamable: bool,
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
            streamable: false,
            applies: Vec::new(),
        }
    }

    /// Declare the style fields this (audio) stage applies, e.g.
    /// `.applies(&["pitch"])`.
    pub fn applies(mut self, fields: &[&str]) -> Self {
        self.applies = fields.iter().map(|f| f.to_string()).collect();
        self
    }

    /// Declare the (audio) stage streamable.
    pub fn streamable(mut self) -> Self {
        self.streamable = true;
        self
    }
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

/// Where a chunk sits in the utterance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPosition {
    pub index: u32,
    pub last: bool,
}

impl ChunkPosition {
    /// The position of a whole utterance processed at once.
    pub const WHOLE: ChunkPosition = ChunkPosition {
        index: 0,
        last: true,
    };
}
