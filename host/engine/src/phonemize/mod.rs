//! Text → Piper phonemes → phoneme ids, with espeak-ng, reproducing Piper 1.8
//! (`piper-tts`, `PiperVoice.phonemize` + `phonemes_to_ids`).
//!
//! Pipeline, as Piper does it:
//! 1. The text is split around inline phoneme blocks `[[ h ə l oʊ ]]`, whose contents
//!    are passed through as phonemes (one per codepoint, whitespace kept). ARPAbet runs
//!    in CosyVoice 3 style (`[M][AY0][N][UW1][T]`) are turned into such blocks first
//!    (an extension of ours, see `inline::arpabet_to_ipa`).
//! 2. Every other part goes to espeak-ng clause by clause (IPA). Each clause's
//!    punctuation (`.` `?` `!`, or `,` `:` `;` followed by a space) is appended, language
//!    switch flags such as `(en)` are removed, the string is NFD-normalised and split into
//!    codepoints. A clause whose terminator carries espeak's "sentence" bit closes the
//!    sentence.
//! 3. [`Phonemizer::to_ids`] maps a sentence to ids: `^`, `_`, then each phoneme
//!    followed by `_`, then `$`.
//!
//! Piper gets the clause terminator from `espeak_TextToPhonemesWithTerminator`, which
//! Debian 12's espeak-ng 1.51 lacks. We get the very same value by wrapping espeak's
//! internal `ReadClause` at link time (see `espeak_ffi` and the build script), so the
//! clause boundaries are espeak's own, not a re-implementation of its rules.
//!
//! Piper bundles espeak-ng 1.52 with its own data; Debian's 1.51 writes two things
//! differently for `en-us`, which we translate (see `adapt_to_espeak_1_52`): the linking
//! `ʲ` after `i` vowels before a vowel, and `ɔːɹ` for `oːɹ`. Measured: 57 texts
//! (80 sentences, 6 046 ids, tests/fixtures/piper_golden.json) identical to Piper 1.8.
//! Other dictionary changes between 1.51 and 1.52 (new `en_list` / `en_rules` entries,
//! e.g. Shavian letters) are not covered and may still differ on rare words.
//!
//! espeak-ng keeps global state and is not thread-safe: all calls go through one global
//! lock, and espeak is initialised once per process.
//!
//! Licence note: espeak-ng is GPL-3.0-or-later; a binary linking it is a GPL-3.0 work.
//!
//! Where each step lives: [`Phonemizer`] (this file) runs the pipeline; `espeak` holds the
//! espeak-ng session (global lock, clause loop with terminators) and the 1.51 → 1.52
//! output patching; `inline` the `[[ … ]]` blocks and ARPAbet; `ids` the mapping of
//! phonemes to Piper's ids; `espeak_ffi` the hand-written bindings and the linker-wrapped
//! `ReadClause`.

mod espeak;
mod espeak_ffi;
mod ids;
mod inline;

use espeak::{clauses_to_sentences, ensure_initialized, espeak_clauses, lock_espeak, set_voice};
use inline::{append_inline_phonemes, expand_arpabet, split_phoneme_blocks, Part};

/// Errors from phonemization.
#[derive(Debug, thiserror::Error)]
pub enum PhonemizeError {
    /// `espeak_Initialize` failed, typically because espeak-ng-data is missing.
    #[error("espeak-ng failed to initialise (code {0}); is the espeak-ng-data package installed?")]
    Init(i32),
    /// The voice name cannot be passed to C.
    #[error("espeak-ng voice name {0:?} contains a NUL character")]
    VoiceNameNul(String),
    /// espeak-ng does not know the voice.
    #[error("espeak-ng has no voice named {voice:?} (error code {code})")]
    UnknownVoice {
        /// The voice name that was asked for.
        voice: String,
        /// espeak's `espeak_ERROR` code.
        code: i32,
    },
    /// The text contains a NUL character, which would silently truncate it in C.
    #[error("text contains a NUL character at byte offset {0}")]
    TextNul(usize),
    /// espeak-ng could not decode the text.
    #[error("espeak-ng could not decode the text as UTF-8")]
    Decode,
    /// espeak-ng translated a clause without reading it, or did not advance in the text.
    #[error("espeak-ng reported no clause terminator (is the binary linked with -Wl,--wrap=ReadClause?) or did not advance")]
    NoProgress,
    /// The caller stopped phonemization (its deadline passed or its client left).
    #[error("phonemization stopped by the caller")]
    Stopped,
    /// The text makes more phonemes than the caller takes.
    #[error("the text makes more than {limit} phonemes")]
    TooManyPhonemes { limit: usize },
}

