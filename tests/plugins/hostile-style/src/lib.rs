//! A style plugin that returns what the host must not trust, chosen by
//! `config.mode`: `ok` (a sane style), `noise-w` (noise_w = `value`, default
//! 5), `nan-speed`, `unknown-voice`, `unknown-speaker`, `control-label` (a
//! label with newlines and escapes), `huge-label` (1 MiB), `many-emotions`
//! (100 000 of them).

use voxpipe_plugin_style::{
    Config, Context, PluginInfo, StageError, Style, StyleOutcome, StyleStage,
};

pub struct HostileStyle;

impl StyleStage for HostileStyle {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "hostile-style",
            env!("CARGO_PKG_VERSION"),
            "Returns untrustworthy styles on purpose (tests only)",
        )
    }

    fn map_instruct(
        _ctx: &Context,
        config: &Config,
        _instruct: &str,
    ) -> Result<StyleOutcome, StageError> {
        let mode: String = config.get_or("mode", "ok".to_string())?;
        let mut style = Style::default();
        let mut label = format!("mode={mode}");
        match mode.as_str() {
            "ok" => style.speed = Some(1.1),
            "noise-w" => style.noise_w = Some(config.get_or("value", 5.0)?),
            "nan-speed" => style.speed = Some(f32::NAN),
            "unknown-voice" => style.voice = Some("no-such-voice".to_string()),
            "unknown-speaker" => style.speaker = Some("nobody".to_string()),
            "control-label" => label = "ok\r\nX-Injected: 1\n\u{1b}[31mred".to_string(),
            "huge-label" => label = "L".repeat(1 << 20),
            "many-emotions" => style.emotions = vec!["sad".to_string(); 100_000],
            other => return Err(StageError::InvalidConfig(format!("unknown mode {other}"))),
        }
        Ok(StyleOutcome::Mapped { style, label })
    }
}

voxpipe_plugin_style::export!(HostileStyle);
