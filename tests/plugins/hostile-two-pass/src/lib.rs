//! A two-pass audio plugin (WIT 0.3) for the host's block driver, by
//! `config.mode`: `audit` checks what the host promises across both passes
//! — block indexes and offsets from 0 in each pass, pass 1 starting from the
//! state pass 0 ended with, `total_frames` in pass 1 equal to what pass 0
//! saw, the same samples twice, exactly one last block per pass — and
//! returns the audio unchanged, or fails with a plugin fault naming the
//! first broken promise; `leak` returns audio from the measuring pass,
//! which the host must refuse.

use voxpipe_plugin_audio::{
    state::{Reader, Writer},
    AudioStage, Block, BlockOutput, Config, Context, PluginInfo, StageError,
};

pub struct HostileTwoPass;

/// What the audit carries: calls and frames in this pass, the sum of the
/// samples seen in pass 0 and in pass 1 so far, frames pass 0 saw.
#[derive(Default)]
struct Audit {
    calls: u64,
    frames: u64,
    sum0: f64,
    sum1: f64,
    total0: u64,
}

impl Audit {
    fn read(state: &[u8]) -> Result<Audit, StageError> {
        if state.is_empty() {
            return Ok(Audit::default());
        }
        let mut r = Reader::new(state);
        let a = Audit {
            calls: r.u64()?,
            frames: r.u64()?,
            sum0: r.f64()?,
            sum1: r.f64()?,
            total0: r.u64()?,
        };
        r.end()?;
        Ok(a)
    }

    fn write(&self) -> Vec<u8> {
        Writer::new()
            .u64(self.calls)
            .u64(self.frames)
            .f64(self.sum0)
            .f64(self.sum1)
            .u64(self.total0)
            .finish()
    }
}

impl AudioStage for HostileTwoPass {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "hostile-two-pass",
            env!("CARGO_PKG_VERSION"),
            "Checks the host's two-pass block protocol, or breaks it (tests only)",
        )
        .two_pass()
    }

    fn process_block(
        _ctx: &Context,
        config: &Config,
        block: Block,
    ) -> Result<BlockOutput, StageError> {
        let mode: String = config.get_or("mode", "audit".to_string())?;
        let p = block.position;
        if mode == "leak" {
            return Ok(BlockOutput::audio(block.audio));
        }
        if mode != "audit" {
            return Err(StageError::InvalidConfig(format!("unknown mode {mode}")));
        }
        let broken = |what: String| StageError::PluginFault(format!("audit: {what}"));
        let mut a = Audit::read(&block.state)?;
        if p.pass == 1 && p.index == 0 {
            // The first call of pass 1 gets the state pass 0 ended with.
            if a.total0 != a.frames {
                return Err(broken(
                    "pass 1 did not start from pass 0's last state".into(),
                ));
            }
            a.calls = 0;
            a.frames = 0;
        }
        if u64::from(p.index) != a.calls || p.offset != a.frames {
            return Err(broken(format!(
                "pass {} block {} at offset {} after {} calls and {} frames",
                p.pass, p.index, p.offset, a.calls, a.frames
            )));
        }
        if block.audio.samples.is_empty() && !p.last {
            return Err(broken("an empty block that is not the last".into()));
        }
        let n = block.audio.samples.len() as u64;
        let sum: f64 = block.audio.samples.iter().map(|&s| f64::from(s)).sum();
        a.calls += 1;
        a.frames += n;
        match p.pass {
            0 => {
                if p.total_frames.is_some() {
                    return Err(broken("a total in pass 0".into()));
                }
                a.sum0 += sum;
                if p.last {
                    a.total0 = a.frames;
                }
                Ok(BlockOutput {
                    audio: Default::default(),
                    state: a.write(),
                })
            }
            1 => {
                if p.total_frames != Some(a.total0) {
                    return Err(broken(format!(
                        "pass 1 total {:?}, pass 0 saw {}",
                        p.total_frames, a.total0
                    )));
                }
                a.sum1 += sum;
                if p.last && (a.frames != a.total0 || (a.sum1 - a.sum0).abs() > 1e-6) {
                    return Err(broken("pass 1 did not see the samples pass 0 saw".into()));
                }
                Ok(BlockOutput {
                    audio: block.audio,
                    state: a.write(),
                })
            }
            other => Err(broken(format!("pass {other}"))),
        }
    }
}

voxpipe_plugin_audio::export!(HostileTwoPass);
