//! The Prometheus metrics (`GET /metrics`). Names, labels and buckets are the
//! seed set plus voxpipe's own; docs/observability.md lists them. Labels stay
//! low-cardinality: voices, pipeline languages, stage and plugin names and
//! error types come from operators' files and the code, never from requests.
//!
//! Recording goes through the `metrics` facade: without an installed recorder
//! (the CLI, unit tests) every call here is a no-op.

use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::TelemetryConfig;

pub const REQUESTS: &str = "tts_requests_total";
pub const SYNTHESIS_SECONDS: &str = "tts_synthesis_duration_seconds";
pub const AUDIO_SECONDS: &str = "tts_audio_duration_seconds";
pub const FIRST_AUDIO_SECONDS: &str = "tts_time_to_first_audio_seconds";
pub const QUEUE_LENGTH: &str = "tts_queue_length";
pub const IN_FLIGHT: &str = "tts_requests_in_flight";
pub const GPU_MEMORY: &str = "tts_gpu_memory_bytes";
pub const GPU_MEMORY_TOTAL: &str = "tts_gpu_memory_total_bytes";
pub const ERRORS: &str = "tts_errors_total";
pub const STAGE_SECONDS: &str = "tts_stage_duration_seconds";
pub const PLUGIN_FAULTS: &str = "tts_plugin_faults_total";
pub const PIPELINE_RELOADS: &str = "tts_pipeline_reloads_total";
pub const CACHE_HITS: &str = "tts_cache_hits_total";
pub const CACHE_MISSES: &str = "tts_cache_misses_total";
pub const STYLE_UNHONORED: &str = "tts_style_unhonored_total";

/// Installs the global recorder and returns the handle `/metrics` renders.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let buckets: [(&str, &[f64]); 4] = [
        (SYNTHESIS_SECONDS, &[0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0]),
        (AUDIO_SECONDS, &[1.0, 2.0, 5.0, 10.0, 30.0, 60.0]),
        (
            FIRST_AUDIO_SECONDS,
            &[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0],
        ),
        (
            STAGE_SECONDS,
            &[
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ],
        ),
    ];
    let mut builder = PrometheusBuilder::new();
    for (name, b) in buckets {
        builder = builder.set_buckets_for_metric(Matcher::Full(name.into()), b)?;
    }
    let handle = builder.install_recorder()?;
    describe();
    Ok(handle)
}

fn describe() {
    describe_counter!(REQUESTS, "Finished synthesis requests by status (success, error, cancelled), model (voice), language and frontend (http, wyoming).");
    describe_histogram!(
        SYNTHESIS_SECONDS,
        metrics::Unit::Seconds,
        "Request arrival to audio complete, successful syntheses (cache hits excluded)."
    );
    describe_histogram!(
        AUDIO_SECONDS,
        metrics::Unit::Seconds,
        "Seconds of audio produced per successful synthesis."
    );
    describe_histogram!(
        FIRST_AUDIO_SECONDS,
        metrics::Unit::Seconds,
        "Request arrival to the first audio ready to send."
    );
    describe_gauge!(QUEUE_LENGTH, "Requests waiting for a synthesis slot.");
    describe_gauge!(IN_FLIGHT, "Syntheses running now.");
    describe_gauge!(
        GPU_MEMORY,
        metrics::Unit::Bytes,
        "GPU memory in use (all processes), per GPU."
    );
    describe_gauge!(
        GPU_MEMORY_TOTAL,
        metrics::Unit::Bytes,
        "GPU memory size, per GPU."
    );
    describe_counter!(
        ERRORS,
        "Failed requests by API error type (oom, timeout, invalid_input, ...) and frontend."
    );
    describe_histogram!(
        STAGE_SECONDS,
        metrics::Unit::Seconds,
        "Duration of one pipeline stage: plugin stages by name, built-ins with plugin=\"host\"."
    );
    describe_counter!(
        PLUGIN_FAULTS,
        "Failed plugin calls by plugin and failure kind."
    );
    describe_counter!(
        PIPELINE_RELOADS,
        "Pipeline file loads and reloads by result (ok, error)."
    );
    describe_counter!(CACHE_HITS, "Requests answered from the audio cache.");
    describe_counter!(
        STYLE_UNHONORED,
        "Style fields a request set that nothing in its pipeline applied (a dialect without a route, a pitch without a pitch stage), by pipeline and field."
    );
    describe_counter!(
        CACHE_MISSES,
        "Cacheable requests that had to be synthesized."
    );
}

