//! The state of one plugin call: the data inside its fresh `Store`. It holds
//! the memory limiter, the plugin's log budget and — only if the component
//! imports WASI — a WASI context that grants nothing.

use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::wit_log;

/// Log lines a plugin may write per call; the rest are counted and dropped.
pub const MAX_LOG_LINES: u32 = 64;
/// Longest log line kept, in bytes; longer lines are cut.
pub const MAX_LOG_LINE: usize = 2048;
/// Bytes of WASI stdout/stderr captured per call; writing more traps the call.
pub const MAX_STDIO_BYTES: usize = 64 << 10;

/// Denies memory growth past the call's limit and remembers that it did, so
/// the resulting trap is reported as a memory limit, not a generic trap.
pub(crate) struct Limiter {
    memory_limit: usize,
    pub(crate) memory_hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// A plugin's log lines for one call, with a budget.
struct PluginLog {
    plugin: String,
    budget: u32,
    dropped: u32,
}

impl PluginLog {
    fn emit(&mut self, level: wit_log::Level, message: &str) {
        if self.budget == 0 {
            self.dropped += 1;
            return;
        }
        self.budget -= 1;
        let message = truncate(message, MAX_LOG_LINE);
        let plugin = self.plugin.as_str();
        // Plugin logs are events inside the caller's span, so they carry the
        // request's trace context wherever the subscriber sends them.
        match level {
            wit_log::Level::Trace => {
                tracing::trace!(target: "voxpipe::plugin", plugin, "{message}")
            }
            wit_log::Level::Debug => {
                tracing::debug!(target: "voxpipe::plugin", plugin, "{message}")
            }
            wit_log::Level::Info => tracing::info!(target: "voxpipe::plugin", plugin, "{message}"),
            wit_log::Level::Warn => tracing::warn!(target: "voxpipe::plugin", plugin, "{message}"),
            wit_log::Level::Error => {
                tracing::error!(target: "voxpipe::plugin", plugin, "{message}")
            }
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// WASI state, created on first use by a component that imports WASI.
struct WasiState {
    ctx: WasiCtx,
    table: ResourceTable,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

/// A wall clock that only tells whole seconds and a monotonic clock with
/// millisecond resolution: enough for a plugin that wants a date, too coarse
/// for timing side channels.
struct CoarseWallClock;
struct CoarseMonotonicClock(std::time::Instant);

impl wasmtime_wasi::HostWallClock for CoarseWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Duration::from_secs(now.as_secs())
    }
}

impl wasmtime_wasi::HostMonotonicClock for CoarseMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }
    fn now(&self) -> u64 {
        let ns = self.0.elapsed().as_nanos() as u64;
        ns - ns % 1_000_000
    }
}

impl WasiState {
    fn new() -> WasiState {
        let stdout = MemoryOutputPipe::new(MAX_STDIO_BYTES);
        let stderr = MemoryOutputPipe::new(MAX_STDIO_BYTES);
        // Nothing is granted: no preopened directories, no environment, no
        // arguments, no sockets, stdin closed. Output is captured for the logs.
        let ctx = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(CoarseWallClock)
            .monotonic_clock(CoarseMonotonicClock(std::time::Instant::now()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        WasiState {
            ctx,
            table: ResourceTable::new(),
            stdout,
            stderr,
        }
    }
}

/// The data of one call's `Store`.
pub(crate) struct CallState {
    pub(crate) limiter: Limiter,
    log: PluginLog,
    wasi: Option<WasiState>,
}

impl CallState {
    pub(crate) fn new(plugin: &str, memory_limit: usize) -> CallState {
        CallState {
            limiter: Limiter {
                memory_limit,
                memory_hit: false,
            },
            log: PluginLog {
                plugin: plugin.to_string(),
                budget: MAX_LOG_LINES,
                dropped: 0,
            },
            wasi: None,
        }
    }

    /// Send captured WASI output to the logs and report dropped log lines.
    pub(crate) fn finish(&mut self) {
        if let Some(wasi) = self.wasi.take() {
            for (stream, pipe) in [("stdout", &wasi.stdout), ("stderr", &wasi.stderr)] {
                let bytes = pipe.contents();
                for line in String::from_utf8_lossy(&bytes).lines() {
                    let level = if stream == "stderr" {
                        wit_log::Level::Warn
                    } else {
                        wit_log::Level::Info
                    };
                    self.log.emit(level, line);
                }
            }
        }
        if self.log.dropped > 0 {
            tracing::warn!(
                target: "voxpipe::plugin",
                plugin = self.log.plugin.as_str(),
                dropped = self.log.dropped,
                "plugin exceeded its log budget of {MAX_LOG_LINES} lines per call"
            );
        }
    }
}

impl wit_log::Host for CallState {
    fn log(&mut self, level: wit_log::Level, message: String) {
        self.log.emit(level, &message);
    }
}

impl super::bindings::wit::Host for CallState {}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let wasi = self.wasi.get_or_insert_with(WasiState::new);
        WasiCtxView {
            ctx: &mut wasi.ctx,
            table: &mut wasi.table,
        }
    }
}
