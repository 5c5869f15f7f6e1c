//! Links the engine's espeak-ng wrapper into every binary and test of the
//! server: the engine's build script wraps espeak's internal `ReadClause`
//! (host/engine/build.rs says why), and link arguments do not pass from a
//! library to the binaries that use it.

fn main() {
    if let Ok(symbol) = std::env::var("DEP_ESPEAK_NG_WRAP") {
        println!("cargo:rustc-link-arg=-Wl,--wrap={symbol}");
    }
}
