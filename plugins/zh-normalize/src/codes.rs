//! Numbers that are names, not amounts: phone numbers, verification codes,
//! room numbers, ids. They are read digit by digit, with 1 as 幺 when
//! `yao_for_one` is on (幺三八…).
//!
//! A digit run is a code when it is:
//! - an 11-digit mobile number starting with 1 (`13812345678`), also
//!   grouped 3-4-4 with spaces (`138 1234 5678`);
//! - a dashed chain of 7 or more digits with 3+ groups or a leading zero
//!   (`138-1234-5678`, `400-800-8888`, `010-12345678`); groups are kept
//!   apart by a short pause;
//! - a dotted chain of 3+ parts (`192.168.1.1` → 一九二点一六八点一点一,
//!   `1.10.2` → 一点十点二): short parts as cardinals, long ones digit by
//!   digit;
//! - written with leading zeros (`007`, `0386`);
//! - right after a context word (`电话`, `房间号 301`, `验证码：4821`; see
//!   `readings::CONTEXT_FILLERS` for what may stand between);
//! - three or more digits glued after a Latin letter (`A380`, `K101`);
//!   one or two digits there stay cardinals (`G20` → G二十).
//!
//! A run followed by a decimal part, `%` or a `,ddd` group is an amount,
//! never a code.

use crate::normalizer::Normalizer;
use crate::numbers::{cardinal, digit_by_digit};
use crate::readings::{CONTEXT_FILLERS, MAX_CONTEXT_FILLERS};
use crate::scan::{byte_at, char_before, decimal_part_at, digit_at, digit_run, Match};

/// Fewest digits in a dashed chain for it to be a phone number rather than
/// a range (`3-5`) or a score.
const MIN_CHAIN_DIGITS: usize = 7;

pub fn read(text: &str, pos: usize, n: &Normalizer) -> Option<Match> {
    if !n.settings.rules.digits || !digit_at(text, pos) {
        return None;
    }
    dashed_chain(text, pos, n)
        .or_else(|| spaced_mobile(text, pos, n))
        .or_else(|| dotted_chain(text, pos, n))
        .or_else(|| single_code(text, pos, n))
}

fn spell(n: &Normalizer, digits: &str) -> String {
    digit_by_digit(n.words, digits, n.settings.yao_for_one)
}

/// Digit groups separated by `sep` from `pos` on: the groups and the end.
fn groups(text: &str, pos: usize, sep: u8) -> (Vec<&str>, usize) {
    let (first, mut end) = digit_run(text, pos);
    let mut found = vec![first];
    while byte_at(text, end) == Some(sep) && digit_at(text, end + 1) {
        let (group, group_end) = digit_run(text, end + 1);
        found.push(group);
        end = group_end;
    }
    (found, end)
}

fn dashed_chain(text: &str, pos: usize, n: &Normalizer) -> Option<Match> {
    let (parts, end) = groups(text, pos, b'-');
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let phone_like = parts.len() >= 3 || parts[0].starts_with('0');
    if parts.len() < 2 || total < MIN_CHAIN_DIGITS || !phone_like {
        return None;
    }
    let spelled: Vec<String> = parts.iter().map(|p| spell(n, p)).collect();
    Some(Match {
        end,
        reading: spelled.join(n.words.group_pause),
    })
}

fn spaced_mobile(text: &str, pos: usize, n: &Normalizer) -> Option<Match> {
    let (parts, end) = groups(text, pos, b' ');
    let lengths: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    if lengths != [3, 4, 4] || !parts[0].starts_with('1') {
        return None;
    }
    let spelled: Vec<String> = parts.iter().map(|p| spell(n, p)).collect();
    Some(Match {
        end,
        reading: spelled.join(n.words.group_pause),
    })
}

fn dotted_chain(text: &str, pos: usize, n: &Normalizer) -> Option<Match> {
    let (parts, end) = groups(text, pos, b'.');
    if parts.len() < 3 {
        return None;
    }
    let w = n.words;
    let spoken: Vec<String> = parts
        .iter()
        .map(|p| {
            if p.len() <= 2 && (p.len() == 1 || !p.starts_with('0')) {
                cardinal(w, p, false)
            } else {
                digit_by_digit(w, p, false)
            }
        })
        .collect();
    Some(Match {
        end,
        reading: spoken.join(w.point),
    })
}

fn single_code(text: &str, pos: usize, n: &Normalizer) -> Option<Match> {
    let (run, end) = digit_run(text, pos);
    let is_amount = decimal_part_at(text, end)
        || matches!(byte_at(text, end), Some(b'%'))
        || text.get(end..).is_some_and(|r| r.starts_with('％'))
        || (byte_at(text, end) == Some(b',') && digit_at(text, end + 1));
    if run.is_empty() || is_amount {
        return None;
    }
    let mobile = run.len() == 11 && run.starts_with('1');
    let leading_zero = run.len() >= 2 && run.starts_with('0');
    let letter_code =
        run.len() >= 3 && char_before(text, pos).is_some_and(|c| c.is_ascii_alphabetic());
    if mobile || leading_zero || letter_code || after_context_word(text, pos, n) {
        return Some(Match {
            end,
            reading: spell(n, run),
        });
    }
    None
}

/// True when one of `digit_context_words` ends just before `pos`, with at
/// most a few filler characters (spaces, colons, 是, 号 …) in between.
fn after_context_word(text: &str, pos: usize, n: &Normalizer) -> bool {
    let Some(mut head) = text.get(..pos) else {
        return false;
    };
    for _ in 0..=MAX_CONTEXT_FILLERS {
        if n.settings
            .digit_context_words
            .iter()
            .any(|w| head.ends_with(w.as_str()))
        {
            return true;
        }
        match head.chars().next_back() {
            Some(c) if CONTEXT_FILLERS.contains(&c) => head = &head[..head.len() - c.len_utf8()],
            _ => return false,
        }
    }
    false
}
