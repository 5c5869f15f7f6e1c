//! Everything that starts with a digit: ordinals, decades, percentages,
//! units, ranges, years and plain numbers (times, dates and phones are
//! tried before, in `normalize`).
//!
//! Year heuristic: a plain four-digit number from 1100 to 2099 (no commas,
//! no decimals, no sign, no unit) is read as a year ("in 1999" →
//! "nineteen ninety-nine", "2026" → "twenty twenty-six"), unless the word
//! before it marks a quantity ("about", "over", "than", …) or the word
//! after it is a counted noun ("people", "times", "pages", …); then it is
//! a cardinal ("over 1500 people" → "over one thousand five hundred
//! people"). Written with a comma ("1,999") it is always a cardinal.

use crate::number::{parse_num, Num};
use crate::scan::{alnum_at, next_word_lower, peek, prev_char, prev_word_lower, rest};
use crate::settings::Rules;
use crate::units::unit_at;
use crate::words::{ordinal, plural, under_hundred, year};

/// Words before a number that mark it as a quantity, not a year.
const QUANTITY_BEFORE: [&str; 16] = [
    "about",
    "approximately",
    "approx",
    "nearly",
    "almost",
    "over",
    "under",
    "exactly",
    "than",
    "total",
    "only",
    "just",
    "some",
    "number",
    "no",
    "#",
];

/// Words after a number that mark it as a count, not a year.
const COUNT_AFTER: [&str; 24] = [
    "people",
    "persons",
    "times",
    "items",
    "units",
    "copies",
    "pages",
    "words",
    "points",
    "votes",
    "students",
    "users",
    "employees",
    "members",
    "years",
    "days",
    "hours",
    "minutes",
    "seconds",
    "dollars",
    "euros",
    "pounds",
    "cars",
    "rows",
];

fn year_value(n: &Num) -> Option<u64> {
    if !n.is_plain_int() || !n.more.is_empty() || n.int.len() != 4 {
        return None;
    }
    n.small_value().filter(|v| (1100..=2099).contains(v))
}

/// The reading of `n`, as a year when `as_year`.
fn reading(n: &Num, neg: bool, as_year: bool) -> String {
    let words = match year_value(n) {
        Some(y) if as_year && !neg => year(y),
        _ => n.words(),
    };
    if neg {
        format!("minus {words}")
    } else {
        words
    }
}

/// Ordinal suffix at `j` ("st", "nd", "rd", "th", any case).
fn ordinal_suffix(t: &str, j: usize) -> Option<usize> {
    let s = rest(t, j).get(..2)?;
    let ok = ["st", "nd", "rd", "th"]
        .iter()
        .any(|x| s.eq_ignore_ascii_case(x));
    (ok && !alnum_at(t, j + 2)).then_some(j + 2)
}

/// Percent sign or unit after a number ending at `j`.
fn suffix(t: &str, j: usize, n: &Num, rules: &Rules) -> Option<(usize, String)> {
    if rules.percent {
        if peek(t, j) == Some('%') {
            return Some((j + 1, "percent".into()));
        }
        if rest(t, j).starts_with(" %") {
            return Some((j + 2, "percent".into()));
        }
    }
    if rules.units {
        if let Some((unit, end)) = unit_at(t, j) {
            return Some((end, if n.is_one() { unit.one } else { unit.many }.into()));
        }
    }
    None
}

/// A range dash at `j`: "-", "–" or "—" glued, or an en dash between spaces.
fn range_dash(t: &str, j: usize) -> Option<usize> {
    let r = rest(t, j);
    for d in ["-", "–", "—", " – ", " - "] {
        if r.starts_with(d) && r[d.len()..].starts_with(|c: char| c.is_ascii_digit()) {
            return Some(j + d.len());
        }
    }
    None
}

/// True when a dash glued to a digit comes just before `start` ("13" in
/// "2026-13-40").
fn chained_from_left(t: &str, start: usize) -> bool {
    match prev_char(t, start) {
        Some(d @ ('-' | '–' | '—')) => {
            prev_char(t, start - d.len_utf8()).is_some_and(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

/// Reads the number at `start` (where `num_start` is its first digit;
/// `neg` when a minus sign precedes). Returns the end and the reading, or
/// `None` when no enabled family applies (the caller then copies it).
pub fn number_at(
    t: &str,
    start: usize,
    num_start: usize,
    neg: bool,
    rules: &Rules,
) -> Option<(usize, String)> {
    let n = parse_num(t, num_start)?;
    let j = n.end;
    // "21st"
    if rules.ordinals && !neg && n.is_plain_int() && n.more.is_empty() {
        if let Some(end) = ordinal_suffix(t, j) {
            return Some((end, ordinal(&n.words())));
        }
    }
    // "1990s", "'90s" (the apostrophe is handled by the caller), "80s"
    if rules.years && !neg && peek(t, j) == Some('s') && !alnum_at(t, j + 1) {
        let v = n.small_value().filter(|_| n.is_plain_int());
        if let Some(y) = v.filter(|_| year_value(&n).is_some()) {
            return Some((j + 1, plural(&year(y))));
        }
        if let Some(d) = v.filter(|d| n.int.len() == 2 && d % 10 == 0 && *d >= 10) {
            return Some((j + 1, plural(&under_hundred(d))));
        }
    }
    if let Some((end, s)) = suffix(t, j, &n, rules) {
        return Some((end, format!("{} {s}", reading(&n, neg, false))));
    }
    // "10-20", "1990–2005", "5-10%"
    if rules.ranges && n.more.is_empty() {
        if let Some(r_start) = range_dash(t, j) {
            if let Some(right) = parse_num(t, r_start).filter(|r| r.more.is_empty()) {
                // "1-2-3" is a code, an invalid date or a phone, not a range.
                let chained = range_dash(t, right.end).is_some() || chained_from_left(t, start);
                let clean_end =
                    !alnum_at(t, right.end) || suffix(t, right.end, &right, rules).is_some();
                if clean_end && !chained {
                    let years =
                        rules.years && year_value(&n).is_some() && year_value(&right).is_some();
                    let mut out = format!(
                        "{} to {}",
                        reading(&n, neg, years),
                        reading(&right, false, years)
                    );
                    let mut end = right.end;
                    if let Some((e, s)) = suffix(t, right.end, &right, rules) {
                        out = format!("{out} {s}");
                        end = e;
                    }
                    return Some((end, out));
                }
            }
        }
    }
    if rules.years && !neg && year_value(&n).is_some() {
        let before = prev_word_lower(t, start);
        let after = next_word_lower(t, j);
        let quantity = QUANTITY_BEFORE.contains(&before.as_str())
            || COUNT_AFTER.contains(&after.as_str())
            || prev_char(t, start) == Some('#');
        if !quantity {
            return Some((j, reading(&n, false, true)));
        }
    }
    rules.numbers.then(|| (j, reading(&n, neg, false)))
}
