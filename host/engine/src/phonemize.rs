//! Text → Piper phonemes → phoneme ids, with espeak-ng, reproducing Piper 1.8
//! (`piper-tts`, `PiperVoice.phonemize` + `phonemes_to_ids`).
//!
//! Pipeline, as Piper does it:
//! 1. The text is split around inline phoneme blocks `[[ h ə l oʊ ]]`, whose contents
//!    are passed through as phonemes (one per codepoint, whitespace kept). ARPAbet runs
//!    in CosyVoice 3 style (`[M][AY0][N][UW1][T]`) are turned into such blocks first
//!    (an extension of ours, see [`arpabet_to_ipa`]).
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
//! internal `ReadClause` at link time (see `espeak_ffi.rs` and the build script), so the
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

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::raw::{c_int, c_void};
use std::sync::{Mutex, MutexGuard};

use unicode_normalization::UnicodeNormalization;

use super::espeak_ffi as ffi;

/// Phoneme that starts every id sequence (beginning of sentence).
pub const BOS: &str = "^";
/// Phoneme that ends every id sequence (end of sentence).
pub const EOS: &str = "$";
/// Padding phoneme inserted after BOS and after every phoneme.
pub const PAD: &str = "_";

// Clause terminator values of espeak-ng (`translate.h`), as Piper's bridge compares them
// after masking with `TERMINATOR_MASK`.
const CLAUSE_INTONATION_FULL_STOP: c_int = 0x0000_0000;
const CLAUSE_INTONATION_COMMA: c_int = 0x0000_1000;
const CLAUSE_INTONATION_QUESTION: c_int = 0x0000_2000;
const CLAUSE_INTONATION_EXCLAMATION: c_int = 0x0000_3000;
const CLAUSE_TYPE_CLAUSE: c_int = 0x0004_0000;
const CLAUSE_TYPE_SENTENCE: c_int = 0x0008_0000;
const CLAUSE_PERIOD: c_int = 40 | CLAUSE_INTONATION_FULL_STOP | CLAUSE_TYPE_SENTENCE;
const CLAUSE_COMMA: c_int = 20 | CLAUSE_INTONATION_COMMA | CLAUSE_TYPE_CLAUSE;
const CLAUSE_QUESTION: c_int = 40 | CLAUSE_INTONATION_QUESTION | CLAUSE_TYPE_SENTENCE;
const CLAUSE_EXCLAMATION: c_int = 45 | CLAUSE_INTONATION_EXCLAMATION | CLAUSE_TYPE_SENTENCE;
const CLAUSE_COLON: c_int = 30 | CLAUSE_INTONATION_FULL_STOP | CLAUSE_TYPE_CLAUSE;
const CLAUSE_SEMICOLON: c_int = 30 | CLAUSE_INTONATION_COMMA | CLAUSE_TYPE_CLAUSE;
/// Keeps pause, intonation, "optional space after" and clause type; drops the flags
/// (dot after last word, speak punctuation name, ...). Same mask as Piper's bridge.
const TERMINATOR_MASK: c_int = 0x000F_FFFF;

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
}

/// Global espeak-ng state: `Some(result)` once `espeak_Initialize` has been called.
/// The lock also serialises every other espeak call.
static ESPEAK: Mutex<Option<Result<(), i32>>> = Mutex::new(None);

/// Takes the global espeak lock. A poisoned lock is recovered: it only guards the
/// "initialised" flag, and every phonemize call starts espeak on a fresh text.
fn lock_espeak() -> MutexGuard<'static, Option<Result<(), i32>>> {
    ESPEAK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Initialises espeak-ng once per process (default data directory, synchronous mode).
fn ensure_initialized(state: &mut Option<Result<(), i32>>) -> Result<(), PhonemizeError> {
    let result = *state.get_or_insert_with(|| {
        // SAFETY: called under the global lock; NULL path = compiled-in data directory.
        let rate = unsafe {
            ffi::espeak_Initialize(
                ffi::AUDIO_OUTPUT_SYNCHRONOUS,
                0,
                std::ptr::null(),
                ffi::ESPEAK_INITIALIZE_DONT_EXIT,
            )
        };
        if rate < 0 {
            Err(rate)
        } else {
            Ok(())
        }
    });
    result.map_err(PhonemizeError::Init)
}

