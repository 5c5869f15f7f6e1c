//! Long sentences cut into pieces the model takes in one call.
//!
//! The text encoder's attention costs memory and time with the square of a
//! call's phoneme ids, and one unpunctuated paragraph is one sentence to
//! espeak. A sentence over the cap is cut at clause punctuation first (`,` `;`
//! `:`, which espeak writes for `，、；：` too), then at a word boundary, and
//! only when a single word is longer than the cap, inside it. A cut never falls
//! inside inline `[[ … ]]` phonemes unless the block alone is over the cap. A
//! piece that does not end in punctuation gets a `,`: the model then makes the
//! pause a comma gets, and the pieces join at a natural boundary. Sentences
//! under the cap are left exactly as they are.

use crate::phonemize::Sentence;

/// Phonemes after which a sentence may be cut first.
const CLAUSE: &[&str] = &[",", ";", ":", "—", "、", "，", "；", "："];
/// Phonemes a piece may end with as it is (no comma added).
const ENDS: &[&str] = &[
    ",", ";", ":", ".", "!", "?", "—", "、", "，", "；", "：", "。", "！", "？",
];

/// Phonemes per piece for a cap on the ids of one model call: Piper's ids are
/// `^ _ (phoneme _)* $`, two per phoneme plus three.
pub fn phonemes_for_ids(max_ids: usize) -> usize {
    (max_ids.saturating_sub(3) / 2).max(2)
}

/// `sentence` in pieces of at most `max` phonemes (see the module docs).
#[cfg(test)]
pub fn split_sentence(sentence: &Sentence, max: usize) -> Vec<Vec<String>> {
    split_first_smaller(sentence, max, max)
}

/// [`split_sentence`] whose first piece has at most `first` phonemes: a stream's
/// first audio then waits for a short model call, not for a long sentence.
pub fn split_first_smaller(sentence: &Sentence, first: usize, max: usize) -> Vec<Vec<String>> {
    let p = &sentence.phonemes;
    let first = first.clamp(2, max.max(2));
    if p.len() <= first {
        return vec![p.clone()];
    }
    let inside_inline = |cut: usize| sentence.inline.iter().any(|r| r.start < cut && cut < r.end);
    let mut pieces = Vec::new();
    let mut start = 0;
    loop {
        let cap = if pieces.is_empty() { first } else { max };
        if p.len() - start <= cap {
            break;
        }
        // Room for the comma a piece may get.
        let room = cap.saturating_sub(1).max(1);
        let end = start + room;
        // A cut at `c` means the piece is p[start..c]; never an empty piece.
        let allowed = |c: usize| c > start && !inside_inline(c);
        let after_clause = (start + room / 3..=end)
            .rev()
            .find(|&c| allowed(c) && CLAUSE.contains(&p[c - 1].as_str()));
        let at_word = || {
            (start + 1..=end)
                .rev()
                .find(|&c| allowed(c) && (p[c - 1] == " " || p[c] == " "))
        };
        let anywhere = || (start + 1..=end).rev().find(|&c| allowed(c));
        let cut = after_clause
            .or_else(at_word)
            .or_else(anywhere)
            .unwrap_or(end);
        let mut piece: Vec<String> = p[start..cut].to_vec();
        while piece.last().is_some_and(|s| s == " ") {
            piece.pop();
        }
        if !piece.last().is_some_and(|s| ENDS.contains(&s.as_str())) {
            piece.push(",".to_string());
        }
        if !piece.is_empty() {
            pieces.push(piece);
        }
        start = cut;
        while start < p.len() && p[start] == " " {
            start += 1;
        }
    }
    if start < p.len() {
        pieces.push(p[start..].to_vec());
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentence(text: &str) -> Sentence {
        Sentence {
            phonemes: text.chars().map(String::from).collect(),
            inline: Vec::new(),
        }
    }

    fn joined(pieces: &[Vec<String>]) -> Vec<String> {
        pieces.iter().map(|p| p.concat()).collect()
    }

    #[test]
    fn short_sentences_are_untouched() {
        let s = sentence("həlˈoʊ wˈɜːld.");
        assert_eq!(split_sentence(&s, 14), vec![s.phonemes.clone()]);
        assert_eq!(split_sentence(&s, 400), vec![s.phonemes]);
    }

    #[test]
    fn cuts_at_clauses_first_then_words_then_anywhere() {
        // A clause boundary inside the window wins over later word boundaries.
        let s = sentence("aaa bbb, ccc ddd eee fff.");
        assert_eq!(
            joined(&split_sentence(&s, 16)),
            ["aaa bbb,", "ccc ddd eee fff."]
        );
        // No clause: the last word boundary, with a comma's pause added.
        let s = sentence("aaa bbb ccc ddd eee fff ggg.");
        let pieces = joined(&split_sentence(&s, 12));
        assert_eq!(pieces, ["aaa bbb ccc,", "ddd eee fff,", "ggg."]);
        // One word longer than the cap: cut inside it, as a last resort.
        let s = sentence(&"a".repeat(25));
        let pieces = split_sentence(&s, 10);
        assert!(
            pieces.iter().all(|p| p.len() <= 10),
            "{:?}",
            joined(&pieces)
        );
        assert_eq!(pieces.iter().map(Vec::len).sum::<usize>(), 25 + 2);
    }

    #[test]
    fn the_first_piece_can_be_smaller() {
        let s = sentence("aaa bbb ccc ddd, eee fff ggg hhh iii jjj kkk.");
        let pieces = joined(&split_first_smaller(&s, 8, 40));
        assert_eq!(
            pieces,
            ["aaa bbb,", "ccc ddd, eee fff ggg hhh iii jjj kkk."]
        );
        // Short enough already: untouched.
        assert_eq!(split_first_smaller(&s, 100, 100), vec![s.phonemes.clone()]);
        assert_eq!(split_sentence(&s, 30), split_first_smaller(&s, 30, 30));
    }

    #[test]
    fn never_cuts_inside_inline_phonemes() {
        // "xx [[ pp qq rr ]] yy": the block's spaces are not cut points.
        let mut s = sentence("xx pp qq rr yy zz.");
        s.inline.push(3..11);
        for piece in split_sentence(&s, 10) {
            let text = piece.concat();
            assert!(
                !(text.contains("pp") ^ text.contains("rr")),
                "block split: {text:?}"
            );
        }
    }

    #[test]
    fn every_piece_fits_and_nothing_is_lost() {
        // A long mix of words, clauses and CJK clause marks.
        let text = "one two three, four five six; seven eight、nine ten eleven twelve ".repeat(40);
        let s = sentence(&text);
        for max in [12, 40, 199] {
            let pieces = split_sentence(&s, max);
            assert!(pieces.iter().all(|p| p.len() <= max && !p.is_empty()));
            let letters = |v: &[String]| {
                v.iter()
                    .flat_map(|p| p.chars())
                    .filter(|c| c.is_alphabetic())
                    .count()
            };
            let all: Vec<String> = pieces.concat();
            assert_eq!(letters(&all), letters(&s.phonemes));
        }
        assert_eq!(phonemes_for_ids(400), 198);
    }
}
