//! Input → output cases through the plugin's public entry points, exactly
//! as the host calls them (config JSON in, text out).

use voxpipe_plugin_text::{Config, Context, StageError, TextStage};

use crate::ZhNormalize;

fn run(config: &str, text: &str) -> Result<String, StageError> {
    let config = Config::parse(config)?;
    ZhNormalize::check_config(&config)?;
    ZhNormalize::normalize(&Context::default(), &config, text.to_string())
}

/// Checks every `(input, expected)` pair with `config`, and that a second
/// pass changes nothing.
fn check(config: &str, cases: &[(&str, &str)]) {
    for (input, expected) in cases {
        let once = run(config, input).unwrap();
        assert_eq!(&once, expected, "input {input:?} with config {config}");
        let twice = run(config, &once).unwrap();
        assert_eq!(twice, once, "not idempotent on {input:?}");
    }
}

#[test]
fn integers() {
    check(
        "{}",
        &[
            ("123", "一百二十三"),
            ("10", "十"),
            ("15个", "十五个"),
            ("1005", "一千零五"),
            ("20000", "两万"),
            ("100000000", "一亿"),
            ("-5", "负五"),
            ("0", "零"),
            ("1,234,567元", "一百二十三万四千五百六十七元"),
            ("１２３", "一百二十三"),
        ],
    );
}

#[test]
fn decimals_and_percentages() {
    check(
        "{}",
        &[
            ("3.14", "三点一四"),
            ("0.5", "零点五"),
            ("-3.5度", "负三点五度"),
            ("3.5%", "百分之三点五"),
            ("50%", "百分之五十"),
            ("200%", "百分之两百"),
            ("-5%", "负百分之五"),
            ("3-5%", "百分之三到百分之五"),
            ("涨了12％", "涨了百分之十二"),
        ],
    );
}

#[test]
fn dates() {
    check(
        "{}",
        &[
            ("2026年11月21日", "二零二六年十一月二十一日"),
            ("2026-11-21", "二零二六年十一月二十一日"),
            ("2026/11/21", "二零二六年十一月二十一日"),
            ("2026.11.21", "二零二六年十一月二十一日"),
            ("2026-11", "二零二六年十一月"),
            ("2020-2025年", "二零二零到二零二五年"),
            ("2月2日", "二月二日"),
        ],
    );
}

#[test]
fn times() {
    check(
        "{}",
        &[
            ("13:05", "十三点零五分"),
            ("9:30", "九点三十分"),
            ("08:00", "八点整"),
            ("2:00", "两点整"),
            ("0:15", "零点十五分"),
            ("13:05:09", "十三点零五分零九秒"),
            ("8:00:05", "八点零分零五秒"),
            ("比分3:2", "比分三:二"),
            ("12:30-14:00", "十二点三十分到十四点整"),
        ],
    );
    check(r#"{"time_zheng": false}"#, &[("08:00", "八点")]);
}

#[test]
fn digit_strings() {
    check(
        "{}",
        &[
            ("13812345678", "幺三八幺二三四五六七八"),
            ("138-1234-5678", "幺三八 幺二三四 五六七八"),
            ("138 1234 5678", "幺三八 幺二三四 五六七八"),
            ("010-12345678", "零幺零 幺二三四五六七八"),
            ("007", "零零七"),
            ("电话：400-800-8888", "电话：四零零 八零零 八八八八"),
            ("房间号 1201", "房间号 幺二零幺"),
            ("验证码是315", "验证码是三幺五"),
            ("房间里有12个人", "房间里有十二个人"),
            ("A380和K101次", "A三八零和K幺零幺次"),
            ("G20峰会", "G二十峰会"),
            ("192.168.1.1", "一九二点一六八点一点一"),
        ],
    );
    check(
        r#"{"yao_for_one": false}"#,
        &[("13812345678", "一三八一二三四五六七八")],
    );
    check(
        r#"{"digit_context_words": ["座位"]}"#,
        &[("座位 112", "座位 幺幺二"), ("房间 112", "房间 一百一十二")],
    );
}

#[test]
fn fractions_ranges_units() {
    check(
        "{}",
        &[
            ("3/4", "四分之三"),
            ("-1/2", "负二分之一"),
            ("3-5", "三到五"),
            ("3~5天", "三到五天"),
            ("5-3", "五-三"),
            ("5kg", "五千克"),
            ("10km", "十公里"),
            ("10 km/h", "十公里每小时"),
            ("25°C", "二十五摄氏度"),
            ("5mm", "五毫米"),
            ("5G网络", "五G网络"),
            ("5 miles", "五 miles"),
            ("3-5kg", "三到五千克"),
        ],
    );
}

#[test]
fn liang_rule_and_toggle() {
    check(
        "{}",
        &[
            ("2个人", "两个人"),
            ("下午2点", "下午两点"),
            ("2km", "两公里"),
            ("第2名", "第二名"),
            ("2年级", "二年级"),
            ("2", "二"),
            ("22个", "二十二个"),
            ("2.5个", "二点五个"),
        ],
    );
    check(
        r#"{"liang": false}"#,
        &[("20000", "二万"), ("2个人", "二个人"), ("2:00", "二点整")],
    );
}

#[test]
fn rules_can_be_switched_off() {
    let all_off = r#"{"rules": {"dates": false, "times": false, "digits": false,
        "percentages": false, "fractions": false, "ranges": false, "units": false}}"#;
    check(
        all_off,
        &[
            ("2026年", "两千零二十六年"),
            ("13:05", "十三:五"),
            ("13812345678", "一百三十八亿一千二百三十四万五千六百七十八"),
            ("50%", "五十%"),
            ("3/4", "三/四"),
            ("3-5", "三-五"),
            ("5kg", "五kg"),
        ],
    );
}