/// One clause as espeak-ng returns it.
#[derive(Debug, Clone, PartialEq)]
struct Clause {
    /// IPA phonemes, words separated by spaces, language flags still present.
    phonemes: String,
    /// Punctuation Piper appends: `.` `?` `!` `,` `:` `;` or nothing.
    punctuation: &'static str,
    /// Whether the terminator carries espeak's sentence bit.
    end_of_sentence: bool,
}

/// Maps a raw espeak terminator to the punctuation Piper appends (same table as Piper).
fn terminator_punctuation(terminator: c_int) -> &'static str {
    match terminator & TERMINATOR_MASK {
        CLAUSE_PERIOD => ".",
        CLAUSE_QUESTION => "?",
        CLAUSE_EXCLAMATION => "!",
        CLAUSE_COMMA => ",",
        CLAUSE_COLON => ":",
        CLAUSE_SEMICOLON => ";",
        _ => "",
    }
}

/// Selects the espeak voice (Piper does it before every text part).
fn set_voice(voice: &str) -> Result<(), PhonemizeError> {
    let name = CString::new(voice).map_err(|_| PhonemizeError::VoiceNameNul(voice.into()))?;
    // SAFETY: under the global lock; `name` outlives the call.
    let code = unsafe { ffi::espeak_SetVoiceByName(name.as_ptr()) };
    if code == ffi::EE_OK {
        Ok(())
    } else {
        Err(PhonemizeError::UnknownVoice {
            voice: voice.into(),
            code,
        })
    }
}

/// Runs espeak-ng over `text` clause by clause (the loop of Piper's `get_phonemes`).
/// Must be called under the global lock, after [`set_voice`].
fn espeak_clauses(text: &str, voice: &str) -> Result<Vec<Clause>, PhonemizeError> {
    let c_text = CString::new(text).map_err(|e| PhonemizeError::TextNul(e.nul_position()))?;
    let mut cursor: *const c_void = c_text.as_ptr().cast();
    let mut clauses = Vec::new();
    while !cursor.is_null() {
        let before = cursor;
        ffi::clear_last_terminator();
        // SAFETY: under the global lock; `cursor` points into `c_text` (NUL-terminated,
        // alive for the whole loop) and espeak only moves it forward or sets it to NULL.
        let phonemes = unsafe {
            ffi::espeak_TextToPhonemes(&mut cursor, ffi::ESPEAK_CHARS_AUTO, PHONEME_MODE)
        };
        if phonemes.is_null() {
            return Err(PhonemizeError::Decode);
        }
        // SAFETY: non-NULL, NUL-terminated, owned by espeak until its next call.
        let phonemes = unsafe { CStr::from_ptr(phonemes) }
            .to_string_lossy()
            .into_owned();
        let terminator = ffi::take_last_terminator().ok_or(PhonemizeError::NoProgress)?;
        if cursor == before {
            // Never observed; guards against looping forever on an espeak bug.
            return Err(PhonemizeError::NoProgress);
        }
        clauses.push(Clause {
            phonemes: adapt_to_espeak_1_52(&phonemes, voice),
            punctuation: terminator_punctuation(terminator),
            end_of_sentence: terminator & CLAUSE_TYPE_SENTENCE == CLAUSE_TYPE_SENTENCE,
        });
    }
    Ok(clauses)
}

/// Separator espeak writes between the phonemes of a word (private-use codepoint: never
/// part of espeak's output). Used only to see phonemes whose IPA is empty.
const PHONEME_SEPARATOR: char = '\u{E000}';
/// IPA output with [`PHONEME_SEPARATOR`] between phonemes (`phoneme_mode` bits 8–23).
const PHONEME_MODE: c_int = ffi::ESPEAK_PHONEMES_IPA | ((PHONEME_SEPARATOR as c_int) << 8);
/// Linking-j mark that Piper's espeak-ng (1.52) prints and Debian's 1.51 hides.
const LINKING_J: char = 'ʲ';

