//! Where the spoken words of one model call lie in its audio, from the
//! model's own durations: no aligner. Piper's ids are `^ _ p _ p _ … $`
//! (see `phonemize::ids`), and espeak-ng separates words with a space
//! phoneme and ends clauses with punctuation phonemes; every other id is
//! part of a word. The duration predictor gives each id a whole number of
//! frames of `hop_length` samples, so a word starts where the frames of its
//! first phoneme start and ends where those of its last phoneme end.
//!
//! These are espeak-ng's words, not the text's: it joins some short words
//! ("in the" → `ɪnðə`) and reads digits as several. Mapping them back to
//! the words a client sent is the caller's job (the server's `tts::words`).

use std::collections::{HashMap, HashSet};

/// One word as spoken by one model call.
#[derive(Debug, Clone, PartialEq)]
pub struct SpokenWord {
    /// Seconds from the start of the call's audio.
    pub start: f64,
    pub end: f64,
    /// Phonemes in the word (ids that are not separators or pads).
    pub phonemes: usize,
}

/// The ids that are not part of a word: `^`, `$`, `_`, the space and the
/// punctuation phonemes of a voice's `phoneme_id_map`.
#[derive(Debug, Clone, Default)]
pub struct Separators {
    ids: HashSet<i64>,
    pad: HashSet<i64>,
    /// `$`: what follows the last word of a call.
    end: HashSet<i64>,
}

impl Separators {
    pub fn new(id_map: &HashMap<String, Vec<i64>>) -> Self {
        let mut ids = HashSet::new();
        let mut pad = HashSet::new();
        let mut end = HashSet::new();
        for (phoneme, mapped) in id_map {
            let mut chars = phoneme.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                continue;
            };
            if c == '_' {
                pad.extend(mapped);
            } else if c == '$' {
                ids.extend(mapped);
                end.extend(mapped);
            } else if c.is_whitespace() || c.is_ascii_punctuation() || "¡¿—–…«»“”„".contains(c)
            {
                ids.extend(mapped);
            }
        }
        // An id both a pad and something else (never in Piper's maps) counts
        // as a separator: better a word too short than two words joined.
        Separators { ids, pad, end }
    }

    fn splits(&self, id: i64) -> bool {
        self.ids.contains(&id)
    }
}

/// The words of one call: `ids` as synthesized, `durations` the frames of
/// each id (`SentenceRun::durations`), `seconds_per_frame` the voice's hop
/// over its sample rate. A word's end takes in the pad after its last
/// phoneme (the sound decays there), except at the end of the call, where
/// the model stretches that pad into the closing silence.
pub fn spoken_words(
    ids: &[i64],
    durations: &[u32],
    seconds_per_frame: f64,
    separators: &Separators,
) -> Vec<SpokenWord> {
    let mut words = Vec::new();
    let mut frame = 0u64;
    // (start, end with the pad, end of the last phoneme, phonemes)
    let mut open: Option<(u64, u64, u64, usize)> = None;
    for (&id, &d) in ids.iter().zip(durations) {
        let start = frame;
        frame += u64::from(d);
        if separators.splits(id) {
            if let Some((s, padded, bare, n)) = open.take() {
                let e = if separators.end.contains(&id) {
                    bare
                } else {
                    padded
                };
                words.push(word(s, e, n, seconds_per_frame));
            }
        } else if separators.pad.contains(&id) {
            if let Some(w) = open.as_mut() {
                w.1 = frame;
            }
        } else {
            let w = open.get_or_insert((start, frame, frame, 0));
            w.1 = frame;
            w.2 = frame;
            w.3 += 1;
        }
    }
    if let Some((s, _, bare, n)) = open {
        words.push(word(s, bare, n, seconds_per_frame));
    }
    words
}

fn word(start: u64, end: u64, phonemes: usize, seconds_per_frame: f64) -> SpokenWord {
    SpokenWord {
        start: start as f64 * seconds_per_frame,
        end: end as f64 * seconds_per_frame,
        phonemes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> HashMap<String, Vec<i64>> {
        [
            ("_", 0),
            ("^", 1),
            ("$", 2),
            (" ", 3),
            (".", 10),
            ("a", 14),
            ("b", 15),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), vec![*v]))
        .collect()
    }

    #[test]
    fn words_are_runs_of_phonemes_between_spaces_and_punctuation() {
        let seps = Separators::new(&map());
        // ^ _ a _ b _ " " _ a _ . _ $
        let ids = [1, 0, 14, 0, 15, 0, 3, 0, 14, 0, 10, 0, 2];
        let durs = [1, 2, 3, 1, 4, 1, 2, 0, 5, 1, 6, 1, 1];
        let words = spoken_words(&ids, &durs, 0.5, &seps);
        // "ab": frames 3..(3+3+1+4+1)=12 with its pad; "a": starts after
        // 3+3+1+4+1+2+0=14, 5 frames and its pad.
        assert_eq!(
            words,
            vec![
                SpokenWord {
                    start: 1.5,
                    end: 6.0,
                    phonemes: 2
                },
                SpokenWord {
                    start: 7.0,
                    end: 10.0,
                    phonemes: 1
                },
            ]
        );
    }

    #[test]
    fn the_last_word_of_a_call_ends_without_its_pad() {
        let seps = Separators::new(&map());
        // ^ _ a _ $: the pad before `$` is the closing silence.
        let words = spoken_words(&[1, 0, 14, 0, 2], &[1, 1, 2, 9, 1], 1.0, &seps);
        assert_eq!((words[0].start, words[0].end), (2.0, 4.0));
    }

    #[test]
    fn no_phonemes_no_words() {
        let seps = Separators::new(&map());
        assert!(spoken_words(&[1, 0, 10, 0, 2], &[3, 3, 3, 3, 3], 1.0, &seps).is_empty());
    }
}
