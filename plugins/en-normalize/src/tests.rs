//! Behaviour tests through the plugin's `TextStage` interface.

use serde_json::json;
use voxpipe_plugin_text::{Config, Context, StageError, TextStage};

use crate::EnNormalize;

fn run_with(config: serde_json::Value, text: &str) -> Result<String, StageError> {
    let config = Config::from_value(config)?;
    EnNormalize::check_config(&config)?;
    EnNormalize::normalize(&Context::default(), &config, text.to_string())
}

fn run(text: &str) -> String {
    run_with(json!({}), text).expect("default config works")
}

const CASES: &[(&str, &str)] = &[
    // cardinals, negatives, decimals
    ("42", "forty-two"),
    ("I have 3 cats.", "I have three cats."),
    (
        "1,234,567",
        "one million two hundred thirty-four thousand five hundred sixty-seven",
    ),
    ("-5", "minus five"),
    ("it was -5 outside", "it was minus five outside"),
    ("3.14", "three point one four"),
    ("0", "zero"),
    ("007", "zero zero seven"),
    ("version 1.2.3", "version one point two point three"),
    (".5 of it", "point five of it"),
    ("mp3 files", "mp three files"),
    ("COVID-19", "COVID-nineteen"),
    ("3D", "three D"),
    ("1.2 million", "one point two million"),
    // ordinals
    ("21st", "twenty-first"),
    ("the 2nd and 3rd", "the second and third"),
    ("100th", "one hundredth"),
    ("11th", "eleventh"),
    // years and decades
    ("in 1999", "in nineteen ninety-nine"),
    ("2005", "two thousand five"),
    ("2026", "twenty twenty-six"),
    ("1905 and 1900", "nineteen oh five and nineteen hundred"),
    ("the 1990s", "the nineteen nineties"),
    ("the '80s", "the eighties"),
    ("over 1500 people", "over one thousand five hundred people"),
    ("1,999", "one thousand nine hundred ninety-nine"),
    ("3000", "three thousand"),
    // currency
    ("$3.50", "three dollars and fifty cents"),
    ("€1", "one euro"),
    ("£2.05", "two pounds and five pence"),
    ("¥500", "five hundred yen"),
    ("$1.2 million", "one point two million dollars"),
    ("$0.01", "one cent"),
    ("$1", "one dollar"),
    ("$5k", "five thousand dollars"),
    ("$2.00", "two dollars"),
    ("$1.999", "one point nine nine nine dollars"),
    // percent
    ("3.5%", "three point five percent"),
    ("100 %", "one hundred percent"),
    // times
    ("3:30 pm", "three thirty p m"),
    ("15:05", "fifteen oh five"),
    ("10:00 am", "ten a m"),
    ("at 10:00", "at ten o'clock"),
    ("at 3pm", "at three p m"),
    ("at 7 a.m. Then", "at seven a m. Then"),
    ("18:00", "eighteen hundred"),
    ("score 3:2", "score three:two"),
    // dates
    ("2026-11-21", "November twenty-first, twenty twenty-six"),
    ("11/21/2026", "November twenty-first, twenty twenty-six"),
    ("Nov. 21, 2026", "November twenty-first, twenty twenty-six"),
    ("on March 3rd", "on March third"),
    ("21/11/2026", "November twenty-first, twenty twenty-six"),
    ("2026-13-40", "twenty twenty-six-thirteen-forty"),
    // abbreviations
    (
        "Dr. Smith lives on Elm Dr.",
        "Doctor Smith lives on Elm Drive",
    ),
    ("Visit St. Louis", "Visit Saint Louis"),
    ("on Main St. Then we left", "on Main Street. Then we left"),
    ("5th St.", "fifth Street"),
    ("Mr. and Mrs. Jones", "Mister and Missus Jones"),
    ("Ms. Lee, Prof. Kim", "Miz Lee, Professor Kim"),
    ("John Smith Jr.", "John Smith Junior"),
    ("apples, pears, etc.", "apples, pears, et cetera"),
    ("E.g. this, i.e. that", "For example this, that is that"),
    ("cats vs. dogs", "cats versus dogs"),
    (
        "Windows 10 vs. Windows 11",
        "Windows ten versus Windows eleven",
    ),
    ("see pp. 10–15.", "see pages ten to fifteen."),
    ("Mr. Smith Jr. Then", "Mister Smith Junior. Then"),
    ("approx. 5 km", "approximately five kilometers"),
    // units
    ("1 km", "one kilometer"),
    ("5 kg", "five kilograms"),
    ("20°C", "twenty degrees Celsius"),
    ("-3 °F", "minus three degrees Fahrenheit"),
    ("12in", "twelve inches"),
    ("a 12 in. board", "a twelve inches. board"),
    ("3 in a row", "three in a row"),
    ("1 in 4 people", "one in four people"),
    ("60 mph", "sixty miles per hour"),
    ("100 km/h", "one hundred kilometers per hour"),
    ("1 ft and 2 ft", "one foot and two feet"),
    ("16GB", "sixteen gigabytes"),
    ("440 Hz", "four hundred forty hertz"),
    ("2 L", "two liters"),
    ("5 min", "five min"),
    ("1.0 m", "one point zero meters"),
    // ranges
    ("10-20", "ten to twenty"),
    ("pages 5–7", "pages five to seven"),
    ("1990-2005", "nineteen ninety to two thousand five"),
    ("10-20 km", "ten to twenty kilometers"),
    ("5-10%", "five to ten percent"),
    // phones
    (
        "555-123-4567",
        "five five five, one two three, four five six seven",
    ),
    (
        "(555) 123-4567",
        "five five five, one two three, four five six seven",
    ),
    (
        "+1 555 123 4567",
        "plus one, five five five, one two three, four five six seven",
    ),
    (
        "Call +44 20 7946 0958.",
        "Call plus four four, two zero, seven nine four six, zero nine five eight.",
    ),
    // URLs and e-mails
    ("https://example.com/a", "example dot com slash a"),
    ("jo.smith@mail.org", "jo dot smith at mail dot org"),
    (
        "see www.rust-lang.org.",
        "see w w w dot rust dash lang dot org.",
    ),
    (
        "visit example.com/docs/",
        "visit example dot com slash docs",
    ),
    (
        "(http://x.io/p?q=1)",
        "(x dot io slash p question mark q equals one)",
    ),
    ("Node.js is fine", "Node.js is fine"),
    // weird input
    ("", ""),
    ("$", "$"),
    ("%", "%"),
    ("-", "-"),
    ("°", "°"),
    ("@", "@"),
    ("+", "+"),
    ("1,", "one,"),
    ("$.", "$."),
    ("--5", "--five"),
    ("+5", "plus five"),
    ("日本 3 号", "日本 three 号"),
    ("  spaced\tout\n", "  spaced\tout\n"),
];

