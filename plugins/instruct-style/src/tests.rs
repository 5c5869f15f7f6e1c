//! End-to-end tests of the mapper, most of them against the shipped
//! `pipelines/tables/instruct-style.toml` (loaded with the `toml` dev-dependency and turned
//! into the JSON the host would pass).

use serde_json::{json, Value};
use voxpipe_plugin_style::log::Level;
use voxpipe_plugin_style::{Config, Context, StageError, Style, StyleOutcome, StyleStage};

use crate::mapping::{map, Mapping};
use crate::table::{parse, Dim, Table};
use crate::InstructStyle;

const DEFAULT_TABLE: &str = include_str!("../../../pipelines/tables/instruct-style.toml");

fn default_json() -> Value {
    toml::from_str::<Value>(DEFAULT_TABLE)
        .expect("pipelines/tables/instruct-style.toml is valid TOML")
}

fn default_table() -> Table {
    parse(&Config::from_value(default_json()).unwrap()).expect("default table is valid")
}

fn run(table: &Table, instruct: &str) -> Mapping {
    map(table, instruct).expect("no error")
}

/// The label and style, or a panic showing the unmapped reason.
fn mapped(table: &Table, instruct: &str) -> (String, Style) {
    match run(table, instruct).outcome {
        StyleOutcome::Mapped { style, label } => (label, style),
        StyleOutcome::Unmapped(reason) => panic!("{instruct:?} unmapped: {reason}"),
    }
}

fn label(table: &Table, instruct: &str) -> String {
    mapped(table, instruct).0
}

fn unmapped(table: &Table, instruct: &str) -> String {
    match run(table, instruct).outcome {
        StyleOutcome::Unmapped(reason) => reason,
        StyleOutcome::Mapped { label, .. } => panic!("{instruct:?} mapped to {label}"),
    }
}

fn warns(m: &Mapping) -> Vec<&str> {
    m.notes
        .iter()
        .filter(|(l, _)| *l == Level::Warn)
        .map(|(_, s)| s.as_str())
        .collect()
}

const DIALECTS: [(&str, &str); 19] = [
    ("四川话", "sichuanese"),
    ("上海话", "shanghainese"),
    ("天津话", "tianjin"),
    ("长沙话", "changsha"),
    ("东北话", "northeastern"),
    ("甘肃话", "gansu"),
    ("贵州话", "guizhou"),
    ("河南话", "henan"),
    ("湖北话", "hubei"),
    ("湖南话", "hunan"),
    ("江西话", "jiangxi"),
    ("闽南话", "minnan"),
    ("宁夏话", "ningxia"),
    ("山西话", "shanxi"),
    ("陕西话", "shaanxi"),
    ("山东话", "shandong"),
    ("云南话", "yunnan"),
    ("郑州话", "zhengzhou"),
    ("粤语", "cantonese"),
];

#[test]
fn default_table_passes_check_config() {
    let config = Config::from_value(default_json()).unwrap();
    InstructStyle::check_config(&config).unwrap();
    let t = default_table();
    let count = |d: Dim| t.entries.iter().filter(|e| e.dim == d).count();
    assert_eq!(count(Dim::Dialect), 19);
    assert!(count(Dim::Emotion) >= 12);
    assert!(count(Dim::Speed) >= 2 && count(Dim::Pitch) >= 2 && count(Dim::Volume) >= 2);
}

#[test]
fn all_19_dialects_map_from_chinese_sentences() {
    let t = default_table();
    for (word, name) in DIALECTS {
        let (l, style) = mapped(&t, &format!("请用{word}说这句话"));
        assert_eq!(l, format!("dialect={name}"), "{word}");
        assert_eq!(style.dialect.as_deref(), Some(name));
        assert!(style.language.as_deref().unwrap().starts_with("zh-"));
        assert!(
            warns(&run(&t, &format!("用{word}说这句话"))).is_empty(),
            "{word}"
        );
    }
}

#[test]
fn every_dialect_has_chinese_and_english_keywords() {
    let t = default_table();
    for e in t.entries.iter().filter(|e| e.dim == Dim::Dialect) {
        assert!(
            e.keywords
                .iter()
                .any(|k| k.text.chars().any(crate::text::is_cjk)),
            "{}",
            e.name
        );
        assert!(e.keywords.iter().any(|k| k.text.is_ascii()), "{}", e.name);
        assert!(e.keywords.len() >= 3, "{}", e.name);
    }
}