/// One sentence's phonemes, with where inline `[[ … ]]` phonemes (and ARPAbet
/// converted to them) sit: a long sentence is never split inside those.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sentence {
    pub phonemes: Vec<String>,
    /// Index ranges into `phonemes`.
    pub inline: Vec<std::ops::Range<usize>>,
}

/// Phonemizes text the way Piper 1.8 does for espeak voices.
///
/// Create it once ([`Phonemizer::new`] initialises espeak-ng); it is cheap to share:
/// calls from several threads are serialised on one global lock.
#[derive(Debug)]
pub struct Phonemizer {
    _initialised: (),
}

impl Phonemizer {
    /// Initialises espeak-ng (once per process) with its default data directory.
    pub fn new() -> Result<Self, PhonemizeError> {
        let mut state = lock_espeak();
        ensure_initialized(&mut state)?;
        Ok(Self { _initialised: () })
    }

    /// Text → sentences → phonemes (single codepoints after NFD, language flags
    /// stripped, clause punctuation kept). `voice` is the espeak voice of the model's
    /// config (`espeak.voice`, e.g. `en-us`).
    ///
    /// Inline `[[ … ]]` blocks are passed through as phonemes, and CosyVoice-style
    /// ARPAbet runs (`[M][AY0][N][UW1][T]`) are converted to IPA first.
    pub fn phonemize(&self, text: &str, voice: &str) -> Result<Vec<Vec<String>>, PhonemizeError> {
        Ok(self
            .phonemize_marked(text, voice, usize::MAX, &|| false)?
            .into_iter()
            .map(|s| s.phonemes)
            .collect())
    }

    /// [`Phonemizer::phonemize`], with the inline phonemes of each sentence
    /// marked, `stop` asked between espeak's clauses and the text's parts (a
    /// text of thousands of characters takes a while; a caller past its
    /// deadline stops early), and at most `max_phonemes` made: past it,
    /// [`PhonemizeError::TooManyPhonemes`] at once, not at the end.
    pub fn phonemize_marked(
        &self,
        text: &str,
        voice: &str,
        max_phonemes: usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<Sentence>, PhonemizeError> {
        if let Some(position) = text.find('\0') {
            return Err(PhonemizeError::TextNul(position));
        }
        let parts = expand_arpabet(split_phoneme_blocks(text));
        let mut state = lock_espeak();
        ensure_initialized(&mut state)?;
        let mut sentences: Vec<Sentence> = Vec::new();
        let mut previous_was_phonemes = false;
        let mut total = 0usize;
        for (index, part) in parts.iter().enumerate() {
            if stop() {
                return Err(PhonemizeError::Stopped);
            }
            match part {
                Part::Phonemes(inner) => {
                    previous_was_phonemes = true;
                    if sentences.is_empty() {
                        sentences.push(Sentence::default());
                    }
                    if let Some(last) = sentences.last_mut() {
                        let before = last.phonemes.len();
                        append_inline_phonemes(&mut last.phonemes, &parts, index, inner);
                        total += last.phonemes.len() - before;
                        if last.phonemes.len() > before {
                            last.inline.push(before..last.phonemes.len());
                        }
                    }
                }
                Part::Text(text) => {
                    set_voice(voice)?;
                    let mut new = clauses_to_sentences(&espeak_clauses(text, voice, stop)?);
                    total += new.iter().map(Vec::len).sum::<usize>();
                    if previous_was_phonemes && !new.is_empty() {
                        // Continue the sentence that the inline phonemes started.
                        let first = new.remove(0);
                        if let Some(last) = sentences.last_mut() {
                            last.phonemes.extend(first);
                        }
                    }
                    sentences.extend(new.into_iter().map(|phonemes| Sentence {
                        phonemes,
                        inline: Vec::new(),
                    }));
                    previous_was_phonemes = false;
                }
            }
            // Refused as soon as the text passes the budget, not at its end.
            if total > max_phonemes {
                return Err(PhonemizeError::TooManyPhonemes {
                    limit: max_phonemes,
                });
            }
        }
        if sentences.last().is_some_and(|s| s.phonemes.is_empty()) {
            sentences.pop();
        }
        Ok(sentences)
    }
}