/// The `instance` label: the config's, else the host name.
pub fn instance_name(config: &TelemetryConfig) -> String {
    if !config.instance.trim().is_empty() {
        return config.instance.trim().to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The `model`, `language` and `frontend` labels of one request.
#[derive(Debug, Clone)]
pub struct RequestLabels {
    pub model: String,
    pub language: String,
    /// The protocol the request came in by: `http` or `wyoming`.
    pub frontend: &'static str,
}

impl Default for RequestLabels {
    fn default() -> Self {
        RequestLabels {
            model: "unknown".into(),
            language: "unknown".into(),
            frontend: "http",
        }
    }
}

/// How a request ended.
pub enum Outcome<'a> {
    /// Synthesized: how long it took and how much audio it made.
    Synthesized {
        elapsed: Duration,
        audio_seconds: f64,
    },
    /// Answered from the cache (no synthesis ran).
    Cached,
    /// Failed with this API error type.
    Failed(&'a str),
    /// The client went away.
    Cancelled,
}

pub fn request_finished(labels: &RequestLabels, outcome: Outcome<'_>) {
    let status = match outcome {
        Outcome::Synthesized { .. } | Outcome::Cached => "success",
        Outcome::Failed(_) => "error",
        Outcome::Cancelled => "cancelled",
    };
    let (model, language, frontend) = (
        labels.model.clone(),
        labels.language.clone(),
        labels.frontend,
    );
    counter!(REQUESTS, "status" => status, "model" => model.clone(), "language" => language.clone(), "frontend" => frontend)
        .increment(1);
    match outcome {
        Outcome::Synthesized {
            elapsed,
            audio_seconds,
        } => {
            histogram!(SYNTHESIS_SECONDS, "model" => model.clone(), "language" => language.clone(), "frontend" => frontend)
                .record(elapsed.as_secs_f64());
            histogram!(AUDIO_SECONDS, "model" => model, "language" => language, "frontend" => frontend)
                .record(audio_seconds);
        }
        Outcome::Failed(kind) => {
            counter!(ERRORS, "error_type" => kind.to_string(), "frontend" => frontend).increment(1)
        }
        Outcome::Cancelled => {
            counter!(ERRORS, "error_type" => "cancelled", "frontend" => frontend).increment(1)
        }
        Outcome::Cached => {}
    }
}

pub fn first_audio(labels: &RequestLabels, elapsed: Duration) {
    histogram!(FIRST_AUDIO_SECONDS, "model" => labels.model.clone(), "language" => labels.language.clone(), "frontend" => labels.frontend)
        .record(elapsed.as_secs_f64());
}

/// One stage's duration; built-in stages pass `plugin = "host"`.
pub fn stage(stage: &str, plugin: &str, d: Duration) {
    histogram!(STAGE_SECONDS, "stage" => stage.to_string(), "plugin" => plugin.to_string())
        .record(d.as_secs_f64());
}

pub fn plugin_fault(plugin: &str, kind: &str) {
    counter!(PLUGIN_FAULTS, "plugin" => plugin.to_string(), "kind" => kind.to_string())
        .increment(1);
}

pub fn pipeline_reload(ok: bool) {
    counter!(PIPELINE_RELOADS, "result" => if ok { "ok" } else { "error" }).increment(1);
}

/// One style field that nothing applied. `field` is a fixed name
/// (`dialect`, `emotion`, …), never the value.
pub fn style_unhonored(pipeline: &str, field: &'static str) {
    counter!(STYLE_UNHONORED, "pipeline" => pipeline.to_string(), "field" => field).increment(1);
}

pub fn cache(hit: bool) {
    counter!(if hit { CACHE_HITS } else { CACHE_MISSES }).increment(1);
}

/// The gauges, sampled when Prometheus scrapes.
pub fn sample_gauges(
    instance: &str,
    queued: usize,
    running: usize,
    gpu: Option<voxpipe_engine::device::GpuMemory>,
) {
    let i = instance.to_string();
    gauge!(QUEUE_LENGTH, "instance" => i.clone()).set(queued as f64);
    gauge!(IN_FLIGHT, "instance" => i.clone()).set(running as f64);
    if let Some(g) = gpu {
        let id = g.gpu_id.to_string();
        gauge!(GPU_MEMORY, "instance" => i.clone(), "gpu_id" => id.clone())
            .set(g.used_bytes as f64);
        gauge!(GPU_MEMORY_TOTAL, "instance" => i, "gpu_id" => id).set(g.total_bytes as f64);
    }
}
