//! Conversions between the SDK's types and the types `wit-bindgen` generates
//! in each world crate. The three world crates generate the same WIT types
//! separately (one world per crate keeps one world per component), so the
//! conversions are written once here, as a macro each world crate expands.

/// Expand conversion functions for a world crate. `$types` is the path of the
/// generated `voxpipe:stages/types` module, `$log` that of `voxpipe:stages/log`.
#[doc(hidden)]
#[macro_export]
macro_rules! __wit_glue {
    ($types:path, $log:path) => {
        #[doc(hidden)]
        pub mod glue {
            use $crate as sdk;
            use $log as wl;
            use $types as w;

            fn log_sink(level: sdk::log::Level, message: &str) {
                let level = match level {
                    sdk::log::Level::Trace => wl::Level::Trace,
                    sdk::log::Level::Debug => wl::Level::Debug,
                    sdk::log::Level::Info => wl::Level::Info,
                    sdk::log::Level::Warn => wl::Level::Warn,
                    sdk::log::Level::Error => wl::Level::Error,
                };
                wl::log(level, message);
            }

            /// Called at the start of every export: routes `sdk::log` to the host.
            pub fn enter() {
                sdk::log::install_sink(log_sink);
            }

            pub fn config(json: &str) -> Result<sdk::Config, w::StageError> {
                sdk::Config::parse(json).map_err(error)
            }

            pub fn info(info: sdk::PluginInfo, kind: w::StageKind) -> w::PluginInfo {
                w::PluginInfo {
                    name: info.name,
                    version: info.version,
                    kind,
                    description: info.description,
                    passes: match info.passes {
                        sdk::Passes::One => w::Passes::One,
                        sdk::Passes::Two => w::Passes::Two,
                    },
                    applies: info.applies,
                }
            }

            pub fn error(e: sdk::StageError) -> w::StageError {
                match e {
                    sdk::StageError::InvalidInput(m) => w::StageError::InvalidInput(m),
                    sdk::StageError::InvalidConfig(m) => w::StageError::InvalidConfig(m),
                    sdk::StageError::PluginFault(m) => w::StageError::PluginFault(m),
                }
            }

            pub fn style_in(s: w::Style) -> sdk::Style {
                sdk::Style {
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

            pub fn style_out(s: sdk::Style) -> w::Style {
                w::Style {
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

            pub fn audio_in(a: w::Audio) -> sdk::Audio {
                sdk::Audio {
                    sample_rate: a.sample_rate,
                    channels: a.channels,
                    samples: a.samples,
                }
            }

            pub fn audio_out(a: sdk::Audio) -> w::Audio {
                w::Audio {
                    sample_rate: a.sample_rate,
                    channels: a.channels,
                    samples: a.samples,
                }
            }

            pub fn context(c: w::RequestContext) -> sdk::Context {
                sdk::Context {
                    request_id: c.request_id,
                    language: c.language,
                    voice: c.voice,
                    pipeline: c.pipeline,
                    style: c.style.map(style_in),
                }
            }
        }
    };
}
