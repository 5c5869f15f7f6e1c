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
    assert_eq!(
        v["pipelines"][0]["stages"][0]["plugin"]["name"],
        "text-replace"
    );
    assert_eq!(
        v["pipelines"][0]["stages"][3]["limits"]["deadline_ms"],
        1000
    );
    assert_eq!(v["errors"].as_array().unwrap().len(), 0);

    // A broken edit: refused, reported with its position, v1 keeps serving.
    let file = dir.path().join("default.toml");
    std::fs::write(&file, default.replace("gain_db = 0.0", "gain_db = 99.0")).unwrap();
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
    assert!(message.contains("stage 4 \"gain\" (audio)"), "{message}");
    assert!(message.contains("gain_db"), "{message}");
    assert_eq!(v["pipelines"][0]["version"], 1);
    assert_eq!(get(port, "/readyz").unwrap().0, 200);

    // A good edit: version 2, the error cleared.
    std::fs::write(&file, default.replace("gain_db = 0.0", "gain_db = -3.0")).unwrap();
    wait_for("version 2", || {
        json(port, "/v1/pipelines")["pipelines"][0]["version"] == 2
    });
    assert_eq!(
        json(port, "/v1/pipelines")["errors"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // Without its default pipeline the server is alive but not ready.
    std::fs::remove_file(&file).unwrap();
    wait_for("not ready", || {
        get(port, "/readyz").is_some_and(|(s, _)| s == 503)
    });
    let (_, body) = get(port, "/readyz").unwrap();
    assert!(body.contains("not_ready"), "{body}");

    // SIGTERM: a clean exit.
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "server did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let _ = server.port;
}
