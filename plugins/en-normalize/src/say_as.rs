//! SSML `say-as` hints (the host passes them in the config's `say_as` key
//! when this stage declares `applies = ["say-as"]`; docs/ssml.md): each
//! marked range of the text is read the way its `interpret_as` says, and
//! the rest is normalized as usual.

use voxpipe_plugin_text::say_as::{
    characters, date_fields, only_digits, ordinal_number, telephone,
};
use voxpipe_plugin_text::SayAs;

use crate::dates::spoken;
use crate::normalize::normalize;
use crate::settings::Settings;
use crate::words::{integer, ordinal, spell_digits, year};

/// `text` normalized, with each hinted range read as it says (the SDK's
/// walk: bad ranges, and content a reading cannot take, are normalized
/// like the rest).
pub fn apply(text: &str, hints: &[SayAs], settings: &Settings) -> String {
    voxpipe_plugin_text::say_as::apply(text, hints, &|t| normalize(t, settings), &read)
}

fn read(h: &SayAs, content: &str) -> Option<String> {
    match h.interpret_as.as_str() {
        "cardinal" | "number" => match content.trim().strip_prefix('-') {
            Some(rest) => Some(format!("minus {}", integer(&only_digits(rest)?))),
            None => Some(integer(&only_digits(content)?)),
        },
        // "21", "21st", "21." are all the twenty-first.
        "ordinal" => Some(ordinal(&integer(&ordinal_number(content)?))),
        "digits" => Some(spell_digits(&only_digits(content)?)),
        "telephone" => telephone(content, "plus ", ", ", &spell_digits),
        "characters" | "spell-out" | "verbatim" => characters(content, &spell_digits),
        "date" => {
            let (y, m, d) = date_fields(content, h.format.as_deref())?;
            // A field the format has must be a number; one it lacks is None.
            let num = |v: Option<&str>| -> Option<Option<u64>> {
                match v {
                    None => Some(None),
                    Some(v) => v.parse().ok().map(Some),
                }
            };
            let (y, m, d) = (num(y)?, num(m)?, num(d)?);
            match (m, d) {
                (Some(m), Some(d)) => spoken(m, d, y),
                // No day: "March, twenty twenty-four" reads as "March twenty twenty-four".
                (Some(m), None) => {
                    let month = spoken(m, 1, None)?;
                    let month = month.split(' ').next()?;
                    Some(y.map_or(month.to_string(), |y| format!("{month} {}", year(y))))
                }
                _ => y.map(year),
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hinted_ranges_are_read_as_they_say_and_the_rest_as_usual() {
        let s = Settings::default();
        let text = "On 3/5/2024 code 4096 came 21, call +1 555 123.";
        let hints = [
            SayAs::at(text, "3/5/2024", "date", Some("mdy")),
            SayAs::at(text, "4096", "digits", None),
            SayAs::at(text, "21", "ordinal", None),
            SayAs::at(text, "+1 555 123", "telephone", None),
        ];
        assert_eq!(
            apply(text, &hints, &s),
            "On March fifth, twenty twenty-four code four zero nine six came twenty-first, \
             call plus one, five five five, one two three."
        );
        let one = |t: &str, kind: &str| apply(t, &[SayAs::at(t, t, kind, None)], &s);
        assert_eq!(
            one("1234", "cardinal"),
            "one thousand two hundred thirty-four"
        );
        assert_eq!(one("-12", "cardinal"), "minus twelve");
        assert_eq!(one("3rd", "ordinal"), "third");
        assert_eq!(one("b7", "characters"), "B seven");
        assert_eq!(one("ok", "spell-out"), "O K");
        assert_eq!(one("abc", "cardinal"), "abc");
        assert_eq!(apply("2024", &[], &s), normalize("2024", &s));
    }
}
