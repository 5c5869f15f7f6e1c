//! What an HTTP client sees when a request fails: the stable `type` string,
//! the status code and `Retry-After`. The synthesis service reports typed
//! errors ([`TtsError`]) without knowing about HTTP; this module maps them to
//! statuses and adds the failures only HTTP has (authentication, a body that
//! is not JSON, an audio format this server cannot encode). [`ERROR_TYPES`]
//! lists every type with its status; the OpenAPI document's error responses
//! are made from it, and a test here checks that every `kind()` the code can
//! return is in it. docs/api.md's table says the same for people.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::ToSchema;

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

/// One error `type` of the API, its status, and when a client gets it.
#[derive(Debug, Clone, Copy)]
pub struct ErrorTypeDoc {
    pub kind: &'static str,
    pub status: u16,
    pub when: &'static str,
}

const fn doc(kind: &'static str, status: u16, when: &'static str) -> ErrorTypeDoc {
    ErrorTypeDoc { kind, status, when }
}

/// Every error `type` the HTTP API answers with (`ApiError::kind()` and
/// `TtsError::kind()`), with its status. The OpenAPI document is made from
/// this list; `every_error_kind_is_listed` fails when a kind is missing.
pub const ERROR_TYPES: &[ErrorTypeDoc] = &[
    doc("invalid_json", 400, "The body is not valid JSON, a required field is missing, a field has the wrong type, or (`/v1/tts`) a field is unknown."),
    doc("unsupported_format", 400, "An unknown format name, `aac`, or a format that cannot be streamed (`flac`) with streaming."),
    doc("invalid_ssml", 400, "`input_format` is `ssml` (or `input` starts with `<speak>` on `/v1/audio/speech`) and the document is not well-formed XML; the message gives line and column."),
    doc("unauthorized", 401, "Keys are configured and the `Authorization: Bearer` key is missing or not valid for this endpoint."),
    doc("unknown_pipeline", 404, "`pipeline` / `model` names no loaded pipeline."),
    doc("unknown_voice", 404, "`voice` is not in the voices folder."),
    doc("unknown_speaker", 404, "`speaker` is not a name or id of the voice."),
    doc("text_too_long", 413, "More characters than `max_text_chars`."),
    doc("request_too_large", 413, "More phoneme ids than `max_request_phonemes`, more estimated working memory than the server's whole budget, more audio than a whole-utterance (0.1/0.2) audio stage takes, or an SSML document over its caps (elements, nesting, total break time)."),
    doc("invalid_input", 422, "Empty text, a NUL character in a text field, `speed` / `sample_rate` / `language` out of range, a bad `stream_format`, or nothing to say once normalized."),
    doc("sentence_too_long", 422, "One model call would last longer than `max_sentence_seconds`."),
    doc("stage_invalid_input", 422, "A plugin stage refused this input (`error.stage` names it)."),
    doc("ssml_unsupported", 422, "The SSML document uses an element, attribute or value outside the supported subset, has a DTD, or has no text; the message names it (docs/ssml.md)."),
    doc("style_unsupported", 422, "The pipeline refuses styles it cannot honor (`on_unhonored = \"refuse\"`) and the instruction asked for one."),
    doc("model_error", 500, "The voice model failed."),
    doc("encode_error", 500, "The pipeline's audio cannot be encoded as asked."),
    doc("internal", 500, "A bug or an environment problem."),
    doc("plugin_fault", 502, "A plugin stage failed (`error.stage` names it)."),
    doc("overloaded", 503, "The queue is full (`Retry-After: 1`), or a plugin has no free instance."),
    doc("oom", 503, "The GPU ran out of memory (`Retry-After: 5`)."),
    doc("cancelled", 503, "The server is shutting down."),
    doc("timeout", 504, "The request's deadline passed (queue time included)."),
    doc("stage_timeout", 504, "A plugin call ran past its own deadline."),
];

/// The error kinds of a plugin stage (`error.stage.error`): `PluginError::kind()`.
pub const PLUGIN_ERROR_KINDS: &[&str] = &[
    "invalid_input",
    "invalid_config",
    "plugin_fault",
    "trap",
    "timeout",
    "memory_limit",
    "output_too_large",
    "bad_output",
    "overloaded",
    "internal",
];

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What failed, for people (`message`) and programs (`type`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The error's stable type; its status is fixed by it (docs/api.md, "Errors").
    #[serde(rename = "type")]
    #[schema(schema_with = error_type_schema)]
    pub kind: &'static str,
    /// What went wrong, in words; names the field or limit.
    pub message: String,
    /// The request's trace id (32 hex digits), also in `X-Trace-Id`.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub trace_id: String,
    /// The plugin stage that failed, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub stage: Option<StageErrorDetail>,
}

/// The stage of a pipeline that failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct StageErrorDetail {
    /// Position in the pipeline, from 0.
    pub index: usize,
    pub name: String,
    #[schema(value_type = String, pattern = "^(text|style|model|audio)$")]
    pub kind: voxpipe_types::StageKind,
    /// `<name>@<version>` of the stage's plugin.
    pub plugin: Option<String>,
    /// The plugin error's kind.
    #[schema(schema_with = plugin_error_kind_schema)]
    pub error: &'static str,
}

