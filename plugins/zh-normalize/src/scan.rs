//! Small, panic-free helpers to look at the text around a byte position.
//!
//! Positions are byte offsets into a `&str` that always sit on a character
//! boundary: the recognizers only ever step over ASCII bytes or whole
//! characters, and every helper here returns `None` / `false` rather than
//! slicing out of bounds.

/// A recognized piece of text: it ends at byte `end` (exclusive) and is
/// read as `reading`.
#[derive(Debug, PartialEq, Eq)]
pub struct Match {
    pub end: usize,
    pub reading: String,
}

/// The byte at `pos`, if any.
pub fn byte_at(text: &str, pos: usize) -> Option<u8> {
    text.as_bytes().get(pos).copied()
}

/// True when there is an ASCII digit at `pos`.
pub fn digit_at(text: &str, pos: usize) -> bool {
    byte_at(text, pos).is_some_and(|b| b.is_ascii_digit())
}

/// The end of the run of ASCII digits starting at `pos` (`pos` itself when
/// there is none).
pub fn digit_run_end(text: &str, pos: usize) -> usize {
    let mut end = pos;
    while digit_at(text, end) {
        end += 1;
    }
    end
}

/// The run of ASCII digits starting at `pos` and where it ends.
pub fn digit_run(text: &str, pos: usize) -> (&str, usize) {
    let end = digit_run_end(text, pos);
    (text.get(pos..end).unwrap_or(""), end)
}

/// The text from `pos` on (empty when `pos` is out of range or not on a
/// character boundary).
pub fn rest(text: &str, pos: usize) -> &str {
    text.get(pos..).unwrap_or("")
}

/// The character just before `pos`.
pub fn char_before(text: &str, pos: usize) -> Option<char> {
    text.get(..pos).and_then(|head| head.chars().next_back())
}

/// The value of a run of at most four digits (for months, hours, …).
pub fn small_value(digits: &str) -> Option<u32> {
    if digits.is_empty() || digits.len() > 4 {
        return None;
    }
    digits.parse().ok()
}

/// If a range separator (`-`, `~`, `～`, `–`) starts at `pos`, its length in
/// bytes.
pub fn range_separator_len(text: &str, pos: usize) -> Option<usize> {
    let r = rest(text, pos);
    ["-", "~", "～", "–"]
        .iter()
        .find(|sep| r.starts_with(**sep))
        .map(|sep| sep.len())
}

/// If a minus sign (`-` or `−`) that really is a sign starts at `pos`, its
/// length in bytes. It is a sign only when a digit follows and the
/// character before it cannot be the left side of a range or a code
/// (`3-5`, `A-12`, `1.-2` are not negatives).
pub fn minus_sign_len(text: &str, pos: usize) -> Option<usize> {
    let r = rest(text, pos);
    let len = ["-", "−"].iter().find(|s| r.starts_with(**s))?.len();
    if !digit_at(text, pos + len) {
        return None;
    }
    match char_before(text, pos) {
        Some(c) if c.is_ascii_alphanumeric() || ".-/:_~".contains(c) => None,
        _ => Some(len),
    }
}

/// True when `pos` starts a number: a digit that does not continue a digit
/// run, or a minus sign before one.
pub fn starts_number(text: &str, pos: usize) -> bool {
    if digit_at(text, pos) {
        return !char_before(text, pos).is_some_and(|c| c.is_ascii_digit());
    }
    minus_sign_len(text, pos).is_some()
}

/// True when a decimal part (`.` and a digit) starts at `pos`.
pub fn decimal_part_at(text: &str, pos: usize) -> bool {
    byte_at(text, pos) == Some(b'.') && digit_at(text, pos + 1)
}

/// Full-width digits (０-９, common in Chinese text) become ASCII digits so
/// every recognizer only has to know one kind.
pub fn fold_fullwidth_digits(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '０'..='９' => {
                char::from_u32(u32::from(c) - u32::from('０') + u32::from('0')).unwrap_or(c)
            }
            _ => c,
        })
        .collect()
}
