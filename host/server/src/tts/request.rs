//! What a client asks for ([`SynthesisRequest`]), the service's settings
//! ([`ServiceOptions`]), and the checks that turn a request into a [`Job`]
//! bound to one pipeline version. Every refusal here is the client's to fix.

use std::sync::Arc;
use std::time::Duration;

use crate::pipeline::Pipeline;

use super::TtsError;

/// The request as a client gave it (every front end maps onto this).
#[derive(Debug, Clone, Default)]
pub struct SynthesisRequest {
    pub text: String,
    pub pipeline: Option<String>,
    pub voice: Option<String>,
    pub speaker: Option<String>,
    pub language: Option<String>,
    pub instruct: Option<String>,
    /// 0.25–4.0; above 1 is faster.
    pub speed: Option<f32>,
    /// Resample the output to this rate (8–192 kHz).
    pub sample_rate: Option<u32>,
    /// Seed of the voice's noise (default 0: the same request gives the same audio).
    pub seed: Option<u64>,
    /// How `text` is read: plain text, or the SSML subset (`ssml.rs`).
    pub input_format: InputFormat,
    /// Report when each word is heard (`StreamEvent::Words`, `words.rs`).
    pub timestamps: bool,
}

/// How a request's text is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InputFormat {
    #[default]
    Text,
    /// The SSML subset of `ssml.rs` (docs/ssml.md).
    Ssml,
}

impl InputFormat {
    /// `"text"` / `"ssml"` (as the request fields spell them).
    pub fn parse(name: &str) -> Result<InputFormat, TtsError> {
        match name {
            "text" | "" => Ok(InputFormat::Text),
            "ssml" => Ok(InputFormat::Ssml),
            other => Err(TtsError::InvalidInput(format!(
                "`input_format` {other:?} is not \"text\" or \"ssml\""
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InputFormat::Text => "text",
            InputFormat::Ssml => "ssml",
        }
    }
}

/// Server-side settings of the service.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    pub default_pipeline: String,
    pub max_text_chars: usize,
    /// Longest text of a streamed response (`[limits] max_stream_chars`).
    pub max_stream_chars: usize,
    /// A whole response's deadline from arrival; a stream's for its first
    /// audio and then for each next piece of audio (it moves on as the
    /// stream does).
    pub request_timeout: Duration,
    /// Most phoneme ids per model call (`[limits] max_call_phonemes`); longer
    /// sentences are cut into pieces.
    pub max_call_phonemes: usize,
    /// Most phoneme ids one request may make (`[limits] max_request_phonemes`).
    pub max_request_phonemes: usize,
    /// Longest audio per sentence, seconds (`[limits] max_sentence_seconds`).
    pub max_sentence_seconds: f32,
}

/// A validated request, bound to one pipeline version.
#[derive(Clone)]
pub struct Job {
    pub trace_id: String,
    pub pipeline: Arc<Pipeline>,
    pub text: String,
    pub voice: Option<String>,
    pub speaker: Option<String>,
    pub language: Option<String>,
    pub instruct: Option<String>,
    pub speed: f32,
    pub sample_rate: Option<u32>,
    pub seed: u64,
    /// The SSML document, parsed and lowered, when the request is SSML:
    /// each speech block is its own utterance (`run.rs`).
    pub ssml: Option<Arc<Vec<super::ssml::Block>>>,
    /// Word timestamps asked (`SynthesisRequest::timestamps`).
    pub timestamps: bool,
    /// The client plays the audio as it comes (HTTP `stream`, a Wyoming
    /// `synthesize-start` stream): where the pipeline lets audio out window
    /// by window, even a short sentence's first audio goes out after the
    /// decoder's first window (`DecoderChunks::paced`), at the cost of a
    /// little context decoded twice. A Wyoming `synthesize`, whose client
    /// keeps the audio until `audio-stop`, is not.
    pub streamed: bool,
    /// When the request arrived; the deadline counts from here.
    pub started: tokio::time::Instant,
}

impl Job {
    /// The request's deadline: `timeout` after it arrived.
    pub fn deadline(&self, timeout: Duration) -> std::time::Instant {
        self.started.into_std() + timeout
    }
}

/// `speed`: the slowest and fastest a request may ask for (1 = the voice's own).
pub const SPEED_RANGE: (f32, f32) = (0.25, 4.0);
/// `sample_rate`: the output rates the resampler is asked for, in Hz.
pub const SAMPLE_RATE_RANGE: (u32, u32) = (8_000, 192_000);
/// `language`: the longest language tag, in characters (ASCII letters,
/// digits, `-` and `_`).
pub const LANGUAGE_MAX_CHARS: usize = 35;

/// The request's own fields, checked (no pipeline or voice lookups): the text,
/// speed, sample rate and language tag. Returns the speed to use.
pub(super) fn check_fields(
    req: &SynthesisRequest,
    max_text_chars: usize,
    streamed: bool,
) -> Result<f32, TtsError> {
    let text = &req.text;
    let blank = |c: char| c.is_whitespace() || c.is_control() && c != '\0';
    if text.chars().all(blank) {
        return Err(TtsError::InvalidInput("`text` is empty".into()));
    }
    // Free text of any field: NUL cuts a string short in C (espeak-ng) and in
    // plugins' languages alike, so it is refused wherever it comes.
    for (field, value) in [("text", Some(text)), ("instruct", req.instruct.as_ref())] {
        if let Some(at) = value.and_then(|v| v.chars().position(|c| c == '\0')) {
            return Err(TtsError::InvalidInput(format!(
                "`{field}` contains a NUL character (at character {at})"
            )));
        }
    }
    let chars = text.chars().count();
    if chars > max_text_chars {
        return Err(TtsError::TextTooLong {
            chars,
            limit: max_text_chars,
            streamed,
        });
    }
    let speed = req.speed.unwrap_or(1.0);
    let (slowest, fastest) = SPEED_RANGE;
    if !(slowest..=fastest).contains(&speed) {
        return Err(TtsError::InvalidInput(format!(
            "`speed` {speed} is out of range {slowest}–{fastest:.1}"
        )));
    }
    if let Some(rate) = req.sample_rate {
        let (lowest, highest) = SAMPLE_RATE_RANGE;
        if !(lowest..=highest).contains(&rate) {
            return Err(TtsError::InvalidInput(format!(
                "`sample_rate` {rate} is out of range {lowest}–{highest}"
            )));
        }
    }
    if let Some(lang) = &req.language {
        let ok = !lang.is_empty()
            && lang.len() <= LANGUAGE_MAX_CHARS
            && lang
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(TtsError::InvalidInput(format!(
                "`language` {lang:?} is not a language tag such as en-US"
            )));
        }
    }
    Ok(speed)
}

/// The text without control characters other than tab and line breaks (C0,
/// DEL, C1: they say nothing, and no text stage or espeak-ng should see them).
/// NUL is refused before this (`check_fields`), so a client learns that its
/// text was cut short somewhere.
pub(super) fn without_controls(text: String) -> String {
    if !text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return text;
    }
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
        .collect()
}

