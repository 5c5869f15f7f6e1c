//! `en-normalize`: rewrites written English into how it is read aloud, so
//! the voice never has to guess: numbers, ordinals, years, currency,
//! percentages, times, dates, abbreviations, units, ranges, phone numbers,
//! URLs and e-mail addresses.
//!
//! ```toml
//! [stages.config]
//! rules = { urls = false, phones = true }      # families, all on by default
//! abbreviations = { "Corp." = "Corporation" }  # custom, word-bounded
//! replacements = { "&" = "and" }               # custom, word-bounded
//! ```
//!
//! The output of a pass contains no digits and none of the built-in
//! abbreviations, so a second pass changes nothing (idempotent), and text
//! with nothing to rewrite comes back byte for byte. One pass is linear in
//! the input (see `normalize`).

mod abbrev;
mod custom;
mod dates;
mod money;
mod normalize;
mod number;
mod numeric;
mod phone;
mod say_as;
mod scan;
mod settings;
mod timeofday;
mod units;
mod web;
mod words;

#[cfg(test)]
mod tests;

pub use settings::{Rules, Settings};
use voxpipe_plugin_text::{Config, Context, PluginInfo, StageError, TextStage};

/// Normalizes `text` with already-validated settings (for native callers
/// and tests).
pub fn normalize_text(text: &str, settings: &Settings) -> String {
    normalize::normalize(text, settings)
}

pub struct EnNormalize;

impl TextStage for EnNormalize {
    fn info() -> PluginInfo {
        PluginInfo::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            "English text normalizer: numbers, dates, times, currency, units, abbreviations, URLs",
        )
        // SSML `say-as` reaches this stage as hints (say_as.rs).
        .applies(&["say-as"])
    }

    fn check_config(config: &Config) -> Result<(), StageError> {
        settings::settings(config).map(|_| ())
    }

    fn normalize(_ctx: &Context, config: &Config, text: String) -> Result<String, StageError> {
        let (config, hints) = config.split_say_as()?;
        let s = settings::settings(&config)?;
        Ok(say_as::apply(&text, &hints, &s))
    }
}

voxpipe_plugin_text::export!(EnNormalize);
