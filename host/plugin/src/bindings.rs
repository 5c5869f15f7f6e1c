//! Host-side bindings of the stage worlds, one set per version of the WIT
//! package the host loads, and conversions between the generated types and
//! [`voxpipe_types`].
//!
//! - [`v3`]: `voxpipe:stages@0.3.0` (`wit/stages.wit`), what the SDK builds:
//!   audio stages take bounded blocks with a carried state;
//! - [`v2`]: `voxpipe:stages@0.2.0` (`wit/v0.2.0/stages.wit`, frozen) and
//! - [`v1`]: `voxpipe:stages@0.1.0` (`wit/v0.1.0/stages.wit`, frozen), so
//!   plugins built against them keep loading. Their audio stages take chunks
//!   (`streamable`) or whole utterances; 0.1 plugins declare no `applies`:
//!   they count as applying no style field.
//!
//! Within a version, the text world's bindings own the shared `types` and
//! `log` interfaces and the style and audio worlds reuse them (`with`), so
//! one set of types and one `log` host implementation serve all three. The
//! versions' types are distinct Rust types; [`conversions!`] writes the
//! same conversions for each.

use voxpipe_types::{AudioMode, StageKind};

use super::error::PluginError;
use super::output;

/// What a plugin says about itself, whatever its WIT version.
pub(crate) struct Info {
    pub name: String,
    pub version: String,
    pub kind: StageKind,
    pub description: String,
    /// How an audio stage takes an utterance (text and style stages: `OnePass`).
    pub mode: AudioMode,
    pub applies: Vec<String>,
    /// The WIT package version the plugin was built against, e.g. `0.2.0`.
    pub wit: &'static str,
}

/// Conversions between one version's generated types (`wit`) and the host's.
macro_rules! conversions {
    () => {
        use voxpipe_types::{Audio, RequestContext, Style, StyleOutcome};

        fn kind(k: wit::StageKind) -> StageKind {
            match k {
                wit::StageKind::Text => StageKind::Text,
                wit::StageKind::Style => StageKind::Style,
                wit::StageKind::Audio => StageKind::Audio,
            }
        }

        fn style_to_wit(s: &Style) -> wit::Style {
            wit::Style {
                voice: s.voice.clone(),
                language: s.language.clone(),
                speaker: s.speaker.clone(),
                dialect: s.dialect.clone(),
                speed: s.speed,
                pitch: s.pitch,
                volume: s.volume,
                noise_scale: s.noise_scale,
                noise_w: s.noise_w,
                emotions: s.emotions.clone(),
                extra: s.extra.clone(),
            }
        }

        fn style_from_wit(s: wit::Style) -> Style {
            Style {
                voice: s.voice,
                language: s.language,
                speaker: s.speaker,
                dialect: s.dialect,
                speed: s.speed,
                pitch: s.pitch,
                volume: s.volume,
                noise_scale: s.noise_scale,
                noise_w: s.noise_w,
                emotions: s.emotions,
                extra: s.extra,
            }
        }

        pub(crate) fn context(c: &RequestContext) -> wit::RequestContext {
            wit::RequestContext {
                request_id: c.request_id.clone(),
                language: c.language.clone(),
                voice: c.voice.clone(),
                pipeline: c.pipeline.clone(),
                style: c.style.as_ref().map(style_to_wit),
            }
        }

        pub(crate) fn outcome(o: wit::StyleOutcome) -> StyleOutcome {
            match o {
                wit::StyleOutcome::Mapped(m) => StyleOutcome::Mapped {
                    style: style_from_wit(m.style),
                    label: m.label,
                },
                wit::StyleOutcome::Unmapped(reason) => StyleOutcome::Unmapped { reason },
            }
        }

        /// Moves the samples (no copy).
        pub(crate) fn audio_to_wit(a: Audio) -> wit::Audio {
            wit::Audio {
                sample_rate: a.sample_rate,
                channels: a.channels,
                samples: a.samples,
            }
        }

        pub(crate) fn audio_from_wit(a: wit::Audio) -> Audio {
            Audio {
                sample_rate: a.sample_rate,
                channels: a.channels,
                samples: a.samples,
            }
        }

        /// A plugin's own error; its message goes into responses and logs,
        /// so it is made one line and cut.
        pub(crate) fn stage_error(e: wit::StageError) -> PluginError {
            match e {
                wit::StageError::InvalidInput(m) => {
                    PluginError::InvalidInput(output::error_message(&m))
                }
                wit::StageError::InvalidConfig(m) => {
                    PluginError::InvalidConfig(output::error_message(&m))
                }
                wit::StageError::PluginFault(m) => PluginError::Fault(output::error_message(&m)),
            }
        }

        /// Same log levels in every version.
        fn level(l: wit_log::Level) -> tracing::Level {
            match l {
                wit_log::Level::Trace => tracing::Level::TRACE,
                wit_log::Level::Debug => tracing::Level::DEBUG,
                wit_log::Level::Info => tracing::Level::INFO,
                wit_log::Level::Warn => tracing::Level::WARN,
                wit_log::Level::Error => tracing::Level::ERROR,
            }
        }

        impl wit_log::Host for crate::store::CallState {
            fn log(&mut self, l: wit_log::Level, message: String) {
                self.log_line(level(l), &message);
            }
        }

        impl wit::Host for crate::store::CallState {}
    };
}

