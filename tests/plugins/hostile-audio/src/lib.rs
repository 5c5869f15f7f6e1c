//! An audio plugin that returns formats the host must not trust, chosen by
//! `config.mode`: `pass` (unchanged), `rate` (relabels the samples with
//! `rate`, e.g. 1 or 4294967295, or a valid 44100), `channels` (relabels
//! them with `channels`, e.g. 40000), `stereo` (a real 2-channel copy),
//! `ragged` (drops one sample of a stereo copy), `nan` (a NaN sample).
//! Declares itself streamable so it also runs per sentence.

use voxpipe_plugin_audio::{
    Audio, AudioStage, ChunkPosition, Config, Context, PluginInfo, StageError,
};

pub struct HostileAudio;

impl AudioStage for HostileAudio {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "hostile-audio",
            env!("CARGO_PKG_VERSION"),
            "Returns untrustworthy audio formats on purpose (tests only)",
        )
        .streamable()
    }

    fn process(
        _ctx: &Context,
        config: &Config,
        mut audio: Audio,
        _position: ChunkPosition,
    ) -> Result<Audio, StageError> {
        let mode: String = config.get_or("mode", "pass".to_string())?;
        match mode.as_str() {
            "pass" => {}
            "rate" => audio.sample_rate = config.get_or("rate", 1u32)?,
            "channels" => audio.channels = config.get_or("channels", 40_000u16)?,
            "stereo" | "ragged" => {
                audio.samples = audio.samples.iter().flat_map(|&s| [s, s]).collect();
                audio.channels = 2;
                if mode == "ragged" {
                    audio.samples.pop();
                }
            }
            "nan" => {
                if let Some(s) = audio.samples.first_mut() {
                    *s = f32::NAN;
                }
            }
            other => return Err(StageError::InvalidConfig(format!("unknown mode {other}"))),
        }
        Ok(audio)
    }
}

voxpipe_plugin_audio::export!(HostileAudio);
