//! Phone numbers, read digit by digit in their groups with a short pause
//! (a comma) between groups: "555-123-4567" → "five five five, one two
//! three, four five six seven".
//!
//! Recognised shapes: "555-123-4567" / "555.123.4567" (same separator),
//! "(555) 123-4567", and international "+" numbers with groups separated by
//! single spaces, dashes or dots ("+1 555 123 4567", "+44 20 7946 0958"),
//! 8–15 digits in all. Bare seven-digit "123-4567" is not taken (it is as
//! often a range).

use crate::scan::{alnum_at, digit_end, peek};
use crate::words::spell_digits;

fn group(t: &str, i: usize, len: usize) -> Option<(&str, usize)> {
    let end = digit_end(t, i);
    (end - i == len)
        .then(|| t.get(i..end))
        .flatten()
        .map(|g| (g, end))
}

fn read(groups: &[&str], plus: bool) -> String {
    let spelled: Vec<String> = groups.iter().map(|g| spell_digits(g)).collect();
    let body = spelled.join(", ");
    if plus {
        format!("plus {body}")
    } else {
        body
    }
}

fn international(t: &str, i: usize) -> Option<(usize, String)> {
    let mut j = i + 1;
    let mut groups = Vec::new();
    let mut total = 0;
    loop {
        let paren = peek(t, j) == Some('(');
        let start = if paren { j + 1 } else { j };
        let end = digit_end(t, start);
        if end == start {
            return None;
        }
        let mut after = end;
        if paren {
            (peek(t, end) == Some(')')).then_some(())?;
            after += 1;
        }
        total += end - start;
        if total > 15 {
            return None;
        }
        groups.push(t.get(start..end)?);
        j = after;
        let sep = peek(t, j);
        let next = peek(t, j + 1);
        let next_starts_group = next.is_some_and(|c| c.is_ascii_digit() || c == '(');
        if matches!(sep, Some(' ' | '-' | '.')) && next_starts_group {
            j += 1;
        } else {
            break;
        }
    }
    let ok = total >= 8 && (groups.len() >= 2 || total >= 10) && !alnum_at(t, j);
    ok.then(|| (j, read(&groups, true)))
}

/// A phone number starting at `i` ('+', '(' or a digit).
pub fn phone_at(t: &str, i: usize, c: char) -> Option<(usize, String)> {
    match c {
        '+' => international(t, i),
        '(' => {
            let (area, e) = group(t, i + 1, 3)?;
            (peek(t, e) == Some(')')).then_some(())?;
            let mut e = e + 1;
            if matches!(peek(t, e), Some(' ' | '-')) {
                e += 1;
            }
            let (ex, e) = group(t, e, 3)?;
            matches!(peek(t, e), Some('-' | '.' | ' ')).then_some(())?;
            let (line, e) = group(t, e + 1, 4)?;
            (!alnum_at(t, e)).then(|| (e, read(&[area, ex, line], false)))
        }
        _ => {
            let (area, e) = group(t, i, 3)?;
            let sep = peek(t, e).filter(|s| matches!(s, '-' | '.'))?;
            let (ex, e) = group(t, e + 1, 3)?;
            (peek(t, e) == Some(sep)).then_some(())?;
            let (line, e) = group(t, e + 1, 4)?;
            let glued =
                alnum_at(t, e) || (peek(t, e) == Some(sep) && crate::scan::digit_at(t, e + 1));
            (!glued).then(|| (e, read(&[area, ex, line], false)))
        }
    }
}
