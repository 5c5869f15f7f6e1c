//! Log lines on stdout: JSON (one object per line, for Loki) or text, both
//! with the `trace_id` and `span_id` of the span the event happened in, so a
//! log line leads to its trace and a trace to its log lines.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The trace id and span id (hex, as Tempo shows them) of the span current
/// on this thread, if any.
pub fn current_ids() -> Option<(String, String)> {
    let cx = opentelemetry::Context::current();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid()
        .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

/// The event formatter of the server's log.
pub struct LogLine {
    pub json: bool,
}

/// An event's fields, `message` apart.
#[derive(Default)]
struct Fields {
    message: String,
    rest: Map<String, Value>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let v = format!("{value:?}");
        if field.name() == "message" {
            self.message = v;
        } else {
            self.rest.insert(field.name().into(), Value::String(v));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.rest.insert(field.name().into(), value.into());
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.rest.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.rest.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.rest.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.rest.insert(field.name().into(), value.into());
    }
}

/// Keys the line itself uses; an event field of the same name is prefixed.
const RESERVED: [&str; 7] = [
    "timestamp",
    "level",
    "target",
    "message",
    "span",
    "trace_id",
    "span_id",
];

impl<S, N> FormatEvent<S, N> for LogLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let meta = event.metadata();
        let span = ctx.lookup_current().map(|s| s.name());
        let ids = current_ids();
        if self.json {
            let mut line = Map::new();
            line.insert("timestamp".into(), timestamp.into());
            line.insert("level".into(), meta.level().as_str().into());
            line.insert("target".into(), meta.target().into());
            line.insert("message".into(), fields.message.into());
            for (k, v) in fields.rest {
                let k = if RESERVED.contains(&k.as_str()) {
                    format!("field.{k}")
                } else {
                    k
                };
                line.insert(k, v);
            }
            if let Some(s) = span {
                line.insert("span".into(), s.into());
            }
            if let Some((trace, span)) = ids {
                line.insert("trace_id".into(), trace.into());
                line.insert("span_id".into(), span.into());
            }
            writeln!(writer, "{}", Value::Object(line))
        } else {
            write!(
                writer,
                "{timestamp} {:>5} {}",
                meta.level().as_str(),
                fields.message
            )?;
            for (k, v) in fields.rest {
                match v {
                    Value::String(s) => write!(writer, " {k}={s}")?,
                    other => write!(writer, " {k}={other}")?,
                }
            }
            if let Some((trace, span)) = ids {
                write!(writer, " trace_id={trace} span_id={span}")?;
            }
            writeln!(writer)
        }
    }
}
