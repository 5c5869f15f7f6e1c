//! Links Debian's espeak-ng 1.51 statically and wraps its internal `ReadClause`.
//!
//! Why static: the shared library exports only the public API, and Piper's clause
//! terminators come from the internal `ReadClause`. Linking `libespeak-ng.a` with
//! `-Wl,--wrap=ReadClause` routes espeak's own call through `__wrap_ReadClause`
//! (defined in `src/phonemize/espeak_ffi.rs`), which records the terminator and forwards to the real
//! function. This reproduces `espeak_TextToPhonemesWithTerminator` (espeak-ng ≥ 1.52)
//! exactly, with an unmodified Debian library.

fn main() {
    // Debian/Ubuntu multiarch location of libespeak-ng.a (package libespeak-ng-dev).
    let dir = std::env::var("ESPEAK_NG_LIB_DIR")
        .unwrap_or_else(|_| "/usr/lib/x86_64-linux-gnu".to_string());
    println!("cargo:rerun-if-env-changed=ESPEAK_NG_LIB_DIR");
    println!("cargo:rustc-link-search=native={dir}");
    println!("cargo:rustc-link-lib=static=espeak-ng");
    // Dependencies of the static archive (Debian builds it with pcaudio and sonic).
    println!("cargo:rustc-link-lib=dylib=pcaudio");
    println!("cargo:rustc-link-lib=dylib=sonic");
    println!("cargo:rustc-link-lib=dylib=m");
    println!("cargo:rustc-link-arg=-Wl,--wrap=ReadClause");
    // A link argument applies only to this package's own targets (its tests);
    // every binary that links the engine must pass it too. `links` hands the
    // symbol to their build scripts as DEP_ESPEAK_NG_WRAP (see
    // host/server/build.rs): without it the phonemizer refuses to run.
    println!("cargo:wrap=ReadClause");
}
