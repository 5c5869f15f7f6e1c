//! A bounded, property-based fuzz of both synthesis endpoints through the real
//! server and the default pipeline: random JSON shapes (known fields with
//! values of every type, unknown fields, non-JSON bodies), text from every
//! corner of Unicode (CJK, emoji, right-to-left scripts, combining marks,
//! control characters, inline phoneme blocks, markup) and numbers at the
//! edges. Whatever comes in, the server answers: no 5xx other than 503/504,
//! every error is JSON with a `type`, and afterwards it is alive with its
//! memory bounded.
//!
//! The run is reproducible: `VOXPIPE_FUZZ_SEED=N` replays a seed (the failing
//! seed is printed), `VOXPIPE_FUZZ_CASES=N` runs more cases.

mod common;

use std::time::Instant;

use common::http::{default_pipelines, get, request, Server};
use serde_json::{json, Map, Value};

/// A small deterministic generator (splitmix64): the test needs no crate and
/// a seed replays a run exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn word(&mut self, items: &[&'static str]) -> &'static str {
        items[self.below(items.len())]
    }

    fn char_in(&mut self, lo: u32, hi: u32) -> char {
        let c = lo + self.below((hi - lo + 1) as usize) as u32;
        char::from_u32(c).unwrap_or('?')
    }
}

const WORDS: &[&str] = &[
    "hello",
    "world",
    "the",
    "quick",
    "brown",
    "fox",
    "Dr.",
    "St.",
    "$1,234.56",
    "3:30",
    "15%",
    "1999",
    "e-mail",
    "don't",
    "naïve",
    "café",
    "Zürich",
    "ok",
    "A",
    "I",
];

const ODD: &[&str] = &[
    "[[ həˈloʊ ]]",
    "[[",
    "]]",
    "[[]]",
    "{HH AH0 L OW1}",
    "<speak>",
    "</s>",
    "&amp;",
    "\\u0000",
    "\u{feff}",
    "\u{200b}",
    "\u{200d}",
    "\u{202e}",
    "\u{2028}",
    "\u{fffd}",
    "…",
    "—",
    "，",
    "。",
    "、",
    "；",
    "：",
    "！",
    "？",
    "\t",
    "\r\n",
    "\n\n\n",
    "  ",
    "''",
    "\"",
    "\\",
    "%s",
    "{0}",
];

/// One text of `len` pieces drawn from a mix of scripts and oddities.
fn text(rng: &mut Rng, len: usize) -> String {
    let mut s = String::new();
    for _ in 0..len {
        match rng.below(12) {
            0..=3 => s.push_str(rng.word(WORDS)),
            4 => s.push(rng.char_in(0x4E00, 0x9FFF)), // CJK
            5 => s.push(rng.char_in(0x1F600, 0x1F64F)), // emoji
            6 => s.push(rng.char_in(0x0600, 0x06FF)), // Arabic (RTL)
            7 => s.push(rng.char_in(0x05D0, 0x05EA)), // Hebrew (RTL)
            8 => {
                // A base letter under a pile of combining marks.
                s.push('e');
                for _ in 0..rng.below(12) {
                    s.push(rng.char_in(0x0300, 0x036F));
                }
            }
            9 => s.push(rng.char_in(0x0000, 0x001F)), // C0 controls, NUL included
            10 => s.push(rng.char_in(0x007F, 0x009F)), // DEL and C1 controls
            _ => s.push_str(rng.word(ODD)),
        }
        s.push_str(rng.word(&[" ", " ", " ", "", ", ", ". ", "! ", "? "]));
    }
    s
}

/// A value of any JSON type, often at an edge.
fn any_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 1 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => json!(*rng.pick(&[
            0i64,
            -1,
            1,
            8_000,
            192_000,
            192_001,
            i64::MAX,
            i64::MIN,
            u32::MAX as i64
        ])),
        3 => {
            json!(*rng.pick(&[0.0f64, 0.25, 0.2499, 4.0, 4.0001, -0.5, 1e-300, 1e300, 1.5, 22050.5]))
        }
        4 | 5 => {
            let len = rng.below(8);
            json!(text(rng, len))
        }
        6 => Value::Array(
            (0..rng.below(4))
                .map(|_| any_value(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut m = Map::new();
            for _ in 0..rng.below(4) {
                m.insert(text(rng, 1), any_value(rng, depth + 1));
            }
            Value::Object(m)
        }
    }
}

