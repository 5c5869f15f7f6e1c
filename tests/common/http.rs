//! A small HTTP/1.1 client for the end-to-end tests (Connection: close, chunked
//! bodies decoded), and a `voxpipe serve` process that is killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// A response: status, lower-cased headers, body (de-chunked), and when each
/// body chunk arrived (seconds after the request was sent).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub chunk_times: Vec<(f64, usize)>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request; `headers` are extra `Name: value` lines.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let sent = Instant::now();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let mut body = Vec::new();
    let mut chunk_times = Vec::new();
    if chunked {
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Err(std::io::Error::other("chunked body cut off"));
            }
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                break;
            }
            let mut chunk = vec![0u8; size];
            r.read_exact(&mut chunk)?;
            chunk_times.push((sent.elapsed().as_secs_f64(), size));
            body.extend_from_slice(&chunk);
            line.clear();
            r.read_line(&mut line)?;
        }
    } else {
        r.read_to_end(&mut body)?;
        chunk_times.push((sent.elapsed().as_secs_f64(), body.len()));
    }
    Ok(Reply {
        status,
        headers,
        body,
        chunk_times,
    })
}

pub fn get(port: u16, path: &str) -> Reply {
    request(port, "GET", path, &[], b"").expect("GET")
}

pub fn post_json(port: u16, path: &str, body: &serde_json::Value) -> Reply {
    request(
        port,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .expect("POST")
}

/// A running `voxpipe serve`, killed when dropped. Its output goes to `log`.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub log: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts `voxpipe serve` on a free port with the real plugins and voice,
    /// the given pipelines folder and extra arguments, and waits until ready.
    pub fn start(pipelines: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("voxpipe-serve-{port}.log"));
        let mut cmd = super::voxpipe();
        cmd.args(["--cache-dir", "target/test-cache", "serve", "--bind"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--pipelines")
            .arg(pipelines)
            .arg("--plugin-dir")
            .arg(super::plugins())
            .args(["--poll-ms", "300"])
            .args(extra)
            // The server logs on stdout; errors before logging starts go to stderr.
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::OpenOptions::new().append(true).open(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let mut server = Server { child, port, log };
        let started = Instant::now();
        loop {
            if let Ok(r) = request(port, "GET", "/readyz", &[], b"") {
                if r.status == 200 {
                    break;
                }
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("server exited {status:?}: {}", server.log_text());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "server not ready: {}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server's peak resident memory so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> usize {
        peak_rss(self.child.id())
    }
}

/// Peak resident memory of process `pid` so far (VmHWM), in bytes.
pub fn peak_rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb << 10
}

/// A folder with a copy of the default pipeline (and its table).
pub fn default_pipelines() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = super::root();
    std::fs::copy(
        root.join("pipelines/default.toml"),
        dir.path().join("default.toml"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("tables")).unwrap();
    std::fs::copy(
        root.join("pipelines/tables/instruct-style.toml"),
        dir.path().join("tables/instruct-style.toml"),
    )
    .unwrap();
    dir
}

/// Sends SIGTERM to `child` (a server under test).
pub fn sigterm(child: &Child) {
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
}

/// Waits up to `limit` for `child` to exit and returns its status.
pub fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(started.elapsed() < limit, "server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}
