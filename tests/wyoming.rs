//! The Wyoming front end through the real binary, the real voice and real
//! clients: the `wyoming` Python package (tests/wyoming/client.py: describe,
//! synthesize by name, by language and by speaker, streaming with words split
//! across chunks plus the compatibility `synthesize`, a client leaving, every
//! kind of refusal) and `wyoming-bench` as a smoke run; raw sockets for the
//! bounds (malformed and oversized events, half-sent events, idle
//! connections, the connection cap, memory under 300 idle connections).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::http::{default_pipelines, free_port, get, post_json, Server};
use serde_json::{json, Value};

/// A voices folder with joe and the 3-speaker test voice.
fn voices() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = common::root();
    for (from, name) in [
        ("voices", "en_US-joe-medium"),
        ("tests/fixtures/voices", "test-multi-high"),
    ] {
        for ext in [".onnx", ".onnx.json"] {
            let file = format!("{name}{ext}");
            std::os::unix::fs::symlink(root.join(from).join(&file), dir.path().join(&file))
                .unwrap();
        }
    }
    dir
}

/// Runs a scenario of tests/wyoming/client.py; returns its JSON summary.
fn client(scenario: &str, port: u16, unix: &Path) -> Value {
    let started = Instant::now();
    let out = Command::new("python3")
        .arg(common::root().join("tests/wyoming/client.py"))
        .args([scenario, &port.to_string()])
        .arg(unix)
        .output()
        .expect("python3 with the wyoming package (.ci/setup installs it)");
    assert!(
        out.status.success(),
        "{scenario}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{scenario}: {:.1} s", started.elapsed().as_secs_f64());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn seconds(cycle: &Value) -> f64 {
    cycle["bytes"].as_f64().unwrap() / 2.0 / cycle["rate"].as_f64().unwrap()
}

/// A raw connection: writes bytes, reads events as the protocol frames them.
struct Raw {
    reader: BufReader<TcpStream>,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw {
            reader: BufReader::new(s),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// The next event's (type, data), or `None` when the server closed.
    fn event(&mut self) -> Option<(String, Value)> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let header: Value = serde_json::from_str(&line).unwrap();
        let mut data = header.get("data").cloned().unwrap_or(json!({}));
        if let Some(n) = header["data_length"].as_u64() {
            let mut bytes = vec![0; n as usize];
            self.reader.read_exact(&mut bytes).unwrap();
            data = serde_json::from_slice(&bytes).unwrap();
        }
        if let Some(n) = header["payload_length"].as_u64() {
            let mut bytes = vec![0; n as usize];
            self.reader.read_exact(&mut bytes).unwrap();
        }
        Some((header["type"].as_str().unwrap().to_string(), data))
    }

    fn expect_error(&mut self, code: &str, mentions: &str) {
        let (kind, data) = self.event().expect("an error event");
        assert_eq!(kind, "error", "{data}");
        assert_eq!(data["code"], code, "{data}");
        let text = data["text"].as_str().unwrap();
        assert!(
            text.contains(mentions),
            "{text:?} should mention {mentions:?}"
        );
    }

    fn expect_closed(&mut self) {
        assert!(self.event().is_none(), "the server should have closed");
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Waits until no synthesis runs or waits (a cancelled one frees its slot
/// at its next step), so that the next request is admitted.
fn wait_idle(port: u16) {
    let started = Instant::now();
    loop {
        let m = get(port, "/metrics").text();
        let busy = m.lines().any(|l| {
            (l.starts_with("tts_requests_in_flight{") || l.starts_with("tts_queue_length{"))
                && !l.ends_with(" 0")
        });
        if !busy {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still busy:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn log_lines(server: &Server) -> Vec<Value> {
    server
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn home_assistant_clients_and_hostile_bytes() {
    let pipelines = default_pipelines();
    let voices = voices();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        "[limits]\nmax_text_chars = 1000\nmax_stream_chars = 1100\n\
         [wyoming]\nidle_timeout_s = 2.0\nevent_timeout_s = 1.0\nmax_event_kib = 16\n\
         max_connections = 310\n",
    )
    .unwrap();
    let port = free_port();
    let unix = dir.path().join("missing.sock");
    let server = Server::start(
        pipelines.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--voices",
            voices.path().to_str().unwrap(),
            "--wyoming",
            &format!("tcp://127.0.0.1:{port}"),
            "--wyoming",
            &format!("unix://{}?pipeline=nope", unix.display()),
            "--concurrency",
            "1",
            "--queue",
            "0",
        ],
        &[],
    );

    // describe: one program, every voice with its language, speakers only for
    // the multi-speaker voice, the pipeline's voice first.
    let info = client("describe", port, &unix);
    let voices = info["voices"].as_array().unwrap();
    assert_eq!(voices[0]["name"], "en_US-joe-medium", "{info}");
    assert_eq!(voices[0]["languages"], json!(["en_US"]));
    assert_eq!(voices[0]["speakers"], Value::Null);
    assert_eq!(voices[1]["name"], "test-multi-high");
    assert_eq!(voices[1]["speakers"], json!(["alice", "bob", "carol"]));
    assert!(voices.iter().all(|v| v["installed"] == true));
    assert!(info["description"].as_str().unwrap().contains("`default`"));

    // synthesize: one audio cycle per request, chunks of at most 1024 samples.
    let s = client("synthesize", port, &unix);
    let by_name = &s["by_name"][0];
    assert_eq!(s["by_name"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(s["by_name_kinds"], json!(["audio-start", "audio-stop"]));
    assert_eq!(by_name["rate"], 22050);
    assert!((2.5..10.0).contains(&seconds(by_name)), "{s}");
    assert!(by_name["chunks"].as_u64().unwrap() > 20, "{s}");
    assert_eq!(by_name["max_chunk"], 2048, "{s}");
    assert!(seconds(&s["by_language"][0]) > 0.5, "{s}");
    assert!(seconds(&s["speaker_bob"][0]) > 0.1, "{s}");
    assert!(seconds(&s["speaker_2"][0]) > 0.1, "{s}");

    // streaming: three sentences out of pieces that split words, the first
    // one's audio before the rest of the text was sent; the compatibility
    // `synthesize` made no audio of its own.
    let st = client("streaming", port, &unix);
    let cycles = st["cycles"].as_array().unwrap();
    assert_eq!(cycles.len(), 3, "{st}");
    assert!(cycles.iter().all(|c| seconds(c) > 0.3), "{st}");
    assert_eq!(
        st["kinds_after_first"].as_array().unwrap().last().unwrap(),
        "synthesize-stopped"
    );
    assert!(seconds(&st["after"][0]) > 0.3, "{st}");

    // A client that leaves after the first audio: its synthesis is cancelled
    // before its last sentence, as an HTTP hang-up is.
    client("leave", port, &unix);
    let started = Instant::now();
    let cancelled = loop {
        let found = log_lines(&server)
            .into_iter()
            .find(|l| l["message"] == "synthesis cancelled");
        if let Some(line) = found {
            break line;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no cancellation logged: {}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let sent = cancelled["chunks_sent"].as_u64().unwrap();
    assert!(sent < 20, "cancelled after {sent} of 20 sentences");

    // Every refusal is an error event with the HTTP API's code, and the
    // connection stays usable.
    wait_idle(server.port);
    let e = client("errors", port, &unix);
    eprintln!("errors: {e:#}");
    assert!(
        e["too_long"].as_str().unwrap().contains("at most 1000"),
        "{e}"
    );
    assert!(e["ssml"].as_str().unwrap().contains("line 1"), "{e}");
    assert!(
        e["ssml_unsupported"].as_str().unwrap().contains("<audio>"),
        "{e}"
    );
    let (plain, ssml) = (seconds(&e["after_errors"][0]), seconds(&e["ssml_audio"][0]));
    assert!(
        (ssml - plain - 2.0).abs() < 0.1,
        "{plain} s, with a 2 s break {ssml} s"
    );
    assert!(e["no_language"].as_str().unwrap().contains("de_DE"), "{e}");
    assert!(seconds(&e["after_errors"][0]) > 0.3, "{e}");
    assert!(e["missing_pipeline_description"]
        .as_str()
        .unwrap()
        .contains("not loaded"));

    assert!(
        e["overloaded"].as_str().unwrap().contains("capacity"),
        "{e}"
    );

    bounds(&server, port);
    wait_idle(server.port);

    // wyoming-bench, the public benchmark client, both modes.
    let out = Command::new("wyoming-bench")
        .args([
            "tts",
            &format!("127.0.0.1:{port}"),
            "--rounds",
            "1",
            "--warmup",
            "0",
        ])
        .args([
            "--timeout",
            "30",
            "--texts",
            "The first sentence. And the second one.",
        ])
        .output()
        .expect("wyoming-bench (.ci/setup installs it)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    for mode in ["[non_streaming] ok=1 fail=0", "[streaming] ok=1 fail=0"] {
        assert!(report.contains(mode), "{mode} missing in {report}");
    }

    // One trace per synthesis, in a log line with the peer's address; the
    // metrics tell Wyoming traffic apart.
    let done: Vec<Value> = log_lines(&server)
        .into_iter()
        .filter(|l| l["message"] == "wyoming synthesis")
        .collect();
    assert!(done.len() >= 8, "{}", server.log_text());
    for l in &done {
        assert!(l["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{l}");
        let trace = l["trace_id"].as_str().unwrap();
        assert!(trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    let mut traces: Vec<&str> = done
        .iter()
        .map(|l| l["trace_id"].as_str().unwrap())
        .collect();
    traces.sort();
    traces.dedup();
    assert_eq!(traces.len(), done.len(), "one trace per synthesis");
    let metrics = get(server.port, "/metrics").text();
    for want in [
        r#"tts_requests_total{status="success",model="en_US-joe-medium",language="en-US",frontend="wyoming"}"#,
        r#"tts_requests_total{status="cancelled",model="en_US-joe-medium",language="en-US",frontend="wyoming"} 2"#,
        r#"tts_errors_total{error_type="unknown_speaker",frontend="wyoming"} 1"#,
        r#"tts_errors_total{error_type="overloaded",frontend="wyoming"} 1"#,
        r#"tts_time_to_first_audio_seconds_count{model="en_US-joe-medium",language="en-US",frontend="wyoming"}"#,
    ] {
        assert!(metrics.contains(want), "missing {want} in\n{metrics}");
    }
    // HTTP served on throughout.
    wait_idle(server.port);
    let r = post_json(
        server.port,
        "/v1/tts",
        &json!({ "text": "Still speaking." }),
    );
    assert_eq!(r.status, 200);
}

/// Hostile bytes on raw sockets; the server's memory stays flat.
fn bounds(server: &Server, port: u16) {
    let pid = server.child.id();
    let before = rss_kib(pid);

    // A line that is not JSON: refused, and the connection goes on.
    let mut c = Raw::connect(port);
    c.send(b"this is not json\n{\"type\":\"ping\",\"data\":{\"text\":\"ok\"}}\n");
    c.expect_error("invalid_json", "not JSON");
    assert_eq!(c.event().unwrap().0, "pong");

    // Oversized lengths: refused before anything is read, then closed.
    for header in [
        r#"{"type":"synthesize","data_length":1000000000}"#,
        r#"{"type":"audio-chunk","payload_length":99999999999999}"#,
    ] {
        let mut c = Raw::connect(port);
        c.send(format!("{header}\n").as_bytes());
        c.expect_error("invalid_input", "over this server's limit of 16384 bytes");
        c.expect_closed();
    }
    let mut c = Raw::connect(port);
    c.send(b"{\"type\":\"synthesize\",\"data_length\":-5}\n");
    c.expect_error("invalid_json", "not a byte count");
    c.expect_closed();
    // A header line without end.
    let mut c = Raw::connect(port);
    c.send(&vec![b'{'; 20_000]);
    c.expect_error("invalid_input", "a header line");
    c.expect_closed();

    // A half-sent event times out (event_timeout_s = 1), an idle connection
    // too (idle_timeout_s = 2).
    let mut c = Raw::connect(port);
    c.send(b"{\"type\":\"desc");
    c.expect_error("timeout", "did not arrive whole");
    c.expect_closed();
    let mut c = Raw::connect(port);
    let idle = Instant::now();
    c.expect_error("timeout", "no event for 2 s");
    c.expect_closed();
    assert!(idle.elapsed() >= Duration::from_millis(1900));

    // 300 idle connections, then past the cap of 310: refused at once.
    let open: Vec<Raw> = (0..300).map(|_| Raw::connect(port)).collect();
    let mut extra: Vec<Raw> = (0..20).map(|_| Raw::connect(port)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let during = rss_kib(pid);
    let mut refused = 0;
    for c in &mut extra {
        c.reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        if matches!(c.event(), Some((k, d)) if k == "error" && d["code"] == "overloaded") {
            refused += 1;
        }
    }
    assert!(refused >= 10, "{refused} of 20 over the cap were refused");
    eprintln!(
        "RSS before {} MiB, with 300 idle connections {} MiB",
        before / 1024,
        during / 1024
    );
    assert!(
        during < before + 20 * 1024,
        "RSS grew from {before} KiB to {during} KiB"
    );
    drop(open);
    drop(extra);
    // Closed connections free their slots: a new connection is served.
    std::thread::sleep(Duration::from_millis(500));
    let mut c = Raw::connect(port);
    c.send(b"{\"type\":\"ping\"}\n");
    assert_eq!(c.event().unwrap().0, "pong");
    assert_eq!(get(server.port, "/healthz").status, 200);
}

/// A restart loses no audio already asked for: on SIGTERM an idle Wyoming
/// connection is closed at once, one with a synthesis under way gets all of
/// its audio (through `audio-stop`) and is then closed, and the server
/// exits cleanly once both are done.
#[test]
fn shutdown_drains_open_connections() {
    let pipelines = default_pipelines();
    let voices = voices();
    let port = free_port();
    let mut server = Server::start(
        pipelines.path(),
        &[
            "--voices",
            voices.path().to_str().unwrap(),
            "--wyoming",
            &format!("tcp://127.0.0.1:{port}"),
        ],
        &[],
    );
    let mut idle = Raw::connect(port);
    idle.send(b"{\"type\":\"ping\",\"data\":{\"text\":\"x\"}}\n");
    assert_eq!(idle.event().unwrap().0, "pong");

    let mut busy = Raw::connect(port);
    let text = "This is the first sentence of a longer answer. Here comes a second one, \
                with a pause. And a third sentence ends it all.";
    let data = json!({ "text": text }).to_string();
    busy.send(
        format!(
            "{{\"type\":\"synthesize\",\"data_length\":{}}}\n{data}",
            data.len()
        )
        .as_bytes(),
    );
    assert_eq!(busy.event().unwrap().0, "audio-start");
    common::http::sigterm(&server.child);

    idle.expect_closed();
    let mut chunks = 0;
    loop {
        let (kind, _) = busy
            .event()
            .expect("the synthesis finishes before the close");
        match kind.as_str() {
            "audio-chunk" => chunks += 1,
            "audio-stop" => break,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(chunks > 0);
    busy.expect_closed();
    let status = common::http::wait_exit(&mut server.child, Duration::from_secs(20));
    assert!(status.success(), "{status:?}: {}", server.log_text());
}

/// Zeroconf discovery as Home Assistant does it: a real mDNS browser
/// (python-zeroconf, tests/wyoming/browse.py) finds the listener as
/// `_wyoming._tcp`, the announced address and port answer Wyoming, and the
/// announcement is withdrawn when the server stops.
#[test]
fn zeroconf_announces_the_listener_and_withdraws_it() {
    let pipelines = default_pipelines();
    let voices = voices();
    let port = free_port();
    let name = format!("voxpipe-test-{port}");
    let mut server = Server::start(
        pipelines.path(),
        &[
            "--voices",
            voices.path().to_str().unwrap(),
            "--wyoming",
            &format!("tcp://0.0.0.0:{port}"),
            "--wyoming-zeroconf",
            &name,
        ],
        &[],
    );
    let browse = |args: &[&str]| {
        let mut c = Command::new("python3");
        c.arg(common::root().join("tests/wyoming/browse.py"))
            .args(args);
        c
    };
    let out = browse(&["15"]).output().expect("python3 with zeroconf");
    let seen: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    let service = &seen["found"][format!("{name}._wyoming._tcp.local.")];
    assert_eq!(service["port"], port, "{seen}");
    let address = service["addresses"][0].as_str().expect("an address");
    let mut c = Raw {
        reader: BufReader::new(TcpStream::connect((address, port)).unwrap()),
    };
    c.send(b"{\"type\":\"ping\",\"data\":{\"text\":\"found\"}}\n");
    assert_eq!(c.event().unwrap().0, "pong");
    drop(c);

    // Withdrawn on shutdown: the browser sees the goodbye.
    let watcher = browse(&["15", &name])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    common::http::sigterm(&server.child);
    let out = watcher.wait_with_output().unwrap();
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    let removed = seen["removed"].as_array().unwrap();
    assert!(
        removed
            .iter()
            .any(|n| n == &json!(format!("{name}._wyoming._tcp.local."))),
        "{seen}"
    );
    assert!(common::http::wait_exit(&mut server.child, Duration::from_secs(20)).success());
}