#[test]
fn brief_examples_map_as_expected() {
    let t = default_table();
    assert_eq!(label(&t, "用四川话说这句话"), "dialect=sichuanese");
    assert_eq!(label(&t, "请用上海话"), "dialect=shanghainese");
    assert_eq!(label(&t, "用悲伤的语气朗读"), "emotion=sad");
    assert_eq!(
        label(&t, "speak slowly and softly"),
        "speed=slow;volume=soft"
    );
    assert_eq!(label(&t, "whisper"), "emotion=whisper");
    assert_eq!(label(&t, "excited!"), "emotion=excited");
}

#[test]
fn synonyms_and_english_names_map() {
    let t = default_table();
    assert_eq!(label(&t, "川话"), "dialect=sichuanese");
    assert_eq!(label(&t, "用四川方言讲"), "dialect=sichuanese");
    assert_eq!(
        label(&t, "Read it in Sichuan dialect."),
        "dialect=sichuanese"
    );
    assert_eq!(label(&t, "广东话"), "dialect=cantonese");
    assert_eq!(
        label(&t, "say it in Cantonese dialect"),
        "dialect=cantonese"
    );
    assert_eq!(label(&t, "speak Hokkien"), "dialect=minnan");
    assert_eq!(label(&t, "伤心地说"), "emotion=sad");
    assert_eq!(label(&t, "whispering"), "emotion=whisper");
    assert_eq!(label(&t, "说悄悄话"), "emotion=whisper");
}

#[test]
fn dimensions_combine_in_fixed_label_order() {
    let t = default_table();
    let (l, style) = mapped(&t, "用四川话, 开心地, 慢一点说");
    assert_eq!(l, "dialect=sichuanese;emotion=happy;speed=slow");
    assert_eq!(style.dialect.as_deref(), Some("sichuanese"));
    assert_eq!(style.language.as_deref(), Some("zh-CN"));
    assert_eq!(style.emotions, vec!["happy"]);
    // The explicit speed word beats the emotion's tweak; the emotion's pitch stays.
    assert_eq!(style.speed, Some(0.8));
    assert_eq!(style.pitch, Some(1.0));
    assert_eq!(style.volume, None);
    // Order in the instruction does not change the label.
    assert_eq!(label(&t, "慢一点,开心地,用四川话"), l);
}

#[test]
fn english_combination_maps_all_dimensions() {
    let t = default_table();
    let (l, style) = mapped(
        &t,
        "Please read this in Cantonese, sadly and very slowly, with a deep voice, LOUDLY",
    );
    assert_eq!(
        l,
        "dialect=cantonese;emotion=sad;speed=very_slow;pitch=low;volume=loud"
    );
    assert_eq!(style.language.as_deref(), Some("zh-HK"));
    assert_eq!(style.speed, Some(0.6));
    assert_eq!(style.pitch, Some(-3.0));
    assert_eq!(style.volume, Some(6.0));
}

#[test]
fn emotion_tweaks_apply_without_explicit_words() {
    let t = default_table();
    let (_, style) = mapped(&t, "whisper");
    assert_eq!(style.emotions, vec!["whisper"]);
    assert_eq!(style.volume, Some(-10.0));
    assert_eq!(style.speed, Some(0.9));
    // An explicit volume word wins over whisper's own volume.
    let (l, style) = mapped(&t, "whisper, but loudly");
    assert_eq!(l, "emotion=whisper;volume=loud");
    assert_eq!(style.volume, Some(6.0));
}

#[test]
fn unknown_dialect_is_unmapped_with_its_name() {
    let t = default_table();
    let reason = unmapped(&t, "请用火星话");
    assert!(
        reason.contains("no dialect entry matches \"火星话\""),
        "{reason}"
    );
    assert!(reason.contains("nothing"), "{reason}");
    let reason = unmapped(&t, "in a Martian accent");
    assert!(reason.contains("\"martian accent\""), "{reason}");
}

