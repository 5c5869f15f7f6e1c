//! The espeak-ng session: one global lock around espeak's global state, initialised once
//! per process; the clause-by-clause loop that recovers each clause's terminator (through the
//! linker-wrapped `ReadClause`, see `espeak_ffi`); the patching of Debian's espeak-ng 1.51
//! output into what Piper's bundled 1.52 writes; and the grouping of clauses into sentences
//! of single-codepoint phonemes.

use std::ffi::{CStr, CString};
use std::os::raw::{c_int, c_void};
use std::sync::{Mutex, MutexGuard};

use unicode_normalization::UnicodeNormalization;

use super::espeak_ffi as ffi;
use super::PhonemizeError;

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

/// Global espeak-ng state: `Some(result)` once `espeak_Initialize` has been called.
/// The lock also serialises every other espeak call.
static ESPEAK: Mutex<Option<Result<(), i32>>> = Mutex::new(None);

/// Takes the global espeak lock. A poisoned lock is recovered: it only guards the
/// "initialised" flag, and every phonemize call starts espeak on a fresh text.
pub(super) fn lock_espeak() -> MutexGuard<'static, Option<Result<(), i32>>> {
    ESPEAK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Initialises espeak-ng once per process (default data directory, synchronous mode).
pub(super) fn ensure_initialized(
    state: &mut Option<Result<(), i32>>,
) -> Result<(), PhonemizeError> {
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
pub(super) struct Clause {
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
pub(super) fn set_voice(voice: &str) -> Result<(), PhonemizeError> {
    let name = CString::new(voice_for_1_51(voice))
        .map_err(|_| PhonemizeError::VoiceNameNul(voice.into()))?;
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

/// The espeak voice that speaks like Piper's espeak-ng 1.52 does for `voice`.
///
/// Piper's Mandarin voices (`zh_CN-huayan-*`) name `cmn`. In Debian's espeak-ng
/// 1.51, `cmn` turns each hanzi into its pinyin and then reads that pinyin as
/// English ("四" → `sɪ5fˈɔː`, "si" + "four"); 1.52 reads it as Mandarin. The
/// `cmn-latn-pinyin` variant of 1.51 reads the same pinyin as Mandarin and
/// gives 1.52's `cmn` phonemes (`sˈi̪5 ts.hˈua5n χwˈɑ5`); English words inside
/// Chinese text are still read as English, with stray tone digits (`Python`:
/// `paɪ1θə1n`, 1.52 `pˈaɪθən`).
fn voice_for_1_51(voice: &str) -> &str {
    match voice.to_ascii_lowercase().as_str() {
        "cmn" | "zh" | "zh-cmn" | "sit/cmn" => "cmn-latn-pinyin",
        _ => voice,
    }
}

/// Runs espeak-ng over `text` clause by clause (the loop of Piper's `get_phonemes`).
/// Must be called under the global lock, after [`set_voice`].
pub(super) fn espeak_clauses(
    text: &str,
    voice: &str,
    stop: &dyn Fn() -> bool,
) -> Result<Vec<Clause>, PhonemizeError> {
    let c_text = CString::new(text).map_err(|e| PhonemizeError::TextNul(e.nul_position()))?;
    let mut cursor: *const c_void = c_text.as_ptr().cast();
    let mut clauses = Vec::new();
    while !cursor.is_null() {
        // A long text is many clauses: the caller's deadline is checked between them.
        if stop() {
            return Err(PhonemizeError::Stopped);
        }
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
pub(super) fn clauses_to_sentences(clauses: &[Clause]) -> Vec<Vec<String>> {
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
}
