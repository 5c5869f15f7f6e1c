//! The main loop: walk the text, and wherever a number starts, ask the
//! recognizers in order which of them reads it.
//!
//! Order matters: the most specific formats go first, so `2026-11-21` is a
//! date before it could be a range, `13:05` a time, and `13812345678` a
//! phone number before it could be a cardinal. [`quantity`] comes last and
//! always matches, so every ASCII digit of the input is read and the output
//! contains none: normalizing twice gives the same text as once.

use crate::readings::{Readings, MANDARIN};
use crate::scan::{fold_fullwidth_digits, starts_number, Match};
use crate::settings::Settings;
use crate::{codes, dates, quantity, times};

/// What every recognizer gets: the settings of this call and the words to
/// say. (A dialect fork points `words` at its own table.)
pub struct Normalizer<'a> {
    pub settings: &'a Settings,
    pub words: &'static Readings,
}

/// A recognizer looks at the number starting at byte `pos` of `text` and
/// either reads it (returning where the reading ends) or passes.
type Recognizer = fn(&str, usize, &Normalizer) -> Option<Match>;

/// The recognizers, most specific first. To add a family, write a module
/// with a `read` function and put it here before `quantity::read`.
const RECOGNIZERS: &[Recognizer] = &[dates::read, times::read, codes::read, quantity::read];

/// Normalizes all numbers in `text`. Total: never fails, never panics.
pub fn normalize(text: &str, settings: &Settings) -> String {
    let n = Normalizer {
        settings,
        words: &MANDARIN,
    };
    let text = fold_fullwidth_digits(text);
    let mut out = String::with_capacity(text.len() * 2);
    let mut pos = 0;
    while let Some(c) = text.get(pos..).and_then(|r| r.chars().next()) {
        if starts_number(&text, pos) {
            let found = RECOGNIZERS.iter().find_map(|read| read(&text, pos, &n));
            // A match always moves forward; the check keeps the loop finite
            // even if a recognizer were ever wrong.
            if let Some(m) = found.filter(|m| m.end > pos && text.is_char_boundary(m.end)) {
                out.push_str(&m.reading);
                pos = m.end;
                continue;
            }
        }
        out.push(c);
        pos += c.len_utf8();
    }
    out
}
