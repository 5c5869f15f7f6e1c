//! The `text-stage` world. A text plugin implements
//! [`voxpipe_plugin_sdk::TextStage`] and calls `voxpipe_plugin_text::export!(MyPlugin);`.

pub use voxpipe_plugin_sdk::*;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "voxpipe:stages/text-stage",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "voxpipe_plugin_text::bindings",
    });
    voxpipe_plugin_sdk::__wit_glue!(
        crate::bindings::voxpipe::stages::types,
        crate::bindings::voxpipe::stages::log
    );
}

/// Export a [`TextStage`] implementation as this component's `text-stage` world.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        const _: () = {
            use $crate::bindings::{glue, voxpipe::stages::types as w};
            struct VoxpipeTextStage;
            impl $crate::bindings::Guest for VoxpipeTextStage {
                fn describe() -> w::PluginInfo {
                    glue::enter();
                    glue::info(<$plugin as $crate::TextStage>::info(), w::StageKind::Text)
                }
                fn check_config(config: String) -> Result<(), w::StageError> {
                    glue::enter();
                    <$plugin as $crate::TextStage>::check_config(&glue::config(&config)?)
                        .map_err(glue::error)
                }
                fn normalize(
                    ctx: w::RequestContext,
                    config: String,
                    text: String,
                ) -> Result<String, w::StageError> {
                    glue::enter();
                    let config = glue::config(&config)?;
                    <$plugin as $crate::TextStage>::normalize(&glue::context(ctx), &config, text)
                        .map_err(glue::error)
                }
            }
    $crate::bindings::__export_world!(VoxpipeTextStage with_types_in $crate::bindings);
        };
    };
}
