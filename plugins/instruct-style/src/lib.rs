//! `instruct-style`: maps free-form instructions in Chinese and English
//! ("用四川话, 开心地, 慢一点说", "speak slowly and softly", "excited!") to a
//! concrete [`Style`](voxpipe_plugin_style::Style), along five dimensions:
//! dialect, emotion, speed, pitch and volume.
//!
//! All vocabulary comes from the config. `pipelines/tables/instruct-style.toml`
//! is the complete table the default pipeline uses: 19 Chinese dialects, a
//! dozen emotions, speed, pitch and volume words. Each entry lists keywords: Chinese ones
//! match as substrings, English ones as whole words, case-insensitively
//! (`sad` matches "so sad!" but not "sadly"; write `sad*` for a prefix).
//!
//! ```toml
//! [stages.config]
//! dialects.sichuanese = { keywords = ["四川话", "川话", "Sichuan dialect"], language = "zh-CN" }
//! emotions.sad = { keywords = ["悲伤", "难过", "sad*"], speed = 0.9 }
//! speeds.slow = { keywords = ["慢", "slowly"], speed = 0.8 }
//! volumes.soft = { keywords = ["轻声", "softly"], volume = -6.0 }
//! ```
//!
//! Outcome: `Mapped` with a label such as
//! `dialect=sichuanese;emotion=sad;speed=slow` (fixed dimension order,
//! entry names only, so it stays low-cardinality), or `Unmapped` with a
//! reason that names an unknown dialect request (`no dialect entry matches
//! "上海话", and nothing in "请用上海话" matched …`). How matches are chosen:
//! [`matcher`]; how they combine: [`mapping`]; the schema: [`table`].

pub mod dialect_hint;
pub mod mapping;
pub mod matcher;
pub mod table;
pub mod text;

use voxpipe_plugin_style::{
    log, Config, Context, PluginInfo, StageError, StyleOutcome, StyleStage,
};

pub struct InstructStyle;

impl StyleStage for InstructStyle {
    fn info() -> PluginInfo {
        PluginInfo::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            "Maps zh/en instructions to dialect, emotion, speed, pitch and volume with a config table",
        )
    }

    fn check_config(config: &Config) -> Result<(), StageError> {
        table::parse(config).map(|_| ())
    }

    fn map_instruct(
        ctx: &Context,
        config: &Config,
        instruct: &str,
    ) -> Result<StyleOutcome, StageError> {
        let table = table::parse(config)?;
        let mapping = mapping::map(&table, instruct)?;
        for (level, message) in &mapping.notes {
            log::log(
                *level,
                &format!("instruct-style [{}]: {message}", ctx.request_id),
            );
        }
        Ok(mapping.outcome)
    }
}

voxpipe_plugin_style::export!(InstructStyle);

#[cfg(test)]
mod tests;
