//! Text handling shared by the table and the matcher: one normalization for
//! both instructions and keywords (so they compare byte for byte), character
//! classes, and keyword search with word boundaries.
//!
//! Everything works on the *normalized* instruction; byte offsets returned
//! here are offsets into that normalized string.

/// Normalize text for matching: full-width ASCII (`！`, `Ｓ`) becomes ASCII,
/// curly apostrophes become `'`, letters are lowercased, runs of whitespace
/// become one space, and leading/trailing whitespace is dropped. Chinese
/// characters are left alone.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars().map(fold) {
        if c.is_whitespace() || c.is_control() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Fold one character: full-width forms to ASCII, the ideographic space to
/// a space, typographic apostrophes to `'`.
fn fold(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        '\u{2018}' | '\u{2019}' | '\u{02BC}' => '\'',
        _ => c,
    }
}

/// Han ideographs, kana and hangul: scripts written without spaces, where a
/// keyword may match anywhere (as a substring).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF        // hiragana, katakana
        | 0x3400..=0x4DBF      // CJK extension A
        | 0x4E00..=0x9FFF      // CJK unified ideographs
        | 0xAC00..=0xD7AF      // hangul syllables
        | 0xF900..=0xFAFF      // CJK compatibility ideographs
        | 0x20000..=0x2FA1F) // CJK extensions B–F, compatibility supplement
}

/// A character that belongs to a space-separated word (Latin letters,
/// digits, …): keywords made of such characters only match whole words.
pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() && !is_cjk(c)
}

/// Characters that end a clause: they bound the scope of a negation and
/// split the text searched for unmatched dialect requests. (Full-width
/// forms were folded to ASCII by [`normalize`].)
pub fn is_clause_break(c: char) -> bool {
    matches!(
        c,
        ',' | '.'
            | '!'
            | '?'
            | ';'
            | ':'
            | '。'
            | '、'
            | '…'
            | '~'
            | '\n'
            | '('
            | ')'
            | '"'
            | '「'
            | '」'
            | '《'
            | '》'
    )
}

/// A keyword as the matcher uses it: normalized text, and whether it is a
/// prefix (written with a trailing `*`, e.g. `whisper*` also matches
/// `whispering`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyword {
    pub text: String,
    pub prefix: bool,
}

impl Keyword {
    /// Parse a keyword as written in the config. `None` when nothing is left
    /// after normalization.
    pub fn parse(raw: &str) -> Option<Keyword> {
        let trimmed = raw.trim();
        let (body, prefix) = match trimmed.strip_suffix('*') {
            Some(body) => (body, true),
            None => (trimmed, false),
        };
        let text = normalize(body);
        if text.is_empty() {
            None
        } else {
            Some(Keyword { text, prefix })
        }
    }

    /// Byte ranges `[start, end)` of the keyword in `haystack` (normalized),
    /// honouring word boundaries: a keyword starting (ending) with a word
    /// character must not be glued to a word character before (after) it.
    /// A prefix keyword needs no boundary at its end.
    pub fn find_all(&self, haystack: &str) -> Vec<(usize, usize)> {
        let first_is_word = self.text.chars().next().is_some_and(is_word_char);
        let last_is_word = self.text.chars().next_back().is_some_and(is_word_char);
        haystack
            .match_indices(self.text.as_str())
            .map(|(start, m)| (start, start + m.len()))
            .filter(|&(start, end)| {
                let before_ok = !first_is_word
                    || !haystack[..start]
                        .chars()
                        .next_back()
                        .is_some_and(is_word_char);
                let after_ok = !last_is_word
                    || self.prefix
                    || !haystack[end..].chars().next().is_some_and(is_word_char);
                before_ok && after_ok
            })
            .collect()
    }
}

/// True when `cue` (normalized) occurs in `scope` with word boundaries.
pub fn contains_cue(scope: &str, cue: &Keyword) -> bool {
    !cue.find_all(scope).is_empty()
}

/// Cut `s` to at most `max` characters for quoting in a message.
pub fn quote_cut(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_folds_width_case_and_spaces() {
        assert_eq!(
            normalize("  Ｅxcited！  Speak\t SLOWLY "),
            "excited! speak slowly"
        );
        assert_eq!(normalize("用四川话，慢一点"), "用四川话,慢一点");
        assert_eq!(normalize("don’t"), "don't");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn english_keywords_match_whole_words_only() {
        let k = Keyword::parse("sad").unwrap();
        assert_eq!(k.find_all("so sad!"), vec![(3, 6)]);
        assert!(k.find_all("sadly").is_empty());
        assert!(k.find_all("crusade").is_empty());
        let p = Keyword::parse("Whisper*").unwrap();
        assert!(p.prefix);
        assert_eq!(p.find_all("whispering please"), vec![(0, 7)]);
        assert!(p.find_all("awhisper").is_empty());
    }

    #[test]
    fn chinese_keywords_match_as_substrings() {
        let k = Keyword::parse("四川话").unwrap();
        assert_eq!(k.find_all("用四川话说").len(), 1);
        // A Chinese keyword right after a Latin word still matches.
        assert_eq!(k.find_all("please四川话").len(), 1);
    }

    #[test]
    fn empty_keyword_is_rejected() {
        assert!(Keyword::parse("  ").is_none());
        assert!(Keyword::parse("*").is_none());
    }
}
