//! An audio plugin built against the frozen `voxpipe:stages@0.1.0`
//! (`wit/v0.1.0/stages.wit`) with wit-bindgen alone, as plugins were built
//! before 0.2.0: the proof that the host keeps loading and running them.
//! It applies `gain_db` from its config plus the style's volume, but 0.1.0
//! has no way to say so: the host counts it as applying nothing. Not
//! streamable, so the host gives it whole utterances, in one call, as 0.1
//! promises: the case of an old stage whose memory bounds the longest
//! utterance it takes (measured when a pipeline loads it).

wit_bindgen::generate!({
    path: "../../../wit/v0.1.0/stages.wit",
    world: "voxpipe:stages/audio-stage",
});

use voxpipe::stages::log::{log, Level};
// The world's `use types.{…}` already brings its types into scope.
use voxpipe::stages::types::StageKind;

struct LegacyGain;

/// `{"gain_db": number}` from the config's JSON text; 0 when absent.
fn gain_db(config: &str) -> Result<f32, StageError> {
    let config = config.trim();
    let Some(at) = config.find("\"gain_db\"") else {
        return Ok(0.0);
    };
    let rest = config[at + 9..].trim_start().trim_start_matches(':');
    let number: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
        .collect();
    number
        .parse()
        .map_err(|_| StageError::InvalidConfig("`gain_db` must be a number".into()))
}

impl Guest for LegacyGain {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "legacy-gain".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: StageKind::Audio,
            description: "A gain built against voxpipe:stages@0.1.0 (tests only)".into(),
            streamable: false,
        }
    }

    fn check_config(config: String) -> Result<(), StageError> {
        gain_db(&config).map(|_| ())
    }

    fn process(
        ctx: RequestContext,
        config: String,
        mut audio: Audio,
        _position: ChunkPosition,
    ) -> Result<Audio, StageError> {
        let volume = ctx.style.and_then(|s| s.volume).unwrap_or(0.0);
        let factor = 10f32.powf((gain_db(&config)? + volume) / 20.0);
        for s in &mut audio.samples {
            *s = (*s * factor).clamp(-1.0, 1.0);
        }
        log(Level::Info, &format!("legacy-gain: x{factor:.3}"));
        Ok(audio)
    }
}

export!(LegacyGain);
