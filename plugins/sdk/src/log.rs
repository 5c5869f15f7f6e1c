//! Log lines for the host. They land in the host's logs inside the
//! request's trace. The host caps the count and length of lines per call.
//!
//! The world crate's `export!` installs the Wasm import as the sink; in
//! native unit tests lines go nowhere.

use std::sync::OnceLock;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

static SINK: OnceLock<fn(Level, &str)> = OnceLock::new();

#[doc(hidden)]
pub fn install_sink(sink: fn(Level, &str)) {
    let _ = SINK.set(sink);
}

/// Write a log line at `level`.
pub fn log(level: Level, message: &str) {
    if let Some(sink) = SINK.get() {
        sink(level, message);
    }
}

pub fn debug(message: &str) {
    log(Level::Debug, message)
}

pub fn info(message: &str) {
    log(Level::Info, message)
}

pub fn warn(message: &str) {
    log(Level::Warn, message)
}

pub fn error(message: &str) {
    log(Level::Error, message)
}
