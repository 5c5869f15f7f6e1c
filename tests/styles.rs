//! A mapped style is a kept promise (issue 16): voice routes send a style to
//! the voice that can speak it, every style field ends honored or reported
//! unhonored (`X-Style-Unhonored`, `/metrics`), `on_unhonored = "refuse"`
//! refuses, the style's volume reaches the loudness stage, and plugins built
//! against `voxpipe:stages@0.1.0` and in JavaScript take part like the SDK's.
//! Through the real binary, with the real plugins, joe and the Mandarin test
//! voice (tests/engine/make_zh_test_voice.py).

mod common;

use std::path::{Path, PathBuf};

use common::http::{default_pipelines, get, post_json, Server};
use serde_json::json;

/// The routes every Chinese test pipeline has: two dialects to the zh
/// voice, then any other Chinese to it too.
const ROUTES: &str = r#"
[[routes]]
when = { dialect = ["sichuanese", "chongqing"] }
voice = "test-zh"

[[routes]]
when = { language = "zh" }
voice = "test-zh"
"#;

/// A pipeline named `name` on joe with a style stage (`style` = the plugin
/// and its config lines), the model, one audio stage and `extra` lines.
fn pipeline(dir: &Path, name: &str, style: &str, audio: &str, extra: &str) {
    let text = format!(
        "name = \"{name}\"\nvoice = \"en_US-joe-medium\"\nlanguage = \"en-US\"\n{extra}\n\
         [[stages]]\nkind = \"style\"\nname = \"instruct\"\n{style}\n\
         [[stages]]\nkind = \"model\"\n\n\
         [[stages]]\nkind = \"audio\"\nname = \"audio\"\n{audio}\n\
         {ROUTES}"
    );
    std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
}

const TABLE_STYLE: &str =
    "plugin = \"instruct-style\"\nconfig_file = \"tables/instruct-style.toml\"";
const LOUDNESS: &str = "plugin = \"loudness\"";

fn tts(port: u16, pipeline: &str, text: &str, instruct: Option<&str>) -> common::http::Reply {
    let mut body = json!({ "text": text, "pipeline": pipeline, "seed": 3 });
    if let Some(i) = instruct {
        body["instruct"] = json!(i);
    }
    post_json(port, "/v1/tts", &body)
}

/// The voice that spoke, from `Server-Timing` (`model;desc="voice NAME"`).
fn spoken_by(r: &common::http::Reply) -> String {
    let timing = r.header("server-timing").unwrap_or_default();
    timing
        .split("voice ")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
        .to_string()
}

