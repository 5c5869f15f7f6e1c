//! The HTTP synthesis service through the real binary, with the real voice
//! and the real plugins: each endpoint, each error type, trace headers,
//! streaming order and WAV validity, the cache, admission (503 / 504),
//! a failing plugin stage, API keys, cancellation and graceful shutdown.

mod common;

use std::time::{Duration, Instant};

use common::http::{default_pipelines, get, post_json, request, Server};
use serde_json::json;

fn is_hex(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parses a 16-bit mono WAV; returns (rate, samples). Accepts the streaming
/// header (sizes 0xFFFFFFFF) by taking the data to the end of the body.
fn wav(body: &[u8]) -> (u32, Vec<i16>) {
    assert_eq!(&body[0..4], b"RIFF", "not a WAV");
    assert_eq!(&body[8..12], b"WAVE");
    let rate = u32::from_le_bytes(body[24..28].try_into().unwrap());
    assert_eq!(
        u16::from_le_bytes(body[22..24].try_into().unwrap()),
        1,
        "mono"
    );
    assert_eq!(
        u16::from_le_bytes(body[34..36].try_into().unwrap()),
        16,
        "16-bit"
    );
    let data = body
        .windows(4)
        .position(|w| w == b"data")
        .expect("data chunk");
    let samples = body[data + 8..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    (rate, samples)
}

fn assert_error(r: &common::http::Reply, status: u16, kind: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    let trace = r.header("x-trace-id").expect("errors carry the trace id");
    assert!(is_hex(trace, 32));
    assert_eq!(v["error"]["trace_id"], trace);
    assert!(r.header("server-timing").unwrap().contains("total;dur="));
}

#[test]
fn synthesis_endpoints_headers_formats_and_errors() {
    let dir = default_pipelines();
    let server = Server::start(dir.path(), &[], &[]);
    let port = server.port;

    // The native API: a valid WAV, the trace and per-stage timings.
    let text = "Hello there. This is voxpipe speaking from a test.";
    let r = post_json(port, "/v1/tts", &json!({ "text": text }));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    let (rate, samples) = wav(&r.body);
    assert_eq!(rate, 22050);
    let seconds = samples.len() as f64 / 22050.0;
    assert!((1.5..8.0).contains(&seconds), "{seconds} s");
    let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak > 3000, "speech is audible (peak {peak})");
    let trace = r.header("x-trace-id").unwrap().to_string();
    assert!(is_hex(&trace, 32));
    let tp = r.header("traceparent").unwrap();
    assert!(tp.starts_with(&format!("00-{trace}-")), "{tp}");
    let timing = r.header("server-timing").unwrap();
    for part in [
        "normalize;",
        "phonemize;",
        "model;",
        "loudness;",
        "encode;",
        "total;dur=",
    ] {
        assert!(timing.contains(part), "{part} missing from {timing}");
    }
    assert_eq!(r.header("x-cache"), Some("miss"));

    // The same request again: from the cache, byte-identical.
    let again = post_json(port, "/v1/tts", &json!({ "text": text }));
    assert_eq!(again.header("x-cache"), Some("hit"));
    assert_eq!(again.body, r.body);
    assert_ne!(again.header("x-trace-id").unwrap(), trace);

    // An incoming traceparent continues the caller's trace.
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = request(
        port,
        "POST",
        "/v1/tts",
        &[("traceparent", caller)],
        json!({ "text": "Traced." }).to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(
        r.header("x-trace-id"),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert!(!r
        .header("traceparent")
        .unwrap()
        .contains("00f067aa0ba902b7"));

    // Instructions: mapped, and not mapped (reported, still spoken).
    let r = post_json(
        port,
        "/v1/tts",
        &json!({ "text": "Slowly now.", "instruct": "speak slowly and softly" }),
    );
    assert_eq!(r.status, 200);
    assert!(r.header("x-style-mapped").is_some(), "{:?}", r.headers);
    let r = post_json(
        port,
        "/v1/tts",
        &json!({ "text": "Hmm.", "instruct": "zzqx blorp" }),
    );
    assert_eq!(r.status, 200);
    assert!(r.header("x-style-unmapped").is_some(), "{:?}", r.headers);

    // Speed and sample rate change the audio.
    let fast = post_json(
        port,
        "/v1/tts",
        &json!({ "text": text, "speed": 2.0, "sample_rate": 16000 }),
    );
    assert_eq!(fast.status, 200, "{}", fast.text());
    let (rate, fast_samples) = wav(&fast.body);
    assert_eq!(rate, 16000);
    let fast_seconds = fast_samples.len() as f64 / 16000.0;
    assert!(fast_seconds < seconds * 0.75, "{fast_seconds} vs {seconds}");

    // Formats: raw PCM is the WAV's data; real codecs carry their magic.
    let pcm = post_json(port, "/v1/tts", &json!({ "text": text, "format": "pcm" }));
    assert_eq!(pcm.status, 200);
    assert_eq!(pcm.body.len(), samples.len() * 2);
    for (format, magic) in [("flac", &b"fLaC"[..]), ("opus", &b"OggS"[..])] {
        let r = post_json(
            port,
            "/v1/tts",
            &json!({ "text": "Codec.", "format": format }),
        );
        assert_eq!(r.status, 200, "{format}: {}", r.text());
        assert_eq!(&r.body[..4], magic, "{format}");
    }
    let mp3 = post_json(
        port,
        "/v1/tts",
        &json!({ "text": "Codec.", "format": "mp3" }),
    );
    assert_eq!(mp3.status, 200, "{}", mp3.text());
    assert_eq!(mp3.header("content-type"), Some("audio/mpeg"));
    assert!(mp3.body.len() > 500);

    // Errors: each type, with its status and JSON body.
    assert_error(
        &post_json(port, "/v1/tts", &json!({ "text": "  " })),
        422,
        "invalid_input",
    );
    assert_error(
        &request(port, "POST", "/v1/tts", &[], b"{not json").unwrap(),
        400,
        "invalid_json",
    );
    assert_error(
        &post_json(port, "/v1/tts", &json!({ "txt": "typo" })),
        400,
        "invalid_json",
    );
    assert_error(
        &post_json(port, "/v1/tts", &json!({ "text": "a", "pipeline": "nope" })),
        404,
        "unknown_pipeline",
    );
    assert_error(
        &post_json(port, "/v1/tts", &json!({ "text": "a", "voice": "nope" })),
        404,
        "unknown_voice",
    );
    assert_error(
        &post_json(port, "/v1/tts", &json!({ "text": "a", "speaker": "7" })),
        404,
        "unknown_speaker",
    );
    assert_error(
        &post_json(port, "/v1/tts", &json!({ "text": "a", "speed": 9.0 })),
        422,
        "invalid_input",
    );
    assert_error(
        &post_json(port, "/v1/tts", &json!({ "text": "a", "sample_rate": 100 })),
        422,
        "invalid_input",
    );
    assert_error(
        &post_json(port, "/v1/tts", &json!({ "text": "a", "format": "aac" })),
        400,
        "unsupported_format",
    );
    assert_error(
        &post_json(port, "/v1/tts", &json!({ "text": "a", "format": "ogg" })),
        400,
        "unsupported_format",
    );
    assert_error(
        &post_json(port, "/v1/tts", &json!({ "text": "x".repeat(5001) })),
        413,
        "text_too_long",
    );

    // Streaming: a WAV with a streaming header, sentence by sentence.
    let three = "The first sentence is here. The second one follows it. And this is the third.";
    let r = post_json(port, "/v1/tts", &json!({ "text": three, "stream": true }));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        u32::from_le_bytes(r.body[4..8].try_into().unwrap()),
        u32::MAX
    );
    let (rate, streamed) = wav(&r.body);
    assert_eq!(rate, 22050);
    assert!(streamed.len() > 22050 * 2, "{} samples", streamed.len());
    assert!(
        r.chunk_times.len() >= 3,
        "one chunk per sentence: {:?}",
        r.chunk_times
    );
    let first = r.chunk_times[0].0;
    let last = r.chunk_times.last().unwrap().0;
    assert!(
        first < last * 0.8,
        "audio arrives before the end: {:?}",
        r.chunk_times
    );
    let pcm = post_json(
        port,
        "/v1/tts",
        &json!({ "text": three, "stream": true, "format": "pcm" }),
    );
    assert_eq!(pcm.status, 200);
    assert_eq!(pcm.body.len(), streamed.len() * 2, "same audio as PCM");
    assert_error(
        &post_json(
            port,
            "/v1/tts",
            &json!({ "text": "a", "stream": true, "format": "flac" }),
        ),
        400,
        "unsupported_format",
    );

    // The OpenAI-compatible endpoint.
    let r = post_json(
        port,
        "/v1/audio/speech",
        &json!({
            "model": "tts-1", "input": "Hello from the OpenAI route.", "voice": "alloy",
            "response_format": "wav", "instructions": "speak slowly",
        }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("x-style-mapped").is_some());
    wav(&r.body);
    let r = post_json(
        port,
        "/v1/audio/speech",
        &json!({ "model": "default", "input": "Default format." }),
    );
    assert_eq!(
        r.header("content-type"),
        Some("audio/mpeg"),
        "OpenAI's default is mp3"
    );
    assert_error(
        &post_json(
            port,
            "/v1/audio/speech",
            &json!({ "model": "gpt-9", "input": "a", "voice": "alloy" }),
        ),
        404,
        "unknown_pipeline",
    );
    assert_error(
        &post_json(
            port,
            "/v1/audio/speech",
            &json!({ "model": "tts-1", "input": "a", "speed": 0.1 }),
        ),
        422,
        "invalid_input",
    );
    let r = post_json(
        port,
        "/v1/audio/speech",
        &json!({
            "model": "tts-1", "input": three, "response_format": "pcm", "stream_format": "sse",
        }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events: Vec<serde_json::Value> = r
        .text()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(events.len() >= 4, "{events:?}");
    assert_eq!(events.last().unwrap()["type"], "speech.audio.done");
    use base64::Engine as _;
    let audio: Vec<u8> = events[..events.len() - 1]
        .iter()
        .flat_map(|e| {
            assert_eq!(e["type"], "speech.audio.delta");
            base64::engine::general_purpose::STANDARD
                .decode(e["audio"].as_str().unwrap())
                .unwrap()
        })
        .collect();
    assert_eq!(
        audio.len(),
        streamed.len() * 2,
        "SSE carries the same audio"
    );

    // The other endpoints.
    let v = get(port, "/v1/voices").json();
    assert_eq!(v["voices"][0]["name"], "en_US-joe-medium");
    assert_eq!(v["voices"][0]["sample_rate"], 22050);
    assert_eq!(v["voices"][0]["loaded"], true);
    assert_eq!(
        get(port, "/v1/pipelines").json()["pipelines"][0]["name"],
        "default"
    );
    let page = get(port, "/");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("id=\"trace-id\""));
    assert!(
        page.text().contains("href=\"/openapi.json\""),
        "the page links the API's document"
    );
    assert_eq!(get(port, "/healthz").status, 200);
    let ready = get(port, "/readyz").json();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["device"], "cpu");
}

#[test]
fn admission_refuses_fast_when_full_and_times_out() {
    let dir = default_pipelines();
    let server = Server::start(
        dir.path(),
        &["--concurrency", "1", "--queue", "1", "--cache-mb", "0"],
        &[],
    );
    let port = server.port;
    let long = "This sentence keeps the voice busy for a while. ".repeat(4);
    let results: Vec<(u16, f64, Option<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let long = &long;
                s.spawn(move || {
                    std::thread::sleep(Duration::from_millis(30 * i));
                    let started = Instant::now();
                    let r = post_json(port, "/v1/tts", &json!({ "text": long }));
                    if r.status == 200 {
                        wav(&r.body);
                    }
                    (
                        r.status,
                        started.elapsed().as_secs_f64(),
                        r.header("retry-after").map(str::to_string),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let refused: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert_eq!(ok + refused.len(), 6, "every request answered: {results:?}");
    assert!(ok >= 2, "one running and one queued succeed: {results:?}");
    assert!(!refused.is_empty(), "{results:?}");
    for r in &refused {
        assert!(r.1 < 0.5, "503 is immediate: {r:?}");
        assert_eq!(r.2.as_deref(), Some("1"));
    }
    drop(server);

    // A deadline shorter than the synthesis: 504.
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "[limits]\nrequest_timeout_s = 0.3\n").unwrap();
    let server = Server::start(dir.path(), &["--config", config.to_str().unwrap()], &[]);
    let r = post_json(server.port, "/v1/tts", &json!({ "text": long.repeat(3) }));
    assert_error(&r, 504, "timeout");
    // …and the server keeps serving.
    assert_eq!(get(server.port, "/healthz").status, 200);
}

#[test]
fn a_failing_plugin_stage_is_named_and_the_server_keeps_serving() {
    let dir = default_pipelines();
    std::fs::write(
        dir.path().join("faulty.toml"),
        r#"name = "faulty"
voice = "en_US-joe-medium"
[[stages]]
kind = "text"
name = "breaks"
plugin = "hostile"
config = { mode = "fault" }
[[stages]]
kind = "model"
"#,
    )
    .unwrap();
    let server = Server::start(dir.path(), &[], &[]);
    let r = post_json(
        server.port,
        "/v1/tts",
        &json!({ "text": "a", "pipeline": "faulty" }),
    );
    assert_error(&r, 502, "plugin_fault");
    let v = r.json();
    assert_eq!(v["error"]["stage"]["name"], "breaks");
    assert_eq!(v["error"]["stage"]["index"], 0);
    assert!(v["error"]["stage"]["plugin"]
        .as_str()
        .unwrap()
        .starts_with("hostile@"));
    let ok = post_json(server.port, "/v1/tts", &json!({ "text": "Still here." }));
    assert_eq!(ok.status, 200);
}

#[test]
fn api_keys_protect_synthesis_and_admin_endpoints() {
    let dir = default_pipelines();
    let server = Server::start(
        dir.path(),
        &[],
        &[
            ("VOXPIPE_API_KEYS", "user-1"),
            ("VOXPIPE_ADMIN_KEYS", "admin-1"),
        ],
    );
    let port = server.port;
    let body = json!({ "text": "Key?" }).to_string();
    let r = request(port, "POST", "/v1/tts", &[], body.as_bytes()).unwrap();
    assert_error(&r, 401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = request(
        port,
        "POST",
        "/v1/tts",
        &[("Authorization", "Bearer wrong")],
        body.as_bytes(),
    )
    .unwrap();
    assert_error(&r, 401, "unauthorized");
    let r = request(
        port,
        "POST",
        "/v1/tts",
        &[("Authorization", "Bearer user-1")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let r = request(
        port,
        "GET",
        "/v1/pipelines",
        &[("Authorization", "Bearer user-1")],
        b"",
    )
    .unwrap();
    assert_error(&r, 401, "unauthorized");
    let r = request(
        port,
        "GET",
        "/v1/pipelines",
        &[("Authorization", "Bearer admin-1")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    // The API's document is behind the api key, as the voice list is.
    for path in ["/openapi.json", "/v1/voices"] {
        let r = request(port, "GET", path, &[], b"").unwrap();
        assert_error(&r, 401, "unauthorized");
        let r = request(
            port,
            "GET",
            path,
            &[("Authorization", "Bearer user-1")],
            b"",
        )
        .unwrap();
        assert_eq!(r.status, 200, "{path}");
    }
    // Health and readiness stay open for probes.
    assert_eq!(get(port, "/healthz").status, 200);
    assert_eq!(get(port, "/readyz").status, 200);
}

#[test]
fn a_client_that_goes_away_cancels_and_shutdown_finishes_in_flight_work() {
    use std::io::{Read, Write};
    let dir = default_pipelines();
    let server = Server::start(dir.path(), &["--cache-mb", "0"], &[("RUST_LOG", "info")]);
    let port = server.port;
    let many = (1..=12)
        .map(|i| format!("This is sentence number {i} of a long text."))
        .collect::<Vec<_>>()
        .join(" ");
    // Read the first bytes of a stream, then hang up.
    {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let body = json!({ "text": many, "stream": true }).to_string();
        write!(
            s,
            "POST /v1/tts HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
    }
    let started = Instant::now();
    loop {
        let log = server.log_text();
        if log.contains("synthesis cancelled") {
            let line = log
                .lines()
                .find(|l| l.contains("synthesis cancelled"))
                .unwrap();
            assert!(!line.contains("sentences_done=12"), "{line}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no cancellation: {log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // SIGTERM while a request runs: it still completes, then the process exits 0.
    let mut server = server;
    let waiter = std::thread::spawn(move || {
        post_json(
            port,
            "/v1/tts",
            &json!({ "text": "Finishing this request before the server stops. It has two sentences." }),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    common::http::sigterm(&server.child);
    let r = waiter.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    wav(&r.body);
    let status = common::http::wait_exit(&mut server.child, Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
}

/// A multi-speaker voice next to the default one: `GET /v1/voices` names its speakers,
/// and `speaker` picks one by name or id (the same audio), another sounds different,
/// and an unknown one is a 404 listing the names.
#[test]
fn speaker_selects_a_speaker_of_a_multi_speaker_voice() {
    let voices = tempfile::tempdir().unwrap();
    let root = common::root();
    for (dir, name) in [
        ("voices", "en_US-joe-medium"),
        ("tests/fixtures/voices", "test-multi-high"),
    ] {
        for ext in ["onnx", "onnx.json"] {
            std::os::unix::fs::symlink(
                root.join(dir).join(format!("{name}.{ext}")),
                voices.path().join(format!("{name}.{ext}")),
            )
            .unwrap();
        }
    }
    let dir = default_pipelines();
    let server = Server::start(
        dir.path(),
        &[
            "--voices",
            voices.path().to_str().unwrap(),
            "--cache-mb",
            "0",
        ],
        &[],
    );
    let port = server.port;
    let listed = get(port, "/v1/voices").json();
    let multi = listed["voices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "test-multi-high")
        .expect("the test voice is listed");
    assert_eq!(multi["speakers"], json!(["alice", "bob", "carol"]));
    assert_eq!(multi["quality"], "high");

    let speak = |speaker: &str| {
        let r = post_json(
            port,
            "/v1/tts",
            &json!({ "text": "Hello there.", "voice": "test-multi-high",
                     "speaker": speaker, "seed": 5 }),
        );
        assert_eq!(r.status, 200, "{speaker}: {}", r.text());
        wav(&r.body).1
    };
    let bob = speak("bob");
    assert!(!bob.is_empty());
    assert_eq!(bob, speak("1"));
    assert_ne!(bob, speak("carol"));
    let r = post_json(
        port,
        "/v1/tts",
        &json!({ "text": "a", "voice": "test-multi-high", "speaker": "dave" }),
    );
    assert_error(&r, 404, "unknown_speaker");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("alice, bob, carol"),
        "{}",
        r.text()
    );
}
