//! `zh-normalize`: turns the Arabic numbers in Chinese text into the words a
//! Mandarin speaker says, so the voice model (which only knows characters)
//! reads them right.
//!
//! | written          | read                         | family        |
//! |------------------|------------------------------|---------------|
//! | `123`, `10`      | 一百二十三, 十               | integers      |
//! | `1005`, `20000`  | 一千零五, 两万               | integers      |
//! | `-5`, `3.14`     | 负五, 三点一四               | integers      |
//! | `50%`, `3.5%`    | 百分之五十, 百分之三点五     | `percentages` |
//! | `2026年11月21日` | 二零二六年十一月二十一日     | `dates`       |
//! | `2026-11-21`     | 二零二六年十一月二十一日     | `dates`       |
//! | `13:05`, `08:00` | 十三点零五分, 八点整         | `times`       |
//! | `13812345678`    | 幺三八幺二三四五六七八       | `digits`      |
//! | `3/4`, `3-5`     | 四分之三, 三到五             | `fractions`, `ranges` |
//! | `5kg`, `25°C`    | 五千克, 二十五摄氏度         | `units`       |
//!
//! Each module documents its family precisely; `normalizer.rs` shows the
//! order in which they are tried.
//!
//! # Config
//!
//! Every key is optional; `{}` gives the behaviour above.
//!
//! ```toml
//! [stages.config]
//! rules = { dates = true, times = true, digits = true, percentages = true,
//!           fractions = true, ranges = true, units = true }
//! liang = true          # 两百/两万/两个/两点; false: always 二
//! yao_for_one = true    # 1 is 幺 in phone numbers and codes
//! time_zheng = true     # 08:00 → 八点整; false: 八点
//! digit_context_words = ["电话", "手机", "号码"]   # replaces the default list
//! units = { "kcal" = "千卡", "°" = "" }             # adds/overrides; "" removes
//! ```
//!
//! # Limits (by design)
//!
//! - Integers up to 16 digits (below 10¹⁶, i.e. up to 九千九百九十九万…亿)
//!   are read as cardinals; longer ones digit by digit, never a panic.
//! - 两 follows the common written rule: a *leading* 2 before 百/千/万/亿
//!   (两百, 两千, 两万, 两亿, but 二十, 一万二千), a bare 2 before a
//!   classifier (两个, 两点, 两公里, but 第二名, 二年级), and the hour 2.
//! - Ambiguous text gets the most common reading: `1000年` is a year
//!   (一零零零年), a dashed `5-3` (left end larger) is not a range, and
//!   `11/21` is a fraction (dates need a four-digit year).
//! - Full-width digits (`１２３`) are read like ASCII ones.
//!
//! # Forking this crate for a dialect
//!
//! The crate keeps *words* and *grammar* apart so a dialect team changes as
//! little as possible:
//!
//! 1. **Copy the crate** to `plugins/<dialect>-normalize`, rename the
//!    package in `Cargo.toml`, add it to the workspace members, and rename
//!    [`ZhNormalize`] below.
//! 2. **Words** (`readings.rs`): add a `Readings` table next to `MANDARIN`
//!    and point `normalizer::normalize` at it. For Cantonese, for example:
//!    traditional characters (負, 點, 兩, 萬, 億), 日 vs 號 for days,
//!    正 instead of 整 for the full hour (八點正), no 幺 (set
//!    `yao_for_one = false` by default in `settings.rs`), and review the
//!    lists there: `LIANG_CLASSIFIERS` (Cantonese says 兩個 too, but also
//!    兩百), `DEFAULT_CONTEXT_WORDS`, `DEFAULT_UNITS`.
//! 3. **Grammar** (one module per family): change a module only where the
//!    dialect *says things in a different order or shape*. Cantonese
//!    examples: `numbers.rs` for the spoken contractions 廿 (20–29) and 卅
//!    (30–39) if the voice expects them; `times.rs` for minutes counted in
//!    five-minute "字" (三點一個字 = 3:05); the 两 rule in
//!    `numbers::section` (Cantonese reads 兩 before 百/千/萬 in more
//!    places). Dates, fractions and percentages are the same in most
//!    Chinese varieties.
//! 4. **Tests**: `tests.rs` is a table of input → output pairs; copy it
//!    and rewrite the expected readings first, then make them pass.
//!
//! Keep the rules of a stage plugin: deterministic, no state between calls,
//! never panic (return `StageError` instead), every config key checked.

mod codes;
mod dates;
mod normalizer;
mod numbers;
mod quantity;
mod readings;
mod say_as;
mod scan;
mod settings;
mod times;

#[cfg(test)]
mod tests;

use voxpipe_plugin_text::{Config, Context, PluginInfo, StageError, TextStage};

/// The plugin: a `text` stage.
pub struct ZhNormalize;

impl TextStage for ZhNormalize {
    fn info() -> PluginInfo {
        PluginInfo::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            "Reads Arabic numbers in Chinese text as Chinese words",
        )
        // SSML `say-as` reaches this stage as hints (say_as.rs).
        .applies(&["say-as"])
    }

    fn check_config(config: &Config) -> Result<(), StageError> {
        settings::settings(config).map(|_| ())
    }

    fn normalize(_ctx: &Context, config: &Config, text: String) -> Result<String, StageError> {
        let (config, hints) = config.split_say_as()?;
        let settings = settings::settings(&config)?;
        Ok(say_as::apply(&text, &hints, &settings))
    }
}

voxpipe_plugin_text::export!(ZhNormalize);