impl ErrorBody {
    pub fn new(err: &ApiError, trace_id: &str) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                kind: err.kind(),
                message: err.to_string(),
                trace_id: trace_id.to_string(),
                stage: err.stage().map(|f| StageErrorDetail {
                    index: f.stage.index,
                    name: f.stage.name.clone(),
                    kind: f.stage.kind,
                    plugin: f
                        .stage
                        .plugin
                        .as_ref()
                        .map(|p| format!("{}@{}", p.plugin.id.name, p.plugin.id.version)),
                    error: f.error.kind(),
                }),
            },
        }
    }
}

fn error_type_schema() -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ERROR_TYPES.iter().map(|t| t.kind)))
        .build()
}

fn plugin_error_kind_schema() -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(PLUGIN_ERROR_KINDS.iter().copied()))
        .build()
}

/// The headers every error response carries (and `Retry-After` / `WWW-Authenticate`
/// where they apply), for the OpenAPI document.
pub(super) fn trace_headers(response: ResponseBuilder) -> ResponseBuilder {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    response
        .header(
            "X-Trace-Id",
            HeaderBuilder::new()
                .schema(Some(string().pattern(Some("^[0-9a-f]{32}$"))))
                .description(Some("The request's trace id: quote it to support."))
                .build(),
        )
        .header(
            "traceparent",
            HeaderBuilder::new()
                .schema(Some(string()))
                .description(Some("W3C trace context of this server's span."))
                .build(),
        )
        .header(
            "Server-Timing",
            HeaderBuilder::new()
                .schema(Some(string()))
                .description(Some("Milliseconds per part of the work (queue, each stage, phonemize, model, encode, total)."))
                .build(),
        )
}

/// The error responses of `types` (by status), each with the `ErrorBody`
/// schema narrowed to the types of that status.
fn error_responses(
    types: impl Fn(&ErrorTypeDoc) -> bool,
) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    let mut by_status: BTreeMap<u16, Vec<&ErrorTypeDoc>> = BTreeMap::new();
    for t in ERROR_TYPES.iter().filter(|t| types(t)) {
        by_status.entry(t.status).or_default().push(t);
    }
    by_status
        .into_iter()
        .map(|(status, kinds)| {
            let description = kinds
                .iter()
                .map(|t| format!("`{}`: {}", t.kind, t.when))
                .collect::<Vec<_>>()
                .join("\n\n");
            let narrowed = ObjectBuilder::new()
                .property(
                    "error",
                    ObjectBuilder::new().property(
                        "type",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some(kinds.iter().map(|t| t.kind))),
                    ),
                )
                .required("error");
            let schema = utoipa::openapi::schema::AllOfBuilder::new()
                .item(Ref::from_schema_name("ErrorBody"))
                .item(narrowed);
            let mut response = trace_headers(ResponseBuilder::new().description(description))
                .content("application/json", ContentBuilder::new().schema(Some(schema)).build());
            if status == 413 {
                // The HTTP layer refuses bodies over its limit before any handler.
                response = response.content(
                    "text/plain; charset=utf-8",
                    ContentBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String).description(
                            Some("A body over the server's 4 MiB request limit, refused before parsing."),
                        )))
                        .build(),
                );
            }
            if status == 503 {
                response = response.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1))))
                        .description(Some("Seconds to wait (`overloaded`: 1, `oom`: 5)."))
                        .build(),
                );
            }
            if status == 401 {
                response = response.header(
                    "WWW-Authenticate",
                    HeaderBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["Bearer"]))))
                        .build(),
                );
            }
            (status.to_string(), RefOr::T(response.build()))
        })
        .collect()
}

/// Every error a synthesis endpoint can answer with.
pub struct SynthesisErrors;

impl utoipa::IntoResponses for SynthesisErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        error_responses(|_| true)
    }
}

/// The errors of an endpoint that only checks the API key.
pub struct KeyErrors;

impl utoipa::IntoResponses for KeyErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        error_responses(|t| t.kind == "unauthorized")
    }
}

