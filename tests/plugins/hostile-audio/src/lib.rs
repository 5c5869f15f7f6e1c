//! An audio plugin that returns formats the host must not trust, chosen by
//! `config.mode`: `pass` (unchanged), `rate` (relabels the samples with
//! `rate`, e.g. 1 or 4294967295, or a valid 44100), `channels` (relabels
//! them with `channels`, e.g. 40000), `stereo` (a real 2-channel copy),
//! `ragged` (drops one sample of a stereo copy), `nan` (a NaN sample); and
//! breaks the rules of blocks (WIT 0.3): `state-huge` (a state over 1 MiB),
//! `grow` (six times its input plus 11 s out), `rate-flip` (another sample rate every
//! other block); `fail-after` fails (`plugin-fault`) on block `after` (a
//! failure in the middle of a stream). `audit` checks what the host promises from block to block
//! (index, offset, the state handed back, one last block) and fails with a
//! plugin fault naming the first broken promise. One pass.

use voxpipe_plugin_audio::{
    state::{Reader, Writer},
    AudioStage, Block, BlockOutput, Config, Context, PluginInfo, StageError,
};

pub struct HostileAudio;

impl AudioStage for HostileAudio {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "hostile-audio",
            env!("CARGO_PKG_VERSION"),
            "Returns untrustworthy audio formats on purpose (tests only)",
        )
    }

    fn process_block(
        _ctx: &Context,
        config: &Config,
        block: Block,
    ) -> Result<BlockOutput, StageError> {
        let mode: String = config.get_or("mode", "pass".to_string())?;
        let mut audio = block.audio;
        let position = block.position;
        match mode.as_str() {
            "state-huge" => {
                return Ok(BlockOutput {
                    audio,
                    state: vec![7; (1 << 20) + 1],
                })
            }
            "grow" => {
                // Six times the block plus 11 s: past "4 × input + 10 s"
                // even for the shortest utterance.
                let extra = 11 * audio.sample_rate as usize * usize::from(audio.channels);
                audio.samples = audio.samples.repeat(6);
                audio.samples.resize(audio.samples.len() + extra, 0.0);
            }
            "fail-after" => {
                let after: u32 = config.get_or("after", 2)?;
                if position.index >= after {
                    return Err(StageError::PluginFault(format!(
                        "failing on purpose at block {}",
                        position.index
                    )));
                }
            }
            "rate-flip" => {
                if position.index % 2 == 1 {
                    audio.sample_rate = 16_000;
                }
            }
            "audit" => {
                let broken = |what: String| StageError::PluginFault(format!("audit: {what}"));
                let (calls, frames, lasts) = if block.state.is_empty() {
                    (0, 0, 0)
                } else {
                    let mut r = Reader::new(&block.state);
                    (r.u64()?, r.u64()?, r.u64()?)
                };
                if u64::from(position.index) != calls {
                    return Err(broken(format!(
                        "block index {} after {calls} calls",
                        position.index
                    )));
                }
                if position.offset != frames {
                    return Err(broken(format!(
                        "offset {} after {frames} frames",
                        position.offset
                    )));
                }
                if lasts > 0 {
                    return Err(broken("a block after the last one".into()));
                }
                if position.pass != 0 || position.total_frames.is_some() {
                    return Err(broken("a one-pass stage got pass 1 or a total".into()));
                }
                if audio.samples.is_empty() && !position.last {
                    return Err(broken("an empty block that is not the last".into()));
                }
                if audio.samples.len() > 10 * audio.sample_rate as usize {
                    return Err(broken(format!("a block of {} frames", audio.samples.len())));
                }
                let state = Writer::new()
                    .u64(calls + 1)
                    .u64(frames + audio.samples.len() as u64)
                    .u64(u64::from(position.last))
                    .finish();
                return Ok(BlockOutput { audio, state });
            }
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
        Ok(BlockOutput::audio(audio))
    }
}

voxpipe_plugin_audio::export!(HostileAudio);
