//! `voxpipe-bench http`: the real server under load from a closed-loop client
//! of our own (blocking sockets, one thread per connection, so every response
//! is read and checked — status, WAV header, length — none lost or corrupted).
//!
//! Tables: throughput and p50/p99 at several concurrencies; 2× saturation
//! (accepted requests keep bounded latency, the excess gets 503 fast); time to
//! first audio byte, streamed vs whole; host overhead from Server-Timing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::{ms, repo_root, stats, Stats};

const SENTENCE: &str = "The quick brown fox jumps over the lazy dog near the river bank.";
pub(super) const THREE: &str = "The first sentence is short. The second sentence is a little longer than the first one. And the third sentence closes the paragraph.";

pub(super) struct Server(pub(super) Child, pub(super) u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(extra: &[&str]) -> anyhow::Result<Server> {
    start_with(extra, &[("RUST_LOG", "warn")])
}

/// `voxpipe serve` on a free port with these flags and environment, ready.
pub(super) fn start_with(extra: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let root = repo_root();
    let child = Command::new(root.join("target/release/voxpipe"))
        .current_dir(&root)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("target/release/voxpipe (run .ci/setup first)")?;
    let server = Server(child, port);
    let started = Instant::now();
    while !call(port, "GET", "/readyz", "").is_ok_and(|r| r.status == 200) {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the server did not become ready");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(server)
}

pub(super) struct Reply {
    pub(super) status: u16,
    /// Time to the first body byte and to the end.
    pub(super) first_byte: Duration,
    pub(super) total: Duration,
    pub(super) body: Vec<u8>,
    server_timing: String,
}

pub(super) fn call(port: u16, method: &str, path: &str, body: &str) -> anyhow::Result<Reply> {
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(300)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line.split_whitespace().nth(1).unwrap_or("0").parse()?;
    let (mut chunked, mut server_timing) = (false, String::new());
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        chunked |= l.starts_with("transfer-encoding:") && l.contains("chunked");
        if let Some(v) = l.strip_prefix("server-timing:") {
            server_timing = v.trim().to_string();
        }
    }
    let mut body = Vec::new();
    let mut first_byte = None;
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16)?;
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size];
            r.read_exact(&mut chunk)?;
            first_byte.get_or_insert_with(|| started.elapsed());
            body.extend(chunk);
            line.clear();
            r.read_line(&mut line)?;
        }
    } else {
        let mut buf = [0u8; 1];
        if r.read(&mut buf)? == 1 {
            first_byte = Some(started.elapsed());
            body.push(buf[0]);
            r.read_to_end(&mut body)?;
        }
    }
    Ok(Reply {
        status,
        first_byte: first_byte.unwrap_or_else(|| started.elapsed()),
        total: started.elapsed(),
        body,
        server_timing,
    })
}

/// A WAV body of at least `min_samples` 16-bit samples, or why not.
fn check_wav(body: &[u8], min_samples: usize) -> Result<(), String> {
    if body.len() < 44 || &body[0..4] != b"RIFF" || &body[8..12] != b"WAVE" {
        return Err("not a WAV".into());
    }
    let samples = (body.len() - 44) / 2;
    if samples < min_samples {
        return Err(format!("{samples} samples"));
    }
    Ok(())
}

pub(super) fn tts(text: &str, stream: bool) -> String {
    serde_json::json!({ "text": text, "stream": stream }).to_string()
}

/// One closed-loop run: `clients` threads, each sending `per_client` requests.
struct Run {
    ok: Vec<Duration>,
    refused: Vec<Duration>,
    other: usize,
    corrupted: usize,
    wall: Duration,
}

