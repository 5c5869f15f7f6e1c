//! A text plugin that imports WASI and uses what a sandbox must bound, chosen
//! by the config text: `"block"` sleeps an hour in `pollable.block()`,
//! `"poll"` an hour in `poll([…])`, `"exit"` calls `wasi:cli/exit`,
//! `"pollables"` creates pollables without end. `check-config` does the same
//! when the config says `"check":"block"` (or `poll`). Anything else echoes.

wit_bindgen::generate!({
    path: "wit",
    world: "test:hostile-wasi/hostile-wasi",
    generate_all,
});

use voxpipe::stages::types::{Passes, StageKind};
use wasi::clocks::monotonic_clock;
use wasi::io::poll;

const HOUR_NS: u64 = 3_600_000_000_000;

struct HostileWasi;

fn misbehave(what: &str) {
    match what {
        "block" => monotonic_clock::subscribe_duration(HOUR_NS).block(),
        "poll" => {
            let p = monotonic_clock::subscribe_duration(HOUR_NS);
            poll::poll(&[&p]);
        }
        "exit" => wasi::cli::exit::exit(Err(())),
        "pollables" => {
            let mut keep = Vec::new();
            loop {
                keep.push(monotonic_clock::subscribe_duration(HOUR_NS));
            }
        }
        _ => {}
    }
}

fn mode(config: &str, key: &str) -> String {
    // The tests pass `{"<key>":"<value>"}`; no JSON parser needed.
    let needle = format!("\"{key}\":\"");
    config
        .find(&needle)
        .map(|i| &config[i + needle.len()..])
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
        .to_string()
}

impl Guest for HostileWasi {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile-wasi".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            kind: StageKind::Text,
            description: "Waits in WASI calls on purpose (tests only)".to_string(),
            passes: Passes::One,
            applies: Vec::new(),
        }
    }

    fn check_config(config: String) -> Result<(), StageError> {
        misbehave(&mode(&config, "check"));
        Ok(())
    }

    fn normalize(_ctx: RequestContext, config: String, text: String) -> Result<String, StageError> {
        misbehave(&mode(&config, "mode"));
        Ok(text)
    }
}

export!(HostileWasi);
