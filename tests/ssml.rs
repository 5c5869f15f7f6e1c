//! The SSML subset (issue 17, part 1) through the real server, the default
//! pipeline's real plugins, joe and the Mandarin test voice: every element
//! and attribute, exact breaks, the lowering of say-as/sub/phoneme (the same
//! audio as the text it lowers to), prosody, voice and lang, the OpenAI
//! route's detection, and the refusals with their statuses and messages.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::http::{default_pipelines, post_json, Server};
use serde_json::json;

/// (rate, samples) of a 16-bit mono WAV (whole, or streamed to the end).
fn wav(body: &[u8]) -> (u32, Vec<i16>) {
    assert_eq!(
        &body[0..4],
        b"RIFF",
        "not a WAV: {}",
        String::from_utf8_lossy(body)
    );
    let rate = u32::from_le_bytes(body[24..28].try_into().unwrap());
    let data = body.windows(4).position(|w| w == b"data").unwrap();
    let samples = body[data + 8..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    (rate, samples)
}

/// The longest run of exact zeros, in milliseconds.
fn longest_zeros_ms(rate: u32, samples: &[i16]) -> f64 {
    let (mut best, mut run) = (0usize, 0usize);
    for &s in samples {
        run = if s == 0 { run + 1 } else { 0 };
        best = best.max(run);
    }
    best as f64 * 1000.0 / f64::from(rate)
}

fn seconds(rate: u32, samples: &[i16]) -> f64 {
    samples.len() as f64 / f64::from(rate)
}

#[test]
fn ssml_elements_through_the_server() {
    let pipelines = default_pipelines();
    // The default pipeline with a route for Chinese, for <lang>.
    let default = std::fs::read_to_string(pipelines.path().join("default.toml")).unwrap();
    std::fs::write(
        pipelines.path().join("routed.toml"),
        default.replacen("name = \"default\"", "name = \"routed\"", 1)
            + "\n[[routes]]\nwhen = { language = \"zh\" }\nvoice = \"test-zh\"\n",
    )
    .unwrap();
    // A pipeline with no audio stage: nothing applies pitch or volume.
    std::fs::write(
        pipelines.path().join("bare.toml"),
        "name = \"bare\"\nvoice = \"en_US-joe-medium\"\nlanguage = \"en-US\"\n\
         [[stages]]\nkind = \"model\"\n",
    )
    .unwrap();
    // A Chinese pipeline whose normalizer takes say-as hints.
    std::fs::write(
        pipelines.path().join("zh.toml"),
        "name = \"zh\"\nvoice = \"test-zh\"\nlanguage = \"zh-CN\"\n\
         [[stages]]\nkind = \"text\"\nname = \"normalize\"\nplugin = \"zh-normalize\"\n\
         [[stages]]\nkind = \"model\"\n",
    )
    .unwrap();
    let voices = common::voices_with_zh();
    let server = Server::start(
        pipelines.path(),
        &[
            "--voices",
            voices.path().to_str().unwrap(),
            "--cache-mb",
            "0",
        ],
        &[],
    );
    let port = server.port;
    let tts = |doc: &str| {
        post_json(
            port,
            "/v1/tts",
            &json!({"text": doc, "input_format": "ssml", "seed": 1}),
        )
    };
    let plain = |text: &str| post_json(port, "/v1/tts", &json!({"text": text, "seed": 1}));
    let ok = |r: &common::http::Reply| {
        assert_eq!(r.status, 200, "{}\n{}", r.text(), server.log_text());
        wav(&r.body)
    };

    // break: exact silence of the asked length, whatever the stages do
    // around it (trim-fade trims the speech's own edges; no stage touches
    // the break). A few zero samples of the fades may join it.
    for (brk, ms) in [
        ("time=\"1500ms\"", 1500.0),
        ("time=\"0.7s\"", 700.0),
        ("strength=\"strong\"", 800.0),
        ("", 500.0),
    ] {
        let (rate, s) = ok(&tts(&format!(
            "<speak>Hello there.<break {brk}/>General Kenobi.</speak>"
        )));
        let zeros = longest_zeros_ms(rate, &s);
        assert!(
            zeros >= ms && zeros < ms + 30.0,
            "<break {brk}>: {zeros:.1} ms of silence"
        );
    }
    // A break at the start and the end: silence there too.
    let (rate, s) = ok(&tts(
        "<speak><break time=\"400ms\"/>Hello.<break time=\"600ms\"/></speak>",
    ));
    let lead = s.iter().position(|&x| x != 0).unwrap() as f64 * 1000.0 / f64::from(rate);
    let tail = s.iter().rev().position(|&x| x != 0).unwrap() as f64 * 1000.0 / f64::from(rate);
    assert!((400.0..430.0).contains(&lead), "{lead}");
    assert!((600.0..630.0).contains(&tail), "{tail}");

    // say-as, sub, phoneme: the same audio as the text they lower to, read
    // by the same text stages.
    for (doc, text) in [
        ("<say-as interpret-as=\"characters\">abc</say-as>", "A B C"),
        ("<say-as interpret-as=\"spell-out\">ok</say-as>", "O K"),
        (
            "Call <say-as interpret-as=\"telephone\">555-0123</say-as>.",
            "Call 5 5 5, 0 1 2 3.",
        ),
        (
            "<say-as interpret-as=\"ordinal\">3</say-as> place",
            "3rd place",
        ),
        (
            "<say-as interpret-as=\"cardinal\">1,234</say-as> apples",
            // A cardinal, not the year-like "twelve thirty-four" a bare
            // 1234 could be: en-normalize reads the hint (docs/ssml.md).
            "one thousand two hundred thirty-four apples",
        ),
        (
            "Pin <say-as interpret-as=\"digits\">4096</say-as>",
            "Pin 4 0 9 6",
        ),
        (
            "<say-as interpret-as=\"date\" format=\"dmy\">05.03.2024</say-as>",
            "March 5th, 2024",
        ),
        (
            "The <sub alias=\"World Wide Web Consortium\">W3C</sub>.",
            "The World Wide Web Consortium.",
        ),
        (
            "A <phoneme alphabet=\"ipa\" ph=\"təˈmɑːtəʊ\">tomato</phoneme>.",
            "A [[ təˈmɑːtəʊ ]].",
        ),
        ("<p>One</p><s>Two</s>", "One. Two."),
    ] {
        let a = ok(&tts(&format!("<speak>{doc}</speak>")));
        let b = ok(&plain(text));
        assert!(a == b, "{doc} is not read as {text:?}");
    }
    // say-as reaches the pipeline's normalizer as a hint (its first text
    // stage declares `say-as`), so it is read in the pipeline's language:
    // the zh pipeline reads a date as zh-normalize does...
    let in_pipeline = |pipeline: &str, text: &str, format: &str| {
        ok(&post_json(
            port,
            "/v1/tts",
            &json!({"text": text, "input_format": format, "seed": 1, "pipeline": pipeline}),
        ))
    };
    assert!(
        in_pipeline(
            "zh",
            "<speak><say-as interpret-as=\"date\" format=\"mdy\">3/5/2024</say-as></speak>",
            "ssml"
        ) == in_pipeline("zh", "二零二四年三月五日。", "text"),
        "a say-as date in the zh pipeline is read in Chinese"
    );
    // ...and a pipeline with no such stage gets the host's own lowering.
    assert!(
        in_pipeline(
            "bare",
            "<speak><say-as interpret-as=\"ordinal\">3</say-as> place</speak>",
            "ssml"
        ) == in_pipeline("bare", "3rd place", "text")
    );
    // ...and not as the markup's text: characters differ from the word.
    assert!(
        ok(&tts(
            "<speak><say-as interpret-as=\"characters\">abc</say-as></speak>"
        )) != ok(&plain("abc"))
    );

    // prosody rate: half the rate, about twice as long.
    let (rate, normal) = ok(&tts("<speak>This sentence is spoken at two rates.</speak>"));
    let (_, slow) = ok(&tts(
        "<speak><prosody rate=\"50%\">This sentence is spoken at two rates.</prosody></speak>",
    ));
    let ratio = seconds(rate, &slow) / seconds(rate, &normal);
    assert!((1.6..2.4).contains(&ratio), "rate 50%: {ratio:.2}× as long");
    // prosody volume reaches the loudness stage: −6 dB is 6 LU quieter.
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &[u8]| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let sentence = "The quick brown fox jumps over the lazy dog, again and again.";
    let loud = tts(&format!("<speak>{sentence}</speak>"));
    let soft = tts(&format!(
        "<speak><prosody volume=\"-6dB\">{sentence}</prosody></speak>"
    ));
    ok(&loud);
    ok(&soft);
    let lufs = common::pyloudnorm(&[write("loud.wav", &loud.body), write("soft.wav", &soft.body)]);
    assert!(((lufs[0] - lufs[1]) - 6.0).abs() < 0.5, "{lufs:?}");
    // prosody pitch reaches pitch-shift: same length, different audio, and
    // nothing reported unhonored.
    let high = tts(&format!(
        "<speak><prosody pitch=\"+4st\">{sentence}</prosody></speak>"
    ));
    assert_eq!(high.header("x-style-unhonored"), None);
    let (_, h) = ok(&high);
    let (_, l) = ok(&loud);
    assert!(h != l);
    assert!((seconds(rate, &h) / seconds(rate, &l) - 1.0).abs() < 0.05);

    // voice and lang: the named voice, or the routed one, speaks its block.
    let spoken_by = |r: &common::http::Reply| r.header("server-timing").unwrap_or("").to_string();
    let r = tts("<speak>Hello. <voice name=\"test-zh\">你好。</voice></speak>");
    ok(&r);
    assert!(spoken_by(&r).contains("voice test-zh"), "{}", spoken_by(&r));
    let r = post_json(
        port,
        "/v1/tts",
        &json!({"pipeline": "routed", "input_format": "ssml",
                "text": "<speak>Hello. <lang xml:lang=\"zh-CN\">ni hao</lang></speak>"}),
    );
    ok(&r);
    assert!(spoken_by(&r).contains("voice test-zh"), "{}", spoken_by(&r));
    let r = tts("<speak>Hello. <lang xml:lang=\"zh-CN\">ni hao</lang></speak>");
    ok(&r);
    assert!(
        !spoken_by(&r).contains("test-zh"),
        "no route: the main voice"
    );

    // What nothing honors is reported like a style field: a language no
    // route serves (in SSML `lang` or in the text's script), prosody no
    // stage applies.
    let unhonored = |pipeline: &str, text: &str, format: &str| {
        let r = post_json(
            port,
            "/v1/tts",
            &json!({"pipeline": pipeline, "input_format": format, "text": text}),
        );
        ok(&r);
        r.header("x-style-unhonored").map(str::to_string)
    };
    let cases = [
        (
            "default",
            "<speak>Hi. <lang xml:lang=\"fr-FR\">Bonjour.</lang></speak>",
            "ssml",
            Some("language=fr"),
        ),
        (
            "routed",
            "<speak>Hi. <lang xml:lang=\"zh\">ni hao</lang></speak>",
            "ssml",
            None,
        ),
        (
            "default",
            "Hello. 你好，世界。",
            "text",
            Some("language=zh"),
        ),
        ("routed", "Hello. 你好，世界。", "text", None),
        ("default", "Hello，world.", "text", None),
        (
            "bare",
            "<speak><prosody pitch=\"+2st\" volume=\"-3dB\">Hi.</prosody></speak>",
            "ssml",
            Some("pitch=+2;volume=-3"),
        ),
        (
            "default",
            "<speak><prosody pitch=\"+2st\" volume=\"-3dB\">Hi.</prosody></speak>",
            "ssml",
            None,
        ),
    ];
    for (pipeline, text, format, want) in cases {
        assert_eq!(
            unhonored(pipeline, text, format).as_deref(),
            want,
            "{pipeline}: {text}"
        );
    }

    // The OpenAI route takes a leading <speak> as SSML; input_format says otherwise.
    let speech = |body: serde_json::Value| post_json(port, "/v1/audio/speech", &body);
    let r = speech(json!({"model": "tts-1", "response_format": "wav",
        "input": "<?xml version=\"1.0\"?>\n<speak>Hi.<break time=\"1s\"/>Bye.</speak>"}));
    let (rate, s) = ok(&r);
    assert!(longest_zeros_ms(rate, &s) >= 1000.0);
    let r = speech(
        json!({"model": "tts-1", "response_format": "wav", "input_format": "text",
        "input": "<speak>Hi.<break time=\"1s\"/>Bye.</speak>"}),
    );
    let (rate, s) = ok(&r);
    assert!(longest_zeros_ms(rate, &s) < 1000.0);

    // A streamed SSML response has the same breaks.
    let r = post_json(
        port,
        "/v1/tts",
        &json!({"text": "<speak>One.<break time=\"900ms\"/>Two.</speak>",
                "input_format": "ssml", "stream": true, "format": "wav"}),
    );
    let (rate, s) = ok(&r);
    let zeros = longest_zeros_ms(rate, &s);
    assert!((900.0..930.0).contains(&zeros), "streamed: {zeros}");
    // A streamed block longer than a stream piece (1 000 characters) is
    // spoken piece by piece, all of it.
    let sentence = "The river ran high that spring, and the old bridge groaned under every cart. ";
    let long = sentence.repeat(16);
    let r = post_json(
        port,
        "/v1/tts",
        &json!({"text": format!("<speak><prosody rate=\"fast\">{long}</prosody><break time=\"500ms\"/>End.</speak>"),
                "input_format": "ssml", "stream": true, "format": "wav"}),
    );
    let (rate, s) = ok(&r);
    let (_, one) = ok(&tts(&format!(
        "<speak><prosody rate=\"fast\">{sentence}</prosody></speak>"
    )));
    let ratio = seconds(rate, &s) / seconds(rate, &one);
    assert!(
        (13.0..19.0).contains(&ratio),
        "16 sentences and a break: {ratio:.1}× one"
    );
}

#[test]
fn ssml_refusals_are_typed_and_fast() {
    let pipelines = default_pipelines();
    let server = Server::start(pipelines.path(), &["--cache-mb", "0"], &[]);
    let port = server.port;
    let send = |doc: &str| {
        let started = Instant::now();
        let r = post_json(
            port,
            "/v1/tts",
            &json!({"text": doc, "input_format": "ssml"}),
        );
        (r, started.elapsed())
    };
    let laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
        <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\
        <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>\
        <speak>&lol3;</speak>";
    let deep = format!(
        "<speak>{}a{}</speak>",
        "<prosody>".repeat(200),
        "</prosody>".repeat(200)
    );
    for (doc, status, kind, says) in [
        (
            "<speak><audio src=\"http://x/y.wav\"/>Hi</speak>",
            422,
            "ssml_unsupported",
            "element <audio>",
        ),
        (
            "<speak>Hi<mark name=\"here\"/></speak>",
            422,
            "ssml_unsupported",
            "element <mark>",
        ),
        (
            "<speak><emphasis>Hi</emphasis></speak>",
            422,
            "ssml_unsupported",
            "element <emphasis>",
        ),
        (
            "<speak><break time=\"2s\" foo=\"1\"/>Hi</speak>",
            422,
            "ssml_unsupported",
            "attribute `foo` of <break>",
        ),
        (
            "<speak><prosody pitch=\"220Hz\">Hi</prosody></speak>",
            422,
            "ssml_unsupported",
            "pitch=\"220Hz\"",
        ),
        (
            "<speak><say-as interpret-as=\"currency\">$3</say-as></speak>",
            422,
            "ssml_unsupported",
            "currency",
        ),
        (
            "<speak><phoneme alphabet=\"x-sampa\" ph=\"a\">a</phoneme></speak>",
            422,
            "ssml_unsupported",
            "only `ipa`",
        ),
        (
            "<speak><break time=\"30s\"/>Hi</speak>",
            422,
            "ssml_unsupported",
            "at most 10 s",
        ),
        ("<speak>Hi</speak", 400, "invalid_ssml", "line 1, column"),
        ("<speak>\n<s>Hi</p></speak>", 400, "invalid_ssml", "line 2"),
        (
            "<speak>&nbsp;Hi</speak>",
            400,
            "invalid_ssml",
            "malformed SSML",
        ),
        (laughs, 422, "ssml_unsupported", "DTD"),
        (deep.as_str(), 413, "request_too_large", "32 deep"),
        (
            "<speak><voice name=\"nobody\">Hi</voice></speak>",
            404,
            "unknown_voice",
            "nobody",
        ),
        (
            "<speak><!-- nothing --></speak>",
            422,
            "ssml_unsupported",
            "no text",
        ),
    ] {
        let (r, took) = send(doc);
        assert_eq!(r.status, status, "{doc}: {}", r.text());
        let e = &r.json()["error"];
        assert_eq!(e["type"], kind, "{doc}");
        let message = e["message"].as_str().unwrap();
        assert!(message.contains(says), "{doc}: {message}");
        assert!(took < Duration::from_secs(2), "{doc}: {took:?}");
    }
    // Plain text that looks like markup is text unless asked.
    let r = post_json(port, "/v1/tts", &json!({"text": "<speak>Hi</speak>"}));
    assert_eq!(r.status, 200);
    let r = post_json(
        port,
        "/v1/tts",
        &json!({"text": "Hi", "input_format": "html"}),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    // The server keeps serving.
    let r = post_json(
        port,
        "/v1/tts",
        &json!({"text": "<speak>Still here.</speak>", "input_format": "ssml"}),
    );
    assert_eq!(r.status, 200);
}

/// Speech regions of 16-bit samples (`voxpipe_codec::regions`): silent 40 dB
/// under the loudest 5 ms, a pause at least 150 ms.
fn speech_regions(rate: u32, samples: &[i16]) -> Vec<(f64, f64)> {
    let f: Vec<f32> = samples.iter().map(|&s| f32::from(s) / 32768.0).collect();
    voxpipe_codec::regions::speech_regions(&f, rate, -40.0, 0.15)
}

/// (text, start, end) of a response's `words`.
fn word_list(words: &serde_json::Value) -> Vec<(String, f64, f64)> {
    words
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["text"].as_str().unwrap().to_string(),
                w["start"].as_f64().unwrap(),
                w["end"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// WebVTT captions read by webvtt-py (`tests/ssml/vtt.py`): one JSON cue per line.
fn parse_vtt(vtt: &str) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("python3")
        .arg(common::root().join("tests/ssml/vtt.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python3 (webvtt-py: .ci/setup installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(vtt.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "webvtt-py refused the captions:\n{vtt}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A stream's audio bytes and its `speech.words`, from its SSE events.
fn audio_and_words(events: &[serde_json::Value]) -> (Vec<u8>, Vec<(String, f64, f64)>) {
    let audio = events
        .iter()
        .filter(|e| e["type"] == "speech.audio.delta")
        .flat_map(|e| base64(e["audio"].as_str().unwrap()))
        .collect();
    let words = events
        .iter()
        .filter(|e| e["type"] == "speech.words")
        .flat_map(|e| word_list(&e["words"]))
        .collect();
    (audio, words)
}

/// `words` are `text`'s words, in order, each after the one before, all
/// inside `seconds` of audio.
fn words_in_order(words: &[(String, f64, f64)], text: &str, seconds: f64) {
    let texts: Vec<&str> = words.iter().map(|w| w.0.as_str()).collect();
    assert_eq!(texts, text.split_whitespace().collect::<Vec<_>>());
    for pair in words.windows(2) {
        assert!(
            pair[0].1 <= pair[0].2 && pair[0].2 <= pair[1].1 + 1e-3,
            "{pair:?}"
        );
    }
    assert!(
        words.last().unwrap().2 <= seconds + 1e-3,
        "{words:?} {seconds}"
    );
}

fn base64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// Issue 17, part 2: word timestamps on both synthesis endpoints, checked
/// against the audio itself. Where the audio shows a word boundary — the
/// edges of a break or a pause — every word's start and end must lie within
/// 20 ms of it, through the default pipeline (pitch, trim, loudness), a
/// resampled response, and a pipeline that stretches time (pitch-shift's
/// `tempo`). The request's own words come back ("$3.50" one word though
/// spoken as five), the WebVTT captions parse with webvtt-py, streams carry
/// them as SSE events after their audio, and the cache keeps them apart.
#[test]
fn word_timestamps_through_the_server() {
    let pipelines = default_pipelines();
    let default = std::fs::read_to_string(pipelines.path().join("default.toml")).unwrap();
    let stretched = default
        .replacen("name = \"default\"", "name = \"stretched\"", 1)
        .replacen(
            "plugin = \"pitch-shift\"",
            "plugin = \"pitch-shift\"\nconfig = { tempo = 0.8 }",
            1,
        );
    assert!(stretched.contains("tempo"));
    std::fs::write(pipelines.path().join("stretched.toml"), stretched).unwrap();
    let server = Server::start(pipelines.path(), &[], &[]);
    let port = server.port;
    let doc = "<speak>Hello there <break time=\"400ms\"/> wonderful world of speech. \
               <break time=\"600ms\"/> It costs $3.50 today. <break time=\"300ms\"/> \
               Goodbye, my friend!</speak>";
    let expected = [
        "Hello",
        "there",
        "wonderful",
        "world",
        "of",
        "speech.",
        "It",
        "costs",
        "$3.50",
        "today.",
        "Goodbye,",
        "my",
        "friend!",
    ];
    let mut errors_ms: Vec<f64> = Vec::new();
    let mut misses: Vec<String> = Vec::new();
    for (pipeline, rate) in [
        ("default", None),
        ("default", Some(16000)),
        ("stretched", None),
    ] {
        let mut body = json!({
            "text": doc, "input_format": "ssml", "timestamps": true, "seed": 1,
            "pipeline": pipeline,
        });
        if let Some(rate) = rate {
            body["sample_rate"] = json!(rate);
        }
        let r = post_json(port, "/v1/tts", &body);
        assert_eq!(r.status, 200, "{}\n{}", r.text(), server.log_text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let j = r.json();
        let (got_rate, samples) = wav(&base64(j["audio"].as_str().unwrap()));
        assert_eq!(got_rate, rate.unwrap_or(22050));
        assert_eq!(j["sample_rate"], got_rate);
        let total = seconds(got_rate, &samples);
        let words = word_list(&j["words"]);
        let texts: Vec<&str> = words.iter().map(|w| w.0.as_str()).collect();
        assert_eq!(texts, expected, "{pipeline} {rate:?}");
        for pair in words.windows(2) {
            assert!(
                pair[0].1 <= pair[0].2 && pair[0].2 <= pair[1].1 + 1e-3,
                "{pair:?}"
            );
        }
        assert!(words.last().unwrap().2 <= total + 1e-3);
        // Every boundary the audio shows, against the word that meets it.
        let regions = speech_regions(got_rate, &samples);
        assert!(regions.len() >= 4, "{pipeline}: {regions:?}");
        for (a, b) in &regions {
            let inside: Vec<_> = words
                .iter()
                .filter(|w| (w.1 + w.2) / 2.0 > *a && (w.1 + w.2) / 2.0 < *b)
                .collect();
            assert!(
                !inside.is_empty(),
                "{pipeline}: no word in {a}..{b}: {words:?}"
            );
            let first = inside[0].1 - a;
            let last = inside[inside.len() - 1].2 - b;
            errors_ms.extend([first.abs() * 1000.0, last.abs() * 1000.0]);
            if first.abs() > 0.020 || last.abs() > 0.020 {
                misses.push(format!(
                    "{pipeline} {rate:?}: region {a:.3}..{b:.3}, words {inside:?}"
                ));
            }
        }
        // The captions: a real parser reads cues made of these words.
        let vtt = j["vtt"].as_str().unwrap();
        let out = parse_vtt(vtt);
        let cues: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(cues.len() >= 2, "{vtt}");
        let cue_text: Vec<String> = cues
            .iter()
            .flat_map(|c| {
                c["text"]
                    .as_str()
                    .unwrap()
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(cue_text, expected);
        for c in &cues {
            let (s, e) = (c["start"].as_f64().unwrap(), c["end"].as_f64().unwrap());
            assert!(words.iter().any(|w| (w.1 - s).abs() < 1e-6), "{c}");
            assert!(words.iter().any(|w| (w.2 - e).abs() < 1e-6), "{c}");
        }
    }
    errors_ms.sort_by(f64::total_cmp);
    eprintln!(
        "word boundaries vs the audio's: {} edges, median {:.1} ms, max {:.1} ms",
        errors_ms.len(),
        errors_ms[errors_ms.len() / 2],
        errors_ms[errors_ms.len() - 1]
    );
    assert!(misses.is_empty(), "more than 20 ms off: {misses:#?}");

    // Plain text: the request's words, whatever the normalizer made of them;
    // the same request again comes from the cache, still with its words,
    // and without `timestamps` it is the audio file.
    let body = json!({"text": "It costs $3.50 today, in 1995.", "timestamps": true});
    let first = post_json(port, "/v1/tts", &body);
    assert_eq!(first.status, 200, "{}", first.text());
    let texts: Vec<String> = word_list(&first.json()["words"])
        .into_iter()
        .map(|w| w.0)
        .collect();
    assert_eq!(texts, ["It", "costs", "$3.50", "today,", "in", "1995."]);
    let again = post_json(port, "/v1/tts", &body);
    assert_eq!(again.header("x-cache"), Some("hit"));
    assert_eq!(again.header("content-type"), Some("application/json"));
    assert_eq!(again.body, first.body);
    let plain = post_json(
        port,
        "/v1/tts",
        &json!({"text": "It costs $3.50 today, in 1995."}),
    );
    assert_eq!(plain.header("content-type"), Some("audio/wav"));
    assert_eq!(plain.header("x-cache"), Some("miss"));

    // SSML words are the document's own: what `sub`, `say-as` and
    // `phoneme` wrote, not what they lowered to.
    let r = post_json(
        port,
        "/v1/tts",
        &json!({
            "text": "<speak><sub alias=\"Doctor\">Dr.</sub> Who, on \
                     <say-as interpret-as=\"date\" format=\"mdy\">3/5/2024</say-as>, ate a \
                     <phoneme alphabet=\"ipa\" ph=\"təˈmɑːtoʊ\">tomato</phoneme>.</speak>",
            "input_format": "ssml", "timestamps": true,
        }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let texts: Vec<String> = word_list(&r.json()["words"])
        .into_iter()
        .map(|w| w.0)
        .collect();
    assert_eq!(
        texts,
        ["Dr.", "Who,", "on", "3/5/2024,", "ate", "a", "tomato."]
    );

    // A stream: SSE, each sentence's words after its audio.
    let three = "Hello there. It costs $3.50 today. Goodbye, my friend!";
    let sse = |r: &common::http::Reply| -> Vec<serde_json::Value> {
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        r.text()
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    };
    let openai = json!({
        "model": "tts-1", "input": three, "response_format": "wav", "stream_format": "sse",
        "timestamps": true,
    });
    for events in [
        sse(&post_json(
            port,
            "/v1/tts",
            &json!({"text": three, "stream": true, "timestamps": true}),
        )),
        sse(&post_json(port, "/v1/audio/speech", &openai)),
    ] {
        assert_eq!(events.last().unwrap()["type"], "speech.audio.done");
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        let first_words = kinds.iter().position(|k| *k == "speech.words").unwrap();
        let last_audio = kinds
            .iter()
            .rposition(|k| *k == "speech.audio.delta")
            .unwrap();
        assert!(
            kinds[0] == "speech.audio.delta" && first_words < last_audio,
            "{kinds:?}"
        );
        assert!(
            kinds.iter().filter(|k| **k == "speech.words").count() >= 2,
            "{kinds:?}"
        );
        let (audio, words) = audio_and_words(&events);
        let (rate, samples) = wav(&audio);
        words_in_order(&words, three, seconds(rate, &samples));
        let regions = speech_regions(rate, &samples);
        let (a, _) = regions[0];
        assert!((words[0].1 - a).abs() <= 0.020, "{words:?} {regions:?}");
    }

    // A stream longer than one piece (spoken a few sentences at a time):
    // every word, in order, inside the audio.
    let sentences = [
        "The river ran high that spring, and the old bridge groaned under every cart.",
        "Nobody could remember a flood like it since 1995.",
        "It cost $3.50 to cross.",
    ];
    let long: Vec<&str> = (0..24).map(|i| sentences[i % 3]).collect();
    let long = long.join(" ");
    assert!(long.len() > 1100);
    let events = sse(&post_json(
        port,
        "/v1/tts",
        &json!({"text": long, "stream": true, "timestamps": true, "format": "pcm"}),
    ));
    let (pcm, words) = audio_and_words(&events);
    let audio_seconds = pcm.len() as f64 / 2.0 / 22050.0;
    words_in_order(&words, &long, audio_seconds);
    assert!(
        words.last().unwrap().2 > audio_seconds - 1.0,
        "the last word ends with the audio: {:?} of {audio_seconds} s",
        words.last()
    );

    // The OpenAI route, whole: JSON with the words; a raw audio stream
    // cannot carry them.
    let r = post_json(
        port,
        "/v1/audio/speech",
        &json!({"model": "tts-1", "input": "Hello there.", "timestamps": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["format"], "mp3");
    assert_eq!(word_list(&j["words"]).len(), 2);
    let r = post_json(
        port,
        "/v1/audio/speech",
        &json!({"model": "tts-1", "input": "Hello.", "timestamps": true, "stream_format": "audio"}),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "invalid_input");
    assert!(r.text().contains("timestamps"), "{}", r.text());
}
