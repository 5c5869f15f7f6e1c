//! Times of day: "3:30 pm" → "three thirty p m", "15:05" → "fifteen oh five".

use crate::scan::{alnum_at, capital_follows, digit_end, peek, rest};
use crate::words::{cardinal, under_hundred};

/// The am/pm marker at `j` (glued or after one space), read as letters.
/// Returns (reading, end, ends_with_period).
fn meridiem_at(t: &str, j: usize) -> Option<(&'static str, usize, bool)> {
    const FORMS: [(&str, &str); 8] = [
        ("a.m.", "a m"),
        ("p.m.", "p m"),
        ("A.M.", "a m"),
        ("P.M.", "p m"),
        ("am", "a m"),
        ("pm", "p m"),
        ("AM", "a m"),
        ("PM", "p m"),
    ];
    let k = if peek(t, j) == Some(' ') { j + 1 } else { j };
    for (form, reading) in FORMS {
        if rest(t, k).starts_with(form) && !alnum_at(t, k + form.len()) {
            return Some((reading, k + form.len(), form.ends_with('.')));
        }
    }
    None
}

fn two_digits(t: &str, i: usize) -> Option<(u64, usize)> {
    let end = digit_end(t, i);
    if end - i != 2 {
        return None;
    }
    Some((t.get(i..end)?.parse().ok()?, end))
}

/// A time at the digit at `i`: "h:mm", "h:mm:ss", each optionally with
/// am/pm, or "3 pm" / "3pm". Hours are 1–12 with am/pm, 0–24 without.
/// Whole hours without am/pm read "ten o'clock" (1–12) or "fifteen
/// hundred" (0, 13–24).
pub fn time_at(t: &str, i: usize) -> Option<(usize, String)> {
    let h_end = digit_end(t, i);
    if !(1..=2).contains(&(h_end - i)) {
        return None;
    }
    let hour: u64 = t.get(i..h_end)?.parse().ok()?;
    let mut j = h_end;
    let mut minutes = None;
    let mut seconds = None;
    if peek(t, j) == Some(':') {
        let (m, e) = two_digits(t, j + 1)?;
        minutes = Some(m);
        j = e;
        if peek(t, j) == Some(':') {
            if let Some((s, e)) = two_digits(t, j + 1) {
                seconds = Some(s);
                j = e;
            }
        }
    }
    if alnum_at(t, j) && meridiem_at(t, j).is_none() {
        return None;
    }
    let meridiem = meridiem_at(t, j);
    if minutes.is_none() && meridiem.is_none() {
        return None;
    }
    if minutes.is_some_and(|m| m > 59) || seconds.is_some_and(|s| s > 59) {
        return None;
    }
    let hour_ok = if meridiem.is_some() {
        (1..=12).contains(&hour)
    } else {
        hour <= 24
    };
    if !hour_ok {
        return None;
    }
    let mut out = cardinal(hour);
    match minutes {
        Some(0) | None if meridiem.is_none() => out.push_str(if (1..=12).contains(&hour) {
            " o'clock"
        } else {
            " hundred"
        }),
        Some(0) | None => {}
        Some(m) if m < 10 => out.push_str(&format!(" oh {}", cardinal(m))),
        Some(m) => out.push_str(&format!(" {}", under_hundred(m))),
    }
    if let Some(s) = seconds.filter(|&s| s > 0) {
        let unit = if s == 1 { "second" } else { "seconds" };
        out.push_str(&format!(" and {} {unit}", cardinal(s)));
    }
    if let Some((reading, end, period)) = meridiem {
        out.push(' ');
        out.push_str(reading);
        j = end;
        if period && capital_follows(t, end) {
            out.push('.');
        }
    }
    Some((j, out))
}
