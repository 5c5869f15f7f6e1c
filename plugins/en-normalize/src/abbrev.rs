//! Built-in abbreviations.
//!
//! "Dr." and "St." read by context: after a name ("Elm Dr.", "Main St.",
//! "5th St.") they are "Drive"/"Street"; otherwise before a capitalised
//! word ("Dr. Smith", "St. Louis") they are "Doctor"/"Saint"; otherwise
//! "Drive"/"Street". A "name" is a capitalised word that does not start
//! its sentence, or a number/ordinal.
//!
//! The period of an abbreviation is dropped, except when the abbreviation
//! can end a sentence ("etc.", "Jr.", "Street") and whitespace and a
//! capital follow: then the period most likely also ended the sentence
//! ("on Main St. Then …") and is kept for the pause. At the very end of
//! the text it is dropped ("on Elm Dr." → "on Elm Drive").

use crate::scan::{alnum_at, capital_follows, prev_token, rest, sentence_start};

struct Abbr {
    key: &'static str,
    /// The reading, or the "before a name" reading for Dr./St.
    reading: &'static str,
    /// For Dr./St.: the "after a name" reading.
    after_name: Option<&'static str>,
    /// Can end a sentence ("etc.", "Jr."), so keeps its period before a
    /// capital; titles and "e.g."-like connectives never do.
    can_end: bool,
    /// Matched in any case, reading capitalised like the input.
    any_case: bool,
}

const fn a(key: &'static str, reading: &'static str, can_end: bool, any_case: bool) -> Abbr {
    Abbr {
        key,
        reading,
        after_name: None,
        can_end,
        any_case,
    }
}

const BUILTIN: &[Abbr] = &[
    Abbr {
        key: "Dr.",
        reading: "Doctor",
        after_name: Some("Drive"),
        can_end: false,
        any_case: false,
    },
    Abbr {
        key: "St.",
        reading: "Saint",
        after_name: Some("Street"),
        can_end: false,
        any_case: false,
    },
    a("Mrs.", "Missus", false, false),
    a("Mr.", "Mister", false, false),
    a("Ms.", "Miz", false, false),
    a("Prof.", "Professor", false, false),
    a("Mt.", "Mount", false, false),
    a("Jr.", "Junior", true, false),
    a("Sr.", "Senior", true, false),
    a("Ave.", "Avenue", true, false),
    a("Blvd.", "Boulevard", true, false),
    a("etc.", "et cetera", true, true),
    a("e.g.", "for example", false, true),
    a("i.e.", "that is", false, true),
    a("vs.", "versus", false, true),
    a("approx.", "approximately", false, true),
    a("pp.", "pages", false, false),
];

/// True when the token before `i` is a name or a number: "Elm", "5th".
fn name_before(t: &str, i: usize) -> bool {
    let Some((start, tok)) = prev_token(t, i) else {
        return false;
    };
    let word = tok.trim_start_matches(|c: char| !c.is_alphanumeric());
    if !tok.chars().next_back().is_some_and(char::is_alphanumeric) {
        return false;
    }
    let first = word.chars().next();
    first.is_some_and(|c| c.is_ascii_digit())
        || (first.is_some_and(char::is_uppercase) && !sentence_start(t, start))
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// A built-in abbreviation at `i` (a word start).
pub fn builtin_at(t: &str, i: usize) -> Option<(usize, String)> {
    let r = rest(t, i);
    for ab in BUILTIN {
        let Some(head) = r.get(..ab.key.len()) else {
            continue;
        };
        let hit = if ab.any_case {
            head.eq_ignore_ascii_case(ab.key)
        } else {
            head == ab.key
        };
        let end = i + ab.key.len();
        if !hit || alnum_at(t, end) {
            continue;
        }
        let (reading, can_end) = match ab.after_name {
            Some(place) if name_before(t, i) || !capital_follows(t, end) => (place, true),
            _ => (ab.reading, ab.can_end),
        };
        let mut out = if ab.any_case && head.starts_with(char::is_uppercase) {
            capitalise(reading)
        } else {
            reading.to_string()
        };
        if can_end && capital_follows(t, end) {
            out.push('.');
        }
        return Some((end, out));
    }
    None
}