/// A plausible value for a known field (so requests get past the parser
/// often), or anything at all.
fn field_value(rng: &mut Rng, field: &str) -> Value {
    if rng.chance(6) {
        return any_value(rng, 0);
    }
    match field {
        "text" | "input" | "instruct" | "instructions" => {
            // Mostly short; some long enough to reach the per-sentence limits.
            let len = if rng.chance(8) {
                60 + rng.below(60)
            } else {
                1 + rng.below(12)
            };
            json!(text(rng, len))
        }
        "voice" => json!(*rng.pick(&["en_US-joe-medium", "alloy", "nobody", "", "../etc"])),
        "speaker" => json!(*rng.pick(&["0", "1", "joe", ""])),
        "language" => json!(*rng.pick(&["en-US", "zh", "x-klingon", "en US", ""])),
        "speed" => json!(*rng.pick(&[0.25f64, 0.5, 1.0, 2.5, 4.0, 0.0, 5.0, -1.0])),
        "format" | "response_format" => {
            json!(*rng.pick(&["wav", "pcm", "mp3", "flac", "opus", "aac", "ogg", ""]))
        }
        "sample_rate" => json!(*rng.pick(&[8_000u32, 16_000, 22_050, 44_100, 192_000, 7_999])),
        "seed" => json!(*rng.pick(&[0u64, 1, u64::MAX])),
        "stream" => json!(rng.chance(30)),
        "timestamps" => json!(rng.chance(40)),
        "input_format" => json!(*rng.pick(&["text", "ssml", "html", ""])),
        "stream_format" => json!(*rng.pick(&["audio", "sse", "video"])),
        "pipeline" | "model" => json!(*rng.pick(&["default", "tts-1", "nope", ""])),
        _ => any_value(rng, 0),
    }
}

const TTS_FIELDS: &[&str] = &[
    "text",
    "pipeline",
    "voice",
    "speaker",
    "language",
    "instruct",
    "speed",
    "format",
    "sample_rate",
    "seed",
    "stream",
    "timestamps",
    "input_format",
];
const OPENAI_FIELDS: &[&str] = &[
    "model",
    "input",
    "voice",
    "instructions",
    "speed",
    "response_format",
    "stream_format",
    "timestamps",
    "input_format",
];

/// One request body for `fields`' endpoint.
fn body(rng: &mut Rng, fields: &[&str], text_field: &str) -> Vec<u8> {
    match rng.below(40) {
        // Not JSON at all, or cut short.
        0 => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
        1 => br#"{"text": "Hello"#.to_vec(),
        // A JSON value that is not an object.
        2 => any_value(rng, 1).to_string().into_bytes(),
        _ => {
            let mut m = Map::new();
            // The fields an endpoint requires are usually there.
            for required in [text_field, "model"] {
                if fields.contains(&required) && rng.chance(92) {
                    m.insert(required.into(), field_value(rng, required));
                }
            }
            for f in fields {
                if !m.contains_key(*f) && rng.chance(25) {
                    m.insert((*f).into(), field_value(rng, f));
                }
            }
            if rng.chance(3) {
                m.insert(text(rng, 1), any_value(rng, 0));
            }
            Value::Object(m).to_string().into_bytes()
        }
    }
}

#[test]
fn synthesis_endpoints_answer_every_request_without_a_server_error() {
    let seed: u64 = std::env::var("VOXPIPE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x766f_7870);
    let cases: usize = std::env::var("VOXPIPE_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let pipelines = default_pipelines();
    let server = Server::start(pipelines.path(), &[], &[]);
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut types = std::collections::BTreeMap::<String, usize>::new();
    for case in 0..cases {
        let (path, fields, text_field) = if rng.chance(50) {
            ("/v1/tts", TTS_FIELDS, "text")
        } else {
            ("/v1/audio/speech", OPENAI_FIELDS, "input")
        };
        let body = body(&mut rng, fields, text_field);
        let shown = String::from_utf8_lossy(&body).into_owned();
        let reply = request(
            server.port,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            &body,
        )
        .unwrap_or_else(|e| panic!("seed {seed} case {case}: {path} {shown}: no reply: {e}"));
        *statuses.entry(reply.status).or_default() += 1;
        let context = || format!("seed {seed} case {case}: {path} {shown} → {}", reply.status);
        assert!(
            reply.status < 500 || matches!(reply.status, 503 | 504),
            "{}: {}",
            context(),
            reply.text()
        );
        if reply.status >= 400 {
            let error: Value = serde_json::from_slice(&reply.body)
                .unwrap_or_else(|e| panic!("{}: error body is not JSON ({e})", context()));
            let kind = error["error"]["type"].as_str().unwrap_or_default();
            assert!(!kind.is_empty(), "{}: {error}", context());
            *types.entry(kind.to_string()).or_default() += 1;
        }
    }
    println!(
        "{cases} cases (seed {seed}) in {:.1} s; statuses {statuses:?}; errors {types:?}",
        started.elapsed().as_secs_f64()
    );
    // The fuzz reached synthesis as well as the validators.
    assert!(
        statuses.get(&200).copied().unwrap_or(0) >= cases / 5,
        "{statuses:?}"
    );
    assert_eq!(get(server.port, "/healthz").status, 200);
    let peak = server.peak_rss();
    assert!(peak < 1 << 30, "peak RSS {} MiB", peak >> 20);
}