#[test]
fn table_lacking_a_dialect_says_so() {
    // The failure mode "a frontend sends 上海话 but the table lacks it".
    let t = parse(
        &Config::from_value(json!({"dialects": {"sichuanese": {"keywords": ["四川话"]}}})).unwrap(),
    )
    .unwrap();
    let reason = unmapped(&t, "上海话");
    assert!(
        reason.starts_with("no dialect entry matches \"上海话\""),
        "{reason}"
    );
    // With an empty config, too.
    let empty = parse(&Config::default()).unwrap();
    let reason = unmapped(&empty, "请用上海话");
    assert!(
        reason.contains("\"上海话\"") && reason.contains("empty"),
        "{reason}"
    );
}

#[test]
fn partial_match_maps_the_rest_and_warns() {
    let t = default_table();
    let m = run(&t, "用火星话开心地说");
    assert!(
        matches!(&m.outcome, StyleOutcome::Mapped { label, .. } if label == "emotion=happy"),
        "{m:?}"
    );
    let w = warns(&m);
    assert_eq!(w.len(), 1);
    assert!(
        w[0].contains("\"火星话\"") && w[0].contains("emotion=happy"),
        "{w:?}"
    );
}

#[test]
fn conflicting_dialects_keep_the_first_and_warn() {
    let t = default_table();
    let m = run(&t, "用上海话或者四川话");
    assert!(
        matches!(&m.outcome, StyleOutcome::Mapped { label, .. } if label == "dialect=shanghainese")
    );
    let w = warns(&m);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("上海话") && w[0].contains("四川话") && w[0].contains("dialect"));
    // Fast and slow: the first wins as well.
    assert_eq!(label(&t, "slowly... no, quickly"), "speed=slow");
}

#[test]
fn negated_requests_are_not_mapped() {
    let t = default_table();
    let reason = unmapped(&t, "不要太快");
    assert!(
        reason.contains("negated") && reason.contains("快"),
        "{reason}"
    );
    assert!(matches!(
        run(&t, "don't speak too fast").outcome,
        StyleOutcome::Unmapped(_)
    ));
    // The negation stays in its clause: "别太快" does not cancel "慢一点".
    let m = run(&t, "慢一点，别太快");
    assert!(matches!(&m.outcome, StyleOutcome::Mapped { label, .. } if label == "speed=slow"));
    assert!(
        warns(&m).is_empty(),
        "no conflict: the fast request was negated"
    );
    assert_eq!(label(&t, "不要太快, 开心一点"), "emotion=happy");
    assert_eq!(label(&t, "不要生气，要温柔"), "emotion=gentle");
    assert_eq!(label(&t, "not angry, calm"), "emotion=calm");
}

#[test]
fn longest_keyword_beats_shorter_overlaps() {
    let t = default_table();
    assert_eq!(label(&t, "非常快乐地说"), "emotion=happy");
    assert_eq!(label(&t, "非常快地说"), "speed=very_fast");
    assert_eq!(label(&t, "语速不快不慢"), "speed=normal");
    assert_eq!(label(&t, "轻快地读"), "emotion=cheerful");
    assert_eq!(label(&t, "轻声读"), "volume=soft");
}

#[test]
fn english_matching_ignores_case_width_and_punctuation() {
    let t = default_table();
    assert_eq!(label(&t, "ＥＸＣＩＴＥＤ！！"), "emotion=excited");
    assert_eq!(label(&t, "\"Sad\"."), "emotion=sad");
    assert_eq!(label(&t, "Speak SLOWLY,please"), "speed=slow");
    // Whole words only: no "sad" in "crusade", no "mad" in "made".
    let reason = unmapped(&t, "a crusade made of words");
    assert!(reason.starts_with("nothing in"), "{reason}");
}

#[test]
fn several_emotions_combine_when_allowed() {
    let mut cfg = default_json();
    cfg["max_emotions"] = json!(2);
    let t = parse(&Config::from_value(cfg).unwrap()).unwrap();
    let (l, style) = mapped(&t, "悲伤又愤怒, 还有点害怕");
    assert_eq!(l, "emotion=angry+sad");
    assert_eq!(style.emotions, vec!["sad", "angry"]);
    assert_eq!(style.speed, Some(0.9), "the first emotion's tweak wins");
    assert_eq!(warns(&run(&t, "悲伤又愤怒, 还有点害怕")).len(), 1);
    // Default: one emotion.
    assert_eq!(label(&default_table(), "悲伤又愤怒"), "emotion=sad");
}

