//! Observability through the real binary: spans exported over OTLP/gRPC to a
//! real receiver in this test (the tree, names, attributes, a failing
//! plugin's error span, nothing private), JSON log lines and OTLP log records
//! carrying the trace id, and a real Prometheus (Debian's package) scraping
//! `/metrics` and evaluating the seeds' PromQL.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::http::{default_pipelines, get, request, sigterm, wait_exit, Server};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use serde_json::json;

/// What the receiver got: every export request as it arrived.
#[derive(Clone, Default)]
struct Received {
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    logs: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.traces.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl LogsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.logs.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

/// A real OTLP/gRPC receiver (traces and logs) on a free loopback port.
fn start_receiver() -> (Received, SocketAddr, tokio::runtime::Runtime) {
    let received = Received::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let service = received.clone();
    rt.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(service.clone()))
            .add_service(LogsServiceServer::new(service))
            .serve_with_incoming(tokio_stream_from(listener))
            .await
            .unwrap();
    });
    (received, addr, rt)
}

fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    })
}

/// One exported span, flattened for assertions.
#[derive(Debug, Clone)]
struct Span {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    kind: i32,
    start: u64,
    attrs: HashMap<String, Value>,
    events: Vec<String>,
    /// 2 = Error
    status: i32,
}

impl Span {
    fn str(&self, key: &str) -> Option<&str> {
        match self.attrs.get(key) {
            Some(Value::StringValue(s)) => Some(s),
            _ => None,
        }
    }
    fn int(&self, key: &str) -> Option<i64> {
        match self.attrs.get(key) {
            Some(Value::IntValue(i)) => Some(*i),
            _ => None,
        }
    }
}

fn spans(received: &Received) -> Vec<Span> {
    let mut out = Vec::new();
    for req in received.traces.lock().unwrap().iter() {
        for rs in &req.resource_spans {
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    out.push(Span {
                        trace_id: hex::encode(&s.trace_id),
                        span_id: hex::encode(&s.span_id),
                        parent: hex::encode(&s.parent_span_id),
                        name: s.name.clone(),
                        kind: s.kind,
                        start: s.start_time_unix_nano,
                        attrs: s
                            .attributes
                            .iter()
                            .filter_map(|kv| {
                                Some((kv.key.clone(), kv.value.as_ref()?.value.clone()?))
                            })
                            .collect(),
                        events: s.events.iter().map(|e| e.name.clone()).collect(),
                        status: s.status.as_ref().map_or(0, |st| st.code),
                    });
                }
            }
        }
    }
    out
}

const KEY: &str = "KEY-SECRET-9f8e7d";
const TEXT_SECRET: &str = "TEXTSECRET4242";
const INSTRUCT_TAIL: &str = "INSTRUCTTAILSECRET";

fn post(port: u16, body: &serde_json::Value, extra: &[(&str, &str)]) -> common::http::Reply {
    let auth = format!("Bearer {KEY}");
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
        ("X-Api-Key", KEY),
    ];
    headers.extend_from_slice(extra);
    request(
        port,
        "POST",
        "/v1/tts",
        &headers,
        body.to_string().as_bytes(),
    )
    .unwrap()
}

