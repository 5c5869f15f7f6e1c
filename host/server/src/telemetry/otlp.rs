//! Where traces and log records go: the standard `OTEL_*` variables, else
//! the `[telemetry]` config. Resolved here once so the startup log can say
//! exactly what is exported where (the exporters are handed final URLs).

use opentelemetry::KeyValue;
use opentelemetry_otlp::{LogExporter, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;

use crate::config::TelemetryConfig;

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// gRPC (port 4317 by convention).
    Grpc,
    /// Protobuf over HTTP POST to `/v1/<signal>` (port 4318).
    HttpProtobuf,
}

impl Protocol {
    fn parse(s: &str, source: &str) -> anyhow::Result<Protocol> {
        match s.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            other => anyhow::bail!(
                "{source}: OTLP protocol {other:?} is not supported; use \"grpc\" or \"http/protobuf\""
            ),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// One signal's destination: the final URL and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub protocol: Protocol,
    pub endpoint: String,
}

/// The destinations of traces and log records (`None`: not exported).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exporters {
    pub traces: Option<Target>,
    pub logs: Option<Target>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl Exporters {
    /// Reads the environment and `config` (the environment wins).
    pub fn resolve(config: &TelemetryConfig) -> anyhow::Result<Exporters> {
        Self::resolve_with(config, &env)
    }

    fn resolve_with(
        config: &TelemetryConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Exporters> {
        let base = env("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|v| (v, "OTEL_EXPORTER_OTLP_ENDPOINT"))
            .or_else(|| {
                Some(config.otlp_endpoint.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .map(|v| (v, "telemetry.otlp_endpoint"))
            });
        let protocol = match env("OTEL_EXPORTER_OTLP_PROTOCOL") {
            Some(p) => Protocol::parse(&p, "OTEL_EXPORTER_OTLP_PROTOCOL")?,
            None => Protocol::parse(&config.otlp_protocol, "telemetry.otlp_protocol")?,
        };
        let signal = |name: &str, upper: &str, wanted: bool| -> anyhow::Result<Option<Target>> {
            if env(&format!("OTEL_{upper}_EXPORTER")).as_deref() == Some("none") {
                return Ok(None);
            }
            let protocol_var = format!("OTEL_EXPORTER_OTLP_{upper}_PROTOCOL");
            let protocol = match env(&protocol_var) {
                Some(p) => Protocol::parse(&p, &protocol_var)?,
                None => protocol,
            };
            let endpoint_var = format!("OTEL_EXPORTER_OTLP_{upper}_ENDPOINT");
            // A signal's own endpoint is used verbatim; the base gets the path.
            let (endpoint, source) = match env(&endpoint_var) {
                Some(e) => (e, endpoint_var.as_str()),
                None if !wanted => return Ok(None),
                None => match &base {
                    None => return Ok(None),
                    Some((b, source)) => match protocol {
                        Protocol::Grpc => (b.clone(), *source),
                        Protocol::HttpProtobuf => {
                            (format!("{}/v1/{name}", b.trim_end_matches('/')), *source)
                        }
                    },
                },
            };
            anyhow::ensure!(
                endpoint.starts_with("http://"),
                "{source}: OTLP endpoint {endpoint:?} must start with http:// (TLS is not \
                 built in; send to a local collector that forwards over TLS)"
            );
            Ok(Some(Target { protocol, endpoint }))
        };
        Ok(Exporters {
            traces: signal("traces", "TRACES", true)?,
            logs: signal("logs", "LOGS", config.otlp_logs)?,
        })
    }
}

impl Target {
    pub fn span_exporter(&self) -> anyhow::Result<SpanExporter> {
        Ok(match self.protocol {
            Protocol::Grpc => SpanExporter::builder()
                .with_tonic()
                .with_endpoint(&self.endpoint)
                .build()?,
            Protocol::HttpProtobuf => SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(&self.endpoint)
                .build()?,
        })
    }

    pub fn log_exporter(&self) -> anyhow::Result<LogExporter> {
        Ok(match self.protocol {
            Protocol::Grpc => LogExporter::builder()
                .with_tonic()
                .with_endpoint(&self.endpoint)
                .build()?,
            Protocol::HttpProtobuf => LogExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(&self.endpoint)
                .build()?,
        })
    }
}

/// `service.name` (`$OTEL_SERVICE_NAME` wins over the config),
/// `service.version`, `service.instance.id`, and `$OTEL_RESOURCE_ATTRIBUTES`.
pub fn resource(config: &TelemetryConfig) -> Resource {
    let mut b = Resource::builder();
    if env("OTEL_SERVICE_NAME").is_none() {
        b = b.with_service_name(config.service_name.clone());
    }
    b.with_attributes([
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("service.instance.id", super::metrics::instance_name(config)),
    ])
    .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(vars: &[(&str, &str)], config: TelemetryConfig) -> anyhow::Result<Exporters> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Exporters::resolve_with(&config, &|k| vars.get(k).cloned())
    }

    #[test]
    fn nothing_configured_exports_nothing() {
        let e = resolve(&[], TelemetryConfig::default()).unwrap();
        assert_eq!(e, Exporters::default());
    }

    #[test]
    fn a_base_endpoint_gets_the_signal_path_over_http_only() {
        let e = resolve(
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")],
            TelemetryConfig::default(),
        )
        .unwrap();
        assert_eq!(
            e.traces.unwrap().endpoint,
            "http://collector:4318/v1/traces"
        );
        assert_eq!(e.logs.unwrap().endpoint, "http://collector:4318/v1/logs");
        let e = resolve(
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://tempo:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_LOGS_EXPORTER", "none"),
            ],
            TelemetryConfig::default(),
        )
        .unwrap();
        let t = e.traces.unwrap();
        assert_eq!(
            (t.protocol, t.endpoint.as_str()),
            (Protocol::Grpc, "http://tempo:4317")
        );
        assert!(e.logs.is_none());
    }

    #[test]
    fn signal_variables_win_and_are_verbatim() {
        let config = TelemetryConfig {
            otlp_endpoint: "http://from-config:4318".into(),
            ..TelemetryConfig::default()
        };
        let e = resolve(
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://tempo:4317"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
                (
                    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                    "http://loki:3100/otlp/v1/logs",
                ),
            ],
            config,
        )
        .unwrap();
        assert_eq!(e.traces.unwrap().endpoint, "http://tempo:4317");
        let l = e.logs.unwrap();
        assert_eq!(l.endpoint, "http://loki:3100/otlp/v1/logs");
        assert_eq!(l.protocol, Protocol::HttpProtobuf);
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        let e = resolve(
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "tempo:4317")],
            Default::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("must start with http://"), "{e}");
        let e = resolve(
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
            Default::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("http/json"), "{e}");
    }
}
