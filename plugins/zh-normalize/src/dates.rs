//! Dates: years are read digit by digit (二零二六年), months and days as
//! cardinals (十一月二十一日).
//!
//! Recognized, all starting with a four-digit year:
//! - `2026年` → 二零二六 (the 年 itself is copied by the main loop);
//! - `2026-11-21`, `2026/11/21`, `2026.11.21` → 二零二六年十一月二十一日;
//! - `2026-11`, `2026/11` → 二零二六年十一月;
//! - `2020-2025年`, `2020~2025年` → 二零二零到二零二五 (+ 年 copied).
//!
//! Months and days outside 1–12 / 1–31 are not dates (then `2026-13-01`
//! falls through to the other families). Month/day written in Chinese
//! (`11月21日`) need no rule: the ordinary cardinal reading is right.

use crate::normalizer::Normalizer;
use crate::numbers::{cardinal, digit_by_digit};
use crate::scan::{
    byte_at, decimal_part_at, digit_at, digit_run, range_separator_len, rest, small_value, Match,
};

pub fn read(text: &str, pos: usize, n: &Normalizer) -> Option<Match> {
    if !n.settings.rules.dates {
        return None;
    }
    let (year, year_end) = digit_run(text, pos);
    if year.len() != 4 {
        return None;
    }
    if rest(text, year_end).starts_with('年') {
        return Some(Match {
            end: year_end,
            reading: digit_by_digit(n.words, year, false),
        });
    }
    numeric_date(text, year, year_end, n).or_else(|| year_range(text, year, year_end, n))
}

/// `YYYY-MM-DD` and `YYYY-MM` with `-`, `/` or `.` (`.` only with a day:
/// `2026.11` is more likely a decimal).
fn numeric_date(text: &str, year: &str, year_end: usize, n: &Normalizer) -> Option<Match> {
    let sep = byte_at(text, year_end).filter(|b| matches!(b, b'-' | b'/' | b'.'))?;
    let (month, month_end) = digit_run(text, year_end + 1);
    if month.len() > 2 || !(1..=12).contains(&small_value(month)?) {
        return None;
    }
    let w = n.words;
    let mut reading =
        digit_by_digit(w, year, false) + w.year + &cardinal(w, month, false) + w.month;

    if byte_at(text, month_end) == Some(sep) && digit_at(text, month_end + 1) {
        let (day, day_end) = digit_run(text, month_end + 1);
        let more_follows = byte_at(text, day_end) == Some(sep) && digit_at(text, day_end + 1);
        if day.len() > 2 || !(1..=31).contains(&small_value(day)?) || more_follows {
            return None;
        }
        reading = reading + &cardinal(w, day, false) + w.day;
        return Some(Match {
            end: day_end,
            reading,
        });
    }
    // Year and month only: refuse what would be a decimal or a longer chain.
    let chain_goes_on = matches!(byte_at(text, month_end), Some(b'-' | b'/' | b'.'))
        && digit_at(text, month_end + 1);
    if sep == b'.' || chain_goes_on || decimal_part_at(text, month_end) {
        return None;
    }
    Some(Match {
        end: month_end,
        reading,
    })
}

/// `2020-2025年`: two years joined by a range separator and followed by 年.
fn year_range(text: &str, year: &str, year_end: usize, n: &Normalizer) -> Option<Match> {
    let sep_len = range_separator_len(text, year_end)?;
    let (second, second_end) = digit_run(text, year_end + sep_len);
    if second.len() != 4 || !rest(text, second_end).starts_with('年') {
        return None;
    }
    let w = n.words;
    let reading = digit_by_digit(w, year, false) + w.range + &digit_by_digit(w, second, false);
    Some(Match {
        end: second_end,
        reading,
    })
}
