//! What an HTTP client sees when a request fails: the stable `type` string,
//! the status code and `Retry-After`. The synthesis service reports typed
//! errors ([`TtsError`]) without knowing about HTTP; this module maps them to
//! statuses and adds the failures only HTTP has (authentication, a body that
//! is not JSON, an audio format this server cannot encode). docs/api.md lists
//! every type; keep the two in step.

use crate::pipeline::StageFailure;
use crate::tts::TtsError;
use voxpipe_plugin::PluginError;

/// Why an HTTP request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not the JSON the endpoint takes.
    #[error("{0}")]
    InvalidJson(String),
    /// Missing or wrong API key.
    #[error("{0}")]
    Unauthorized(String),
    /// The audio format is not one this server can encode (or stream).
    #[error("{0}")]
    UnsupportedFormat(String),
    /// The synthesis service refused or failed the request.
    #[error(transparent)]
    Synthesis(#[from] TtsError),
}

impl ApiError {
    /// The `type` clients see; stable, snake_case.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::UnsupportedFormat(_) => "unsupported_format",
            ApiError::Synthesis(e) => e.kind(),
        }
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::InvalidJson(_) | ApiError::UnsupportedFormat(_) => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Synthesis(e) => synthesis_status(e),
        }
    }

    /// Seconds a client should wait before retrying, for `Retry-After`.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Synthesis(TtsError::Overloaded { retry_after, .. }) => {
                Some(retry_after.as_secs().max(1))
            }
            ApiError::Synthesis(TtsError::OutOfMemory(_)) => Some(5),
            ApiError::Synthesis(TtsError::Stage(f))
                if matches!(f.error, PluginError::Overloaded) =>
            {
                Some(1)
            }
            _ => None,
        }
    }

    /// The stage that failed, when a plugin stage did.
    pub fn stage(&self) -> Option<&StageFailure> {
        match self {
            ApiError::Synthesis(e) => e.stage(),
            _ => None,
        }
    }

    /// A client that went away (not the server's failure).
    pub fn is_cancelled(&self) -> bool {
        matches!(self, ApiError::Synthesis(TtsError::Cancelled(_)))
    }
}

fn synthesis_status(e: &TtsError) -> u16 {
    match e {
        TtsError::UnknownPipeline { .. }
        | TtsError::UnknownVoice { .. }
        | TtsError::UnknownSpeaker { .. } => 404,
        TtsError::TextTooLong { .. } | TtsError::RequestTooLarge(_) => 413,
        TtsError::InvalidInput(_)
        | TtsError::SentenceTooLong(_)
        | TtsError::StyleUnsupported(_) => 422,
        TtsError::Overloaded { .. } | TtsError::OutOfMemory(_) => 503,
        TtsError::Timeout(_) => 504,
        TtsError::Stage(f) => match &f.error {
            // The plugin refused this input: the caller can change it.
            PluginError::InvalidInput(_) => 422,
            PluginError::Overloaded => 503,
            PluginError::Timeout(_) => 504,
            _ => 502,
        },
        TtsError::Engine(_) | TtsError::Encode(_) | TtsError::Internal(_) => 500,
        // Nobody reads it (client gone) or the server is stopping.
        TtsError::Cancelled(_) | TtsError::Stopped => 503,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn statuses_and_kinds_are_stable() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::InvalidJson("x".into()), 400, "invalid_json"),
            (
                TtsError::InvalidInput("x".into()).into(),
                422,
                "invalid_input",
            ),
            (
                TtsError::TextTooLong { chars: 9, limit: 5 }.into(),
                413,
                "text_too_long",
            ),
            (
                TtsError::Overloaded {
                    queued: 3,
                    retry_after: Duration::from_secs(2),
                }
                .into(),
                503,
                "overloaded",
            ),
            (
                TtsError::Timeout(Duration::from_secs(1)).into(),
                504,
                "timeout",
            ),
            (TtsError::OutOfMemory("x".into()).into(), 503, "oom"),
        ];
        for (e, status, kind) in cases {
            assert_eq!(e.status(), status, "{e}");
            assert_eq!(e.kind(), kind, "{e}");
        }
        let e = ApiError::from(TtsError::Overloaded {
            queued: 3,
            retry_after: Duration::from_secs(2),
        });
        assert_eq!(e.retry_after(), Some(2));
    }
}