#[test]
fn every_request_is_one_trace_of_its_stages_and_nothing_private_leaves() {
    let (received, addr, _rt) = start_receiver();
    let dir = default_pipelines();
    std::fs::write(
        dir.path().join("faulty.toml"),
        "name = \"faulty\"\nvoice = \"en_US-joe-medium\"\n[[stages]]\nkind = \"text\"\n\
         name = \"breaks\"\nplugin = \"hostile\"\nconfig = { mode = \"panic\" }\n\
         [[stages]]\nkind = \"model\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("leaky.toml"),
        "name = \"leaky\"\nvoice = \"en_US-joe-medium\"\n[[stages]]\nkind = \"text\"\n\
         name = \"tattle\"\nplugin = \"hostile\"\nconfig = { mode = \"log-input\" }\n\
         [[stages]]\nkind = \"model\"\n",
    )
    .unwrap();
    let endpoint = format!("http://{addr}");
    let mut server = Server::start(
        dir.path(),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            // Nothing is exported before shutdown: what arrives proves the flush.
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "600000"),
            ("VOXPIPE_API_KEYS", KEY),
        ],
    );
    let port = server.port;

    // 1. Mapped instruct, continuing the caller's trace; hostile text and key.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{caller_trace}-00f067aa0ba902b7-01");
    let instruct = format!("speak sadly {}{INSTRUCT_TAIL}", "·".repeat(60));
    let r = post(
        port,
        &json!({ "text": format!("My code is {TEXT_SECRET}. Tell nobody."), "instruct": instruct }),
        &[("traceparent", &traceparent)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-trace-id"), Some(caller_trace));
    // 2. An instruct no table entry maps.
    let unmapped = post(
        port,
        &json!({ "text": "Hello.", "instruct": "用火星话说" }),
        &[],
    );
    assert_eq!(unmapped.status, 200);
    let unmapped_trace = unmapped.header("x-trace-id").unwrap().to_string();
    // 3. A plugin that traps.
    let failed = post(port, &json!({ "text": "a", "pipeline": "faulty" }), &[]);
    assert_eq!(failed.status, 502, "{}", failed.text());
    let failed_trace = failed.header("x-trace-id").unwrap().to_string();
    // 4. Invalid input: the server span names the API error type.
    let invalid = post(port, &json!({ "text": "x", "speed": 9 }), &[]);
    assert_eq!(invalid.status, 422);
    let invalid_trace = invalid.header("x-trace-id").unwrap().to_string();
    // 5. A streamed response.
    let streamed = post(
        port,
        &json!({ "text": "One sentence. And another one.", "stream": true }),
        &[],
    );
    assert_eq!(streamed.status, 200);
    let streamed_trace = streamed.header("x-trace-id").unwrap().to_string();
    // 6. A plugin that logs the request's text.
    let leaky = post(
        port,
        &json!({ "text": format!("Leak {TEXT_SECRET} now."), "pipeline": "leaky" }),
        &[],
    );
    assert_eq!(leaky.status, 200);
    let leaky_trace = leaky.header("x-trace-id").unwrap().to_string();

    // Shutdown flushes what is still batched.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        received.traces.lock().unwrap().is_empty(),
        "spans exported before shutdown despite the 10-minute batch delay"
    );
    sigterm(&server.child);
    assert!(wait_exit(&mut server.child, Duration::from_secs(30)).success());
    let all = spans(&received);
    let log = server.log_text();

    // --- the tree of request 1 ---
    let t: Vec<&Span> = all.iter().filter(|s| s.trace_id == caller_trace).collect();
    let names: Vec<&str> = t.iter().map(|s| s.name.as_str()).collect();
    let one = |name: &str| -> &Span {
        let found: Vec<&&Span> = t.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "{name} in {names:?}");
        found[0]
    };
    let http = one("POST /v1/tts");
    assert_eq!(
        http.parent, "00f067aa0ba902b7",
        "continues the caller's span"
    );
    assert_eq!(http.kind, 2, "SERVER");
    assert_eq!(http.int("http.response.status_code"), Some(200));
    assert_eq!(http.str("http.route"), Some("/v1/tts"));
    assert_eq!(http.str("http.request.method"), Some("POST"));
    let synth = one("tts.synthesize");
    assert_eq!(synth.parent, http.span_id);
    assert_eq!(synth.str("tts.mode"), Some("instruct"));
    assert_eq!(synth.str("tts.voice"), Some("en_US-joe-medium"));
    assert_eq!(synth.str("pipeline.name"), Some("default"));
    assert_eq!(synth.int("pipeline.version"), Some(1));
    assert_eq!(synth.str("tts.language"), Some("en-US"));
    // Understood (emotion=sad) but nothing in the default pipeline applies
    // an emotion: the request's span says so, attribute and event.
    assert_eq!(synth.str("style.unhonored"), Some("emotion=sad"));
    assert!(
        synth.events.iter().any(|e| e == "style unhonored"),
        "{:?}",
        synth.events
    );
    assert!(synth.int("tts.sentences").unwrap() >= 2);
    assert_eq!(one("tts.queue").parent, synth.span_id);
    assert_eq!(one("audio.encode").parent, http.span_id);
    assert_eq!(one("audio.encode").str("audio.format"), Some("wav"));
    let phon = one("phonemize");
    assert!(phon.int("tts.phonemes").unwrap() > 10);
    // Every plugin stage, in pipeline order (of each stage's first call), as
    // children of tts.synthesize. Audio stages take the audio in blocks:
    // one span per call, so a stage may have several.
    let mut stages: Vec<&&Span> = t.iter().filter(|s| s.name.starts_with("stage ")).collect();
    stages.sort_by_key(|s| s.start);
    let mut order: Vec<&str> = Vec::new();
    for s in &stages {
        if !order.contains(&s.name.as_str()) {
            order.push(s.name.as_str());
        }
    }
    assert_eq!(
        order,
        [
            "stage normalize",
            "stage instruct",
            "stage pitch",
            "stage trim",
            "stage loudness"
        ]
    );
    for s in &stages {
        assert_eq!(s.parent, synth.span_id, "{}", s.name);
        assert_eq!(s.str("stage.outcome"), Some("ok"));
        assert_eq!(s.str("plugin.sha256").map(str::len), Some(64));
        assert!(s.str("plugin.version").is_some() && s.int("stage.index").is_some());
        if s.str("stage.kind") == Some("audio") {
            // A block call: which pass and block. The measuring pass (0) of
            // a two-pass stage returns no audio; the last block may be empty.
            assert!(s.int("audio.pass").is_some() && s.int("audio.block").is_some());
        } else {
            assert!(s.int("stage.input_bytes").unwrap() > 0);
            assert!(s.int("stage.output_bytes").unwrap() > 0);
        }
    }
    // loudness and trim are two-pass: both passes are on the trace, and the
    // applying pass returned the audio.
    for two_pass in ["stage trim", "stage loudness"] {
        let calls: Vec<&&&Span> = stages.iter().filter(|s| s.name == two_pass).collect();
        assert!(calls.iter().any(|s| s.int("audio.pass") == Some(0)));
        assert!(calls
            .iter()
            .any(|s| s.int("audio.pass") == Some(1) && s.int("stage.output_bytes").unwrap() > 0));
    }
    let style = one("stage instruct");
    assert_eq!(style.str("stage.kind"), Some("style"));
    assert_eq!(style.str("instruct_mapped"), Some("emotion=sad"));
    let raw = style.str("instruct_raw").unwrap();
    assert!(
        raw.starts_with("speak sadly ·") && raw.ends_with('…'),
        "{raw}"
    );
    assert_eq!(raw.chars().count(), 65, "64 characters and the ellipsis");
    let models: Vec<&&Span> = t.iter().filter(|s| s.name == "model.inference").collect();
    assert_eq!(models.len() as i64, synth.int("tts.sentences").unwrap());
    for m in &models {
        assert_eq!(m.parent, synth.span_id);
        assert_eq!(m.str("device"), Some("cpu"));
        assert_eq!(m.int("batch.size"), Some(1));
        let rtf = match m.attrs.get("rtf") {
            Some(Value::DoubleValue(v)) => *v,
            other => panic!("rtf {other:?}"),
        };
        assert!(rtf > 0.0 && rtf < 5.0, "{rtf}");
    }

    // --- the unmapped instruct ---
    let u: Vec<&Span> = all
        .iter()
        .filter(|s| s.trace_id == unmapped_trace)
        .collect();
    let style = u.iter().find(|s| s.name == "stage instruct").unwrap();
    assert_eq!(style.str("instruct_raw"), Some("用火星话说"));
    assert_eq!(style.str("instruct_mapped"), Some(""));
    assert!(
        style.events.iter().any(|e| e == "instruct not mapped"),
        "{style:?}"
    );

    // --- the failing plugin: its span, the synthesis and the HTTP span are errors ---
    let f: Vec<&Span> = all.iter().filter(|s| s.trace_id == failed_trace).collect();
    let breaks = f.iter().find(|s| s.name == "stage breaks").unwrap();
    assert_eq!(breaks.status, 2, "{breaks:?}");
    assert_eq!(breaks.str("stage.outcome"), Some("trap"));
    assert_eq!(breaks.str("plugin.name"), Some("hostile"));
    let synth = f.iter().find(|s| s.name == "tts.synthesize").unwrap();
    assert_eq!(
        (synth.status, synth.str("error.type")),
        (2, Some("plugin_fault"))
    );
    let http = f.iter().find(|s| s.name == "POST /v1/tts").unwrap();
    assert_eq!(http.status, 2);
    assert_eq!(http.int("http.response.status_code"), Some(502));

    // --- invalid input: a 4xx names its type, without the Error status ---
    let http = all
        .iter()
        .find(|s| s.trace_id == invalid_trace && s.name == "POST /v1/tts")
        .unwrap();
    assert_eq!(http.str("error.type"), Some("invalid_input"));
    assert_eq!(http.int("http.response.status_code"), Some(422));
    assert_ne!(http.status, 2);

    // --- the streamed one: an encode span per sentence ---
    let st: Vec<&Span> = all
        .iter()
        .filter(|s| s.trace_id == streamed_trace)
        .collect();
    let synth = st.iter().find(|s| s.name == "tts.synthesize").unwrap();
    assert_eq!(synth.attrs.get("tts.stream"), Some(&Value::BoolValue(true)));
    assert!(st.iter().filter(|s| s.name == "audio.encode").count() >= 2);

    // --- nothing private in any span ---
    let tattle = all
        .iter()
        .find(|s| s.trace_id == leaky_trace && s.name == "stage tattle")
        .unwrap();
    assert!(
        tattle.events.iter().any(|e| e == "log"),
        "the plugin's log line stays an event, renamed: {tattle:?}"
    );
    let exported_spans = format!("{:?}", received.traces.lock().unwrap());
    for secret in [
        TEXT_SECRET,
        KEY,
        INSTRUCT_TAIL,
        "Tell nobody",
        "the input was",
    ] {
        assert!(
            !exported_spans.contains(secret),
            "{secret} was exported in a span"
        );
    }
    // Log records are the operator's log (as stdout is): the plugin's own
    // line is there, but never a key.
    let exported_logs = format!("{:?}", received.logs.lock().unwrap());
    assert!(exported_logs.contains("the input was"));
    assert!(!exported_logs.contains(KEY));
    assert!(
        !all.iter().any(|s| s.attrs.contains_key("message")),
        "free-text attributes are dropped"
    );

    // --- logs: JSON lines on stdout and OTLP records carry the trace ---
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(lines.len() > 5, "JSON log lines: {log}");
    let mapped_line = lines
        .iter()
        .find(|l| l["message"] == "instruct mapped")
        .expect("the style stage's log line");
    assert_eq!(mapped_line["trace_id"], caller_trace);
    assert!(lines
        .iter()
        .any(|l| l["target"] == "voxpipe::plugin" && l["trace_id"] == caller_trace));
    let records: Vec<(String, String)> = received
        .logs
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .map(|l| (hex::encode(&l.trace_id), format!("{:?}", l.body)))
        .collect();
    assert!(
        records
            .iter()
            .any(|(t, body)| t == &failed_trace && body.contains("plugin stage failed")),
        "OTLP log records: {records:?}"
    );
}

