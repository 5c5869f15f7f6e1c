//! Helpers to look around a byte position in the text. Every lookup is
//! checked (`str::get`), so a position that is not a character boundary
//! gives "nothing there" instead of a panic. Look-behind and look-ahead for
//! context words are capped at [`CONTEXT_BYTES`] so that pathological input
//! (one megabyte without a space) stays linear-time.

/// How far context lookups (previous/next word) may reach.
pub const CONTEXT_BYTES: usize = 64;

/// The text from `i` on ("" when out of range).
pub fn rest(t: &str, i: usize) -> &str {
    t.get(i..).unwrap_or("")
}

/// The character at `i`.
pub fn peek(t: &str, i: usize) -> Option<char> {
    rest(t, i).chars().next()
}

/// The character just before `i`.
pub fn prev_char(t: &str, i: usize) -> Option<char> {
    t.get(..i).and_then(|s| s.chars().next_back())
}

/// End of the run of ASCII digits starting at `i`.
pub fn digit_end(t: &str, i: usize) -> usize {
    i + rest(t, i).bytes().take_while(u8::is_ascii_digit).count()
}

/// True when the character at `i` is an ASCII digit.
pub fn digit_at(t: &str, i: usize) -> bool {
    rest(t, i)
        .as_bytes()
        .first()
        .is_some_and(u8::is_ascii_digit)
}

/// True when the character at `i` is a letter or digit.
pub fn alnum_at(t: &str, i: usize) -> bool {
    peek(t, i).is_some_and(char::is_alphanumeric)
}

/// The slice of at most [`CONTEXT_BYTES`] ending at `i`, cut on a boundary.
fn window_before(t: &str, i: usize) -> (usize, &str) {
    let mut start = i.saturating_sub(CONTEXT_BYTES);
    while start < i && !t.is_char_boundary(start) {
        start += 1;
    }
    (start, t.get(start..i).unwrap_or(""))
}

/// The whitespace-delimited token before `i` (skipping whitespace), with
/// its start position: for "lives on Elm Dr." at `Dr.` it is `Elm`.
pub fn prev_token(t: &str, i: usize) -> Option<(usize, &str)> {
    let (start, w) = window_before(t, i);
    let trimmed = w.trim_end();
    let tok_start = trimmed
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(p, c)| p + c.len_utf8());
    let tok = &trimmed[tok_start..];
    if tok.is_empty() {
        None
    } else {
        Some((start + tok_start, tok))
    }
}

/// The letters of the word before `i`, lower-cased ("In 1999" → "in").
pub fn prev_word_lower(t: &str, i: usize) -> String {
    prev_token(t, i)
        .map(|(_, tok)| {
            tok.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .unwrap_or_default()
}

/// The letters of the word after `i` (after whitespace), lower-cased.
pub fn next_word_lower(t: &str, i: usize) -> String {
    let r = rest(t, i);
    let r = r.trim_start();
    r.chars()
        .take(CONTEXT_BYTES)
        .take_while(|c| c.is_alphabetic())
        .collect::<String>()
        .to_lowercase()
}

/// True when `pos` starts a sentence: nothing before it but whitespace, or
/// the previous non-space character ends a sentence.
pub fn sentence_start(t: &str, pos: usize) -> bool {
    let (_, w) = window_before(t, pos);
    match w.trim_end().chars().next_back() {
        None => true,
        Some(c) => matches!(c, '.' | '!' | '?'),
    }
}

/// True when whitespace then an upper-case letter follow `i`: the period
/// of an abbreviation there most likely also ends the sentence.
pub fn capital_follows(t: &str, i: usize) -> bool {
    let r = rest(t, i);
    let trimmed = r.trim_start();
    trimmed.len() < r.len() && trimmed.chars().next().is_some_and(char::is_uppercase)
}