/// `voxpipe:stages@0.3.0`, the current version.
pub mod v3 {
    use super::{output, AudioMode, Info, PluginError, StageKind};

    pub mod text {
        wasmtime::component::bindgen!({
            path: "../../wit/stages.wit",
            world: "voxpipe:stages/text-stage",
        });
    }

    pub mod style {
        wasmtime::component::bindgen!({
            path: "../../wit/stages.wit",
            world: "voxpipe:stages/style-stage",
            with: {
                "voxpipe:stages/types": super::text::voxpipe::stages::types,
                "voxpipe:stages/log": super::text::voxpipe::stages::log,
            },
        });
    }

    pub mod audio {
        wasmtime::component::bindgen!({
            path: "../../wit/stages.wit",
            world: "voxpipe:stages/audio-stage",
            with: {
                "voxpipe:stages/types": super::text::voxpipe::stages::types,
                "voxpipe:stages/log": super::text::voxpipe::stages::log,
            },
        });
    }

    use text::voxpipe::stages::log as wit_log;
    use text::voxpipe::stages::types as wit;

    conversions!();

    pub(crate) fn info(i: wit::PluginInfo) -> Info {
        Info {
            name: i.name,
            version: i.version,
            kind: kind(i.kind),
            description: i.description,
            mode: match i.passes {
                wit::Passes::One => AudioMode::OnePass,
                wit::Passes::Two => AudioMode::TwoPass,
            },
            applies: i.applies,
            wit: "0.3.0",
        }
    }

    pub(crate) fn block_position(p: voxpipe_types::BlockPosition) -> wit::BlockPosition {
        wit::BlockPosition {
            utterance: p.utterance,
            pass: p.pass,
            index: p.index,
            offset: p.offset,
            last: p.last,
            total_frames: p.total_frames,
        }
    }
}

/// `voxpipe:stages@0.2.0`, frozen: plugins built against the SDK 0.2.
pub mod v2 {
    use super::{output, AudioMode, Info, PluginError, StageKind};

    pub mod text {
        wasmtime::component::bindgen!({
            path: "../../wit/v0.2.0/stages.wit",
            world: "voxpipe:stages/text-stage",
        });
    }

    pub mod style {
        wasmtime::component::bindgen!({
            path: "../../wit/v0.2.0/stages.wit",
            world: "voxpipe:stages/style-stage",
            with: {
                "voxpipe:stages/types": super::text::voxpipe::stages::types,
                "voxpipe:stages/log": super::text::voxpipe::stages::log,
            },
        });
    }

    pub mod audio {
        wasmtime::component::bindgen!({
            path: "../../wit/v0.2.0/stages.wit",
            world: "voxpipe:stages/audio-stage",
            with: {
                "voxpipe:stages/types": super::text::voxpipe::stages::types,
                "voxpipe:stages/log": super::text::voxpipe::stages::log,
            },
        });
    }

    use text::voxpipe::stages::log as wit_log;
    use text::voxpipe::stages::types as wit;

    conversions!();

    pub(crate) fn info(i: wit::PluginInfo) -> Info {
        Info {
            name: i.name,
            version: i.version,
            kind: kind(i.kind),
            description: i.description,
            mode: if i.streamable {
                AudioMode::Chunks
            } else {
                AudioMode::Whole
            },
            applies: i.applies,
            wit: "0.2.0",
        }
    }

    pub(crate) fn position(p: voxpipe_types::ChunkPosition) -> wit::ChunkPosition {
        wit::ChunkPosition {
            index: p.index,
            last: p.last,
        }
    }
}

/// `voxpipe:stages@0.1.0`, frozen: plugins built before 0.2.0.
pub mod v1 {
    use super::{output, AudioMode, Info, PluginError, StageKind};

    pub mod text {
        wasmtime::component::bindgen!({
            path: "../../wit/v0.1.0/stages.wit",
            world: "voxpipe:stages/text-stage",
        });
    }

    pub mod style {
        wasmtime::component::bindgen!({
            path: "../../wit/v0.1.0/stages.wit",
            world: "voxpipe:stages/style-stage",
            with: {
                "voxpipe:stages/types": super::text::voxpipe::stages::types,
                "voxpipe:stages/log": super::text::voxpipe::stages::log,
            },
        });
    }

    pub mod audio {
        wasmtime::component::bindgen!({
            path: "../../wit/v0.1.0/stages.wit",
            world: "voxpipe:stages/audio-stage",
            with: {
                "voxpipe:stages/types": super::text::voxpipe::stages::types,
                "voxpipe:stages/log": super::text::voxpipe::stages::log,
            },
        });
    }

    use text::voxpipe::stages::log as wit_log;
    use text::voxpipe::stages::types as wit;

    conversions!();

    /// A 0.1.0 plugin declares nothing it applies.
    pub(crate) fn info(i: wit::PluginInfo) -> Info {
        Info {
            name: i.name,
            version: i.version,
            kind: kind(i.kind),
            description: i.description,
            mode: if i.streamable {
                AudioMode::Chunks
            } else {
                AudioMode::Whole
            },
            applies: Vec::new(),
            wit: "0.1.0",
        }
    }

    pub(crate) fn position(p: voxpipe_types::ChunkPosition) -> wit::ChunkPosition {
        wit::ChunkPosition {
            index: p.index,
            last: p.last,
        }
    }
}
