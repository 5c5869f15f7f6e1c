//! The scanner: walks the text once, left to right. At each position it
//! tries the rules that can start there (in a fixed priority order); the
//! first that matches consumes its span and emits its reading, otherwise
//! the character (or the whole letter run) is copied unchanged. Every rule
//! looks only at a bounded neighbourhood, so the whole pass is linear in
//! the input. Whitespace is copied as is, so text with nothing to rewrite
//! comes out byte for byte identical.
//!
//! Priority at a word start: custom replacements, URLs/e-mails, custom
//! abbreviations, month-name dates, built-in abbreviations, phones,
//! currency, then digit-led rules (dates, times, numbers).

use crate::abbrev::builtin_at;
use crate::custom::Table;
use crate::dates::{iso_at, named_at, slash_at};
use crate::money::money_at;
use crate::number::parse_num;
use crate::numeric::number_at;
use crate::phone::phone_at;
use crate::scan::{alnum_at, digit_at, digit_end, peek, prev_char, rest};
use crate::settings::Settings;
use crate::timeofday::time_at;
use crate::web::web_at;
use crate::words::{plural, spell_digits, under_hundred};

/// True when a URL may start at `i`: at the start of a whitespace-delimited
/// chunk, or just after an opening bracket/quote that starts one.
fn chunk_start(t: &str, i: usize) -> bool {
    match prev_char(t, i) {
        None => true,
        Some(c) if c.is_whitespace() => true,
        Some(c) if "(<[\"'“‘".contains(c) => {
            prev_char(t, i - c.len_utf8()).is_none_or(char::is_whitespace)
        }
        _ => false,
    }
}

/// True when a sign at `i` is a sign, not a hyphen: nothing glued before it.
fn sign_position(t: &str, i: usize) -> bool {
    prev_char(t, i).is_none_or(|c| c.is_whitespace() || "([{\"'“".contains(c))
}

struct Scanner<'a> {
    t: &'a str,
    s: &'a Settings,
    replacements: Table<'a>,
    abbreviations: Table<'a>,
}

impl Scanner<'_> {
    /// Rules that may start at a word boundary (`i` not glued to a letter
    /// or digit before it). Returns (end, reading, numeric) where
    /// `numeric` says the reading came from a digit rule, which must be
    /// kept apart from letters glued after it ("3D" → "three D").
    fn at_word_start(&self, i: usize, c: char) -> Option<(usize, String, bool)> {
        let (t, r) = (self.t, &self.s.rules);
        if let Some((_, v, end)) = self.replacements.match_at(t, i, c) {
            return Some((end, v.to_string(), false));
        }
        if r.urls && chunk_start(t, i) && c.is_ascii_alphanumeric() {
            if let Some((end, out)) = web_at(t, i) {
                return Some((end, out, false));
            }
        }
        if let Some((_, v, end)) = self.abbreviations.match_at(t, i, c) {
            return Some((end, v.to_string(), false));
        }
        if c.is_alphabetic() {
            if r.dates && c.is_uppercase() {
                if let Some((end, out)) = named_at(t, i) {
                    return Some((end, out, true));
                }
            }
            if r.abbreviations {
                if let Some((end, out)) = builtin_at(t, i) {
                    return Some((end, out, false));
                }
            }
            return None;
        }
        if r.phones && (c == '+' || c == '(' || c.is_ascii_digit()) {
            if let Some((end, out)) = phone_at(t, i, c) {
                return Some((end, out, true));
            }
        }
        if r.currency && matches!(c, '$' | '€' | '£' | '¥') {
            if let Some((end, out)) = money_at(t, i, c) {
                return Some((end, out, true));
            }
        }
        self.signed(i, c)
    }

    /// Signs and lone decimal points: "-5", "+5", ".5", "'90s".
    fn signed(&self, i: usize, c: char) -> Option<(usize, String, bool)> {
        let (t, r) = (self.t, &self.s.rules);
        let next = i + c.len_utf8();
        if !digit_at(t, next) || !sign_position(t, i) {
            return None;
        }
        match c {
            '-' | '−' | '+' => {
                if c == '+' {
                    let (end, out) = number_at(t, next, next, false, r)?;
                    return Some((end, format!("plus {out}"), true));
                }
                number_at(t, i, next, true, r).map(|(e, o)| (e, o, true))
            }
            '.' if r.numbers => {
                let end = digit_end(t, next);
                let out = format!("point {}", spell_digits(t.get(next..end)?));
                Some((end, out, true))
            }
            '\'' | '’' if r.years => {
                let end = digit_end(t, next);
                let d: u64 = t.get(next..end).filter(|d| d.len() == 2)?.parse().ok()?;
                let decade =
                    d.is_multiple_of(10) && peek(t, end) == Some('s') && !alnum_at(t, end + 1);
                decade.then(|| (end + 1, plural(&under_hundred(d)), true))
            }
            _ => None,
        }
    }

    /// Rules that start at a digit (even one glued to letters: "mp3").
    fn at_digit(&self, i: usize) -> Option<(usize, String)> {
        let (t, r) = (self.t, &self.s.rules);
        if r.dates {
            if let Some(hit) = iso_at(t, i).or_else(|| slash_at(t, i)) {
                return Some(hit);
            }
        }
        if r.time {
            if let Some(hit) = time_at(t, i) {
                return Some(hit);
            }
        }
        number_at(t, i, i, false, r)
    }

    fn run(&self) -> String {
        let t = self.t;
        let mut out = String::with_capacity(t.len() + t.len() / 2);
        let mut i = 0;
        while let Some(c) = peek(t, i) {
            let prev = prev_char(t, i);
            let boundary = prev.is_none_or(|p| !p.is_alphanumeric());
            let mut hit = if boundary {
                self.at_word_start(i, c)
            } else {
                None
            };
            if hit.is_none() && c.is_ascii_digit() {
                hit = self.at_digit(i).map(|(e, o)| (e, o, true));
                if hit.is_some() && prev.is_some_and(char::is_alphabetic) {
                    out.push(' ');
                }
            }
            if let Some((end, reading, numeric)) = hit.filter(|h| h.0 > i) {
                out.push_str(&reading);
                if numeric && peek(t, end).is_some_and(char::is_alphabetic) {
                    out.push(' ');
                }
                i = end;
                continue;
            }
            // Nothing to rewrite: copy a whole letter run or number (so its
            // inner positions are never taken for word starts), else one char.
            let end = if c.is_ascii_digit() {
                parse_num(t, i).map_or(i + 1, |n| n.end)
            } else if c.is_alphabetic() {
                i + rest(t, i)
                    .char_indices()
                    .find(|(_, ch)| !ch.is_alphabetic())
                    .map_or(rest(t, i).len(), |(p, _)| p)
            } else {
                i + c.len_utf8()
            };
            out.push_str(t.get(i..end).unwrap_or(""));
            i = end;
        }
        out
    }
}

/// Normalizes `text` with the given settings.
pub fn normalize(text: &str, s: &Settings) -> String {
    Scanner {
        t: text,
        s,
        replacements: Table::new(&s.replacements),
        abbreviations: Table::new(&s.abbreviations),
    }
    .run()
}
