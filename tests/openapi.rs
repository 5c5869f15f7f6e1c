//! The published contract (issue #22): `GET /openapi.json` is a valid OpenAPI
//! 3.1 document (checked by openapi-spec-validator, not by us), it describes
//! exactly the routes the server serves and docs/api.md lists, every error
//! type with the status docs/api.md gives it, the request limits (the
//! server's own `max_text_chars`) and enums, the audio content types and the
//! headers; and schemathesis fuzzes every operation against it (a fixed seed
//! and a bounded example count): no 5xx other than a documented 503/504, and
//! statuses, content types, headers and JSON bodies as documented.
//!
//! `VOXPIPE_SCHEMATHESIS_EXAMPLES=N` and `VOXPIPE_SCHEMATHESIS_SEED=N` run
//! the fuzz longer or with another seed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Instant;

use common::http::{default_pipelines, get, post_json, request, Server};
use serde_json::{json, Value};

/// What schemathesis checks on every response (the expected statuses of the
/// first and the last are in tests/openapi/schemathesis.toml). Not
/// `positive_data_acceptance`: a valid request may still name an unknown
/// voice or be only whitespace, and get its documented 4xx.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_headers_conformance,response_schema_conformance,unsupported_method,\
    negative_data_rejection";

/// The fuzz run's seed and examples per operation (and per phase).
const SEED: &str = "22";
const EXAMPLES: &str = "100";

fn doc_of(server: &Server) -> Value {
    let r = get(server.port, "/openapi.json");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()
}

/// (METHOD, path) of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            if [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                ops.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// The table rows of the section of docs/api.md that starts with `heading`.
fn api_md_rows(heading: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(common::root().join("docs/api.md")).unwrap();
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("docs/api.md has no section {heading:?}"));
    section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("|---"))
        .skip(1) // the header row
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect()
}

/// The error types of the operation `method path`, by type: their status.
fn error_types_of(doc: &Value, method: &str, path: &str) -> BTreeMap<String, u16> {
    let mut types = BTreeMap::new();
    let responses = doc["paths"][path][method]["responses"].as_object().unwrap();
    for (status, response) in responses {
        let status: u16 = status.parse().unwrap();
        if status < 400 {
            continue;
        }
        let schema = &response["content"]["application/json"]["schema"];
        assert_eq!(
            schema["allOf"][0]["$ref"], "#/components/schemas/ErrorBody",
            "{method} {path} {status}: {schema}"
        );
        for t in schema["allOf"][1]["properties"]["error"]["properties"]["type"]["enum"]
            .as_array()
            .unwrap()
        {
            types.insert(t.as_str().unwrap().to_string(), status);
        }
    }
    types
}

