//! How much working memory a synthesis needs, estimated from its size before
//! it runs, for memory-aware admission (`admission.rs`). Two moments: from the
//! text's length when the request arrives, and from its phoneme ids once the
//! text stages and the phonemizer have run (a text stage may have made the
//! text longer).
//!
//! What grows with a request: the audio of a whole response, alive at once in
//! a few copies (the voice's output, the audio stages' input and output, the
//! resampler's). What does not: the model's working set per call, bounded by
//! `max_call_phonemes` and the decoder's windows. A streamed response holds
//! one window at a time.

/// The model's working set for one call (text encoder at 400 ids, flow at a
/// few thousand frames, a 280-frame decoder window), rounded up; measured with
/// `voxpipe-bench memory`.
pub const MODEL_MIB: u32 = 96;
/// Seconds of speech per character of text at speed 1, on the generous side
/// (English prose is about 0.065 s; normalized digits expand).
const SECONDS_PER_CHAR: f64 = 0.1;
/// Seconds of speech per phoneme id at speed 1 (joe: about 0.025; generous).
const SECONDS_PER_ID: f64 = 0.04;
/// Seconds of speech per phoneme id at speed 1, on the low side (joe's
/// fastest prose is about 0.02): a text whose audio is longer than this
/// says is certainly too long for a stage of bounded capacity.
pub const LOW_SECONDS_PER_ID: f64 = 0.015;
/// Copies of a whole response's audio alive at once.
const COPIES: f64 = 3.0;

/// The estimate when the request arrives: `chars` of text at `speed`.
pub fn from_text(chars: usize, speed: f32, streaming: bool, rate: u32) -> u32 {
    estimate(chars as f64 * SECONDS_PER_CHAR, speed, streaming, rate)
}

/// The estimate once the text is phonemized: `ids` phoneme ids at `speed`.
pub fn from_ids(ids: usize, speed: f32, streaming: bool, rate: u32) -> u32 {
    estimate(ids as f64 * SECONDS_PER_ID, speed, streaming, rate)
}

/// The memory `seconds` of silence add to a whole response (SSML breaks,
/// which no speed changes).
pub fn silence(seconds: f64, rate: u32) -> u32 {
    let audio = seconds * f64::from(rate.max(8_000)) * 4.0 * COPIES;
    (audio / f64::from(1u32 << 20)).ceil().min(u32::MAX as f64) as u32
}

fn estimate(seconds_at_speed_1: f64, speed: f32, streaming: bool, rate: u32) -> u32 {
    if streaming {
        return MODEL_MIB;
    }
    let seconds = seconds_at_speed_1 / f64::from(speed.clamp(0.25, 4.0));
    let audio = seconds * f64::from(rate.max(8_000)) * 4.0 * COPIES;
    MODEL_MIB.saturating_add((audio / f64::from(1u32 << 20)).ceil().min(u32::MAX as f64) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_responses_grow_with_length_and_slowness_streams_do_not() {
        let short = from_text(20, 1.0, false, 22_050);
        let long = from_text(5_000, 1.0, false, 22_050);
        let slow = from_text(5_000, 0.25, false, 22_050);
        assert!(short <= MODEL_MIB + 1);
        // 500 s of 22.05 kHz audio in three f32 copies: about 126 MiB.
        assert_eq!(long, MODEL_MIB + 127);
        assert!(slow > 3 * long - 3 * MODEL_MIB);
        assert_eq!(from_text(5_000, 0.25, true, 22_050), MODEL_MIB);
        assert_eq!(from_ids(10, 1.0, true, 48_000), MODEL_MIB);
        assert!(from_ids(50_000, 0.25, false, 22_050) > 2_000);
        // 120 s of breaks at 22.05 kHz, three f32 copies: about 31 MiB.
        assert_eq!(silence(120.0, 22_050), 31);
        assert_eq!(silence(0.0, 22_050), 0);
    }
}
