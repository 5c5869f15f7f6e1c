//! Dates: "2026-11-21", "11/21/2026", "Nov. 21, 2026", "November 21" →
//! "November twenty-first, twenty twenty-six".

use crate::scan::{alnum_at, digit_end, peek, rest};
use crate::words::{cardinal, ordinal, year};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn days_in(month: u64) -> u64 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// "November twenty-first[, twenty twenty-six]"; `None` if not a real day.
pub fn spoken(month: u64, day: u64, yr: Option<u64>) -> Option<String> {
    if !(1..=12).contains(&month) || day == 0 || day > days_in(month) {
        return None;
    }
    let mut out = format!(
        "{} {}",
        MONTHS[(month - 1) as usize],
        ordinal(&cardinal(day))
    );
    if let Some(y) = yr {
        out.push_str(", ");
        out.push_str(&year(y));
    }
    Some(out)
}

/// Digits at `i` of length in `lens`, with the position after them.
fn field(t: &str, i: usize, lens: std::ops::RangeInclusive<usize>) -> Option<(u64, usize)> {
    let end = digit_end(t, i);
    if !lens.contains(&(end - i)) {
        return None;
    }
    Some((t.get(i..end)?.parse().ok()?, end))
}

/// ISO "yyyy-mm-dd".
pub fn iso_at(t: &str, i: usize) -> Option<(usize, String)> {
    let (y, e) = field(t, i, 4..=4)?;
    (peek(t, e) == Some('-')).then_some(())?;
    let (m, e) = field(t, e + 1, 2..=2)?;
    (peek(t, e) == Some('-')).then_some(())?;
    let (d, e) = field(t, e + 1, 2..=2)?;
    if alnum_at(t, e) || (1000..=9999).contains(&y).then_some(()).is_none() {
        return None;
    }
    Some((e, spoken(m, d, Some(y))?))
}

/// "m/d/yyyy" (US order); when the first field cannot be a month but the
/// second can ("21/11/2026") it is read day first.
pub fn slash_at(t: &str, i: usize) -> Option<(usize, String)> {
    let (a, e) = field(t, i, 1..=2)?;
    (peek(t, e) == Some('/')).then_some(())?;
    let (b, e) = field(t, e + 1, 1..=2)?;
    (peek(t, e) == Some('/')).then_some(())?;
    let (y, e) = field(t, e + 1, 4..=4)?;
    if alnum_at(t, e) || peek(t, e) == Some('/') {
        return None;
    }
    let (m, d) = if a > 12 && b <= 12 { (b, a) } else { (a, b) };
    Some((e, spoken(m, d, Some(y))?))
}

/// The month name at `i`: full ("November") or abbreviated with an
/// optional period ("Nov.", "Nov", "Sept."). Returns (month, end).
fn month_at(t: &str, i: usize) -> Option<(u64, usize)> {
    let r = rest(t, i);
    for (idx, name) in MONTHS.iter().enumerate() {
        let month = idx as u64 + 1;
        if r.starts_with(name) && !alnum_at(t, i + name.len()) {
            return Some((month, i + name.len()));
        }
        let short_forms: &[&str] = if month == 9 {
            &["Sept", "Sep"]
        } else {
            &[&name[..3]]
        };
        for s in short_forms {
            if r.starts_with(s) && !alnum_at(t, i + s.len()) {
                let mut end = i + s.len();
                if peek(t, end) == Some('.') {
                    end += 1;
                }
                return Some((month, end));
            }
        }
    }
    None
}

/// "Nov. 21, 2026", "November 21 2026", "Nov 21st": a month name, one
/// space, a day (optionally with an ordinal suffix), then an optional
/// year after ", " or " ". The month alone is left alone.
pub fn named_at(t: &str, i: usize) -> Option<(usize, String)> {
    let (m, e) = month_at(t, i)?;
    (peek(t, e) == Some(' ')).then_some(())?;
    let (d, mut e) = field(t, e + 1, 1..=2)?;
    for suffix in ["st", "nd", "rd", "th"] {
        if rest(t, e).starts_with(suffix) {
            e += 2;
            break;
        }
    }
    if alnum_at(t, e) {
        return None;
    }
    let year_start = if rest(t, e).starts_with(", ") {
        Some(e + 2)
    } else if rest(t, e).starts_with(' ') {
        Some(e + 1)
    } else {
        None
    };
    let yr = year_start.and_then(|s| {
        let (y, ye) = field(t, s, 4..=4)?;
        (!alnum_at(t, ye) && (1000..=9999).contains(&y)).then_some((y, ye))
    });
    let out = spoken(m, d, yr.map(|(y, _)| y))?;
    Some((yr.map_or(e, |(_, ye)| ye), out))
}
