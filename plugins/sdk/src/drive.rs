//! Running an audio stage over a whole utterance the way the host does —
//! block by block, one or two passes, the state handed from call to call —
//! natively, for plugin unit tests (`cargo test` in the plugin's crate).
//! The host's own driver is `host/server/src/pipeline/blocks.rs`; both follow
//! `process-block` in wit/stages.wit.

use crate::{
    Audio, AudioStage, Block, BlockPosition, Config, Context, Passes, StageError, MAX_STATE_BYTES,
};

/// Runs `P` over `audio` cut into blocks of `block_frames` frames (the last
/// one shorter; one empty block for empty audio), checking the rules the
/// host checks (state size, no audio out of a measuring pass, one rate and
/// channel count out), and returns the audio it made.
pub fn run_blocks<P: AudioStage>(
    ctx: &Context,
    config: &Config,
    audio: &Audio,
    block_frames: usize,
) -> Result<Audio, StageError> {
    run_utterance::<P>(ctx, config, audio, block_frames, 0).map(|d| d.audio)
}

/// What [`run_utterance`] made, and the largest state the stage handed from
/// one call to the next (bytes).
#[derive(Debug, Clone)]
pub struct Driven {
    pub audio: Audio,
    pub max_state: usize,
}

/// [`run_blocks`] for utterance `utterance` (in a stream, a two-pass stage
/// sees each sentence as one: 0, 1, 2…), also reporting the largest state.
pub fn run_utterance<P: AudioStage>(
    ctx: &Context,
    config: &Config,
    audio: &Audio,
    block_frames: usize,
    utterance: u32,
) -> Result<Driven, StageError> {
    let channels = usize::from(audio.channels.max(1));
    let step = block_frames.max(1) * channels;
    let blocks: Vec<&[f32]> = if audio.samples.is_empty() {
        vec![&[][..]]
    } else {
        audio.samples.chunks(step).collect()
    };
    let total = (audio.samples.len() / channels) as u64;
    let passes = match P::info().passes {
        Passes::One => 1,
        Passes::Two => 2,
    };
    let mut state = Vec::new();
    let mut max_state = 0;
    let mut out = Audio::default();
    for pass in 0..passes {
        let mut offset = 0u64;
        for (index, samples) in blocks.iter().enumerate() {
            let block = Block {
                audio: Audio {
                    sample_rate: audio.sample_rate,
                    channels: audio.channels,
                    samples: samples.to_vec(),
                },
                position: BlockPosition {
                    utterance,
                    pass,
                    index: index as u32,
                    offset,
                    last: index + 1 == blocks.len(),
                    total_frames: (pass == 1).then_some(total),
                },
                state: std::mem::take(&mut state),
            };
            offset += (samples.len() / channels) as u64;
            let got = P::process_block(ctx, config, block)?;
            if got.state.len() > MAX_STATE_BYTES {
                return Err(StageError::PluginFault(format!(
                    "state of {} bytes is over the limit",
                    got.state.len()
                )));
            }
            max_state = max_state.max(got.state.len());
            state = got.state;
            if passes == 2 && pass == 0 {
                if !got.audio.samples.is_empty() {
                    return Err(StageError::PluginFault(
                        "audio out of a measuring pass".into(),
                    ));
                }
                continue;
            }
            if got.audio.samples.is_empty() {
                continue;
            }
            if out.samples.is_empty() {
                out.sample_rate = got.audio.sample_rate;
                out.channels = got.audio.channels;
            } else if (out.sample_rate, out.channels) != (got.audio.sample_rate, got.audio.channels)
            {
                return Err(StageError::PluginFault(
                    "the rate or channels changed within an utterance".into(),
                ));
            }
            out.samples.extend_from_slice(&got.audio.samples);
        }
    }
    if out.samples.is_empty() {
        out.sample_rate = audio.sample_rate;
        out.channels = audio.channels;
    }
    Ok(Driven {
        audio: out,
        max_state,
    })
}