/// An optional field a client sent empty counts as not sent.
pub(super) fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> SynthesisRequest {
        SynthesisRequest {
            text: text.into(),
            ..SynthesisRequest::default()
        }
    }

    #[test]
    fn fields_are_checked_with_typed_errors() {
        assert_eq!(check_fields(&req("Hello."), 10, false).unwrap(), 1.0);
        let kind = |r: SynthesisRequest| check_fields(&r, 10, false).unwrap_err().kind();
        assert_eq!(kind(req("  ")), "invalid_input");
        assert_eq!(kind(req("a\0b")), "invalid_input");
        let r = SynthesisRequest {
            instruct: Some("slowly\0".into()),
            ..req("Hi.")
        };
        assert!(check_fields(&r, 10, false)
            .unwrap_err()
            .to_string()
            .contains("`instruct`"));
        // Characters, not bytes: ten CJK characters fit a limit of 10.
        assert!(check_fields(&req("用四川话说这句话好吗"), 10, false).is_ok());
        assert_eq!(kind(req("eleven char")), "text_too_long");
        for speed in [0.2, 4.5, f32::NAN] {
            let r = SynthesisRequest {
                speed: Some(speed),
                ..req("Hi.")
            };
            assert_eq!(kind(r), "invalid_input", "{speed}");
        }
        let r = SynthesisRequest {
            sample_rate: Some(4000),
            ..req("Hi.")
        };
        assert_eq!(kind(r), "invalid_input");
        for lang in ["", "en US", "x".repeat(36).as_str()] {
            let r = SynthesisRequest {
                language: Some(lang.into()),
                ..req("Hi.")
            };
            assert_eq!(kind(r), "invalid_input", "{lang:?}");
        }
        let r = SynthesisRequest {
            language: Some("zh-Hans_CN".into()),
            speed: Some(0.25),
            ..req("Hi.")
        };
        assert_eq!(check_fields(&r, 10, false).unwrap(), 0.25);
    }

    #[test]
    fn control_characters_are_removed_but_line_breaks_kept() {
        assert_eq!(
            without_controls("a\u{7}b\u{1b}[0mc\u{85}d\te\r\nf\u{7f}".into()),
            "ab[0mcd\te\r\nf"
        );
        let plain = "nothing to remove, 说".to_string();
        assert_eq!(without_controls(plain.clone()), plain);
        // Only controls left: the text is empty afterwards.
        assert!(check_fields(&req("\u{7}\u{8}"), 10, false).is_err());
    }

    #[test]
    fn empty_optional_fields_count_as_absent() {
        assert_eq!(non_empty(Some(" ".into())), None);
        assert_eq!(non_empty(None), None);
        assert_eq!(non_empty(Some("joe".into())).as_deref(), Some("joe"));
    }
}
