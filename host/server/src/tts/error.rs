//! Every way a synthesis can fail, with the stable `type` string clients see
//! (in `{"error": {"type": …, "message": …}}` over HTTP). Front ends map the
//! variants to their protocol's codes (HTTP: `http/error.rs`); docs/api.md
//! lists them; keep the two in step.

use std::time::Duration;

use crate::pipeline::StageFailure;
use voxpipe_engine::synth::EngineError;
use voxpipe_plugin::PluginError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    /// A field is missing, empty or out of range.
    #[error("{0}")]
    InvalidInput(String),
    /// The text is longer than the server accepts.
    #[error("text is {chars} characters; this server accepts at most {limit}{}", if *streamed { " in a stream ([limits] max_stream_chars)" } else { " in a whole response ([limits] max_text_chars; streams take longer texts)" })]
    TextTooLong {
        chars: usize,
        limit: usize,
        /// Which limit: a stream's (`max_stream_chars`) or a whole response's.
        streamed: bool,
    },
    /// The request would need more memory or work than this server allows
    /// one request (names the limit).
    #[error("{0}")]
    RequestTooLarge(String),
    /// One sentence is longer than the voice may speak in one go.
    #[error("{0}; split it with punctuation or ask for a higher speed")]
    SentenceTooLong(String),
    /// The SSML document is not well-formed XML.
    #[error("{0}")]
    InvalidSsml(String),
    /// The SSML document uses an element, attribute or value outside the
    /// supported subset (the message names it).
    #[error("{0}")]
    SsmlUnsupported(String),
    /// The style has fields the pipeline cannot honor and it is set to
    /// refuse such requests (`on_unhonored = "refuse"`).
    #[error("{0}")]
    StyleUnsupported(String),
    #[error("unknown pipeline `{name}`; available: {available}")]
    UnknownPipeline { name: String, available: String },
    #[error("unknown voice `{name}`; available: {available}")]
    UnknownVoice { name: String, available: String },
    #[error("unknown speaker `{name}` for voice `{voice}`; available: {available}")]
    UnknownSpeaker {
        name: String,
        voice: String,
        available: String,
    },
    /// The queue is full: try again after `retry_after`.
    #[error("the server is at capacity ({queued} requests queued); retry after {} s", retry_after.as_secs())]
    Overloaded {
        queued: usize,
        retry_after: Duration,
    },
    /// The request's deadline passed (queued or synthesizing).
    #[error("the request did not finish within {0:?}")]
    Timeout(Duration),
    /// A plugin stage failed; names the stage and plugin.
    #[error("{0}")]
    Stage(Box<StageFailure>),
    /// The GPU ran out of memory; the server keeps serving.
    #[error("{0}")]
    OutOfMemory(String),
    /// The voice model failed.
    #[error("{0}")]
    Engine(String),
    /// The synthesized audio cannot be encoded as asked (the pipeline's audio
    /// stages made a format the codec cannot carry).
    #[error("{0}")]
    Encode(String),
    /// The server is shutting down or the client went away.
    #[error("{0}")]
    Cancelled(String),
    /// The engine stopped because the run asked it to; the run turns this into
    /// `Cancelled` or `Timeout` (it never reaches a client).
    #[error("the synthesis was stopped")]
    Stopped,
    /// A bug or an environment problem.
    #[error("{0}")]
    Internal(String),
}

impl TtsError {
    /// The `type` clients see; stable, snake_case.
    pub fn kind(&self) -> &'static str {
        match self {
            TtsError::InvalidInput(_) => "invalid_input",
            TtsError::TextTooLong { .. } => "text_too_long",
            TtsError::SentenceTooLong(_) => "sentence_too_long",
            TtsError::RequestTooLarge(_) => "request_too_large",
            TtsError::StyleUnsupported(_) => "style_unsupported",
            TtsError::InvalidSsml(_) => "invalid_ssml",
            TtsError::SsmlUnsupported(_) => "ssml_unsupported",
            TtsError::UnknownPipeline { .. } => "unknown_pipeline",
            TtsError::UnknownVoice { .. } => "unknown_voice",
            TtsError::UnknownSpeaker { .. } => "unknown_speaker",
            TtsError::Overloaded { .. } => "overloaded",
            TtsError::Timeout(_) => "timeout",
            TtsError::Stage(f) => match &f.error {
                PluginError::Timeout(_) => "stage_timeout",
                PluginError::InvalidInput(_) => "stage_invalid_input",
                PluginError::Overloaded => "overloaded",
                _ => "plugin_fault",
            },
            TtsError::OutOfMemory(_) => "oom",
            TtsError::Engine(_) => "model_error",
            TtsError::Encode(_) => "encode_error",
            TtsError::Cancelled(_) | TtsError::Stopped => "cancelled",
            TtsError::Internal(_) => "internal",
        }
    }

    /// The stage that failed, when a plugin stage did.
    pub fn stage(&self) -> Option<&StageFailure> {
        match self {
            TtsError::Stage(f) => Some(f),
            _ => None,
        }
    }
}

impl From<super::ssml::SsmlError> for TtsError {
    fn from(e: super::ssml::SsmlError) -> Self {
        use super::ssml::SsmlError;
        match e {
            SsmlError::Malformed { .. } => TtsError::InvalidSsml(e.to_string()),
            SsmlError::Unsupported(m) => TtsError::SsmlUnsupported(m),
            SsmlError::TooLarge(m) => TtsError::RequestTooLarge(m),
        }
    }
}

impl From<StageFailure> for TtsError {
    fn from(f: StageFailure) -> Self {
        TtsError::Stage(Box::new(f))
    }
}

impl From<crate::pipeline::ChainError> for TtsError {
    fn from(e: crate::pipeline::ChainError) -> Self {
        match e {
            crate::pipeline::ChainError::Stage(f) => TtsError::from(f),
            too_long @ crate::pipeline::ChainError::TooLong { .. } => {
                TtsError::RequestTooLarge(too_long.to_string())
            }
        }
    }
}

impl From<EngineError> for TtsError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::UnknownVoice { name, available } => {
                TtsError::UnknownVoice { name, available }
            }
            EngineError::OutOfMemory { .. } => TtsError::OutOfMemory(e.to_string()),
            EngineError::Stopped => TtsError::Stopped,
            EngineError::TooManyIds { limit } => TtsError::RequestTooLarge(format!(
                "the text makes more than {limit} phoneme ids; this server synthesizes at most \
                 {limit} per request ([limits] max_request_phonemes)"
            )),
            EngineError::NothingToSay => {
                TtsError::InvalidInput("the text has nothing to say once normalized".into())
            }
            other if other.kind() == "invalid_input" => TtsError::InvalidInput(other.to_string()),
            other if other.kind() == "sentence_too_long" => {
                TtsError::SentenceTooLong(other.to_string())
            }
            other => TtsError::Engine(other.to_string()),
        }
    }
}
