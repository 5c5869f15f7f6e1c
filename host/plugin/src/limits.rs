//! Per-call resource limits of a plugin stage. A pipeline sets defaults in
//! `[limits]` and may override them per stage; the runtime enforces them on
//! every call.

use serde::Serialize;
use std::time::Duration;

/// Limits for one call of a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PluginLimits {
    /// Linear memory a call may grow to, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock deadline of a call (enforced by epoch interruption).
    #[serde(rename = "deadline_ms", serialize_with = "as_millis")]
    pub deadline: Duration,
    /// Largest output a call may return, in bytes (text bytes, or 4 × samples).
    pub max_output_bytes: usize,
    /// Largest text a text stage may return, in bytes: everything after the
    /// text stages (phonemes, the model, audio) grows with it, and the
    /// request's own `max_text_chars` bounds only what the client sent.
    #[serde(rename = "max_text_kb", serialize_with = "as_kib")]
    pub max_text_bytes: usize,
}

fn as_kib<S: serde::Serializer>(b: &usize, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64((*b >> 10) as u64)
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            memory_bytes: 128 << 20,
            deadline: Duration::from_secs(5),
            max_output_bytes: 32 << 20,
            max_text_bytes: 64 << 10,
        }
    }
}