#[test]
fn entry_fields_reach_the_style() {
    let t = parse(
        &Config::from_value(json!({
            "dialects": {"sichuanese": {
                "keywords": ["四川话"], "dialect": "四川话", "voice": "zh_CN-cosy",
                "speaker": "f1", "extra": {"instruct": "用四川话说"}
            }},
            "emotions": {"sad": {"keywords": ["sad"], "tags": ["sad", "soft"], "extra": {"instruct": "x", "mood": "low"}}}
        }))
        .unwrap(),
    )
    .unwrap();
    let (l, style) = mapped(&t, "四川话, sad");
    assert_eq!(l, "dialect=sichuanese;emotion=sad");
    assert_eq!(style.dialect.as_deref(), Some("四川话"));
    assert_eq!(style.voice.as_deref(), Some("zh_CN-cosy"));
    assert_eq!(style.speaker.as_deref(), Some("f1"));
    assert_eq!(style.emotions, vec!["sad", "soft"]);
    assert_eq!(
        style.extra,
        vec![
            ("instruct".to_string(), "用四川话说".to_string()),
            ("mood".to_string(), "low".to_string())
        ]
    );
}

#[test]
fn empty_and_unmatched_instructions_are_unmapped() {
    let t = default_table();
    assert!(unmapped(&t, "").contains("empty instruction"));
    assert!(unmapped(&t, "  \t ").contains("empty instruction"));
    let reason = unmapped(&t, "今天天气不错");
    assert!(
        reason.contains("今天天气不错") && reason.contains("entries"),
        "{reason}"
    );
}

#[test]
fn too_long_instruction_is_invalid_input() {
    let t = default_table();
    let long = "慢".repeat(1001);
    assert!(
        matches!(map(&t, &long), Err(StageError::InvalidInput(m)) if m.contains("max_instruct_chars"))
    );
    assert!(map(&t, &"慢".repeat(1000)).is_ok());
}

#[test]
fn odd_input_never_panics_and_is_deterministic() {
    let t = default_table();
    let inputs = [
        "😀🎉",
        "e\u{301}",
        "话话话话话",
        "语",
        "!!!,,,。。。",
        "dialect",
        "accent accent",
        "İstanbul",
        "ß",
        "\u{0}\u{7f}",
        "慢慢慢慢慢快快快",
        "not not not",
        "别别别",
        "*",
        "ｄｉａｌｅｃｔ",
        "火星话火星话",
        "用",
        "「四川话」",
        "whisper*",
    ];
    for input in inputs {
        let a = map(&t, input).unwrap();
        let b = map(&t, input).unwrap();
        assert_eq!(a, b, "{input:?}");
    }
}

#[test]
fn plugin_entry_points_use_the_json_config() {
    let config = Config::parse(&default_json().to_string()).unwrap();
    let out =
        InstructStyle::map_instruct(&Context::default(), &config, "用东北话, 大声点").unwrap();
    assert_eq!(
        out,
        StyleOutcome::Mapped {
            style: Style {
                dialect: Some("northeastern".into()),
                language: Some("zh-CN".into()),
                volume: Some(6.0),
                ..Style::default()
            },
            label: "dialect=northeastern;volume=loud".into()
        }
    );
    let bad =
        Config::parse(r#"{"dialects": {"x": {"keywords": ["x话"]}}, "emotion": {}}"#).unwrap();
    assert!(
        matches!(InstructStyle::check_config(&bad), Err(StageError::InvalidConfig(m)) if m.contains("`emotion`"))
    );
    // map_instruct refuses a bad config too, rather than guessing.
    assert!(InstructStyle::map_instruct(&Context::default(), &bad, "x话").is_err());
}

#[test]
fn repeated_requests_log_once() {
    let t = default_table();
    let m = run(&t, &"不要太快, 用上海话或者四川话, ".repeat(20));
    assert_eq!(m.notes.len(), 2, "{:?}", m.notes);
    assert!(
        matches!(&m.outcome, StyleOutcome::Mapped { label, .. } if label == "dialect=shanghainese")
    );
}
