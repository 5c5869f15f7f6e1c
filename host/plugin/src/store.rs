//! The state of one plugin call: the data inside its fresh `Store`. It holds
//! the memory limiter, the plugin's log budget and — only if the component
//! imports WASI — a WASI context that grants nothing.

use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Log lines a plugin may write per call; the rest are counted and dropped.
pub const MAX_LOG_LINES: u32 = 64;
/// Longest log line kept, in bytes; longer lines are cut.
pub const MAX_LOG_LINE: usize = 2048;
/// Bytes of WASI stdout/stderr captured per call; past it the streams close.
pub const MAX_STDIO_BYTES: usize = 64 << 10;
/// Most bytes one `wasi:random` call may ask for.
const MAX_RANDOM_BYTES: u64 = 1 << 20;
/// WASI resources (pollables, streams, …) alive at once in one call.
const MAX_WASI_RESOURCES: usize = 1024;

/// Linear memories one call may create, across every core instance of the
/// component (the pool enforces the same count, see `runtime.rs`).
pub const MAX_MEMORIES: usize = 8;
/// Tables one call may create.
pub const MAX_TABLES: usize = 32;
/// Core instances one call may create (a component built by wit-component has
/// a few: the module, adapter shims; componentize-py's have about ten).
pub const MAX_INSTANCES: usize = 32;
/// Bytes a table element costs the host (a pointer), counted in the budget.
const TABLE_ELEMENT_BYTES: usize = 8;

/// One memory budget for the whole call: every linear memory and table of
/// every core instance of the component draws from it, at instantiation
/// (start functions included) and on every `memory.grow` / `table.grow`.
/// Remembers that it refused, so the resulting trap or instantiation error
/// is reported as a memory limit, not a generic failure.
pub(crate) struct Limiter {
    budget: usize,
    pub(crate) used: usize,
    pub(crate) memory_hit: bool,
}

impl Limiter {
    fn new(budget: usize) -> Limiter {
        Limiter {
            budget,
            used: 0,
            memory_hit: false,
        }
    }

    /// Take `desired - current` more bytes from the budget, or refuse.
    fn grow(&mut self, current: usize, desired: usize) -> bool {
        let more = desired.saturating_sub(current);
        match self.used.checked_add(more) {
            Some(total) if total <= self.budget => {
                self.used = total;
                true
            }
            _ => {
                self.memory_hit = true;
                false
            }
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(current, desired))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        ))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

/// A plugin's log lines for one call, with a budget.
struct PluginLog {
    plugin: String,
    budget: u32,
    dropped: u32,
}

impl PluginLog {
    fn emit(&mut self, level: tracing::Level, message: &str) {
        if self.budget == 0 {
            self.dropped += 1;
            return;
        }
        self.budget -= 1;
        // One line, cut: a plugin must not be able to forge log lines (text
        // format) or fill the log with one message.
        let message = super::sanitize::one_line(message, MAX_LOG_LINE);
        let plugin = self.plugin.as_str();
        // Plugin logs are events inside the caller's span, so they carry the
        // request's trace context wherever the subscriber sends them.
        match level {
            tracing::Level::TRACE => {
                tracing::trace!(target: "voxpipe::plugin", plugin, "{message}")
            }
            tracing::Level::DEBUG => {
                tracing::debug!(target: "voxpipe::plugin", plugin, "{message}")
            }
            tracing::Level::INFO => tracing::info!(target: "voxpipe::plugin", plugin, "{message}"),
            tracing::Level::WARN => tracing::warn!(target: "voxpipe::plugin", plugin, "{message}"),
            tracing::Level::ERROR => {
                tracing::error!(target: "voxpipe::plugin", plugin, "{message}")
            }
        }
    }
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
            // Random bytes are made in host memory before the plugin gets
            // them: a small cap per call of get-random-bytes.
            .max_random_size(MAX_RANDOM_BYTES)
            .build();
        // A plugin has no use for many WASI resources; each costs host memory
        // outside the call's budget, so their number is small.
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_WASI_RESOURCES);
        WasiState {
            ctx,
            table,
            stdout,
            stderr,
        }
    }
}

/// The data of one call's `Store`.
pub(crate) struct CallState {
    pub(crate) limiter: Limiter,
    /// When the call must be over. Wasm code is stopped by the epoch
    /// deadline; host calls that can wait (`wasi:io/poll`, blocking stream
    /// operations) stop here (see `wasi.rs`).
    pub(crate) deadline: Instant,
    /// Set when a host call gave up at the deadline, so the error is a
    /// timeout and not a generic failure.
    pub(crate) deadline_hit: bool,
    log: PluginLog,
    wasi: Option<WasiState>,
}

impl CallState {
    pub(crate) fn new(plugin: &str, memory_limit: usize, deadline: Instant) -> CallState {
        CallState {
            limiter: Limiter::new(memory_limit),
            deadline,
            deadline_hit: false,
            log: PluginLog {
                plugin: plugin.to_string(),
                budget: MAX_LOG_LINES,
                dropped: 0,
            },
            wasi: None,
        }
    }

    /// The WASI resource table and the call's deadline, for the host calls
    /// that can wait (`wasi.rs`).
    pub(crate) fn wasi_io(&mut self) -> super::wasi::BoundedIo<'_> {
        let deadline = self.deadline;
        let wasi = self.wasi.get_or_insert_with(WasiState::new);
        super::wasi::BoundedIo {
            table: &mut wasi.table,
            deadline,
            deadline_hit: &mut self.deadline_hit,
        }
    }

    /// Send captured WASI output to the logs and report dropped log lines.
    pub(crate) fn finish(&mut self) {
        if let Some(wasi) = self.wasi.take() {
            for (stream, pipe) in [("stdout", &wasi.stdout), ("stderr", &wasi.stderr)] {
                let bytes = pipe.contents();
                for line in String::from_utf8_lossy(&bytes).lines() {
                    let level = if stream == "stderr" {
                        tracing::Level::WARN
                    } else {
                        tracing::Level::INFO
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

impl CallState {
    /// One line of the plugin's `log` import (any WIT version).
    pub(crate) fn log_line(&mut self, level: tracing::Level, message: &str) {
        self.log.emit(level, message);
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let wasi = self.wasi.get_or_insert_with(WasiState::new);
        WasiCtxView {
            ctx: &mut wasi.ctx,
            table: &mut wasi.table,
        }
    }
}