#[test]
fn table_of_cases() {
    let mut failures = Vec::new();
    for (input, want) in CASES {
        let got = run(input);
        if got != *want {
            failures.push(format!("{input:?}: got {got:?}, want {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn normalizing_twice_changes_nothing() {
    let mut failures = Vec::new();
    for (input, _) in CASES {
        let once = run(input);
        let twice = run(&once);
        if once != twice {
            failures.push(format!("{input:?}: {once:?} -> {twice:?}"));
        }
    }
    let para = "On Nov. 21, 2026 at 3:30 pm, Dr. Smith paid $3.50 (approx. 3.5%) for 2 kg \
                of apples at 42 Elm Dr. Call 555-123-4567 or mail jo.smith@mail.org.";
    let once = run(para);
    assert_eq!(run(&once), once);
    assert!(!once.chars().any(|c| c.is_ascii_digit()), "{once}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn plain_prose_passes_through_unchanged() {
    for text in [
        "The quick brown fox jumps over the lazy dog.",
        "She said: \"I am here, in the morning!\" Then she left… (quietly)",
        "Is it a vs b? Dr Who and St Ives, in caps: STOP.",
        "Ünïcödé text — with dashes – and ‘quotes’ stays.",
        "e-mail me at home; p.m. and a.m. alone stay too",
    ] {
        assert_eq!(run(text), text);
    }
}

#[test]
fn huge_numbers_are_read_digit_by_digit() {
    let big = format!("1{}", "0".repeat(30));
    let out = run(&big);
    assert!(out.starts_with("one zero zero"), "{out}");
    assert_eq!(out.split(' ').count(), 31);
    assert_eq!(
        run("999999999999999999"),
        "nine hundred ninety-nine quadrillion nine hundred ninety-nine trillion nine hundred \
         ninety-nine billion nine hundred ninety-nine million nine hundred ninety-nine thousand \
         nine hundred ninety-nine"
    );
    assert!(run("1000000000000000000").starts_with("one zero"));
    assert!(run(&format!("${big}.99")).ends_with("and ninety-nine cents"));
    assert!(run(&format!("{big}th")).ends_with("zeroth"));
}

#[test]
fn hostile_input_never_panics() {
    let pieces = [
        "1", "-", ".", ",", "$", "%", "°", ":", "/", "+", "(", ")", "@", "'", "st", "Dr.", "é",
        "日", " ", "\n", "am", "2026", "http://", "km", "–", "¥", "0",
    ];
    // Every ordered pair and triple of pieces.
    for a in pieces {
        for b in pieces {
            for c in pieces {
                let s = format!("{a}{b}{c}");
                let once = run(&s);
                let _ = run(&once);
            }
        }
    }
    let long = "1-".repeat(5000) + &"a".repeat(5000) + &"(".repeat(5000);
    let _ = run(&long);
}

#[test]
fn rule_toggles_switch_families_off() {
    let off = |family: &str, text: &str| run_with(json!({"rules": {family: false}}), text).unwrap();
    assert_eq!(off("numbers", "I have 42 cats"), "I have 42 cats");
    assert_eq!(off("numbers", "in 1999"), "in nineteen ninety-nine");
    assert_eq!(off("ordinals", "21st"), "twenty-one st");
    assert_eq!(
        off("years", "in 1999"),
        "in one thousand nine hundred ninety-nine"
    );
    assert_eq!(off("currency", "$5"), "$five");
    assert_eq!(off("percent", "5%"), "five%");
    assert_eq!(off("time", "15:05"), "fifteen:zero five");
    assert_eq!(
        off("dates", "2026-11-21"),
        "twenty twenty-six-eleven-twenty-one"
    );
    assert_eq!(off("abbreviations", "Dr. Smith"), "Dr. Smith");
    assert_eq!(off("units", "5 kg"), "five kg");
    assert_eq!(off("ranges", "10-20"), "ten-twenty");
    assert_eq!(
        off("phones", "555-123-4567"),
        "five hundred fifty-five-one hundred twenty-three-four thousand five hundred sixty-seven"
    );
    assert_eq!(off("urls", "see example.com"), "see example.com");
    let all_off = json!({"rules": {
        "numbers": false, "ordinals": false, "years": false, "currency": false,
        "percent": false, "time": false, "dates": false, "abbreviations": false,
        "units": false, "ranges": false, "phones": false, "urls": false,
    }});
    let text = "Dr. Smith paid $3.50 on 2026-11-21 at 3:30 pm, 1,234.5 km, see x.com";
    assert_eq!(run_with(all_off, text).unwrap(), text);
}

#[test]
fn custom_tables_apply_with_word_boundaries() {
    let cfg = json!({
        "abbreviations": {"Corp.": "Corporation", "Dr.": "Dear"},
        "replacements": {"&": "and", "btw": "by the way", "w/": "with"},
    });
    let out = run_with(cfg.clone(), "Acme Corp. & Dr. Who, btw: btwx w/ 5 kg").unwrap();
    assert_eq!(
        out,
        "Acme Corporation and Dear Who, by the way: btwx with five kilograms"
    );
    // Custom readings are literal: the value decides about a period.
    assert_eq!(
        run_with(cfg.clone(), "Acme Corp. It sells").unwrap(),
        "Acme Corporation It sells"
    );
    // Custom abbreviations apply even with the built-in family off.
    let cfg2 =
        json!({"rules": {"abbreviations": false}, "abbreviations": {"Corp.": "Corporation"}});
    assert_eq!(
        run_with(cfg2, "Acme Corp. Dr.").unwrap(),
        "Acme Corporation Dr."
    );
    assert_eq!(run_with(cfg.clone(), "").unwrap(), "");
    let once = run_with(cfg.clone(), "Acme Corp. & co").unwrap();
    assert_eq!(run_with(cfg, &once).unwrap(), once);
}

#[test]
fn bad_configs_are_refused_naming_the_key() {
    let refused = |v: serde_json::Value, needle: &str| match run_with(v, "x") {
        Err(StageError::InvalidConfig(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("expected InvalidConfig, got {other:?}"),
    };
    refused(json!({"rule": {}}), "rule");
    refused(json!({"rules": {"numbrs": false}}), "numbrs");
    refused(json!({"rules": {"numbers": "yes"}}), "");
    refused(json!({"rules": 3}), "");
    refused(json!({"abbreviations": {"": "x"}}), "abbreviations");
    refused(json!({"abbreviations": {"a b": "x"}}), "abbreviations");
    refused(json!({"replacements": {"x": 3}}), "");
    refused(
        json!({"replacements": {"k": "v".repeat(300)}}),
        "replacements",
    );
    let many: serde_json::Map<String, serde_json::Value> =
        (0..1001).map(|i| (format!("k{i}"), json!("v"))).collect();
    refused(json!({"replacements": many}), "replacements");
    assert_eq!(run_with(json!({}), "").unwrap(), "");
    assert_eq!(run_with(json!({"rules": {}}), "5").unwrap(), "five");
}

#[test]
fn a_kilobyte_paragraph_is_fast_and_clean() {
    let para = "On 2026-11-21 at 10:00 am, Prof. Kim (approx. 72.5 kg) ran 5 km in 20°C \
                heat; tickets cost $12.50 or €11, up 3.5% vs. 2025. Call (555) 123-4567, \
                see https://example.com/run or mail info@example.org. The 21st race, \
                pages 10-20 of the 1990s archive, etc. ";
    let text = para.repeat(1024 / para.len() + 1);
    let out = run(&text);
    assert!(!out.chars().any(|c| c.is_ascii_digit()), "{out}");
    assert_eq!(run(&out), out);
}
