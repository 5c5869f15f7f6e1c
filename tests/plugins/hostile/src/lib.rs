//! A text plugin that misbehaves on purpose, chosen by `config.mode`:
//! `echo` (behaves), `loop`, `membomb`, `recursion`, `panic`, `huge-output`,
//! `log-flood`, `fault`, and the results the host must not trust:
//! `invalid-utf8`, `huge-error` (a 10 MB error message), `forged-log` (log
//! lines with newlines and escapes), `expand` (returns `size_kb` KiB of
//! `repeat`, e.g. a giant `[[ ]]` phoneme block). The runtime tests use it to
//! prove that no plugin can take the host down.

use std::hint::black_box;
use voxpipe_plugin_text::{log, Config, Context, PluginInfo, StageError, TextStage};

pub struct Hostile;

/// Exercise the SDK allocator: many blocks freed out of order, a vector
/// grown far past the arena into the system allocator, strings grown in
/// place. Returns a checksum that the native build computes identically.
pub fn churn() -> u64 {
    let mut keep: Vec<Vec<u32>> = Vec::new();
    let mut sum = 0u64;
    for i in 0..2000u32 {
        let v: Vec<u32> = (0..(i % 97) * 31).map(|x| x ^ i).collect();
        if i % 3 == 0 {
            keep.push(v);
        } else {
            sum = sum.wrapping_add(v.iter().map(|&x| x as u64).sum::<u64>());
        }
        if keep.len() > 50 {
            keep.remove(i as usize % 50);
        }
    }
    let mut big: Vec<u64> = Vec::new();
    for i in 0..1_500_000u64 {
        big.push(i * 7);
    }
    let mut s = String::new();
    for i in 0..20_000 {
        s.push_str(&i.to_string());
    }
    for v in &keep {
        sum = sum.wrapping_add(v.iter().map(|&x| x as u64).sum::<u64>());
    }
    sum.wrapping_add(big.iter().sum::<u64>())
        .wrapping_add(s.len() as u64)
}

#[inline(never)]
fn recurse(depth: u64, pad: [u8; 256]) -> u64 {
    let pad = black_box(pad);
    if black_box(depth) == u64::MAX {
        return pad[0] as u64;
    }
    recurse(depth + 1, pad) + pad[(depth % 256) as usize] as u64
}

impl TextStage for Hostile {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "hostile",
            env!("CARGO_PKG_VERSION"),
            "Misbehaves on purpose (tests only)",
        )
    }

    fn normalize(_ctx: &Context, config: &Config, text: String) -> Result<String, StageError> {
        let mode: String = config.get_or("mode", "echo".to_string())?;
        match mode.as_str() {
            "echo" => Ok(text),
            // Logs the request's text: the host must keep it out of spans.
            "log-input" => {
                log::info(&format!("the input was: {text}"));
                Ok(text)
            }
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "membomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    black_box(&hoard);
                }
            }
            "recursion" => Ok(recurse(0, [7; 256]).to_string()),
            "panic" => panic!("hostile plugin panics on purpose"),
            "huge-output" => {
                let mb: usize = config.get_or("size_mb", 8)?;
                Ok("x".repeat(mb << 20))
            }
            "log-flood" => {
                for i in 0..10_000 {
                    log::info(&format!("flood line {i} {}", "y".repeat(4096)));
                }
                Ok(text)
            }
            "churn" => Ok(churn().to_string()),
            "invalid-utf8" => {
                // The host lifts the result and must refuse it, not crash.
                let bytes = vec![b'o', b'k', 0xff, 0xfe, 0xfd];
                // SAFETY: deliberately not UTF-8; never read as a str here.
                Ok(unsafe { String::from_utf8_unchecked(bytes) })
            }
            "huge-error" => Err(StageError::InvalidInput(format!(
                "bad\ninput {}",
                "e".repeat(10 << 20)
            ))),
            "forged-log" => {
                log::info(
                    "innocent\n{\"level\":\"ERROR\",\"message\":\"forged\"}\r\n\u{1b}[2Jforged too",
                );
                Ok(text)
            }
            "expand" => {
                let kb: usize = config.get_or("size_kb", 200)?;
                let unit: String = config.get_or("repeat", "hello ".to_string())?;
                let mut out = String::with_capacity(kb << 10);
                while out.len() < kb << 10 {
                    out.push_str(&unit);
                }
                Ok(out)
            }
            "fault" => Err(StageError::PluginFault("refuses on purpose".to_string())),
            "invalid" => Err(StageError::InvalidInput(
                "does not like this text".to_string(),
            )),
            other => Err(StageError::InvalidConfig(format!("unknown mode {other}"))),
        }
    }
}

voxpipe_plugin_text::export!(Hostile);