fn synthesis_status(e: &TtsError) -> u16 {
    match e {
        TtsError::UnknownPipeline { .. }
        | TtsError::UnknownVoice { .. }
        | TtsError::UnknownSpeaker { .. } => 404,
        TtsError::TextTooLong { .. } | TtsError::RequestTooLarge(_) => 413,
        TtsError::InvalidSsml(_) => 400,
        TtsError::InvalidInput(_)
        | TtsError::SentenceTooLong(_)
        | TtsError::StyleUnsupported(_)
        | TtsError::SsmlUnsupported(_) => 422,
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
                TtsError::TextTooLong {
                    chars: 9,
                    limit: 5,
                    streamed: false,
                }
                .into(),
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

    /// One value of every variant goes through `kind()` and `status()`: each
    /// type must be in `ERROR_TYPES` with that status, and each listed type
    /// must be reachable. The matches have no wildcard arm, so a new variant
    /// does not compile until it has an example here.
    #[test]
    fn every_error_kind_is_listed() {
        use std::collections::{BTreeMap, BTreeSet};
        use std::sync::Arc;

        let plugin_errors = vec![
            PluginError::InvalidInput("x".into()),
            PluginError::InvalidConfig("x".into()),
            PluginError::Fault("x".into()),
            PluginError::Trap("x".into()),
            PluginError::Timeout(Duration::from_secs(1)),
            PluginError::MemoryLimit(1 << 20),
            PluginError::OutputTooLarge { size: 2, limit: 1 },
            PluginError::BadOutput("x".into()),
            PluginError::Overloaded,
            PluginError::Internal("x".into()),
        ];
        for p in &plugin_errors {
            match p {
                PluginError::InvalidInput(_)
                | PluginError::InvalidConfig(_)
                | PluginError::Fault(_)
                | PluginError::Trap(_)
                | PluginError::Timeout(_)
                | PluginError::MemoryLimit(_)
                | PluginError::OutputTooLarge { .. }
                | PluginError::BadOutput(_)
                | PluginError::Overloaded
                | PluginError::Internal(_) => {}
            }
        }
        let kinds: BTreeSet<&str> = plugin_errors.iter().map(|p| p.kind()).collect();
        assert_eq!(kinds, PLUGIN_ERROR_KINDS.iter().copied().collect());

        let stage = Arc::new(crate::pipeline::Stage {
            index: 0,
            name: "s".into(),
            kind: voxpipe_types::StageKind::Audio,
            plugin: None,
        });
        let mut tts = vec![
            TtsError::InvalidInput("x".into()),
            TtsError::TextTooLong {
                chars: 2,
                limit: 1,
                streamed: true,
            },
            TtsError::RequestTooLarge("x".into()),
            TtsError::SentenceTooLong("x".into()),
            TtsError::StyleUnsupported("x".into()),
            TtsError::InvalidSsml("x".into()),
            TtsError::SsmlUnsupported("x".into()),
            TtsError::UnknownPipeline {
                name: "x".into(),
                available: "y".into(),
            },
            TtsError::UnknownVoice {
                name: "x".into(),
                available: "y".into(),
            },
            TtsError::UnknownSpeaker {
                name: "x".into(),
                voice: "v".into(),
                available: "y".into(),
            },
            TtsError::Overloaded {
                queued: 1,
                retry_after: Duration::from_secs(1),
            },
            TtsError::Timeout(Duration::from_secs(1)),
            TtsError::OutOfMemory("x".into()),
            TtsError::Engine("x".into()),
            TtsError::Encode("x".into()),
            TtsError::Cancelled("x".into()),
            TtsError::Stopped,
            TtsError::Internal("x".into()),
        ];
        tts.extend(plugin_errors.into_iter().map(|error| {
            TtsError::from(StageFailure {
                stage: stage.clone(),
                error,
            })
        }));
        for e in &tts {
            match e {
                TtsError::InvalidInput(_)
                | TtsError::TextTooLong { .. }
                | TtsError::RequestTooLarge(_)
                | TtsError::SentenceTooLong(_)
                | TtsError::StyleUnsupported(_)
                | TtsError::InvalidSsml(_)
                | TtsError::SsmlUnsupported(_)
                | TtsError::UnknownPipeline { .. }
                | TtsError::UnknownVoice { .. }
                | TtsError::UnknownSpeaker { .. }
                | TtsError::Overloaded { .. }
                | TtsError::Timeout(_)
                | TtsError::Stage(_)
                | TtsError::OutOfMemory(_)
                | TtsError::Engine(_)
                | TtsError::Encode(_)
                | TtsError::Cancelled(_)
                | TtsError::Stopped
                | TtsError::Internal(_) => {}
            }
        }
        let mut api = vec![
            ApiError::InvalidJson("x".into()),
            ApiError::Unauthorized("x".into()),
            ApiError::UnsupportedFormat("x".into()),
        ];
        api.extend(tts.into_iter().map(ApiError::from));
        for e in &api {
            match e {
                ApiError::InvalidJson(_)
                | ApiError::Unauthorized(_)
                | ApiError::UnsupportedFormat(_)
                | ApiError::Synthesis(_) => {}
            }
        }

        let listed: BTreeMap<&str, u16> = ERROR_TYPES.iter().map(|t| (t.kind, t.status)).collect();
        assert_eq!(listed.len(), ERROR_TYPES.len(), "a type is listed twice");
        let mut reached = BTreeSet::new();
        for e in &api {
            let status = listed
                .get(e.kind())
                .unwrap_or_else(|| panic!("`{}` is not in ERROR_TYPES", e.kind()));
            assert_eq!(*status, e.status(), "status of `{}`", e.kind());
            reached.insert(e.kind());
        }
        let unreached: Vec<_> = listed.keys().filter(|k| !reached.contains(*k)).collect();
        assert!(
            unreached.is_empty(),
            "listed but never returned: {unreached:?}"
        );
    }
}
