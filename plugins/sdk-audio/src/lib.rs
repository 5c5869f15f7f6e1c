//! The `audio-stage` world. An audio plugin implements
//! [`voxpipe_plugin_sdk::AudioStage`] and calls `voxpipe_plugin_audio::export!(MyPlugin);`.

pub use voxpipe_plugin_sdk::*;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "voxpipe:stages/audio-stage",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "voxpipe_plugin_audio::bindings",
    });
    voxpipe_plugin_sdk::__wit_glue!(
        crate::bindings::voxpipe::stages::types,
        crate::bindings::voxpipe::stages::log
    );
}

/// Export an [`AudioStage`] implementation as this component's `audio-stage` world.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        const _: () = {
            use $crate::bindings::{glue, voxpipe::stages::types as w};
            struct VoxpipeAudioStage;
            impl $crate::bindings::Guest for VoxpipeAudioStage {
                fn describe() -> w::PluginInfo {
                    glue::enter();
                    glue::info(<$plugin as $crate::AudioStage>::info(), w::StageKind::Audio)
                }
                fn check_config(config: String) -> Result<(), w::StageError> {
                    glue::enter();
                    <$plugin as $crate::AudioStage>::check_config(&glue::config(&config)?)
                        .map_err(glue::error)
                }
                fn process(
                    ctx: w::RequestContext,
                    config: String,
                    audio: w::Audio,
                    position: w::ChunkPosition,
                ) -> Result<w::Audio, w::StageError> {
                    glue::enter();
                    let config = glue::config(&config)?;
                    let audio = $crate::Audio {
                        sample_rate: audio.sample_rate,
                        channels: audio.channels,
                        samples: audio.samples,
                    };
                    let position = $crate::ChunkPosition {
                        index: position.index,
                        last: position.last,
                    };
                    let out = <$plugin as $crate::AudioStage>::process(
                        &glue::context(ctx),
                        &config,
                        audio,
                        position,
                    )
                    .map_err(glue::error)?;
                    Ok(w::Audio {
                        sample_rate: out.sample_rate,
                        channels: out.channels,
                        samples: out.samples,
                    })
                }
            }
    $crate::bindings::__export_world!(VoxpipeAudioStage with_types_in $crate::bindings);
        };
    };
}
