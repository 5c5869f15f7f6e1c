//! The server's TOML config (`voxpipe serve --config FILE`). Every field has a
//! default, so an empty file (or none) serves the default pipeline and voice;
//! command-line flags override the file. docs/server.md documents each key;
//! `examples/server.toml` shows them all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Folder of pipeline files, watched for edits.
    pub pipelines: PathBuf,
    /// Folders searched for `<plugin>.wasm` (empty: $VOXPIPE_PLUGIN_DIRS, else target/plugins).
    pub plugin_dirs: Vec<PathBuf>,
    /// Folder of Piper voices.
    pub voices: PathBuf,
    /// The pipeline used when a request names none.
    pub default_pipeline: String,
    /// Where the voice runs: cpu, cuda, cuda:N, auto.
    pub device: String,
    /// Rescan interval (ms) for edits the OS does not report.
    pub poll_ms: u64,
    pub limits: Limits,
    pub cache: CacheConfig,
    pub plugins: PluginsConfig,
    pub auth: AuthConfig,
    pub telemetry: TelemetryConfig,
    /// The Wyoming protocol front end (docs/home-assistant.md).
    pub wyoming: crate::wyoming::WyomingConfig,
}

/// Bounds on loading plugins (docs/server.md, `[plugins]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Largest plugin file loaded, in MiB.
    pub max_file_mb: u64,
    /// Longest a plugin may take to compile, in seconds.
    pub compile_timeout_s: f64,
    /// Most memory compiling one plugin may use, in MiB.
    pub compile_memory_mb: u64,
    /// Size bound of the compiled-plugin disk cache, in MiB.
    pub cache_max_mb: u64,
    /// OCI registries (`host` or `host:port`) reached over plain HTTP besides
    /// loopback ones; every other registry is reached over HTTPS (src/oci/).
    pub insecure_registries: Vec<String>,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            max_file_mb: 64,
            compile_timeout_s: 120.0,
            compile_memory_mb: 3072,
            cache_max_mb: 1024,
            insecure_registries: Vec::new(),
        }
    }
}

/// Traces, metrics and logs (docs/observability.md). The standard `OTEL_*`
/// environment variables win over these keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP endpoint (base URL, `http://…`); empty: no export. `$OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otlp_endpoint: String,
    /// `grpc` or `http/protobuf`. `$OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub otlp_protocol: String,
    /// Also export log records over OTLP (to Loki) when an endpoint is set.
    pub otlp_logs: bool,
    /// `service.name` of the traces. `$OTEL_SERVICE_NAME`.
    pub service_name: String,
    /// The `instance` label of the gauges (empty: the host name).
    pub instance: String,
    /// Characters of the instruction kept in the span attribute `instruct_raw`; 0 drops it.
    pub instruct_max_chars: usize,
    /// Opt in to exporting request text and every attribute unfiltered (debugging only).
    pub export_text: bool,
    /// Log format on stdout: `json` (one object per line) or `text`.
    pub log_format: String,
    /// Log level filter when `$RUST_LOG` is unset.
    pub log_level: String,
}

/// Admission and request limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest text of a whole response, in characters (longer → 413).
    pub max_text_chars: usize,
    /// Longest text of a streamed response, in characters (longer → 413):
    /// a stream goes a few sentences at a time, so its memory does not grow
    /// with the text.
    pub max_stream_chars: usize,
    /// Syntheses running at once (0: one per two CPU cores, at least 1).
    pub concurrency: usize,
    /// Requests allowed to wait for a slot; beyond that → 503 at once.
    pub queue: usize,
    /// Deadline of a request from arrival, queueing included (→ 504).
    pub request_timeout_s: f64,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_s: f64,
    /// After the signal, how long the server keeps accepting requests while
    /// `/readyz` already answers 503, so a load balancer that health-checks
    /// it stops sending before it stops listening.
    pub drain_delay_s: f64,
    /// Most phoneme ids one model call takes; longer sentences are cut into
    /// pieces at clauses, then words. (`max_sentence_phonemes` is its old name.)
    #[serde(alias = "max_sentence_phonemes")]
    pub max_call_phonemes: usize,
    /// Most phoneme ids one request may make, after its text stages (→ 413
    /// request_too_large): the work one request may start.
    pub max_request_phonemes: usize,
    /// Working memory all running syntheses may hold together, MiB (a request
    /// estimated over it → 413 request_too_large; one that does not fit now
    /// waits in the queue).
    pub memory_mb: u32,
    /// Longest audio one sentence may last, in seconds (→ 422 sentence_too_long).
    pub max_sentence_seconds: f32,
}

