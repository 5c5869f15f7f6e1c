//! Sentences out of streamed text. A language model's tokens arrive as
//! Wyoming `synthesize-chunk` pieces that split words and sentences anywhere;
//! a sentence is handed on as soon as it is known to be complete, so its
//! audio can start while the rest is still being written. [`pieces`] uses
//! the same rules to cut a long text into pieces of a few sentences, which a
//! stream speaks one after the other.
//!
//! A sentence ends at `.`, `!`, `?`, `…` or `;` (and closing quotes or
//! brackets after them) once whitespace follows, so "3.5" and "e.g." inside a
//! word wait for more text; at a full-width terminator (`。！？；`) at once,
//! as CJK text has no spaces; and at a blank line. A period after a common
//! abbreviation ("Dr.", "e.g.") or a single letter (an initial) does not end one.

/// Collects streamed text and yields complete sentences.
#[derive(Debug, Default)]
pub struct SentenceSplitter {
    pending: String,
}

/// Abbreviations whose period does not end a sentence (lower case).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "no", "mt", "ft",
    "approx", "inc", "ltd", "co", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept",
    "oct", "nov", "dec",
];

impl SentenceSplitter {
    /// Adds a piece of text; returns the sentences it completed, in order.
    pub fn push(&mut self, piece: &str) -> Vec<String> {
        self.pending.push_str(piece);
        let mut out = Vec::new();
        while let Some(end) = self.boundary() {
            let rest = self.pending.split_off(end);
            let sentence = std::mem::replace(&mut self.pending, rest);
            let sentence = sentence.trim();
            if !sentence.is_empty() {
                out.push(sentence.to_string());
            }
        }
        out
    }

    /// What is left when the stream ends (the last sentence, maybe unterminated).
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_string())
    }

    /// The byte offset just after the first complete sentence, if any.
    fn boundary(&self) -> Option<usize> {
        let text = &self.pending;
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        for (i, &(at, c)) in chars.iter().enumerate() {
            if c == '\n' && i > 0 && chars[i - 1].1 == '\n' {
                return Some(at + 1);
            }
            if "。！？；".contains(c) {
                let mut end = i + 1;
                while end < chars.len() && is_closer(chars[end].1) {
                    end += 1;
                }
                return Some(chars.get(end).map_or(text.len(), |&(b, _)| b));
            }
            if ".!?…;".contains(c) {
                let mut end = i + 1;
                while end < chars.len()
                    && (is_closer(chars[end].1) || ".!?…".contains(chars[end].1))
                {
                    end += 1;
                }
                // Complete only once whitespace is seen after it.
                let &(b, next) = chars.get(end)?;
                if !next.is_whitespace() {
                    continue;
                }
                if c == '.' && abbreviation_before(&text[..at]) {
                    continue;
                }
                return Some(b);
            }
        }
        None
    }
}

/// `text` cut into pieces of at least `target` characters (the last may be
/// shorter) at sentence ends; a run of more than `2 × target` characters
/// without one is cut at its last whitespace before that (or anywhere, if
/// it has none), so every piece is at most about `2 × target` characters.
/// Whitespace between sentences becomes one space; the text is otherwise
/// unchanged.
pub fn pieces(text: &str, target: usize) -> Vec<String> {
    let target = target.max(1);
    let mut splitter = SentenceSplitter::default();
    let mut out = Vec::new();
    let mut piece = String::new();
    let add = |sentence: String, piece: &mut String, out: &mut Vec<String>| {
        if !piece.is_empty() {
            piece.push(' ');
        }
        piece.push_str(&sentence);
        if piece.chars().count() >= target {
            out.push(std::mem::take(piece));
        }
    };
    // Fed in slices, so the splitter's pending text (which it rescans)
    // stays short.
    let mut rest = text;
    while !rest.is_empty() {
        let mut at = rest.len().min(256);
        while !rest.is_char_boundary(at) {
            at += 1;
        }
        let (slice, tail) = rest.split_at(at);
        rest = tail;
        for sentence in splitter.push(slice) {
            add(sentence, &mut piece, &mut out);
        }
        while let Some(head) = splitter.cut_longer_than(2 * target) {
            add(head, &mut piece, &mut out);
        }
    }
    if let Some(last) = splitter.finish() {
        add(last, &mut piece, &mut out);
    }
    if !piece.is_empty() {
        out.push(piece);
    }
    out
}