/// Turns a clause as Debian's espeak-ng 1.51 writes it (with phoneme separators) into
/// what Piper's bundled espeak-ng 1.52 writes, measured on `en-us`:
///
/// * espeak appends a linking phoneme `;` after `i`-type vowels before a vowel (`the
///   end`). 1.51 writes it as nothing, 1.52 as `ʲ` (`ðɪʲ ˈɛnd`). With separators on, the
///   empty phoneme is visible (`ð|ɪ| ˈɛ|n|d`), so we print `ʲ` there when the phoneme
///   before it is `i`, `iː`, `ɪ` or `ᵻ`.
/// * For `en-us`, espeak-ng 1.52 changed the IPA of phoneme `o@` (door, four) from `oːɹ`
///   to `ɔːɹ` (phsource/ph_english_us).
fn adapt_to_espeak_1_52(raw: &str, voice: &str) -> String {
    let pieces: Vec<&str> = raw.split(PHONEME_SEPARATOR).collect();
    let mut out = String::with_capacity(raw.len() + 8);
    for (index, piece) in pieces.iter().enumerate() {
        if index > 0 && is_linking_j(&pieces, index) {
            out.push(LINKING_J);
        }
        out.push_str(piece);
    }
    if voice.to_ascii_lowercase().starts_with("en-us") {
        out = out.replace("oːɹ", "ɔːɹ");
    }
    out
}

/// Whether the phoneme after separator number `index` is espeak's hidden linking `;`:
/// it writes no IPA, follows an `i` vowel and precedes a vowel. (Pauses, e.g. around
/// brackets, also write no IPA; they are not followed directly by a vowel phoneme.)
///
/// A separator is written only before a phoneme inside a word, and that phoneme writes
/// nothing but its IPA: so an empty piece, or one that starts the next word with a space,
/// follows a phoneme without IPA.
fn is_linking_j(pieces: &[&str], index: usize) -> bool {
    let piece = pieces[index];
    let next_phoneme = if piece.is_empty() {
        match pieces.get(index + 1) {
            Some(next) if !next.is_empty() && !next.starts_with(' ') => *next,
            _ => return false,
        }
    } else if let Some(next_word) = piece.strip_prefix(' ') {
        next_word
    } else {
        return false;
    };
    is_i_vowel(last_slot(pieces[index - 1])) && starts_with_vowel(next_phoneme)
}

/// Whether an IPA phoneme (stress marks ignored) starts with a vowel.
fn starts_with_vowel(ipa: &str) -> bool {
    ipa.trim_start_matches(['ˈ', 'ˌ'])
        .chars()
        .next()
        .is_some_and(|c| "aeiouyæɐɑɒɔəɚɛɜɝɞɘɤɨɪɯɵɶʉʊʌʏøœᵻ".contains(c))
}

/// The last phoneme slot of a piece: the text after its last word break.
fn last_slot(piece: &str) -> &str {
    piece.rsplit(' ').next().unwrap_or_default()
}

/// Whether a phoneme (stress marks ignored) is one of the `i` vowels that espeak's
/// English phoneme tables follow with the linking `;`.
fn is_i_vowel(slot: &str) -> bool {
    matches!(slot.trim_start_matches(['ˈ', 'ˌ']), "i" | "iː" | "ɪ" | "ᵻ")
}

