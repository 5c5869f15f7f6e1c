//! The `style-stage` world. A style plugin implements
//! [`voxpipe_plugin_sdk::StyleStage`] and calls `voxpipe_plugin_style::export!(MyPlugin);`.

pub use voxpipe_plugin_sdk::*;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "voxpipe:stages/style-stage",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "voxpipe_plugin_style::bindings",
    });
    voxpipe_plugin_sdk::__wit_glue!(
        crate::bindings::voxpipe::stages::types,
        crate::bindings::voxpipe::stages::log
    );
}

/// Export a [`StyleStage`] implementation as this component's `style-stage` world.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        const _: () = {
            use $crate::bindings::{glue, voxpipe::stages::types as w};
            struct VoxpipeStyleStage;
            impl $crate::bindings::Guest for VoxpipeStyleStage {
                fn describe() -> w::PluginInfo {
                    glue::enter();
                    glue::info(<$plugin as $crate::StyleStage>::info(), w::StageKind::Style)
                }
                fn check_config(config: String) -> Result<(), w::StageError> {
                    glue::enter();
                    <$plugin as $crate::StyleStage>::check_config(&glue::config(&config)?)
                        .map_err(glue::error)
                }
                fn map_instruct(
                    ctx: w::RequestContext,
                    config: String,
                    instruct: String,
                ) -> Result<w::StyleOutcome, w::StageError> {
                    glue::enter();
                    let config = glue::config(&config)?;
                    let outcome = <$plugin as $crate::StyleStage>::map_instruct(
                        &glue::context(ctx),
                        &config,
                        &instruct,
                    )
                    .map_err(glue::error)?;
                    Ok(match outcome {
                        $crate::StyleOutcome::Mapped { style, label } => {
                            w::StyleOutcome::Mapped(w::MappedStyle {
                                style: glue::style_out(style),
                                label,
                            })
                        }
                        $crate::StyleOutcome::Unmapped(reason) => w::StyleOutcome::Unmapped(reason),
                    })
                }
            }
    $crate::bindings::__export_world!(VoxpipeStyleStage with_types_in $crate::bindings);
        };
    };
}