fn load(port: u16, clients: usize, per_client: usize, body: &str) -> Run {
    let started = Instant::now();
    let results: Vec<Vec<(u16, Duration, bool)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(move || {
                    (0..per_client)
                        .map(|_| match call(port, "POST", "/v1/tts", body) {
                            Ok(r) => {
                                let good = r.status != 200 || check_wav(&r.body, 22050).is_ok();
                                (r.status, r.total, good)
                            }
                            Err(_) => (0, Duration::ZERO, false),
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut run = Run {
        ok: Vec::new(),
        refused: Vec::new(),
        other: 0,
        corrupted: 0,
        wall: started.elapsed(),
    };
    for (status, d, good) in results.into_iter().flatten() {
        match status {
            200 => run.ok.push(d),
            503 => run.refused.push(d),
            _ => run.other += 1,
        }
        run.corrupted += usize::from(!good);
    }
    run
}

fn p(s: &Option<Stats>, f: fn(&Stats) -> Duration) -> String {
    s.as_ref().map_or("–".into(), |s| ms(f(s)))
}

pub fn http_bench(requests: usize) -> anyhow::Result<()> {
    // Cache off: every request is synthesized. Default concurrency (one per two cores).
    let server = start(&["--cache-mb", "0", "--queue", "64"])?;
    let port = server.1;
    let warm = call(port, "POST", "/v1/tts", &tts(SENTENCE, false))?;
    check_wav(&warm.body, 22050).map_err(anyhow::Error::msg)?;
    let audio_s = (warm.body.len() - 44) as f64 / 2.0 / 22050.0;

    println!(
        "## HTTP: POST /v1/tts, one sentence ({audio_s:.2} s of audio), cache off, queue 64\n"
    );
    println!("| clients | requests | ok | 503 | other | corrupted | throughput | p50 | p99 |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let body = tts(SENTENCE, false);
    for clients in [1usize, 2, 4, 16] {
        let per = requests.div_ceil(clients).max(1);
        let run = load(port, clients, per, &body);
        let n = run.ok.len();
        let s = (!run.ok.is_empty()).then(|| stats(run.ok.clone()));
        println!(
            "| {clients} | {} | {n} | {} | {} | {} | {:.2} req/s | {} | {} |",
            clients * per,
            run.refused.len(),
            run.other,
            run.corrupted,
            n as f64 / run.wall.as_secs_f64(),
            p(&s, |s| s.p50),
            p(&s, |s| s.p99),
        );
    }
    drop(server);

    // 2× saturation: capacity = concurrency + queue; twice that many clients.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let concurrency = (cores / 2).max(1);
    let queue = 3;
    let capacity = concurrency + queue;
    let server = start(&["--cache-mb", "0", "--queue", &queue.to_string()])?;
    let clients = 2 * capacity;
    let run = load(server.1, clients, 4, &body);
    let ok = (!run.ok.is_empty()).then(|| stats(run.ok.clone()));
    let refused = (!run.refused.is_empty()).then(|| stats(run.refused.clone()));
    println!("\n## 2× saturation: {clients} clients against capacity {capacity} (concurrency {concurrency} + queue {queue})\n");
    println!("| outcome | count | p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| 200 accepted | {} | {} | {} | {} |",
        run.ok.len(),
        p(&ok, |s| s.p50),
        p(&ok, |s| s.p99),
        p(&ok, |s| s.max)
    );
    println!(
        "| 503 refused | {} | {} | {} | {} |",
        run.refused.len(),
        p(&refused, |s| s.p50),
        p(&refused, |s| s.p99),
        p(&refused, |s| s.max)
    );
    println!(
        "\nLost or failed otherwise: {}; corrupted bodies: {}; total {} = {} sent.",
        run.other,
        run.corrupted,
        run.ok.len() + run.refused.len() + run.other,
        clients * 4
    );
    drop(server);

    // Time to first audio byte, and where a request's time goes.
    let server = start(&["--cache-mb", "0"])?;
    let port = server.1;
    let (mut ttfb_stream, mut ttfb_whole, mut total_whole, mut overhead) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        let s = call(port, "POST", "/v1/tts", &tts(THREE, true))?;
        ttfb_stream.push(s.first_byte);
        let w = call(port, "POST", "/v1/tts", &tts(THREE, false))?;
        ttfb_whole.push(w.first_byte);
        total_whole.push(w.total);
        let part = |name: &str| -> f64 {
            w.server_timing
                .split(',')
                .find(|e| e.trim().starts_with(&format!("{name};")))
                .and_then(|e| e.split("dur=").nth(1))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0)
        };
        // Client-measured wall time minus the model and the plugin stages'
        // own work: the phonemizer, HTTP, queueing (none here), the plugin
        // runtime's call overhead, encoding and the loopback transfer.
        let model = part("model") / 1e3;
        let plugins: f64 = w
            .server_timing
            .split(',')
            .filter(|e| {
                ["\"text ", "\"style ", "\"audio "]
                    .iter()
                    .any(|k| e.contains(k))
            })
            .filter_map(|e| e.split("dur=").nth(1))
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .sum::<f64>()
            / 1e3;
        let total = w.total.as_secs_f64();
        overhead.push(((total - model - plugins) / total, (total - model) / total));
    }
    let mut host: Vec<f64> = overhead.iter().map(|o| o.0).collect();
    let mut with_plugins: Vec<f64> = overhead.iter().map(|o| o.1).collect();
    host.sort_by(f64::total_cmp);
    with_plugins.sort_by(f64::total_cmp);
    let (st, sw) = (stats(ttfb_stream), stats(ttfb_whole));
    println!("\n## Three sentences: time to first audio byte (median of 5)\n");
    println!("| delivery | first byte | whole response |");
    println!("|---|---:|---:|");
    println!("| streamed (`stream: true`) | {} | – |", ms(st.p50));
    println!(
        "| whole file | {} | {} |",
        ms(sw.p50),
        ms(stats(total_whole).p50)
    );
    println!(
        "\nHost overhead, as a share of the client-measured time of the whole-file request (median of 5): \
         everything but the model and the plugins' own work {:.1} %; everything but the model {:.1} %.",
        100.0 * host[host.len() / 2],
        100.0 * with_plugins[with_plugins.len() / 2],
    );
    Ok(())
}
