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
                fn process_block(
                    ctx: w::RequestContext,
                    config: String,
                    audio: w::Audio,
                    position: w::BlockPosition,
                    state: Vec<u8>,
                ) -> Result<w::BlockOutput, w::StageError> {
                    glue::enter();
                    let config = glue::config(&config)?;
                    let block = $crate::Block {
                        audio: glue::audio_in(audio),
                        position: $crate::BlockPosition {
                            utterance: position.utterance,
                            pass: position.pass,
                            index: position.index,
                            offset: position.offset,
                            last: position.last,
                            total_frames: position.total_frames,
                        },
                        state,
                    };
                    let out = <$plugin as $crate::AudioStage>::process_block(
                        &glue::context(ctx),
                        &config,
                        block,
                    )
                    .map_err(glue::error)?;
                    Ok(w::BlockOutput {
                        audio: glue::audio_out(out.audio),
                        state: out.state,
                    })
                }
            }
    $crate::bindings::__export_world!(VoxpipeAudioStage with_types_in $crate::bindings);
        };
    };
}
