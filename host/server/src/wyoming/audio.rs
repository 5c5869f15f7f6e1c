//! Audio as Wyoming carries it: `audio-start` {rate, width 2, channels},
//! `audio-chunk` events of at most `samples_per_chunk` frames of 16-bit
//! little-endian PCM, `audio-stop`. Small chunks let a speaker start playing
//! before a long sentence's audio has crossed the network.

use serde_json::json;

use super::event::Event;

/// Bytes per sample: Wyoming's `width`.
pub const WIDTH: u16 = 2;

/// The format every chunk of one `audio-start` … `audio-stop` repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub rate: u32,
    pub channels: u16,
}

pub fn start(f: Format) -> Event {
    Event::new(
        "audio-start",
        json!({ "rate": f.rate, "width": WIDTH, "channels": f.channels, "timestamp": 0 }),
    )
}

pub fn stop() -> Event {
    Event::new("audio-stop", json!({}))
}

/// 16-bit PCM of `samples` (interleaved), clipped to full scale.
pub fn pcm16(samples: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(samples.len() * 2);
    for &s in samples {
        let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// `pcm` as `audio-chunk` events of at most `frames_per_chunk` frames;
/// `timestamp` (ms of audio before this chunk) is advanced.
pub fn chunks(
    pcm: &[u8],
    f: Format,
    frames_per_chunk: usize,
    timestamp_ms: &mut u64,
) -> Vec<Event> {
    let frame = usize::from(WIDTH) * usize::from(f.channels.max(1));
    pcm.chunks(frames_per_chunk * frame)
        .map(|piece| {
            let mut e = Event::new(
                "audio-chunk",
                json!({
                    "rate": f.rate,
                    "width": WIDTH,
                    "channels": f.channels,
                    "timestamp": *timestamp_ms,
                }),
            );
            *timestamp_ms += (piece.len() / frame) as u64 * 1000 / u64::from(f.rate.max(1));
            e.payload = piece.to_vec();
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_bounded_and_cover_the_audio() {
        let f = Format {
            rate: 1000,
            channels: 1,
        };
        let pcm = pcm16(&vec![0.5; 2500]);
        assert_eq!(&pcm[..2], &16384i16.to_le_bytes());
        let mut ts = 0;
        let events = chunks(&pcm, f, 1024, &mut ts);
        let sizes: Vec<usize> = events.iter().map(|e| e.payload.len()).collect();
        assert_eq!(sizes, vec![2048, 2048, 904]);
        assert_eq!(events[1].data["timestamp"], 1024);
        assert_eq!(ts, 2500);
        assert_eq!(
            pcm16(&[2.0, -2.0]),
            [32767i16.to_le_bytes(), (-32767i16).to_le_bytes()].concat()
        );
    }
}