/// The audio cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Bytes of encoded audio kept, in MiB; 0 turns the cache off.
    pub max_mb: usize,
}

/// API keys (bearer tokens). Empty lists leave the endpoints open.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Keys for synthesis and the voice list. `$VOXPIPE_API_KEYS` (comma-separated) adds more.
    pub api_keys: Vec<String>,
    /// Keys for admin endpoints (pipelines). `$VOXPIPE_ADMIN_KEYS` adds more.
    pub admin_keys: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:8080".parse().expect("a valid address"),
            pipelines: "pipelines".into(),
            plugin_dirs: Vec::new(),
            voices: "voices".into(),
            default_pipeline: "default".into(),
            device: "cpu".into(),
            poll_ms: 2000,
            limits: Limits::default(),
            cache: CacheConfig::default(),
            plugins: PluginsConfig::default(),
            auth: AuthConfig::default(),
            telemetry: TelemetryConfig::default(),
            wyoming: crate::wyoming::WyomingConfig::default(),
        }
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: String::new(),
            otlp_protocol: "http/protobuf".into(),
            otlp_logs: true,
            service_name: "voxpipe".into(),
            instance: String::new(),
            instruct_max_chars: 64,
            export_text: false,
            log_format: "json".into(),
            log_level: "info".into(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_text_chars: 5000,
            max_stream_chars: 100_000,
            concurrency: 0,
            queue: 16,
            request_timeout_s: 60.0,
            shutdown_grace_s: 30.0,
            drain_delay_s: 0.0,
            max_call_phonemes: voxpipe_engine::synth::DEFAULT_MAX_CALL_PHONEMES,
            max_request_phonemes: 50_000,
            memory_mb: 1024,
            max_sentence_seconds: voxpipe_engine::synth::DEFAULT_MAX_SENTENCE_SECONDS,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { max_mb: 64 }
    }
}

impl Limits {
    /// The configured concurrency, or one synthesis per two cores: the voice
    /// already uses two threads per synthesis.
    pub fn effective_concurrency(&self) -> usize {
        if self.concurrency > 0 {
            return self.concurrency;
        }
        std::thread::available_parallelism()
            .map_or(1, |n| n.get() / 2)
            .max(1)
    }
}

