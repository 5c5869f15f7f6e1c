//! `audio-gain`: changes the volume by `gain_db` from the config plus the
//! style's `volume`, clamping to [-1, 1]. One pass, nothing carried: a gain
//! applied block by block equals the gain applied to the whole.
//!
//! ```toml
//! [stages.config]
//! gain_db = -3.0
//! ```

use voxpipe_plugin_audio::{
    AudioStage, Block, BlockOutput, Config, Context, PluginInfo, StageError,
};

fn gain_db(config: &Config) -> Result<f32, StageError> {
    let g: f32 = config.get_or("gain_db", 0.0)?;
    if !(-60.0..=30.0).contains(&g) {
        return Err(StageError::InvalidConfig(format!(
            "`gain_db` = {g} is outside -60..=30"
        )));
    }
    Ok(g)
}

pub struct AudioGain;

impl AudioStage for AudioGain {
    fn info() -> PluginInfo {
        PluginInfo::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            "Changes the volume by a configured gain plus the style's volume",
        )
        .applies(&["volume"])
    }

    fn check_config(config: &Config) -> Result<(), StageError> {
        gain_db(config).map(|_| ())
    }

    fn process_block(
        ctx: &Context,
        config: &Config,
        block: Block,
    ) -> Result<BlockOutput, StageError> {
        let mut audio = block.audio;
        let style_db = ctx.style.as_ref().and_then(|s| s.volume).unwrap_or(0.0);
        let factor = 10f32.powf((gain_db(config)? + style_db) / 20.0);
        for s in &mut audio.samples {
            *s = (*s * factor).clamp(-1.0, 1.0);
        }
        Ok(BlockOutput::audio(audio))
    }
}

voxpipe_plugin_audio::export!(AudioGain);

#[cfg(test)]
mod tests {
    use super::*;
    use voxpipe_plugin_audio::{drive::run_blocks, Audio, Style};

    #[test]
    fn config_gain_and_style_volume_add_up() {
        let c = Config::parse(r#"{"gain_db": -6.0}"#).unwrap();
        let ctx = Context {
            style: Some(Style {
                volume: Some(6.0),
                ..Style::default()
            }),
            ..Context::default()
        };
        let audio = Audio {
            sample_rate: 22050,
            channels: 1,
            samples: vec![0.5, -0.25, 2.0],
        };
        let out = run_blocks::<AudioGain>(&ctx, &c, &audio, 2).unwrap();
        assert!((out.samples[0] - 0.5).abs() < 1e-6);
        assert_eq!(out.samples[2], 1.0);
    }

    #[test]
    fn out_of_range_gain_is_refused() {
        let c = Config::parse(r#"{"gain_db": 100}"#).unwrap();
        assert!(AudioGain::check_config(&c).is_err());
    }
}