#[test]
fn the_document_is_valid_openapi_3_1_and_matches_the_server() {
    // A text limit other than the default: the document is this server's.
    let dir = default_pipelines();
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "[limits]\nmax_text_chars = 1234\n").unwrap();
    let server = Server::start(dir.path(), &["--config", config.to_str().unwrap()], &[]);
    let port = server.port;
    let doc = doc_of(&server);

    // Valid OpenAPI 3.1, by an independent validator.
    assert_eq!(doc["openapi"], "3.1.0");
    // The bytes as served: their key order is the document's (a client
    // generator picks a response's first media type it can parse).
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &get(port, "/openapi.json").body).unwrap();
    let out = Command::new("python3")
        .arg(common::root().join("tests/openapi/validate.py"))
        .arg(&file)
        .output()
        .expect("run python3 (openapi-spec-validator: .ci/setup installs it)");
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The routes: the document's operations are docs/api.md's endpoints, and
    // the server serves each path with exactly the documented methods.
    let ops = operations(&doc);
    let listed: BTreeSet<(String, String)> = api_md_rows("Endpoints")
        .into_iter()
        .map(|row| (row[0].clone(), row[1].clone()))
        .collect();
    assert_eq!(ops, listed, "the document vs docs/api.md's endpoint table");
    let paths: BTreeSet<&String> = ops.iter().map(|(_, p)| p).collect();
    for path in paths {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            let r = request(port, method, path, &[], b"{}").unwrap();
            if ops.contains(&(method.to_string(), path.clone())) {
                assert!(
                    r.status != 404 && r.status != 405,
                    "{method} {path}: {} {}",
                    r.status,
                    r.text()
                );
            } else {
                assert_eq!(r.status, 405, "{method} {path} is not documented");
            }
        }
    }
    assert_eq!(get(port, "/v1/nothing").status, 404);
    // Operation ids name generated clients' methods: one per operation.
    let ids: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    assert_eq!(ids.len(), ops.len(), "{ids:?}");

    // Every error type, with the status docs/api.md gives it, on both
    // synthesis endpoints; the key-checking endpoints answer 401 only.
    let documented: BTreeMap<String, u16> = api_md_rows("Errors")
        .into_iter()
        .map(|row| {
            let status = row[1].split(' ').next().unwrap().parse().unwrap();
            (row[0].clone(), status)
        })
        .collect();
    assert!(documented.len() >= 20, "{documented:?}");
    for path in ["/v1/tts", "/v1/audio/speech"] {
        assert_eq!(
            error_types_of(&doc, "post", path),
            documented,
            "POST {path}"
        );
    }
    let all: BTreeSet<&str> = doc["components"]["schemas"]["ErrorDetail"]["properties"]["type"]
        ["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(all, documented.keys().map(String::as_str).collect());
    for path in ["/v1/voices", "/v1/pipelines", "/openapi.json"] {
        let kinds = error_types_of(&doc, "get", path);
        assert_eq!(kinds, BTreeMap::from([("unauthorized".to_string(), 401)]));
    }

    // The request fields, with their limits and enums.
    let schemas = &doc["components"]["schemas"];
    let tts = &schemas["TtsRequest"];
    assert_eq!(tts["required"], json!(["text"]));
    assert_eq!(
        tts["additionalProperties"], false,
        "unknown fields are refused"
    );
    let p = &tts["properties"];
    assert_eq!(p["text"]["minLength"], 1);
    assert_eq!(p["text"]["maxLength"], 1234, "the server's max_text_chars");
    assert_eq!(p["speed"]["minimum"].as_f64(), Some(0.25));
    assert_eq!(p["speed"]["maximum"].as_f64(), Some(4.0));
    assert_eq!(p["sample_rate"]["minimum"], 8000);
    assert_eq!(p["sample_rate"]["maximum"], 192000);
    assert_eq!(p["language"]["pattern"], "^[A-Za-z0-9_-]{1,35}$");
    let formats = json!(["wav", "pcm", "flac", "mp3", "opus", "", null]);
    assert_eq!(p["format"]["enum"], formats);
    assert_eq!(p["timestamps"]["type"], "boolean");
    let timed = &schemas["TimestampedAudio"]["properties"];
    assert_eq!(
        timed["words"]["items"]["$ref"],
        "#/components/schemas/WordTiming"
    );
    assert_eq!(timed["vtt"]["type"], "string");
    let speech = &schemas["SpeechRequest"];
    assert_eq!(speech["required"], json!(["model", "input"]));
    let p = &speech["properties"];
    assert_eq!(p["input"]["maxLength"], 1234);
    assert_eq!(p["speed"]["minimum"].as_f64(), Some(0.25));
    assert_eq!(p["response_format"]["enum"], formats);
    assert_eq!(p["stream_format"]["enum"], json!(["audio", "sse", null]));

    // What a synthesis answers: audio in every format, the JSON of a
    // timestamped response, SSE (streamed with timestamps on /v1/tts, any
    // `stream_format: sse` on the OpenAI endpoint), and the headers.
    let audio: BTreeSet<&str> = [
        "audio/wav",
        "audio/pcm",
        "audio/flac",
        "audio/mpeg",
        "audio/ogg",
    ]
    .into();
    for (path, extra) in [
        ("/v1/tts", ["application/json", "text/event-stream"]),
        (
            "/v1/audio/speech",
            ["application/json", "text/event-stream"],
        ),
    ] {
        let ok = &doc["paths"][path]["post"]["responses"]["200"];
        let types: BTreeSet<&str> = ok["content"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = audio.clone();
        expected.extend(extra);
        assert_eq!(types, expected, "{path}");
        assert_eq!(
            ok["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/TimestampedAudio"
        );
        for h in [
            "X-Trace-Id",
            "traceparent",
            "Server-Timing",
            "X-Style-Mapped",
            "X-Cache",
        ] {
            assert!(ok["headers"][h].is_object(), "{path} 200 header {h}");
        }
        let busy = &doc["paths"][path]["post"]["responses"]["503"];
        assert!(busy["headers"]["Retry-After"].is_object(), "{path} 503");
        assert!(busy["headers"]["X-Trace-Id"].is_object(), "{path} 503");
    }

    // A client generated from it works: openapi-python-client's.
    let out = Command::new("python3")
        .arg(common::root().join("tests/openapi/generated_client.py"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(&file)
        .arg(dir.path())
        .output()
        .expect("run python3 (openapi-python-client: .ci/setup installs it)");
    assert!(
        out.status.success(),
        "the generated client failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The documented examples are answered as documented.
    for (path, schema) in [
        ("/v1/tts", "TtsRequest"),
        ("/v1/audio/speech", "SpeechRequest"),
    ] {
        let example = &schemas[schema]["examples"][0];
        let r = post_json(port, path, example);
        assert_eq!(r.status, 200, "{path} {example}: {}", r.text());
    }
}

/// NUL in any string field of either synthesis endpoint is the client's
/// error (4xx), never a server error: in the free text that is spoken or
/// given to the style stage it is refused as `invalid_input` naming the
/// field; elsewhere the name is simply unknown. Issue #22 found a 500
/// `model_error` for NUL in `input`.
#[test]
fn nul_in_any_text_field_is_refused_not_a_server_error() {
    let dir = default_pipelines();
    let server = Server::start(dir.path(), &[], &[]);
    let nul = "Hello\u{0}world.";
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("/v1/tts", json!({ "text": nul }), Some("text")),
        ("/v1/tts", json!({ "text": "\u{0}" }), Some("text")),
        (
            "/v1/tts",
            json!({ "text": "Hi.", "instruct": nul }),
            Some("instruct"),
        ),
        (
            "/v1/tts",
            json!({ "text": "Hi.", "stream": true, "instruct": nul }),
            Some("instruct"),
        ),
        ("/v1/tts", json!({ "text": "Hi.", "voice": nul }), None),
        ("/v1/tts", json!({ "text": "Hi.", "speaker": nul }), None),
        ("/v1/tts", json!({ "text": "Hi.", "pipeline": nul }), None),
        ("/v1/tts", json!({ "text": "Hi.", "language": nul }), None),
        ("/v1/tts", json!({ "text": "Hi.", "format": nul }), None),
        (
            "/v1/audio/speech",
            json!({ "model": "tts-1", "input": nul }),
            Some("text"),
        ),
        (
            "/v1/audio/speech",
            json!({ "model": "tts-1", "input": nul, "stream_format": "sse" }),
            Some("text"),
        ),
        (
            "/v1/audio/speech",
            json!({ "model": "tts-1", "input": "Hi.", "instructions": nul }),
            Some("instruct"),
        ),
        (
            "/v1/audio/speech",
            json!({ "model": nul, "input": "Hi." }),
            None,
        ),
        (
            "/v1/audio/speech",
            json!({ "model": "tts-1", "input": "Hi.", "voice": nul }),
            None,
        ),
        (
            "/v1/audio/speech",
            json!({ "model": "tts-1", "input": "Hi.", "voice": { "id": nul } }),
            None,
        ),
        (
            "/v1/audio/speech",
            json!({ "model": "tts-1", "input": "Hi.", "response_format": nul }),
            None,
        ),
        (
            "/v1/audio/speech",
            json!({ "model": "tts-1", "input": "Hi.", "stream_format": nul }),
            None,
        ),
    ];
    for (path, body, field) in cases {
        let r = post_json(server.port, path, &body);
        assert!(
            (400..500).contains(&r.status),
            "{path} {body}: {} {}",
            r.status,
            r.text()
        );
        let v = r.json();
        if let Some(field) = field {
            assert_eq!(r.status, 422, "{path} {body}: {v}");
            assert_eq!(v["error"]["type"], "invalid_input", "{path} {body}");
            let message = v["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(&format!("`{field}` contains a NUL")),
                "{message}"
            );
        }
    }
    assert_eq!(get(server.port, "/healthz").status, 200);
}

/// Schemathesis (PyPI, pinned by .ci/setup) against the served document, every
/// operation: the examples, coverage (boundary values of every limit and
/// enum) and fuzzing phases, inputs that fit the document and inputs that
/// break it (which must be refused). The server under test has
/// `max_text_chars = 32`, and so has its document: the generated texts stay
/// short (a long text at speed 0.25 is minutes of audio, far too slow for a
/// test, and past the audio stages' memory today: issue #22, part 1), and
/// the `413 text_too_long` boundary is fuzzed too.
#[test]
fn schemathesis_finds_no_server_errors_and_responses_conform() {
    let dir = default_pipelines();
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "[limits]\nmax_text_chars = 32\n").unwrap();
    let server = Server::start(dir.path(), &["--config", config.to_str().unwrap()], &[]);
    let seed = std::env::var("VOXPIPE_SCHEMATHESIS_SEED").unwrap_or(SEED.into());
    let examples = std::env::var("VOXPIPE_SCHEMATHESIS_EXAMPLES").unwrap_or(EXAMPLES.into());
    let report = dir.path().join("schemathesis.xml");
    let started = Instant::now();
    let out = Command::new("schemathesis")
        // Its working files (.schemathesis/) go to the temporary folder.
        .current_dir(dir.path())
        .arg("--config-file")
        .arg(common::root().join("tests/openapi/schemathesis.toml"))
        .args([
            "run",
            &format!("http://127.0.0.1:{}/openapi.json", server.port),
        ])
        .args([
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing",
            "--mode",
            "all",
            "--seed",
            &seed,
            "--max-examples",
            &examples,
            "--generation-database",
            "none",
            "--workers",
            "1",
            "--request-timeout",
            "120",
            "--no-color",
            "--report",
            "junit",
            "--report-junit-path",
        ])
        .arg(&report)
        .output()
        .expect("run schemathesis (pip install schemathesis; .ci/setup does)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    println!(
        "schemathesis: seed {seed}, {examples} examples per operation, {:.0} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "schemathesis found failures (seed {seed}); the server's log: {}",
        server.log_text()
    );
    // It really ran: every operation but the document itself, some hundreds
    // of cases, each passed.
    let junit = std::fs::read_to_string(&report).unwrap();
    let operations = junit.matches("<testcase").count();
    assert!(operations >= 8, "{operations} operations tested:\n{junit}");
    let counts: Vec<usize> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Test cases:"))
        .nth(1)
        .unwrap_or_default()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        matches!(counts[..], [generated, passed] if generated >= 300 && passed == generated),
        "{counts:?}"
    );
    // The server is alive afterwards.
    assert_eq!(get(server.port, "/healthz").status, 200);
}
