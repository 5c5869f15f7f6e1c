//! `voxpipe-bench telemetry`: what exporting traces and logs costs a request.
//!
//! Two servers run side by side on the same machine, one with the OTLP
//! exporter off (spans are still created, metrics still recorded: that is
//! always on) and one exporting traces and log records over OTLP/HTTP to a
//! local sink that accepts everything. Requests alternate between them (the
//! order flips every round), so machine noise hits both alike; the table
//! gives medians and the ratio.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

use super::http::{call, start_with, tts, THREE};
use super::{ms, stats};

/// An OTLP/HTTP endpoint that answers 200 to every export and counts bytes.
struct Sink {
    port: u16,
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    _rt: tokio::runtime::Runtime,
}

fn sink() -> anyhow::Result<Sink> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let port = listener.local_addr()?.port();
    let (requests, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (r, b) = (requests.clone(), bytes.clone());
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let (r, b) = (r.clone(), b.clone());
        async move {
            r.fetch_add(1, Ordering::Relaxed);
            b.fetch_add(body.len() as u64, Ordering::Relaxed);
            // An empty Export*ServiceResponse is zero protobuf bytes.
            (
                [("content-type", "application/x-protobuf")],
                Vec::<u8>::new(),
            )
        }
    });
    rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Sink {
        port,
        requests,
        bytes,
        _rt: rt,
    })
}

pub fn telemetry_bench(requests: usize) -> anyhow::Result<()> {
    let sink = sink()?;
    let endpoint = format!("http://127.0.0.1:{}", sink.port);
    let common = [("RUST_LOG", "info")];
    let flags = ["--cache-mb", "0"];
    let off = start_with(&flags, &common)?;
    let on = start_with(
        &flags,
        &[
            common[0],
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ],
    )?;
    let body = tts(THREE, false);
    // Warm both (first calls pay for lazy initialization).
    for port in [off.1, on.1] {
        for _ in 0..2 {
            call(port, "POST", "/v1/tts", &body)?;
        }
    }
    let (mut t_off, mut t_on) = (Vec::new(), Vec::new());
    for round in 0..requests {
        let order = if round % 2 == 0 {
            [(off.1, false), (on.1, true)]
        } else {
            [(on.1, true), (off.1, false)]
        };
        for (port, exporting) in order {
            let r = call(port, "POST", "/v1/tts", &body)?;
            if r.status != 200 {
                bail!("status {}", r.status);
            }
            if exporting {
                t_on.push(r.total);
            } else {
                t_off.push(r.total);
            }
        }
    }
    // Let the batch processor's last export land before reading the counters.
    std::thread::sleep(Duration::from_secs(6));
    let exports = sink.requests.load(Ordering::Relaxed);
    let bytes = sink.bytes.load(Ordering::Relaxed);
    if exports == 0 {
        bail!("the exporting server sent nothing to the sink");
    }
    let (s_off, s_on) = (stats(t_off), stats(t_on));
    let ratio = s_on.p50.as_secs_f64() / s_off.p50.as_secs_f64();
    println!(
        "## Telemetry export overhead: three sentences, whole WAV, {requests} requests each, alternating\n"
    );
    println!("| OTLP exporter | p50 | p99 | max |");
    println!("|---|---:|---:|---:|");
    for (name, s) in [("off", &s_off), ("on (traces + logs, OTLP/HTTP)", &s_on)] {
        println!("| {name} | {} | {} | {} |", ms(s.p50), ms(s.p99), ms(s.max));
    }
    println!(
        "\nMedian ratio on/off: {ratio:.3} ({:+.1} %). Exported: {exports} OTLP requests, \
         {:.1} KiB per synthesis request.",
        (ratio - 1.0) * 100.0,
        bytes as f64 / 1024.0 / (requests + 2) as f64
    );
    Ok(())
}
