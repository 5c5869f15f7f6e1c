//! Privacy by default: what may leave the process in a span.
//!
//! Request text, audio and secrets must never reach a trace backend. The code
//! never records them, and [`Redacting`] makes sure of it at the exit: it sits
//! in front of the batch exporter and keeps only attributes voxpipe itself
//! names ([`ALLOWED`]), cuts long strings, and renames span events whose name
//! is free text (plugin log lines, formatted messages). An operator can opt
//! out with `telemetry.export_text = true` (debugging only).

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;

/// What the operator allows into spans.
#[derive(Debug, Clone)]
pub struct Privacy {
    /// Characters of the request's instruction kept in `instruct_raw` (0: none).
    pub instruct_max_chars: usize,
    /// Export everything unfiltered.
    pub export_text: bool,
}

impl Default for Privacy {
    fn default() -> Self {
        Privacy {
            instruct_max_chars: 64,
            export_text: false,
        }
    }
}

static PRIVACY: OnceLock<Privacy> = OnceLock::new();

/// The process's privacy settings (defaults until the server sets them).
pub fn privacy() -> &'static Privacy {
    PRIVACY.get_or_init(Privacy::default)
}

pub(super) fn set_privacy(p: Privacy) {
    let _ = PRIVACY.set(p);
}

/// The first `max` characters of `s`, with `…` when cut.
pub fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}

/// Attribute keys voxpipe records on spans and events. Anything else (a
/// header, a field someone adds with text in it) is dropped at export.
pub const ALLOWED: &[&str] = &[
    // HTTP server span (semantic conventions)
    "http.request.method",
    "http.route",
    "http.response.status_code",
    "url.path",
    "url.scheme",
    "error.type",
    // tts.synthesize
    "tts.language",
    "tts.mode",
    "tts.voice",
    "tts.stream",
    "tts.sentences",
    "tts.phonemes",
    "tts.audio_seconds",
    "tts.rtf",
    "pipeline.name",
    "pipeline.version",
    "style.unhonored",
    "style.route",
    // plugin stages
    "stage.kind",
    "stage.index",
    "stage.name",
    "stage.input_bytes",
    "stage.output_bytes",
    "audio.pass",
    "audio.block",
    "stage.outcome",
    "plugin.name",
    "plugin.version",
    "plugin.sha256",
    "instruct_raw",
    "instruct_mapped",
    "instruct.reason",
    // model, encode
    "device",
    "batch.size",
    "sentence.index",
    "audio.seconds",
    "audio.format",
    "audio.bytes",
    "rtf",
    // added by tracing-opentelemetry
    "code.file.path",
    "code.module.name",
    "code.line.number",
    "thread.id",
    "thread.name",
    "level",
    "target",
    "busy_ns",
    "idle_ns",
];

/// Span event names that are fixed strings in voxpipe's code; other events
/// (formatted messages, plugin log lines) are renamed `log`.
pub const ALLOWED_EVENTS: &[&str] = &["instruct not mapped", "style unhonored", "exception"];

/// Longest string value exported (instruct attributes have their own limit).
const MAX_VALUE_CHARS: usize = 256;

fn clean(attrs: &mut Vec<KeyValue>, instruct_max: usize) -> u32 {
    let before = attrs.len();
    attrs.retain(|kv| {
        let key = kv.key.as_str();
        let instruct = matches!(key, "instruct_raw" | "instruct.reason");
        ALLOWED.contains(&key) && !(instruct && instruct_max == 0)
    });
    for kv in attrs.iter_mut() {
        let limit = match kv.key.as_str() {
            "instruct_raw" | "instruct.reason" => instruct_max,
            _ => MAX_VALUE_CHARS,
        };
        if let Value::String(s) = &kv.value {
            if s.as_str().chars().count() > limit {
                kv.value = Value::from(truncate_chars(s.as_str(), limit));
            }
        }
    }
    (before - attrs.len()) as u32
}

/// Applies the rules above to one finished span.
pub fn scrub(span: &mut SpanData, privacy: &Privacy) {
    if privacy.export_text {
        return;
    }
    let max = privacy.instruct_max_chars;
    span.dropped_attributes_count += clean(&mut span.attributes, max);
    for event in span.events.events.iter_mut() {
        if !ALLOWED_EVENTS.contains(&event.name.as_ref()) {
            event.name = "log".into();
        }
        event.dropped_attributes_count += clean(&mut event.attributes, max);
    }
    // Links carry no request data, but their attributes could.
    for link in span.links.links.iter_mut() {
        link.dropped_attributes_count += clean(&mut link.attributes, max);
    }
}

/// A span processor that scrubs every span before `inner` (the batch
/// exporter) sees it.
#[derive(Debug)]
pub struct Redacting<P> {
    inner: P,
    privacy: Privacy,
}

impl<P> Redacting<P> {
    pub fn new(inner: P, privacy: Privacy) -> Self {
        Redacting { inner, privacy }
    }
}

impl<P: SpanProcessor> SpanProcessor for Redacting<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        scrub(&mut span, &self.privacy);
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_characters() {
        assert_eq!(truncate_chars("用四川话说这句话", 4), "用四川话…");
        assert_eq!(truncate_chars("short", 64), "short");
        assert_eq!(truncate_chars("abc", 0), "…");
    }

    #[test]
    fn keeps_only_named_attributes_and_cuts_instructs() {
        let mut attrs = vec![
            KeyValue::new("tts.voice", "en_US-joe-medium"),
            KeyValue::new("http.request.header.authorization", "Bearer s3cret"),
            KeyValue::new("text", "my bank password is hunter2"),
            KeyValue::new("instruct_raw", "x".repeat(100)),
            KeyValue::new("message", "the input was: hunter2"),
        ];
        let dropped = clean(&mut attrs, 8);
        assert_eq!(dropped, 3);
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[1].value.as_str(), format!("{}…", "x".repeat(8)));
        let mut none = vec![KeyValue::new("instruct_raw", "speak sadly")];
        clean(&mut none, 0);
        assert!(none.is_empty(), "{none:?}");
    }
}