impl SentenceSplitter {
    /// When the text waiting for a sentence end is longer than `max`
    /// characters, its head up to the last whitespace before `max` (or the
    /// first `max` characters if there is none), trimmed.
    fn cut_longer_than(&mut self, max: usize) -> Option<String> {
        let (end, _) = self.pending.char_indices().nth(max)?;
        let at = self.pending[..end]
            .rfind(char::is_whitespace)
            .filter(|&i| i > 0)
            .unwrap_or(end);
        let rest = self.pending.split_off(at);
        let head = std::mem::replace(&mut self.pending, rest);
        let head = head.trim();
        (!head.is_empty()).then(|| head.to_string())
    }
}

fn is_closer(c: char) -> bool {
    "\"'”’)]}»」』）".contains(c)
}

/// Whether the word before a period is an abbreviation or an initial.
fn abbreviation_before(text: &str) -> bool {
    let word = text
        .rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"')
        .next()
        .unwrap_or("");
    let lower = word.to_lowercase();
    let single = word.chars().count() == 1 && word.chars().all(char::is_alphabetic);
    single || ABBREVIATIONS.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_at_sentence_ends_and_unpunctuated_runs_at_spaces() {
        let sentence = "This is a sentence of about forty chars. ";
        let text = sentence.repeat(100);
        let p = pieces(&text, 200);
        assert!(p.len() >= 15, "{}", p.len());
        for piece in &p[..p.len() - 1] {
            let n = piece.chars().count();
            assert!((200..260).contains(&n), "{n}: {piece}");
            assert!(piece.ends_with('.'), "{piece}");
        }
        assert_eq!(p.join(" "), text.trim_end());

        // No sentence end at all: cut at spaces, at most 2 × target.
        let zeros = "0 ".repeat(5000);
        let p = pieces(&zeros, 100);
        assert!(p.iter().all(|s| s.chars().count() <= 200), "{p:?}");
        assert_eq!(p.join(" "), zeros.trim_end());
        // No space either: cut anywhere, every character kept.
        let solid = "字".repeat(1000);
        let p = pieces(&solid, 100);
        assert!(p.iter().all(|s| s.chars().count() <= 200));
        assert_eq!(p.concat(), solid);
        // A short text is one piece, as it was.
        assert_eq!(pieces("Hello there. Bye.", 200), vec!["Hello there. Bye."]);
    }

    /// Feeds `pieces` one by one; returns what each push yielded and the rest.
    fn run(pieces: &[&str]) -> (Vec<Vec<String>>, Option<String>) {
        let mut s = SentenceSplitter::default();
        let yielded = pieces.iter().map(|p| s.push(p)).collect();
        (yielded, s.finish())
    }

    #[test]
    fn a_sentence_is_yielded_once_whitespace_follows_its_end() {
        let (y, rest) = run(&["Hel", "lo wor", "ld.", " How a", "re you? I'm", " fine"]);
        assert_eq!(
            y[2],
            Vec::<String>::new(),
            "'.' at the end of a piece may be '3.5'"
        );
        assert_eq!(y[3], vec!["Hello world.".to_string()]);
        assert_eq!(y[4], vec!["How are you?".to_string()]);
        assert_eq!(rest.as_deref(), Some("I'm fine"));
    }

    #[test]
    fn numbers_abbreviations_and_initials_do_not_end_sentences() {
        let (y, rest) = run(&[
            "It costs 3.50 dollars, said Dr. Smith and J. R. R. Tolkien. ",
            "Next",
        ]);
        assert_eq!(
            y[0],
            vec!["It costs 3.50 dollars, said Dr. Smith and J. R. R. Tolkien.".to_string()]
        );
        assert_eq!(rest.as_deref(), Some("Next"));
    }

    #[test]
    fn closing_quotes_ellipses_cjk_and_blank_lines() {
        let (y, _) = run(&["He said \"stop!\" Then... ", "silence.\n\nA list"]);
        assert_eq!(
            y[0],
            vec!["He said \"stop!\"".to_string(), "Then...".to_string()]
        );
        assert_eq!(y[1], vec!["silence.".to_string()]);
        let (y, rest) = run(&["你好。今天", "天气很好！明"]);
        assert_eq!(y[0], vec!["你好。".to_string()]);
        assert_eq!(y[1], vec!["今天天气很好！".to_string()]);
        assert_eq!(rest.as_deref(), Some("明"));
        assert_eq!(run(&["  ", "\n"]).1, None);
    }
}