/// Removes espeak's language switch flags, e.g. `(en)` or `(fr)`: every `(` … `)` with
/// at least one character inside (Piper's `\([^)]+\)`).
fn strip_language_flags(phonemes: &str) -> String {
    let mut out = String::with_capacity(phonemes.len());
    let mut rest = phonemes;
    while let Some(open) = rest.find('(') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(')') {
            Some(close) if close > 0 => rest = &after[close + 1..],
            _ => {
                out.push('(');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Groups clauses into sentences of single-codepoint phonemes (Piper's
/// `EspeakPhonemizer.phonemize`, without vowel-cluster merging, which only voices with
/// `vowel_clusters` in their config use).
fn clauses_to_sentences(clauses: &[Clause]) -> Vec<Vec<String>> {
    let mut sentences = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for clause in clauses {
        let mut text = strip_language_flags(&clause.phonemes);
        text.push_str(clause.punctuation);
        if matches!(clause.punctuation, "," | ":" | ";") {
            // Not a sentence boundary: keep the words apart.
            text.push(' ');
        }
        current.extend(text.nfd().map(String::from));
        if clause.end_of_sentence {
            sentences.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        // Text without a final sentence terminator.
        sentences.push(current);
    }
    sentences
}

/// A piece of the input text: plain text for espeak, or phonemes given inline.
#[derive(Debug, Clone, PartialEq)]
enum Part<'a> {
    Text(&'a str),
    /// Contents of a `[[ … ]]` block (brackets removed, not yet trimmed), or IPA
    /// converted from ARPAbet.
    Phonemes(String),
}

/// Splits text around `[[ … ]]` blocks like Piper's `re.split(r"(\[\[.*?\]\])")`:
/// shortest block, no newline inside. The result alternates text / phonemes and starts
/// and ends with text (possibly empty), which the space rules rely on.
fn split_phoneme_blocks(text: &str) -> Vec<Part<'_>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut search = 0;
    while let Some(offset) = text[search..].find("[[") {
        let open = search + offset;
        let inner_start = open + 2;
        let close = text[inner_start..].find("]]").map(|c| inner_start + c);
        match close {
            Some(close) if !text[inner_start..close].contains('\n') => {
                parts.push(Part::Text(&text[start..open]));
                parts.push(Part::Phonemes(text[inner_start..close].to_string()));
                start = close + 2;
                search = start;
            }
            // Like the regex: no block starts here, try from the next character.
            _ => search = open + 1,
        }
    }
    parts.push(Part::Text(&text[start..]));
    parts
}

/// Replaces ARPAbet runs inside text parts by phoneme parts, keeping the alternation.
fn expand_arpabet(parts: Vec<Part<'_>>) -> Vec<Part<'_>> {
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            Part::Text(text) => {
                let mut start = 0;
                for (run_start, run_end, ipa) in find_arpabet_runs(text) {
                    out.push(Part::Text(&text[start..run_start]));
                    out.push(Part::Phonemes(ipa));
                    start = run_end;
                }
                out.push(Part::Text(&text[start..]));
            }
            phonemes => out.push(phonemes),
        }
    }
    out
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
        if let Some(position) = text.find('\0') {
            return Err(PhonemizeError::TextNul(position));
        }
        let parts = expand_arpabet(split_phoneme_blocks(text));
        let mut state = lock_espeak();
        ensure_initialized(&mut state)?;
        let mut sentences: Vec<Vec<String>> = Vec::new();
        let mut previous_was_phonemes = false;
        for (index, part) in parts.iter().enumerate() {
            match part {
                Part::Phonemes(inner) => {
                    previous_was_phonemes = true;
                    append_inline_phonemes(&mut sentences, &parts, index, inner);
                }
                Part::Text(text) => {
                    set_voice(voice)?;
                    let mut new = clauses_to_sentences(&espeak_clauses(text, voice)?);
                    if previous_was_phonemes && !new.is_empty() {
                        // Continue the sentence that the inline phonemes started.
                        let first = new.remove(0);
                        if let Some(last) = sentences.last_mut() {
                            last.extend(first);
                        }
                    }
                    sentences.extend(new);
                    previous_was_phonemes = false;
                }
            }
        }
        if sentences.last().is_some_and(Vec::is_empty) {
            sentences.pop();
        }
        Ok(sentences)
    }

    /// Phonemes of one sentence → model ids: `^`, `_`, then each phoneme followed by
    /// `_`, then `$` (Piper's `phonemes_to_ids`). Phonemes missing from `id_map` are
    /// skipped and returned (in order, repeats included) so the caller can warn; a
    /// missing `^`, `_` or `$` is skipped and reported the same way.
    pub fn to_ids(
        phonemes: &[String],
        id_map: &HashMap<String, Vec<i64>>,
    ) -> (Vec<i64>, Vec<String>) {
        let mut ids = Vec::with_capacity(2 * phonemes.len() + 3);
        let mut missing = Vec::new();
        push_id(BOS, id_map, &mut ids, &mut missing);
        push_id(PAD, id_map, &mut ids, &mut missing);
        for phoneme in phonemes {
            if push_id(phoneme, id_map, &mut ids, &mut missing) {
                push_id(PAD, id_map, &mut ids, &mut missing);
            }
        }
        push_id(EOS, id_map, &mut ids, &mut missing);
        (ids, missing)
    }
}

/// Appends the ids of `phoneme` (true) or records it as missing (false).
fn push_id(
    phoneme: &str,
    id_map: &HashMap<String, Vec<i64>>,
    ids: &mut Vec<i64>,
    missing: &mut Vec<String>,
) -> bool {
    match id_map.get(phoneme) {
        Some(mapped) => {
            ids.extend_from_slice(mapped);
            true
        }
        None => {
            missing.push(phoneme.to_string());
            false
        }
    }
}

/// Appends an inline phoneme block to the current sentence, with Piper's space rules:
/// a space before it if the preceding text ends with a space, after it if the following
/// text starts with one.
fn append_inline_phonemes(
    sentences: &mut Vec<Vec<String>>,
    parts: &[Part<'_>],
    index: usize,
    inner: &str,
) {
    let text_at = |i: usize| match parts.get(i) {
        Some(Part::Text(text)) => *text,
        _ => "",
    };
    if sentences.is_empty() {
        sentences.push(Vec::new());
    }
    let Some(current) = sentences.last_mut() else {
        return;
    };
    if index > 0 && text_at(index - 1).ends_with(' ') {
        current.push(" ".to_string());
    }
    current.extend(inner.trim().chars().map(String::from));
    if text_at(index + 1).starts_with(' ') {
        current.push(" ".to_string());
    }
}

/// ARPAbet (CMUdict, as CosyVoice 3 writes it) → IPA in espeak-ng's en-us style, so the
/// result uses symbols of Piper's English id map.
///
/// | ARPAbet | IPA | ARPAbet | IPA | ARPAbet | IPA |
/// |---|---|---|---|---|---|
/// | AA | ɑː | AE | æ | AH | ʌ (AH0: ə) |
/// | AO | ɔː | AW | aʊ | AY | aɪ |
/// | EH | ɛ | ER | ɜː (ER0: ɚ) | EY | eɪ |
/// | IH | ɪ | IY | iː | OW | oʊ |
/// | OY | ɔɪ | UH | ʊ | UW | uː |
/// | B | b | CH | tʃ | D | d |
/// | DH | ð | F | f | G | ɡ |
/// | HH | h | JH | dʒ | K | k |
/// | L | l | M | m | N | n |
/// | NG | ŋ | P | p | R | ɹ |
/// | S | s | SH | ʃ | T | t |
/// | TH | θ | V | v | W | w |
/// | Y | j | Z | z | ZH | ʒ |
///
/// Stress digits on vowels: `1` → `ˈ`, `2` → `ˌ`, placed right before the vowel as
/// espeak does (`həlˈoʊ`); `0` or none → no mark. Returns `None` for an unknown symbol
/// or a digit on a consonant.
pub fn arpabet_to_ipa(symbol: &str, stress: Option<u8>) -> Option<String> {
    let (ipa, vowel) = match symbol {
        "AA" => ("ɑː", true),
        "AE" => ("æ", true),
        "AH" if stress == Some(0) => ("ə", true),
        "AH" => ("ʌ", true),
        "AO" => ("ɔː", true),
        "AW" => ("aʊ", true),
        "AY" => ("aɪ", true),
        "EH" => ("ɛ", true),
        "ER" if stress == Some(0) => ("ɚ", true),
        "ER" => ("ɜː", true),
        "EY" => ("eɪ", true),
        "IH" => ("ɪ", true),
        "IY" => ("iː", true),
        "OW" => ("oʊ", true),
        "OY" => ("ɔɪ", true),
        "UH" => ("ʊ", true),
        "UW" => ("uː", true),
        "B" => ("b", false),
        "CH" => ("tʃ", false),
        "D" => ("d", false),
        "DH" => ("ð", false),
        "F" => ("f", false),
        "G" => ("ɡ", false),
        "HH" => ("h", false),
        "JH" => ("dʒ", false),
        "K" => ("k", false),
        "L" => ("l", false),
        "M" => ("m", false),
        "N" => ("n", false),
        "NG" => ("ŋ", false),
        "P" => ("p", false),
        "R" => ("ɹ", false),
        "S" => ("s", false),
        "SH" => ("ʃ", false),
        "T" => ("t", false),
        "TH" => ("θ", false),
        "V" => ("v", false),
        "W" => ("w", false),
        "Y" => ("j", false),
        "Z" => ("z", false),
        "ZH" => ("ʒ", false),
        _ => return None,
    };
    let mark = match (vowel, stress) {
        (false, Some(_)) | (true, Some(3..)) => return None,
        (true, Some(1)) => "ˈ",
        (true, Some(2)) => "ˌ",
        _ => "",
    };
    Some(format!("{mark}{ipa}"))
}

/// Parses one `[SYM]` or `[SYM<digit>]` token at the start of `text`: returns its
/// IPA and byte length.
fn parse_arpabet_token(text: &str) -> Option<(String, usize)> {
    let body_end = text.strip_prefix('[')?.find(']')? + 1;
    let body = &text[1..body_end];
    let (symbol, stress) = match body.as_bytes().last() {
        Some(digit @ b'0'..=b'9') => (&body[..body.len() - 1], Some(digit - b'0')),
        _ => (body, None),
    };
    if symbol.is_empty() || symbol.len() > 2 || !symbol.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    arpabet_to_ipa(symbol, stress).map(|ipa| (ipa, body_end + 1))
}

/// Finds runs of ARPAbet tokens: adjacent tokens form a word, words separated only by
/// spaces form one run (IPA words joined by one space). Returns (start, end, IPA).
fn find_arpabet_runs(text: &str) -> Vec<(usize, usize, String)> {
    let mut runs = Vec::new();
    let mut position = 0;
    while let Some(offset) = text[position..].find('[') {
        let start = position + offset;
        let mut cursor = start;
        let mut ipa = String::new();
        let mut end = start;
        loop {
            let spaces = text[cursor..].len() - text[cursor..].trim_start_matches(' ').len();
            let token_at = if end > start { cursor + spaces } else { cursor };
            let Some((token_ipa, length)) = parse_arpabet_token(&text[token_at..]) else {
                break;
            };
            if end > start && spaces > 0 {
                ipa.push(' ');
            }
            ipa.push_str(&token_ipa);
            cursor = token_at + length;
            end = cursor;
        }
        if end > start {
            runs.push((start, end, ipa));
            position = end;
        } else {
            position = start + 1;
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_linking_phoneme_becomes_j() {
        let sep = PHONEME_SEPARATOR;
        let raw = format!("ð{sep}ɪ{sep} ˈɛ{sep}n{sep}d ˌaɪ{sep}ˌiː{sep}{sep}ˈeɪ b{sep}aɪ{sep} x");
        assert_eq!(
            adapt_to_espeak_1_52(&raw, "en-us"),
            "ðɪʲ ˈɛnd ˌaɪˌiːʲˈeɪ baɪ x"
        );
        // Pauses around brackets are empty too, but no vowel follows them directly.
        let raw = format!("b{sep}i{sep}{sep} ˈeɪ{sep}t b{sep}i{sep}{sep} s");
        assert_eq!(adapt_to_espeak_1_52(&raw, "en-us"), "bi ˈeɪt bi s");
        assert_eq!(
            adapt_to_espeak_1_52(
                "d{sep}ˈoːɹ".replace("{sep}", &sep.to_string()).as_str(),
                "en-us"
            ),
            "dˈɔːɹ"
        );
        assert_eq!(adapt_to_espeak_1_52("dˈoːɹ", "en-gb"), "dˈoːɹ");
    }

    #[test]
    fn language_flags_are_stripped() {
        assert_eq!(
            strip_language_flags("(en)hˈɛloʊ(fr) a() (x"),
            "hˈɛloʊ a() (x"
        );
    }

    #[test]
    fn phoneme_blocks_split_like_piper() {
        let parts = split_phoneme_blocks("Say [[ h ə ]], ok [[x\n]] [[y]]");
        assert_eq!(
            parts,
            vec![
                Part::Text("Say "),
                Part::Phonemes(" h ə ".into()),
                Part::Text(", ok [[x\n]] "),
                Part::Phonemes("y".into()),
                Part::Text(""),
            ]
        );
    }

    #[test]
    fn arpabet_runs_become_ipa() {
        let runs = find_arpabet_runs("a [M][AY0][N][UW1][T]  [HH][AH0][L][OW1]. [XX]");
        assert_eq!(runs, vec![(2, 40, "maɪnˈuːt həlˈoʊ".to_string())]);
        assert_eq!(arpabet_to_ipa("ER", Some(0)).as_deref(), Some("ɚ"));
        assert_eq!(arpabet_to_ipa("T", Some(1)), None);
    }

    #[test]
    fn ids_have_bos_pad_eos_and_report_unknowns() {
        let map: HashMap<String, Vec<i64>> = [("_", 0), ("^", 1), ("$", 2), ("a", 14)]
            .iter()
            .map(|(k, v)| (k.to_string(), vec![*v]))
            .collect();
        let (ids, missing) = Phonemizer::to_ids(&["a".into(), "Z".into(), "a".into()], &map);
        assert_eq!(ids, vec![1, 0, 14, 0, 14, 0, 2]);
        assert_eq!(missing, vec!["Z".to_string()]);
    }
}
