//! Real clients against the real server: the official `openai` Python SDK
//! (tests/http/openai_client.py) and headless Chromium loading the web page,
//! synthesizing and showing the trace id and the per-stage timing bar.

mod common;

use std::process::Command;
use std::time::Instant;

use common::http::{default_pipelines, Server};

#[test]
fn the_openai_python_sdk_speaks_to_voxpipe() {
    let dir = default_pipelines();
    let server = Server::start(dir.path(), &[], &[]);
    let out = Command::new("python3")
        .arg(common::root().join("tests/http/openai_client.py"))
        .arg(format!("http://127.0.0.1:{}/v1", server.port))
        .output()
        .expect("python3 with the openai package (.ci/setup installs it)");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("openai SDK: {summary}");
    assert!(summary["wav_bytes"].as_u64().unwrap() > 22050);
}

/// The page as a browser runs it: `?autorun=1` fills the form and presses
/// Speak; the dumped DOM must show the finished state, the response's trace id
/// and one timing segment per stage.
#[test]
fn headless_chromium_synthesizes_and_shows_the_trace_id() {
    let dir = default_pipelines();
    let server = Server::start(dir.path(), &[], &[]);
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
        .expect("chromium (.ci/setup installs Debian's chromium)");
    let profile = tempfile::tempdir().unwrap();
    let dump = |query: &str| {
        let started = Instant::now();
        let out = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--dump-dom",
                "--virtual-time-budget=30000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("http://127.0.0.1:{}/?{query}", server.port))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("chromium {query}: {:.1} s", started.elapsed().as_secs_f64());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = dump(
        "text=Hello%20from%20the%20browser.&instruct=speak%20slowly%20in%20a%20whisper&autorun=1",
    );
    assert!(dom.contains("data-state=\"done\""), "{dom}");
    // The default pipeline has no whispering voice: understood, not honored.
    assert!(
        dom.contains("not honored by this pipeline") && dom.contains("emotion=whisper"),
        "{dom}"
    );
    let trace = dom
        .split("id=\"trace-id\"")
        .nth(1)
        .and_then(|rest| rest.split('>').nth(1))
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(
        trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()),
        "trace id {trace:?} in {dom}"
    );
    // The download is named after the same trace id.
    assert!(dom.contains(&format!("voxpipe-{trace}.wav")), "{dom}");
    for stage in ["normalize", "model", "loudness"] {
        assert!(
            dom.contains(&format!("data-stage=\"{stage}\"")),
            "{stage} segment missing: {dom}"
        );
    }
    // An error is shown with its type, and the trace id still appears.
    let dom = dump("text=Hi&pipeline=nope&autorun=1");
    assert!(dom.contains("data-state=\"error\""), "{dom}");
    assert!(dom.contains("unknown_pipeline"), "{dom}");
}