#[test]
fn metrics_have_the_seed_names_labels_and_buckets() {
    let dir = default_pipelines();
    let server = Server::start(dir.path(), &[], &[]);
    let port = server.port;
    let ok = common::http::post_json(port, "/v1/tts", &json!({ "text": "Counting." }));
    assert_eq!(ok.status, 200);
    let bad = common::http::post_json(port, "/v1/tts", &json!({ "text": "" }));
    assert_eq!(bad.status, 422);
    let m = get(port, "/metrics");
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let text = m.text();
    let labels = r#"model="en_US-joe-medium",language="en-US",frontend="http""#;
    for want in [
        format!(r#"tts_requests_total{{status="success",{labels}}} 1"#),
        r#"tts_requests_total{status="error",model="unknown",language="unknown",frontend="http"} 1"#.into(),
        r#"tts_errors_total{error_type="invalid_input",frontend="http"} 1"#.into(),
        r#"tts_cache_misses_total 1"#.into(),
        r#"tts_pipeline_reloads_total{result="ok"} 1"#.into(),
        format!(r#"tts_synthesis_duration_seconds_count{{{labels}}} 1"#),
        format!(r#"tts_audio_duration_seconds_count{{{labels}}} 1"#),
        format!(r#"tts_time_to_first_audio_seconds_count{{{labels}}} 1"#),
        r#"tts_stage_duration_seconds_count{stage="normalize",plugin="en-normalize"} 1"#.into(),
        r#"tts_stage_duration_seconds_count{stage="model",plugin="host"} 1"#.into(),
        "tts_queue_length{instance=".into(),
        "tts_requests_in_flight{instance=".into(),
    ] {
        assert!(text.contains(&want), "missing {want} in\n{text}");
    }
    let buckets = |metric: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{metric}_bucket{{")))
            .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next().map(String::from))
            .collect()
    };
    assert_eq!(
        buckets("tts_synthesis_duration_seconds"),
        ["0.1", "0.25", "0.5", "1", "2", "5", "10", "+Inf"]
    );
    assert_eq!(
        buckets("tts_audio_duration_seconds"),
        ["1", "2", "5", "10", "30", "60", "+Inf"]
    );
    // A CPU server has no GPU series (the dashboard shows "no data").
    assert!(!text.contains("tts_gpu_memory_bytes{"));
    // Probes are not traced or counted as synthesis requests.
    assert!(!text.contains("status=\"cancelled\""));
}

/// `%`-encodes a PromQL query for a URL.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The single value of an instant query, or `None` when it has no series.
fn query(prom_port: u16, q: &str) -> Option<f64> {
    let r = get(prom_port, &format!("/api/v1/query?query={}", urlencode(q)));
    assert_eq!(r.status, 200, "{q}: {}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "success", "{q}: {v}");
    let result = v["data"]["result"].as_array().unwrap();
    let first = result.first()?;
    first["value"][1].as_str()?.parse().ok()
}

#[test]
fn a_real_prometheus_scrapes_voxpipe_and_the_seed_queries_make_sense() {
    let dir = default_pipelines();
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "[telemetry]\ninstance = \"tts-test-1\"\n").unwrap();
    let server = Server::start(dir.path(), &["--config", config.to_str().unwrap()], &[]);
    let port = server.port;

    let prom_dir = tempfile::tempdir().unwrap();
    let rules = common::root().join("examples/observability/prometheus/alerts.yml");
    let prom_config = prom_dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: voxpipe\n    honor_labels: true\n    \
             static_configs:\n      - targets: ['127.0.0.1:{port}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let prom_port = common::http::free_port();
    let prom = std::process::Command::new("prometheus")
        .arg(format!("--config.file={}", prom_config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            prom_dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(prom_dir.path().join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus (Debian package `prometheus`; .ci/setup installs it)");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _prom_guard = Kill(prom);
    let prom_log = || std::fs::read_to_string(prom_dir.path().join("prometheus.log")).unwrap();
    let wait_for = |what: &str, f: &dyn Fn() -> bool| {
        let started = Instant::now();
        while !f() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{what}; prometheus log:\n{}",
                prom_log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    wait_for("prometheus ready", &|| {
        request(prom_port, "GET", "/-/ready", &[], b"").is_ok_and(|r| r.status == 200)
    });
    wait_for("voxpipe scraped", &|| {
        query(prom_port, r#"up{job="voxpipe"}"#) == Some(1.0)
    });

    // Two batches a few scrapes apart, so rate() sees the counters move.
    let synth = |text: &str| {
        let r = common::http::post_json(port, "/v1/tts", &json!({ "text": text }));
        assert_eq!(r.status, 200);
    };
    let fail = || {
        let r = common::http::post_json(port, "/v1/tts", &json!({ "text": "x", "speed": 9 }));
        assert_eq!(r.status, 422);
    };
    synth("First batch.");
    fail();
    std::thread::sleep(Duration::from_secs(3));
    synth("Second batch, a longer sentence to speak.");
    synth("And a third request.");
    fail();
    std::thread::sleep(Duration::from_secs(3));

    let rtf = query(
        prom_port,
        "sum(rate(tts_synthesis_duration_seconds_sum[1m])) / sum(rate(tts_audio_duration_seconds_sum[1m]))",
    )
    .expect("RTF");
    assert!(rtf > 0.0 && rtf < 2.0, "RTF {rtf}");
    let error_pct = query(
        prom_port,
        r#"sum(rate(tts_requests_total{status="error"}[1m])) / sum(rate(tts_requests_total[1m])) * 100"#,
    )
    .expect("error rate");
    assert!(
        error_pct > 10.0 && error_pct < 60.0,
        "error rate {error_pct} %"
    );
    let p99 = query(
        prom_port,
        "histogram_quantile(0.99, sum by (le) (rate(tts_synthesis_duration_seconds_bucket[1m])))",
    )
    .expect("P99");
    assert!(p99 > 0.0 && p99 <= 10.0, "P99 {p99}");
    let throughput = query(prom_port, "sum(rate(tts_requests_total[1m])) * 60").unwrap();
    assert!(throughput > 0.0);
    assert_eq!(
        query(prom_port, r#"tts_queue_length{instance="tts-test-1"}"#),
        Some(0.0),
        "honor_labels keeps voxpipe's instance label"
    );
    // The kit's alert rules load, and none fires on a healthy server.
    let rules = get(prom_port, "/api/v1/rules").json();
    let alerts: Vec<&serde_json::Value> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert_eq!(alerts.len(), 6, "{rules}");
    for a in alerts {
        assert_ne!(a["state"], "firing", "{a}");
        assert_eq!(a["health"], "ok", "{a}");
    }
}
