//! `voxpipe serve` as an operator runs it: pipelines load at start, an edit
//! becomes a new version without a restart, a broken edit is refused (and
//! visible in GET /v1/pipelines) while the last good version keeps serving,
//! and SIGTERM stops the server cleanly.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.1 GET; returns (status, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let status = raw.split_whitespace().nth(1)?.parse().ok()?;
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

fn json(port: u16, path: &str) -> serde_json::Value {
    let (_, body) = get(port, path).expect("server answers");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_reloads_edits_refuses_broken_ones_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let default = std::fs::read_to_string(common::root().join("pipelines/default.toml")).unwrap();
    std::fs::write(dir.path().join("default.toml"), &default).unwrap();
    std::fs::create_dir(dir.path().join("tables")).unwrap();
    let table = common::root().join("pipelines/tables/instruct-style.toml");
    std::fs::copy(&table, dir.path().join("tables/instruct-style.toml")).unwrap();
    let port = free_port();
    let child = common::voxpipe()
        .args(["--cache-dir", "target/test-cache", "serve", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--pipelines")
        .arg(dir.path())
        .arg("--plugin-dir")
        .arg(common::plugins())
        .args(["--poll-ms", "300"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server { child, port };
    wait_for("readiness", || {
        get(port, "/readyz").is_some_and(|(s, _)| s == 200)
    });
    assert_eq!(get(port, "/healthz").unwrap(), (200, "ok\n".to_string()));

    let v = json(port, "/v1/pipelines");
    assert_eq!(v["pipelines"][0]["name"], "default");
    assert_eq!(v["pipelines"][0]["version"], 1);
    let stages = &v["pipelines"][0]["stages"];
    assert_eq!(stages[0]["plugin"]["name"], "en-normalize");
    assert_eq!(stages[3]["limits"]["deadline_ms"], 5000);
    assert_eq!(v["errors"].as_array().unwrap().len(), 0);

    // A broken edit: refused, reported with its position, v1 keeps serving.
    let file = dir.path().join("default.toml");
    std::fs::write(
        &file,
        default.replace("target_lufs = -16.0", "target_lufs = 99.0"),
    )
    .unwrap();
    wait_for("the refusal", || {
        json(port, "/v1/pipelines")["errors"]
            .as_array()
            .unwrap()
            .len()
            == 1
    });
    let v = json(port, "/v1/pipelines");
    let message = v["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("default.toml:"), "{message}");
    assert!(
        message.contains("stage 6 \"loudness\" (audio)"),
        "{message}"
    );
    assert!(message.contains("target_lufs"), "{message}");
    assert_eq!(v["pipelines"][0]["version"], 1);
    assert_eq!(get(port, "/readyz").unwrap().0, 200);

    // A good edit: version 2, the error cleared.
    let edited = default.replace("target_lufs = -16.0", "target_lufs = -18.0");
    std::fs::write(&file, edited).unwrap();
    let version = |n: u64| move || json(port, "/v1/pipelines")["pipelines"][0]["version"] == n;
    let errors = || {
        json(port, "/v1/pipelines")["errors"]
            .as_array()
            .unwrap()
            .len()
    };
    wait_for("version 2", version(2));
    assert_eq!(errors(), 0);

    // Editing the table a stage reads with config_file is a new version too…
    let table_file = dir.path().join("tables/instruct-style.toml");
    let table = std::fs::read_to_string(&table_file).unwrap();
    std::fs::write(&table_file, table.replace("speed = 0.8", "speed = 0.75")).unwrap();
    wait_for("version 3", version(3));
    // …and a broken table is refused, naming the table file and line.
    std::fs::write(&table_file, "dialects.x = [").unwrap();
    wait_for("the table refusal", || errors() == 1);
    let v = json(port, "/v1/pipelines");
    let message = v["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("config_file"), "{message}");
    assert!(message.contains("instruct-style.toml:1:"), "{message}");
    assert_eq!(v["pipelines"][0]["version"], 3);
    std::fs::write(&table_file, &table).unwrap();
    wait_for("version 4", version(4));
    assert_eq!(errors(), 0);

    // Without its default pipeline the server is alive but not ready.
    std::fs::remove_file(&file).unwrap();
    wait_for("not ready", || {
        get(port, "/readyz").is_some_and(|(s, _)| s == 503)
    });
    let (_, body) = get(port, "/readyz").unwrap();
    assert!(body.contains("not_ready"), "{body}");

    // SIGTERM: a clean exit.
    common::http::sigterm(&server.child);
    let status = common::http::wait_exit(&mut server.child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let _ = server.port;
}