impl ServerConfig {
    /// Reads `path`; errors name the file, line and column.
    pub fn read(path: &Path) -> anyhow::Result<ServerConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<ServerConfig> {
        let config: ServerConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let l = &self.limits;
        anyhow::ensure!(l.max_text_chars > 0, "limits.max_text_chars must be > 0");
        anyhow::ensure!(
            l.request_timeout_s.is_finite() && l.request_timeout_s > 0.0,
            "limits.request_timeout_s must be > 0"
        );
        anyhow::ensure!(
            l.shutdown_grace_s.is_finite() && l.shutdown_grace_s >= 0.0,
            "limits.shutdown_grace_s must be ≥ 0"
        );
        anyhow::ensure!(
            (1..=10_000_000).contains(&l.max_stream_chars),
            "limits.max_stream_chars must be 1..=10000000"
        );
        anyhow::ensure!(
            l.drain_delay_s.is_finite() && (0.0..=600.0).contains(&l.drain_delay_s),
            "limits.drain_delay_s must be 0..=600"
        );
        anyhow::ensure!(
            (16..=4096).contains(&l.max_call_phonemes),
            "limits.max_call_phonemes must be 16..=4096"
        );
        anyhow::ensure!(
            (16..=10_000_000).contains(&l.max_request_phonemes),
            "limits.max_request_phonemes must be 16..=10000000"
        );
        anyhow::ensure!(
            (64..=1_048_576).contains(&l.memory_mb),
            "limits.memory_mb must be 64..=1048576"
        );
        anyhow::ensure!(
            l.max_sentence_seconds.is_finite() && (1.0..=3600.0).contains(&l.max_sentence_seconds),
            "limits.max_sentence_seconds must be 1..=3600"
        );
        let p = &self.plugins;
        anyhow::ensure!(
            (1..=4096).contains(&p.max_file_mb),
            "plugins.max_file_mb must be 1..=4096"
        );
        anyhow::ensure!(
            p.compile_timeout_s.is_finite() && p.compile_timeout_s > 0.0,
            "plugins.compile_timeout_s must be > 0"
        );
        anyhow::ensure!(
            p.compile_memory_mb >= 64,
            "plugins.compile_memory_mb must be ≥ 64"
        );
        self.device
            .parse::<voxpipe_engine::device::DeviceSpec>()
            .map_err(|e| anyhow::anyhow!("device: {e}"))?;
        let t = &self.telemetry;
        anyhow::ensure!(
            matches!(t.otlp_protocol.as_str(), "grpc" | "http/protobuf"),
            "telemetry.otlp_protocol must be \"grpc\" or \"http/protobuf\", not {:?}",
            t.otlp_protocol
        );
        anyhow::ensure!(
            matches!(t.log_format.as_str(), "json" | "text"),
            "telemetry.log_format must be \"json\" or \"text\", not {:?}",
            t.log_format
        );
        self.wyoming.validate(l.max_text_chars)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let c = ServerConfig::parse("").unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.limits.queue, 16);
        assert_eq!(c.cache.max_mb, 64);
        assert!(c.limits.effective_concurrency() >= 1);
    }

    #[test]
    fn the_documented_example_is_the_defaults() {
        let example = include_str!("../../../examples/server.toml");
        let c = ServerConfig::parse(example).unwrap();
        let d = ServerConfig::default();
        assert_eq!(c.bind, d.bind);
        assert_eq!(c.limits.queue, d.limits.queue);
        assert_eq!(c.limits.max_text_chars, d.limits.max_text_chars);
        assert_eq!(c.cache.max_mb, d.cache.max_mb);
        assert_eq!(c.limits.drain_delay_s, d.limits.drain_delay_s);
        assert_eq!(c.plugins.insecure_registries, d.plugins.insecure_registries);
        assert_eq!(c.telemetry.otlp_protocol, d.telemetry.otlp_protocol);
        assert_eq!(
            c.telemetry.instruct_max_chars,
            d.telemetry.instruct_max_chars
        );
        assert_eq!(c.telemetry.log_format, d.telemetry.log_format);
        let (w, dw) = (&c.wyoming, &d.wyoming);
        assert_eq!(w.listeners, dw.listeners);
        assert_eq!(w.max_connections, dw.max_connections);
        assert_eq!(w.idle_timeout_s, dw.idle_timeout_s);
        assert_eq!(w.event_timeout_s, dw.event_timeout_s);
        assert_eq!(w.max_event_kib, dw.max_event_kib);
        assert_eq!(w.samples_per_chunk, dw.samples_per_chunk);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = ServerConfig::parse("bnd = \"0.0.0.0:1\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `bnd`"), "{e}");
        let e = ServerConfig::parse("[limits]\nrequest_timeout_s = 0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("request_timeout_s"), "{e}");
        let e = ServerConfig::parse("device = \"tpu\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("device"), "{e}");
        let c =
            ServerConfig::parse("[limits]\nconcurrency = 3\n[auth]\napi_keys = [\"k\"]").unwrap();
        assert_eq!(c.limits.effective_concurrency(), 3);
        assert_eq!(c.auth.api_keys, vec!["k".to_string()]);
    }
}
