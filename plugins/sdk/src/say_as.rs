//! SSML `say-as` hints for text stages that declare `applies = ["say-as"]`
//! (docs/plugins.md): what the host sends ([`SayAs`], in the config's
//! [`SAY_AS_KEY`]; [`crate::Config::split_say_as`] takes them out), and the
//! walk every such stage does ([`apply`]): the hinted ranges read by the
//! stage's own reader, the rest normalized as usual.

/// The config key that carries SSML `say-as` hints to a text stage.
pub const SAY_AS_KEY: &str = "say_as";

/// One SSML `say-as` element over the text a text stage gets: `start..end`
/// in bytes, how to read it (`characters`, `spell-out`, `verbatim`,
/// `cardinal`, `number`, `ordinal`, `digits`, `telephone`, `date` with a
/// `format` such as `mdy`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct SayAs {
    pub start: usize,
    pub end: usize,
    pub interpret_as: String,
    #[serde(default)]
    pub format: Option<String>,
}

impl SayAs {
    /// The hint over the first `needle` in `text` (for tests of readers).
    pub fn at(text: &str, needle: &str, interpret_as: &str, format: Option<&str>) -> SayAs {
        let start = text.find(needle).unwrap_or(text.len());
        SayAs {
            start,
            end: start + needle.len(),
            interpret_as: interpret_as.to_string(),
            format: format.map(str::to_string),
        }
    }
}

/// `text` with each hinted range read by `read` (its `None`: the content is
/// normalized like the rest) and everything else by `normalize`. Ranges out
/// of bounds, off character boundaries or overlapping an earlier one are
/// ignored.
pub fn apply(
    text: &str,
    hints: &[SayAs],
    normalize: &dyn Fn(&str) -> String,
    read: &dyn Fn(&SayAs, &str) -> Option<String>,
) -> String {
    let mut hints: Vec<&SayAs> = hints
        .iter()
        .filter(|h| {
            h.start < h.end
                && h.end <= text.len()
                && text.is_char_boundary(h.start)
                && text.is_char_boundary(h.end)
        })
        .collect();
    hints.sort_by_key(|h| h.start);
    let mut out = String::with_capacity(text.len() * 2);
    let mut at = 0;
    for h in hints {
        if h.start < at {
            continue;
        }
        out.push_str(&normalize(&text[at..h.start]));
        let content = &text[h.start..h.end];
        match read(h, content) {
            Some(reading) => out.push_str(&reading),
            None => out.push_str(&normalize(content)),
        }
        at = h.end;
    }
    out.push_str(&normalize(&text[at..]));
    out
}

/// The ASCII digit runs of `s` ("+1 (555) 123" → 1, 555, 123).
pub fn digit_groups(s: &str) -> Vec<&str> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect()
}

/// `s` without `,`, `_` and spaces, if only ASCII digits remain.
pub fn only_digits(s: &str) -> Option<String> {
    let d: String = s
        .chars()
        .filter(|c| !matches!(c, ',' | ' ' | '_'))
        .collect();
    (!d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())).then_some(d)
}

/// The number of an ordinal as written: "21", "21st", "21." → "21".
pub fn ordinal_number(s: &str) -> Option<String> {
    only_digits(s.trim_end_matches(['.', 's', 't', 'n', 'd', 'r', 'h']))
}

/// A telephone number read group by group: `plus` first when it starts
/// with `+`, each digit group by `digits`, groups joined by `separator`
/// ("+1 555 123" → "plus " + "one" + ", " + …). `None` without digits.
pub fn telephone(
    content: &str,
    plus: &str,
    separator: &str,
    digits: &dyn Fn(&str) -> String,
) -> Option<String> {
    let groups = digit_groups(content);
    if groups.is_empty() {
        return None;
    }
    let plus = if content.trim_start().starts_with('+') {
        plus
    } else {
        ""
    };
    let read: Vec<String> = groups.into_iter().map(digits).collect();
    Some(format!("{plus}{}", read.join(separator)))
}

/// Character by character, space-separated: letters upper-case, each ASCII
/// digit by `digit` ("b7" → "B seven"). `None` when there is nothing.
pub fn characters(content: &str, digit: &dyn Fn(&str) -> String) -> Option<String> {
    let read: Vec<String> = content
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| {
            if c.is_ascii_digit() {
                digit(c.encode_utf8(&mut [0; 4]))
            } else {
                c.to_uppercase().to_string()
            }
        })
        .collect();
    (!read.is_empty()).then(|| read.join(" "))
}

/// A date's fields in the order `format` gives (`ymd` when absent, as ISO
/// dates are): (year, month, day), each present when the format has it.
/// `None` when the content has another number of fields than the format.
pub fn date_fields<'a>(
    content: &'a str,
    format: Option<&str>,
) -> Option<(Option<&'a str>, Option<&'a str>, Option<&'a str>)> {
    let groups = digit_groups(content);
    let format = format.unwrap_or("ymd");
    if groups.len() != format.len() {
        return None;
    }
    let (mut y, mut m, mut d) = (None, None, None);
    for (field, value) in format.chars().zip(groups) {
        match field {
            'y' => y = Some(value),
            'm' => m = Some(value),
            'd' => d = Some(value),
            _ => return None,
        }
    }
    Some((y, m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hinted_ranges_go_to_the_reader_and_the_rest_to_the_normalizer() {
        let h = |start, end| SayAs {
            start,
            end,
            interpret_as: "x".into(),
            format: None,
        };
        let upper = |s: &str| s.to_uppercase();
        let read = |_: &SayAs, c: &str| (c != "no").then(|| format!("<{c}>"));
        assert_eq!(apply("ab cd ef", &[h(3, 5)], &upper, &read), "AB <cd> EF");
        // Out of bounds, overlapping, a reader's refusal: normalized.
        assert_eq!(
            apply(
                "ab no",
                &[h(3, 5), h(4, 9), h(1, 2), h(4, 5)],
                &upper,
                &read
            ),
            "A<b> NO"
        );
        assert_eq!(digit_groups("+1 (555) 12-3"), ["1", "555", "12", "3"]);
        assert_eq!(only_digits("1,234"), Some("1234".into()));
        assert_eq!(ordinal_number("21st"), Some("21".into()));
        assert_eq!(
            date_fields("05.03.2024", Some("dmy")),
            Some((Some("2024"), Some("03"), Some("05")))
        );
        assert_eq!(date_fields("2024", None), None);
        let spell = |d: &str| format!("<{d}>");
        assert_eq!(
            telephone("+1 (55) 6", "plus ", ", ", &spell).as_deref(),
            Some("plus <1>, <55>, <6>")
        );
        assert_eq!(telephone("-", "plus ", ", ", &spell), None);
        assert_eq!(characters("b 7", &spell).as_deref(), Some("B <7>"));
    }
}
