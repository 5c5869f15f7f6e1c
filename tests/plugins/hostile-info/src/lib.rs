//! A text plugin whose `describe()` the tests choose by patching the bytes
//! of [`MARKER`] in the built component (same length, so the component stays
//! valid): `default` describes itself normally; `name-nul`, `name-newline`,
//! `name-huge` (20 MiB), `version-space`, `desc-huge` (1 MiB of escapes and
//! newlines), `applies-text`, `applies-many` return what the host must refuse or clean.

use voxpipe_plugin_text::{Config, Context, PluginInfo, StageError, TextStage};

/// 64 bytes: `voxpipe-hostile-info:` then the mode, padded with `_`.
#[no_mangle]
#[used]
pub static MARKER: [u8; 64] = *b"voxpipe-hostile-info:default____________________________________";

fn mode() -> String {
    // Read through a volatile load so the compiler cannot fold the constant.
    let bytes: [u8; 64] = unsafe { core::ptr::read_volatile(&MARKER) };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mode = text.trim_start_matches("voxpipe-hostile-info:");
    mode.trim_end_matches('_').to_string()
}

pub struct HostileInfo;

impl TextStage for HostileInfo {
    fn info() -> PluginInfo {
        let version = env!("CARGO_PKG_VERSION");
        let about = "Describes itself badly on purpose (tests only)";
        match mode().as_str() {
            "name-nul" => PluginInfo::new("hostile\0info", version, about),
            "name-newline" => PluginInfo::new("hostile\ninfo", version, about),
            "name-huge" => PluginInfo::new(&"n".repeat(20 << 20), version, about),
            "version-space" => PluginInfo::new("hostile-info", " 1.0 ", about),
            "desc-huge" => {
                PluginInfo::new("hostile-info", version, &"line\n\u{1b}[31m".repeat(1 << 16))
            }
            // Only audio stages apply style fields; and at most 32 entries.
            "applies-text" => PluginInfo::new("hostile-info", version, about).applies(&["pitch"]),
            "applies-many" => {
                let many = vec!["emotion:x"; 100_000];
                PluginInfo::new("hostile-info", version, about).applies(&many)
            }
            _ => PluginInfo::new("hostile-info", version, about),
        }
    }

    fn normalize(_ctx: &Context, _config: &Config, text: String) -> Result<String, StageError> {
        Ok(text)
    }
}

voxpipe_plugin_text::export!(HostileInfo);
