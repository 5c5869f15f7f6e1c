//! SSML `say-as` hints (the host passes them in the config's `say_as` key
//! when this stage declares `applies = ["say-as"]`; docs/ssml.md): each
//! marked range of the text is read the way its `interpret_as` says, in
//! Mandarin, and the rest is normalized as usual.

use voxpipe_plugin_text::say_as::{
    characters, date_fields, only_digits, ordinal_number, telephone,
};
use voxpipe_plugin_text::SayAs as Hint;

use crate::normalizer::normalize;
use crate::numbers::{cardinal, digit_by_digit};
use crate::readings::MANDARIN;
use crate::settings::Settings;

/// `text` normalized, with each hinted range read as it says (the SDK's
/// walk: bad ranges, and content a reading cannot take, are normalized
/// like the rest).
pub fn apply(text: &str, hints: &[Hint], settings: &Settings) -> String {
    voxpipe_plugin_text::say_as::apply(text, hints, &|t| normalize(t, settings), &|h, c| {
        read(h, c, settings)
    })
}

/// The reading of one hinted range, or `None` when it does not fit.
fn read(h: &Hint, content: &str, settings: &Settings) -> Option<String> {
    let w = &MANDARIN;
    match h.interpret_as.as_str() {
        "cardinal" | "number" => match content.trim().strip_prefix('-') {
            Some(rest) => Some(format!(
                "{}{}",
                w.negative,
                cardinal(w, &only_digits(rest)?, settings.liang)
            )),
            None => Some(cardinal(w, &only_digits(content)?, settings.liang)),
        },
        // "21", "21st", "21." are all 第二十一.
        "ordinal" => Some(format!(
            "第{}",
            cardinal(w, &ordinal_number(content)?, false)
        )),
        "digits" => Some(digit_by_digit(w, &only_digits(content)?, false)),
        "telephone" => telephone(content, "加", "，", &|g| {
            digit_by_digit(w, g, settings.yao_for_one)
        }),
        "characters" | "spell-out" | "verbatim" => {
            characters(content, &|d| digit_by_digit(w, d, false))
        }
        // Year, month, day, whatever the written order: 二零二四年三月五日.
        "date" => {
            let (y, m, d) = date_fields(content, h.format.as_deref())?;
            let in_range =
                |v: &str, max: u32| v.parse::<u32>().is_ok_and(|n| (1..=max).contains(&n));
            let mut out = String::new();
            if let Some(y) = y {
                out.push_str(&digit_by_digit(w, y, false));
                out.push_str(w.year);
            }
            if let Some(m) = m {
                in_range(m, 12).then_some(())?;
                out.push_str(&cardinal(w, m, false));
                out.push_str(w.month);
            }
            if let Some(d) = d {
                in_range(d, 31).then_some(())?;
                out.push_str(&cardinal(w, d, false));
                out.push_str(w.day);
            }
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hinted_ranges_are_read_in_mandarin_and_the_rest_as_usual() {
        let s = Settings::default();
        let text = "日期 3/5/2024，编号 2024，名次 21，电话 +86 138 0013 8000。";
        let hints = [
            Hint::at(text, "3/5/2024", "date", Some("mdy")),
            Hint::at(text, "2024，名", "digits", None),
            Hint::at(text, "21", "ordinal", None),
            Hint::at(text, "+86 138 0013 8000", "telephone", None),
        ];
        // The digits hint covers "2024，名": not only digits, so read as usual.
        assert_eq!(
            apply(text, &hints, &s),
            "日期 二零二四年三月五日，编号 两千零二十四，名次 第二十一，电话 加八六，幺三八，零零幺三，八零零零。"
        );
        let one = |t: &str, kind: &str| apply(t, &[Hint::at(t, t, kind, None)], &s);
        assert_eq!(one("2024", "digits"), "二零二四");
        assert_eq!(one("-12", "cardinal"), "负十二");
        assert_eq!(one("b7", "characters"), "B 七");
        assert_eq!(one("ok", "spell-out"), "O K");
        assert_eq!(one("2024-12-06", "date"), "二零二四年十二月六日");
        assert_eq!(one("abc", "cardinal"), "abc");
        assert_eq!(apply("2024", &[], &s), normalize("2024", &s));
    }
}
