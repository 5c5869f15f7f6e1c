//! Amounts: the family every number falls back to, so it always matches a
//! digit run (or a sign and a digit run) and every digit gets read.
//!
//! An amount is one number, a range or a fraction, then optionally a `%`
//! or a unit:
//! - integers `123` → 一百二十三, `1,234,567` (thousands separators),
//!   negatives `-5` → 负五;
//! - decimals `3.14` → 三点一四;
//! - ranges `3-5`, `3~5` → 三到五 (with `-` only when the left end is the
//!   smaller, so `2026-11` or a score `5-3` is not a range);
//! - fractions `3/4` → 四分之三 (denominator not zero, no leading zero);
//! - percentages `50%` → 百分之五十, `3-5%` → 百分之三到百分之五;
//! - units `5kg` → 五千克, `10 km` → 十公里 (one space allowed);
//! - a bare 2 before a classifier is 两 (两个人, 两公里), except after 第.

use crate::normalizer::Normalizer;
use crate::numbers::{cardinal, decimal, digit_by_digit};
use crate::readings::{LIANG_CLASSIFIERS, MAX_CARDINAL_DIGITS, NOT_CLASSIFIERS};
use crate::scan::{
    byte_at, char_before, digit_at, digit_run, minus_sign_len, range_separator_len, rest, Match,
};

/// One written number: sign, integer digits (separators removed) and
/// fraction digits.
struct Number<'t> {
    negative: bool,
    int: String,
    frac: Option<&'t str>,
    end: usize,
}

impl Number<'_> {
    /// Approximate value, only used to compare the ends of a range (a huge
    /// number becomes infinity, which compares fine).
    fn value(&self) -> f64 {
        let text = format!("{}.{}", self.int, self.frac.unwrap_or("0"));
        let magnitude: f64 = text.parse().unwrap_or(f64::INFINITY);
        if self.negative {
            -magnitude
        } else {
            magnitude
        }
    }

    /// True for a plain `2`: the only number read 两 before a classifier.
    fn is_bare_two(&self) -> bool {
        !self.negative && self.frac.is_none() && self.int == "2"
    }
}

/// The body of an amount, before any `%` or unit.
enum Body<'t> {
    Single(Number<'t>),
    Range(Number<'t>, Number<'t>),
    Fraction {
        numerator: Number<'t>,
        denominator: Number<'t>,
    },
}

pub fn read(text: &str, pos: usize, n: &Normalizer) -> Option<Match> {
    let first = parse_number(text, pos, true)?;
    let (body, mut end) = range_or_fraction(text, first, n);

    let rules = &n.settings.rules;
    let percent_len = ["%", "％"]
        .iter()
        .find(|p| rest(text, end).starts_with(**p))
        .map(|p| p.len());
    if let (true, Some(len)) = (rules.percentages, percent_len) {
        return Some(Match {
            end: end + len,
            reading: percentage(n, &body),
        });
    }

    let unit = if rules.units {
        find_unit(text, end, n)
    } else {
        None
    };
    let following = match &unit {
        Some((_, reading)) => reading.as_str(),
        None => rest(text, end),
    };
    let liang_two =
        n.settings.liang && char_before(text, pos) != Some('第') && before_classifier(following);
    let mut reading = speak_body(n, &body, liang_two);
    if let Some((unit_end, unit_reading)) = unit {
        reading.push_str(&unit_reading);
        end = unit_end;
    }
    Some(Match { end, reading })
}

/// `-?digits(,ddd)*(.digits)?` at `pos`; the sign only where `allow_sign`.
fn parse_number(text: &str, pos: usize, allow_sign: bool) -> Option<Number<'_>> {
    let sign_len = if allow_sign {
        minus_sign_len(text, pos).unwrap_or(0)
    } else {
        0
    };
    let start = pos + sign_len;
    let (head, mut end) = digit_run(text, start);
    if head.is_empty() {
        return None;
    }
    let mut int = head.to_string();
    // Thousands separators: only after a first group of 1–3 digits, and
    // only groups of exactly three (so a list `1,2,3` is left alone).
    if head.len() <= 3 {
        while byte_at(text, end) == Some(b',') {
            let (group, group_end) = digit_run(text, end + 1);
            if group.len() != 3 {
                break;
            }
            int.push_str(group);
            end = group_end;
        }
    }
    let mut frac = None;
    if byte_at(text, end) == Some(b'.') && digit_at(text, end + 1) {
        let (digits, frac_end) = digit_run(text, end + 1);
        frac = Some(digits);
        end = frac_end;
    }
    Some(Number {
        negative: sign_len > 0,
        int,
        frac,
        end,
    })
}

