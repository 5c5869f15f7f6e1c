//! Clock times: `13:05` → 十三点零五分, `9:30` → 九点三十分, `08:00` → 八点整
//! (or 八点 with `time_zheng = false`), `13:05:09` → 十三点零五分零九秒.
//!
//! The hour is 0–24 with one or two digits; minutes and seconds exactly two
//! digits, 00–59. Anything else (`3:2`, a score) is not a time. The colon
//! may be ASCII `:` or full-width `：`. Two times joined by a range
//! separator are a range: `12:30-14:00` → 十二点三十分到十四点整.

use crate::normalizer::Normalizer;
use crate::numbers::cardinal;
use crate::readings::Readings;
use crate::scan::{digit_at, digit_run, range_separator_len, rest, small_value, Match};

pub fn read(text: &str, pos: usize, n: &Normalizer) -> Option<Match> {
    if !n.settings.rules.times {
        return None;
    }
    let first = one_time(text, pos, n)?;
    // `12:30-14:00` → 十二点三十分到十四点整.
    let second =
        range_separator_len(text, first.end).and_then(|sep| one_time(text, first.end + sep, n));
    Some(match second {
        Some(second) => Match {
            end: second.end,
            reading: first.reading + n.words.range + &second.reading,
        },
        None => first,
    })
}

/// A single clock time at `pos`.
fn one_time(text: &str, pos: usize, n: &Normalizer) -> Option<Match> {
    let (hour, hour_end) = digit_run(text, pos);
    if hour.len() > 2 || small_value(hour)? > 24 {
        return None;
    }
    let (minute, minute_end) = two_digit_field(text, hour_end, 59)?;
    let (second, end) = match two_digit_field(text, minute_end, 59) {
        Some((s, e)) => (Some(s), e),
        None => (None, minute_end),
    };
    // `12:30:45:10` or `12:305` are something else.
    if digit_at(text, end) || colon_len(text, end).is_some_and(|l| digit_at(text, end + l)) {
        return None;
    }
    Some(Match {
        end,
        reading: spoken_time(n, hour, minute, second),
    })
}

/// A colon followed by exactly two digits no greater than `max`: the
/// field's value and where it ends.
fn two_digit_field(text: &str, pos: usize, max: u32) -> Option<(u32, usize)> {
    let colon = colon_len(text, pos)?;
    let (digits, end) = digit_run(text, pos + colon);
    let value = small_value(digits)?;
    (digits.len() == 2 && value <= max).then_some((value, end))
}

fn colon_len(text: &str, pos: usize) -> Option<usize> {
    let r = rest(text, pos);
    [":", "："]
        .iter()
        .find(|c| r.starts_with(**c))
        .map(|c| c.len())
}

fn spoken_time(n: &Normalizer, hour: &str, minute: u32, second: Option<u32>) -> String {
    let w = n.words;
    let mut out = if n.settings.liang && small_value(hour) == Some(2) {
        w.liang.to_string() // 两点, never 二点
    } else {
        cardinal(w, hour, false)
    };
    out.push_str(w.hour);
    let second = second.filter(|s| *s > 0);
    if minute == 0 && second.is_none() {
        if n.settings.time_zheng {
            out.push_str(w.on_the_hour);
        }
        return out;
    }
    out.push_str(&minutes_or_seconds(w, minute));
    out.push_str(w.minute);
    if let Some(s) = second {
        out.push_str(&minutes_or_seconds(w, s));
        out.push_str(w.second);
    }
    out
}

/// Minutes and seconds keep their zero: 05 → 零五, 30 → 三十, 00 → 零.
fn minutes_or_seconds(w: &Readings, value: u32) -> String {
    let digits = value.to_string();
    if (1..10).contains(&value) {
        format!("{}{}", w.digits[0], cardinal(w, &digits, false))
    } else {
        cardinal(w, &digits, false)
    }
}