#[test]
fn mixed_text() {
    check(
        "{}",
        &[(
            "会议于2026年11月21日9:30开始，预计3-5人参加，电话13812345678，室温25°C，完成率85.5%。",
            "会议于二零二六年十一月二十一日九点三十分开始，预计三到五人参加，电话幺三八幺二三四五六七八，室温二十五摄氏度，完成率百分之八十五点五。",
        ), (
            "I bought 3 apples for $12.50 on 2026/1/5.",
            "I bought 三 apples for $十二点五零 on 二零二六年一月五日.",
        )],
    );
}

#[test]
fn custom_units() {
    check(
        r#"{"units": {"kcal": "千卡", "°": ""}}"#,
        &[("300kcal", "三百千卡"), ("30°", "三十°"), ("5kg", "五千克")],
    );
}

#[test]
fn empty_and_numberless_input() {
    check(
        "{}",
        &[
            ("", ""),
            ("你好，世界", "你好，世界"),
            ("- . / : %", "- . / : %"),
        ],
    );
}

#[test]
fn huge_numbers_never_panic() {
    check(
        "{}",
        &[
            (
                "9999999999999999",
                "九千九百九十九万九千九百九十九亿九千九百九十九万九千九百九十九",
            ),
            ("12345678901234567", "一二三四五六七八九零一二三四五六七"),
            (
                "12345678901234567.5",
                "一二三四五六七八九零一二三四五六七点五",
            ),
        ],
    );
    let long = "9".repeat(100_000);
    let out = run("{}", &long).unwrap();
    assert_eq!(out.chars().count(), 100_000);
    // Odd inputs: separators and signs in every position.
    for text in [
        "-", "--1", "1-", "1--2", "1/0", "1/", "1:", "1:60", "99:99", "2026-", "2026-1-", "1,",
        "1.", ".5", "1.2.", "−7", "1e5", "²³",
    ] {
        let once = run("{}", text).unwrap();
        assert_eq!(run("{}", &once).unwrap(), once, "{text:?}");
        assert!(
            !once.bytes().any(|b| b.is_ascii_digit()),
            "{text:?} → {once:?}"
        );
    }
}

#[test]
fn config_is_checked() {
    let refused = [
        r#"{"lian": true}"#,
        r#"{"liang": "yes"}"#,
        r#"{"rules": {"date": false}}"#,
        r#"{"rules": {"dates": 1}}"#,
        r#"{"digit_context_words": "电话"}"#,
        r#"{"digit_context_words": [""]}"#,
        r#"{"digit_context_words": ["房间1"]}"#,
        r#"{"units": {"": "x"}}"#,
        r#"{"units": {"kcal": 5}}"#,
        r#"{"units": {"kcal": "1千卡"}}"#,
    ];
    for config in refused {
        let err = run(config, "1").unwrap_err();
        assert!(matches!(err, StageError::InvalidConfig(_)), "{config}");
    }
    let StageError::InvalidConfig(message) = run(r#"{"liang": "yes"}"#, "1").unwrap_err() else {
        panic!("wrong error kind");
    };
    assert!(message.contains("liang"), "{message}");
    assert!(run(r#"{"digit_context_words": []}"#, "电话 112").unwrap() == "电话 一百一十二");
}
