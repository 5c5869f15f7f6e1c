//! Hand-written bindings to the part of espeak-ng 1.51 (Debian 12 `libespeak-ng-dev`)
//! that the phonemizer uses, plus the `ReadClause` wrapper that recovers clause
//! terminators.
//!
//! Nothing here is thread-safe: espeak-ng keeps global state. Every call must be made
//! while holding the phonemizer's global lock (see `espeak.rs`).
//!
//! # Linking
//! The crate's build script links `libespeak-ng.a` statically with
//! `-Wl,--wrap=ReadClause`. The linker then sends espeak's internal call
//! `TranslateClause → ReadClause` to [`__wrap_ReadClause`] below, and our
//! `__real_ReadClause` to the original function. Without that flag the link fails on the
//! undefined `__real_ReadClause`, so a missing build step cannot go unnoticed.

use std::os::raw::{c_char, c_int, c_short, c_void};
use std::sync::atomic::{AtomicU64, Ordering};

/// `espeak_AUDIO_OUTPUT::AUDIO_OUTPUT_SYNCHRONOUS`: no audio thread, no device.
pub const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
/// `espeakINITIALIZE_DONT_EXIT`: return an error instead of calling `exit()` when the
/// data directory cannot be loaded.
pub const ESPEAK_INITIALIZE_DONT_EXIT: c_int = 0x8000;
/// `espeakCHARS_AUTO`: UTF-8 (or 8-bit) input, as Piper passes it.
pub const ESPEAK_CHARS_AUTO: c_int = 0;
/// `espeakPHONEMES_IPA`: phoneme names as IPA (UTF-8), no separator, no tie.
pub const ESPEAK_PHONEMES_IPA: c_int = 0x02;
/// `espeak_ERROR::EE_OK`.
pub const EE_OK: c_int = 0;

extern "C" {
    /// Loads the data directory (`path` NULL = compiled-in default) and returns the
    /// sample rate, or a negative value on failure.
    pub fn espeak_Initialize(
        output: c_int,
        buflength: c_int,
        path: *const c_char,
        options: c_int,
    ) -> c_int;

    /// Selects a voice/language by name (e.g. `en-us`); returns `EE_OK` on success.
    pub fn espeak_SetVoiceByName(name: *const c_char) -> c_int;

    /// Translates one clause of `*textptr` and advances `*textptr` past it (NULL at the
    /// end of the text). The returned string is owned by espeak and valid until the next
    /// call.
    pub fn espeak_TextToPhonemes(
        textptr: *mut *const c_void,
        textmode: c_int,
        phonememode: c_int,
    ) -> *const c_char;

    /// The original internal `ReadClause`, reachable under this name through
    /// `-Wl,--wrap=ReadClause`. Signature of espeak-ng 1.51 `readclause.h`.
    fn __real_ReadClause(
        tr: *mut c_void,
        buf: *mut c_char,
        charix: *mut c_short,
        charix_top: *mut c_int,
        n_buf: c_int,
        tone_type: *mut c_int,
        voice_change: *mut c_char,
    ) -> c_int;
}

/// Flag in [`LAST_TERMINATOR`] saying that a terminator was recorded since the last take.
const TERMINATOR_RECORDED: u64 = 1 << 32;

/// Terminator returned by the most recent `ReadClause` call (low 32 bits) plus
/// [`TERMINATOR_RECORDED`]. Only touched under the phonemizer's global lock; atomic so
/// that no `static mut` is needed.
static LAST_TERMINATOR: AtomicU64 = AtomicU64::new(0);

/// Linker-wrapped replacement for espeak's internal `ReadClause`: forwards the call and
/// remembers the clause terminator it returns (the value that espeak-ng ≥ 1.52 hands out
/// through `espeak_TextToPhonemesWithTerminator`).
///
/// # Safety
/// Called only by espeak-ng itself, with its own valid arguments.
#[no_mangle]
pub unsafe extern "C" fn __wrap_ReadClause(
    tr: *mut c_void,
    buf: *mut c_char,
    charix: *mut c_short,
    charix_top: *mut c_int,
    n_buf: c_int,
    tone_type: *mut c_int,
    voice_change: *mut c_char,
) -> c_int {
    // SAFETY: arguments are forwarded untouched from espeak's own call site.
    let terminator =
        unsafe { __real_ReadClause(tr, buf, charix, charix_top, n_buf, tone_type, voice_change) };
    LAST_TERMINATOR.store(
        TERMINATOR_RECORDED | u64::from(terminator as u32),
        Ordering::SeqCst,
    );
    terminator
}

/// Forgets any recorded terminator (call before each `espeak_TextToPhonemes`).
pub fn clear_last_terminator() {
    LAST_TERMINATOR.store(0, Ordering::SeqCst);
}

/// The terminator recorded since [`clear_last_terminator`], if `ReadClause` ran.
pub fn take_last_terminator() -> Option<c_int> {
    let value = LAST_TERMINATOR.swap(0, Ordering::SeqCst);
    (value & TERMINATOR_RECORDED != 0).then_some(value as u32 as c_int)
}