#[test]
fn styles_are_routed_honored_or_refused() {
    let voices = common::voices_with_zh();
    let dir = default_pipelines();
    let d = dir.path();
    pipeline(d, "zh", TABLE_STYLE, LOUDNESS, "");
    pipeline(
        d,
        "strict",
        TABLE_STYLE,
        LOUDNESS,
        "on_unhonored = \"refuse\"",
    );
    // A gain built against voxpipe:stages@0.1.0: it applies the volume but
    // cannot say so.
    pipeline(d, "legacy", TABLE_STYLE, "plugin = \"legacy-gain\"", "");
    // A dialect team's JavaScript style plugin (componentize-js).
    let js = common::js_plugin();
    pipeline(
        d,
        "js",
        &format!("plugin = \"{}\"", js.display()),
        LOUDNESS,
        "",
    );
    // Mixed-language text: English routed to joe as well, so both directions
    // have a voice.
    pipeline(
        d,
        "mixed",
        TABLE_STYLE,
        LOUDNESS,
        "[[routes]]\nwhen = { language = \"en\" }\nvoice = \"en_US-joe-medium\"\n",
    );
    std::fs::write(
        d.join("bare-strict.toml"),
        format!(
            "voice = \"en_US-joe-medium\"\non_unhonored = \"refuse\"\n\
             [[stages]]\nkind = \"style\"\n{TABLE_STYLE}\n[[stages]]\nkind = \"model\"\n"
        ),
    )
    .unwrap();
    let server = Server::start(
        d,
        &[
            "--voices",
            voices.path().to_str().unwrap(),
            "--cache-mb",
            "0",
        ],
        &[],
    );
    let port = server.port;
    let listed = get(port, "/v1/pipelines").json();
    let names: Vec<&str> = listed["pipelines"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names.len(), 7, "{listed}\n{}", server.log_text());

    // The default pipeline has no Chinese voice: the dialect is understood,
    // not honored, and the response says so.
    let sichuanese = "用四川话，开心地说";
    let r = tts(port, "default", "Hello, world.", Some(sichuanese));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-style-mapped"),
        Some("dialect=sichuanese;emotion=happy")
    );
    assert_eq!(
        r.header("x-style-unhonored"),
        Some("language=zh-CN;dialect=sichuanese;emotion=happy")
    );
    assert_eq!(spoken_by(&r), "en_US-joe-medium");
    let plain = tts(port, "default", "Hello, world.", None);
    assert_eq!(plain.header("x-style-unhonored"), None);

    // Routed: the Sichuanese instruction reaches the zh voice, which honors
    // dialect and language; the emotion (and the pitch that "happy" adds: this
    // pipeline has no pitch stage) is left. Same audio as naming
    // the voice: the route changed the voice and nothing else.
    let text = "用四川话说这句话。";
    let r = tts(port, "zh", text, Some(sichuanese));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(spoken_by(&r), "test-zh");
    assert_eq!(
        r.header("x-style-unhonored"),
        Some("pitch=+1;emotion=happy")
    );
    let routed = tts(port, "zh", text, Some("用四川话说"));
    assert_eq!(routed.header("x-style-unhonored"), None, "all honored");
    let named = post_json(
        port,
        "/v1/tts",
        &json!({ "text": text, "pipeline": "zh", "voice": "test-zh", "seed": 3 }),
    );
    assert_eq!(named.status, 200, "{}", named.text());
    assert_eq!(routed.body, named.body);
    // A dialect without a route falls to the language route: spoken by the
    // zh voice, the dialect reported.
    let r = tts(port, "zh", text, Some("用上海话说"));
    assert_eq!(spoken_by(&r), "test-zh");
    assert_eq!(r.header("x-style-unhonored"), Some("dialect=shanghainese"));
    // The request's own voice wins over the routes; the dialect is then
    // unhonored.
    let r = post_json(
        port,
        "/v1/tts",
        &json!({ "text": "Hi.", "pipeline": "zh", "voice": "en_US-joe-medium",
                 "instruct": "用四川话说" }),
    );
    assert_eq!(spoken_by(&r), "en_US-joe-medium");
    assert_eq!(
        r.header("x-style-unhonored"),
        Some("language=zh-CN;dialect=sichuanese")
    );

    // Refused before synthesis under on_unhonored = "refuse", naming the
    // field and who could serve it.
    let r = tts(port, "strict", text, Some("用上海话说"));
    assert_eq!(r.status, 422, "{}", r.text());
    let e = r.json();
    assert_eq!(e["error"]["type"], "style_unsupported", "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("dialect=shanghainese") && message.contains("add a route"),
        "{message}"
    );
    let r = post_json(
        port,
        "/v1/tts",
        &json!({ "text": "Hi.", "pipeline": "strict", "voice": "en_US-joe-medium",
                 "instruct": "用四川话说" }),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("route 1 (voice test-zh)"),
        "names the voice that could serve it: {message}"
    );
    assert_eq!(tts(port, "strict", text, Some("用四川话说")).status, 200);
    // No route at all: the refusal names the server's voices that speak the
    // language.
    let r = tts(port, "bare-strict", "Hi.", Some("用上海话讲"));
    assert_eq!(r.status, 422, "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(
            "language=zh-CN: no route of this pipeline serves it; voices that speak it: test-zh"
        ),
        "{message}"
    );

    // A 0.1.0 plugin loads and runs, and counts as applying nothing.
    let legacy = &listed["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "legacy")
        .unwrap()["stages"][2]["plugin"];
    assert_eq!(legacy["wit"], "0.1.0", "{legacy}");
    let r = tts(port, "legacy", "Hello.", Some("speak softly"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-style-unhonored"), Some("volume=-6"));

    // The JavaScript style plugin is reported like a Rust one.
    let r = tts(port, "js", text, Some("用上海话讲"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-style-mapped"), Some("dialect=shanghainese"));
    assert_eq!(r.header("x-style-unhonored"), Some("dialect=shanghainese"));
    assert_eq!(spoken_by(&r), "test-zh");
    let r = tts(port, "js", "Hi.", Some("speak sadly"));
    assert!(r.header("x-style-unmapped").is_some(), "{:?}", r.headers);

    // Mixed-language text: the Chinese run goes to the voice the routes give
    // Chinese, the English run stays with the pipeline's voice — and the
    // reverse, English inside a Sichuanese request, goes to the English
    // route. Without a route for it, a run stays with the request's voice.
    let voices_of = |r: &common::http::Reply| r.header("server-timing").unwrap_or("").to_string();
    let r = tts(port, "mixed", "Hello world. 你好，世界。", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let timing = voices_of(&r);
    assert!(
        timing.contains("voice en_US-joe-medium; voice test-zh"),
        "{timing}"
    );
    // Word timestamps follow the switch of voices (crossfaded over 10 ms):
    // each ideograph is a word, in order, inside the audio.
    let r = post_json(
        port,
        "/v1/tts",
        &json!({"text": "Hello world. 你好，世界。", "pipeline": "mixed", "timestamps": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    let words = j["words"].as_array().unwrap();
    let texts: Vec<&str> = words.iter().map(|w| w["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["Hello", "world.", "你", "好", "世", "界"]);
    let times: Vec<f64> = words
        .iter()
        .flat_map(|w| [w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap()])
        .collect();
    assert!(times.windows(2).all(|p| p[0] <= p[1] + 1e-3), "{times:?}");
    assert!(
        times[times.len() - 1] <= j["audio_seconds"].as_f64().unwrap() + 1e-3,
        "{times:?} {}",
        j["audio_seconds"]
    );
    assert!(
        times[4] > times[3],
        "the Chinese run follows the English: {times:?}"
    );
    let r = tts(port, "mixed", "我用Python编程。", Some("用四川话说"));
    let timing = voices_of(&r);
    assert!(
        timing.contains("voice test-zh; voice en_US-joe-medium"),
        "{timing}"
    );
    let r = tts(port, "zh", "我用Python编程。", Some("用四川话说"));
    assert_eq!(spoken_by(&r), "test-zh", "no English route in `zh`");
    let r = tts(port, "default", "Hello world. 你好，世界。", None);
    assert_eq!(spoken_by(&r), "en_US-joe-medium", "no routes in `default`");

    // "speak softly": 6 dB quieter than plain speech, by pyloudnorm.
    let long = "The quick brown fox jumps over the lazy dog. We measure how loud this \
                sentence is, once plainly and once softly.";
    let files = tempfile::tempdir().unwrap();
    let mut paths: Vec<PathBuf> = Vec::new();
    for (name, instruct) in [("plain", None), ("soft", Some("speak softly"))] {
        let r = tts(port, "default", long, instruct);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.header("x-style-unhonored"),
            None,
            "loudness applies volume"
        );
        let path = files.path().join(format!("{name}.wav"));
        std::fs::write(&path, &r.body).unwrap();
        paths.push(path);
    }
    let lufs = common::pyloudnorm(&paths);
    let drop = lufs[0] - lufs[1];
    assert!((drop - 6.0).abs() <= 0.5, "softly is {drop:.2} LU quieter");

    // Counted per pipeline and field.
    let metrics = get(port, "/metrics").text();
    for series in [
        r#"tts_style_unhonored_total{pipeline="default",field="dialect"}"#,
        r#"tts_style_unhonored_total{pipeline="zh",field="emotion"}"#,
        r#"tts_style_unhonored_total{pipeline="legacy",field="volume"}"#,
    ] {
        assert!(metrics.contains(series), "{series} missing");
    }
}

/// `voxpipe pipeline check` refuses bad routes with file:line, all at once.
#[test]
fn bad_routes_are_refused_at_load_with_their_lines() {
    let voices = common::voices_with_zh();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        r#"voice = "en_US-joe-medium"
on_unhonored = "complain"

[[stages]]
kind = "model"

[[routes]]
when = { dialect = "sichuanese" }
voice = "zh_CN-nobody"

[[routes]]
when = { dialect = "sichuanese", emotion = "sad" }
voice = "test-zh"

[[routes]]
when = { language = "zh" }
voice = "test-zh"
speaker = "dave"

[[routes]]
when = { language = ["zh"] }
voice = "test-zh"

[[routes]]
voice = "en_US-joe-medium"

[[routes]]
when = { emotion = "sad" }
speed = 9.0
"#,
    )
    .unwrap();
    let out = common::voxpipe()
        .args(["pipeline", "check", "--plugin-dir"])
        .arg(common::plugins())
        .arg("--voices")
        .arg(voices.path())
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let f = file.display();
    for expected in [
        format!("{f}:2:16: on_unhonored = `complain`: expected \"warn\" or \"refuse\""),
        format!("{f}:9:9: route 1: unknown voice `zh_CN-nobody`"),
        format!("{f}:11:1: route 2 is unreachable: route 1 matches every style it does"),
        format!("{f}:18:11: route 3: voice `test-zh` has no speaker `dave`"),
        format!("{f}:20:1: route 4 duplicates the conditions of route 3"),
        format!("{f}:29:9: route 6: speed = 9 is outside 0.25..=4"),
        format!("{f}:27:1: route 6 is unreachable: route 5 (the default, no `when`)"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }

    // A good file lists its routes.
    std::fs::write(
        &file,
        format!("voice = \"en_US-joe-medium\"\n[[stages]]\nkind = \"model\"\n{ROUTES}"),
    )
    .unwrap();
    let out = common::voxpipe()
        .args(["pipeline", "check", "--voices"])
        .arg(voices.path())
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("route 1: when dialect=sichuanese|chongqing → voice test-zh"),
        "{text}"
    );
}
