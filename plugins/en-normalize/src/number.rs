//! Parsing a written number ("1,234,567", "3.14", "1.2.3") and reading it.

use crate::scan::{digit_at, digit_end, peek};
use crate::words::{integer, spell_digits};

/// A number as written at some position of the text.
#[derive(Debug, Clone)]
pub struct Num<'a> {
    /// Integer digits with the thousands commas removed.
    pub int: String,
    /// Digits after the decimal point.
    pub frac: Option<&'a str>,
    /// Further dot-separated groups ("1.2.3": versions, section numbers).
    pub more: Vec<&'a str>,
    /// True when written with thousands commas.
    pub grouped: bool,
    /// Byte position just past the number.
    pub end: usize,
}

impl Num<'_> {
    /// A plain integer (no commas, no decimals)?
    pub fn is_plain_int(&self) -> bool {
        self.frac.is_none() && !self.grouped
    }

    /// Exactly the integer 1 ("1 km" is singular, "1.0 km" is not).
    pub fn is_one(&self) -> bool {
        self.int == "1" && self.frac.is_none()
    }

    /// The value of a short plain integer.
    pub fn small_value(&self) -> Option<u64> {
        if self.frac.is_none() && self.int.len() <= 9 {
            self.int.parse().ok()
        } else {
            None
        }
    }

    /// The reading: "one thousand two hundred", "three point one four",
    /// "one point two point three".
    pub fn words(&self) -> String {
        let mut out = integer(&self.int);
        for g in self.frac.iter() {
            out.push_str(" point ");
            out.push_str(&spell_digits(g));
        }
        for g in &self.more {
            out.push_str(" point ");
            out.push_str(&integer(g));
        }
        out
    }
}

/// Parses the number starting at the digit at `i`. Thousands commas are
/// accepted only in valid groups ("1,234" but not "1,23"); a comma that
/// does not group is left to the caller as punctuation.
pub fn parse_num(t: &str, i: usize) -> Option<Num<'_>> {
    if !digit_at(t, i) {
        return None;
    }
    let first_end = digit_end(t, i);
    let mut int = t.get(i..first_end)?.to_string();
    let mut end = first_end;
    let mut grouped = false;
    if first_end - i <= 3 {
        while peek(t, end) == Some(',') {
            let g_end = digit_end(t, end + 1);
            if g_end - (end + 1) != 3 {
                break;
            }
            int.push_str(t.get(end + 1..g_end)?);
            grouped = true;
            end = g_end;
        }
    }
    let mut frac = None;
    let mut more = Vec::new();
    while peek(t, end) == Some('.') && digit_at(t, end + 1) {
        let g_end = digit_end(t, end + 1);
        let g = t.get(end + 1..g_end)?;
        if frac.is_none() {
            frac = Some(g);
        } else {
            more.push(g);
        }
        end = g_end;
    }
    Some(Num {
        int,
        frac,
        more,
        grouped,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_groups_decimals_and_versions() {
        let n = parse_num("1,234,567.5 x", 0).unwrap();
        assert_eq!((n.int.as_str(), n.frac, n.end), ("1234567", Some("5"), 11));
        let n = parse_num("1,23", 0).unwrap();
        assert_eq!((n.int.as_str(), n.end), ("1", 1));
        let n = parse_num("1234,567", 0).unwrap();
        assert_eq!(n.end, 4);
        assert_eq!(
            parse_num("1.2.3", 0).unwrap().words(),
            "one point two point three"
        );
        assert_eq!(parse_num("5.", 0).unwrap().end, 1);
    }
}