fn range_or_fraction<'t>(text: &'t str, first: Number<'t>, n: &Normalizer) -> (Body<'t>, usize) {
    let rules = &n.settings.rules;
    let end = first.end;
    if rules.ranges {
        if let Some(sep) = range_separator_len(text, end) {
            if let Some(second) = parse_number(text, end + sep, false) {
                if first.value() < second.value() {
                    let end = second.end;
                    return (Body::Range(first, second), end);
                }
            }
        }
    }
    if rules.fractions && first.frac.is_none() && byte_at(text, end) == Some(b'/') {
        let (den, den_end) = digit_run(text, end + 1);
        let simple = !den.is_empty() && !den.starts_with('0');
        // `1/2/3` is a path or a date, not a fraction.
        let chain_goes_on = byte_at(text, den_end) == Some(b'/') && digit_at(text, den_end + 1);
        if simple && !chain_goes_on && byte_at(text, den_end) != Some(b'.') {
            let denominator = Number {
                negative: false,
                int: den.to_string(),
                frac: None,
                end: den_end,
            };
            return (
                Body::Fraction {
                    numerator: first,
                    denominator,
                },
                den_end,
            );
        }
    }
    (Body::Single(first), end)
}

/// Reads one number; `liang_two` turns a bare 2 into 两.
fn speak_number(n: &Normalizer, number: &Number, liang_two: bool) -> String {
    let w = n.words;
    let liang = n.settings.liang;
    let mut out = String::new();
    if number.negative {
        out.push_str(w.negative);
    }
    let int = number.int.trim_start_matches('0');
    let magnitude = if liang_two && number.is_bare_two() {
        w.liang.to_string()
    } else if int.len() > MAX_CARDINAL_DIGITS {
        // Documented limit: beyond 万亿 a number is read digit by digit.
        match number.frac {
            Some(frac) => digit_by_digit(w, int, false) + w.point + &digit_by_digit(w, frac, false),
            None => digit_by_digit(w, int, false),
        }
    } else {
        match number.frac {
            Some(frac) => decimal(w, &number.int, frac, liang),
            None => cardinal(w, &number.int, liang),
        }
    };
    out.push_str(&magnitude);
    out
}

fn speak_body(n: &Normalizer, body: &Body, liang_two: bool) -> String {
    match body {
        Body::Single(x) => speak_number(n, x, liang_two),
        Body::Range(a, b) => {
            speak_number(n, a, liang_two) + n.words.range + &speak_number(n, b, liang_two)
        }
        Body::Fraction {
            numerator,
            denominator,
        } => {
            // 负四分之三: the sign goes first, then 分母 分之 分子.
            let sign = if numerator.negative {
                n.words.negative
            } else {
                ""
            };
            let unsigned = Number {
                negative: false,
                int: numerator.int.clone(),
                frac: None,
                end: numerator.end,
            };
            format!(
                "{sign}{}{}{}",
                speak_number(n, denominator, false),
                n.words.fraction,
                speak_number(n, &unsigned, false)
            )
        }
    }
}

/// 百分之五十; a range repeats it on both ends (百分之三到百分之五), a
/// negative puts the sign first (负百分之五).
fn percentage(n: &Normalizer, body: &Body) -> String {
    let w = n.words;
    let one = |x: &Number| {
        let sign = if x.negative { w.negative } else { "" };
        let unsigned = Number {
            negative: false,
            int: x.int.clone(),
            frac: x.frac,
            end: x.end,
        };
        format!("{sign}{}{}", w.percent, speak_number(n, &unsigned, false))
    };
    match body {
        Body::Single(x) => one(x),
        Body::Range(a, b) => one(a) + w.range + &one(b),
        // `3/4%` is rare and odd: read the fraction, then the percent sign's
        // meaning is lost; better to say 百分之 before the whole fraction.
        Body::Fraction { .. } => format!("{}{}", w.percent, speak_body(n, body, false)),
    }
}

/// The unit written at `pos` (after at most one space), longest first, and
/// where it ends. A unit ending in a Latin letter must not run on into
/// another letter: `5 miles` has no unit `m`.
fn find_unit(text: &str, pos: usize, n: &Normalizer) -> Option<(usize, String)> {
    let start = if byte_at(text, pos) == Some(b' ') {
        pos + 1
    } else {
        pos
    };
    let r = rest(text, start);
    n.settings.units.iter().find_map(|(unit, reading)| {
        if !r.starts_with(unit.as_str()) {
            return None;
        }
        let end = start + unit.len();
        let ends_in_letter = unit
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphabetic());
        let runs_on = rest(text, end)
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic());
        (!(ends_in_letter && runs_on)).then(|| (end, reading.clone()))
    })
}

/// True when `following` starts with a measure word (两个, 两点), but not
/// one of the look-alikes (二年级) and not a time/decimal like `2点5`.
fn before_classifier(following: &str) -> bool {
    if NOT_CLASSIFIERS.iter().any(|x| following.starts_with(x)) {
        return false;
    }
    LIANG_CLASSIFIERS.iter().any(|c| {
        following.starts_with(c)
            && !following[c.len()..].starts_with(|ch: char| ch.is_ascii_digit())
    })
}
