//! Sentences out of streamed text. A language model's tokens arrive as
//! `synthesize-chunk` pieces that split words and sentences anywhere; a
//! sentence is handed on as soon as it is known to be complete, so its audio
//! can start while the rest is still being written.
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
