//! Traces, metrics and logs of the server (docs/observability.md).
//!
//! - Traces: `tracing` spans become OpenTelemetry spans (tracing-opentelemetry),
//!   exported over OTLP in batches off the request path when an endpoint is
//!   configured. Without one, spans are still created so every log line and
//!   response carries a real trace id; nothing leaves the process.
//! - Every exported span goes through [`redact::Redacting`]: only attributes
//!   voxpipe itself names reach the exporter (privacy by default).
//! - Metrics: [`metrics`] (Prometheus text at `/metrics`).
//! - Logs: one line per event on stdout ([`logfmt`]), JSON by default, with
//!   the `trace_id` / `span_id` of the span the event happened in; optionally
//!   also OTLP log records (for Loki).

mod logfmt;
pub mod metrics;
pub mod otlp;
pub mod redact;

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::config::TelemetryConfig;

pub use logfmt::{current_ids, LogLine};
pub use otlp::{Exporters, Protocol};
pub use redact::{privacy, truncate_chars, Privacy};

/// The installed telemetry; [`Telemetry::shutdown`] flushes what is batched.
pub struct Telemetry {
    tracer: SdkTracerProvider,
    logger: Option<SdkLoggerProvider>,
    /// Where traces and logs go, for the startup log line.
    pub exporters: Exporters,
}

/// Crates whose own events and spans must never be exported: they are the
/// exporter's transport, so exporting them would feed back into itself.
fn not_the_exporter(meta: &tracing::Metadata<'_>) -> bool {
    const INTERNAL: [&str; 6] = ["h2", "hyper", "tonic", "tower", "reqwest", "opentelemetry"];
    !INTERNAL.iter().any(|t| meta.target().starts_with(t))
}

impl Telemetry {
    /// Installs the global `tracing` subscriber. Call it inside a Tokio
    /// runtime: the gRPC exporter needs one. `log_format` is `json` or `text`.
    pub fn init(config: &TelemetryConfig, log_format: &str) -> anyhow::Result<Telemetry> {
        redact::set_privacy(Privacy {
            instruct_max_chars: config.instruct_max_chars,
            export_text: config.export_text,
        });
        let exporters = Exporters::resolve(config)?;
        let resource = otlp::resource(config);
        let privacy = privacy().clone();

        let mut tracer = SdkTracerProvider::builder().with_resource(resource.clone());
        if let Some(target) = &exporters.traces {
            let exporter = target
                .span_exporter()
                .context("building the OTLP span exporter")?;
            let batch = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter).build();
            tracer = tracer.with_span_processor(redact::Redacting::new(batch, privacy));
        }
        let tracer = tracer.build();
        let logger = match &exporters.logs {
            Some(target) => {
                let exporter = target
                    .log_exporter()
                    .context("building the OTLP log exporter")?;
                Some(
                    SdkLoggerProvider::builder()
                        .with_resource(resource)
                        .with_batch_exporter(exporter)
                        .build(),
                )
            }
            None => None,
        };

        let filter = EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(&config.log_level))
            .with_context(|| format!("telemetry.log_level {:?}", config.log_level))?;
        let lines = tracing_subscriber::fmt::layer()
            .event_format(LogLine {
                json: log_format != "text",
            })
            .with_writer(std::io::stdout);
        let spans = tracing_opentelemetry::layer()
            .with_tracer(tracer.tracer("voxpipe"))
            .with_filter(filter_fn(not_the_exporter));
        let records = logger.as_ref().map(|l| {
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(l)
                .with_filter(filter_fn(not_the_exporter))
        });
        tracing_subscriber::registry()
            .with(filter)
            .with(lines)
            .with(spans)
            .with(records)
            .try_init()
            .context("installing the log subscriber")?;
        Ok(Telemetry {
            tracer,
            logger,
            exporters,
        })
    }

    /// Exports what is still batched (bounded wait). Call it while the Tokio
    /// runtime that built the exporters still runs, from outside it.
    pub fn shutdown(self) {
        let wait = Duration::from_secs(5);
        if let Err(e) = self.tracer.shutdown_with_timeout(wait) {
            eprintln!("telemetry: flushing spans: {e}");
        }
        if let Some(l) = self.logger {
            if let Err(e) = l.shutdown_with_timeout(wait) {
                eprintln!("telemetry: flushing log records: {e}");
            }
        }
    }
}
