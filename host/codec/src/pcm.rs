//! 16-bit PCM: the sample conversions every encoder shares (clipping to
//! [-1, 1], scaling to 16 bits), raw little-endian samples (`pcm`) and the
//! canonical 44-byte RIFF/WAVE header (`wav`), including the unknown-length
//! form used when streaming.

use voxpipe_types::Audio;

use crate::EncodeError;

/// Clip to [-1, 1] and scale to 16 bits (same rule as voxpipe's `wav::write`).
/// NaN becomes 0.
#[inline]
pub(crate) fn to_i16(s: f32) -> i16 {
    (s.clamp(-1.0, 1.0) * i16::MAX as f32).round() as i16
}

#[inline]
pub(crate) fn clip(s: f32) -> f32 {
    if s.is_nan() {
        0.0
    } else {
        s.clamp(-1.0, 1.0)
    }
}

pub(crate) fn pcm16_bytes(samples: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(samples.len() * 2);
    for &s in samples {
        out.extend_from_slice(&to_i16(s).to_le_bytes());
    }
    out
}

/// 44-byte canonical WAV header; `data_len == None` writes the unknown-length
/// marker 0xFFFFFFFF in both the RIFF and data sizes.
pub(crate) fn wav_header(rate: u32, channels: u16, data_len: Option<u32>) -> Vec<u8> {
    let block_align = channels as u32 * 2;
    let (riff_len, data_len) = match data_len {
        Some(n) => (n + 36, n),
        None => (u32::MAX, u32::MAX),
    };
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&riff_len.to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // PCM
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * block_align).to_le_bytes());
    h.extend_from_slice(&(block_align as u16).to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

/// Encodes a whole WAV file (header with the real sizes, then the samples).
pub(crate) fn encode_wav(audio: &Audio) -> Result<Vec<u8>, EncodeError> {
    let body = pcm16_bytes(&audio.samples);
    let len = u32::try_from(body.len())
        .ok()
        .filter(|n| *n <= u32::MAX - 36)
        .ok_or_else(|| EncodeError::Codec("audio too long for a WAV file".into()))?;
    let mut out = wav_header(audio.sample_rate, audio.channels, Some(len));
    out.extend_from_slice(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{expected_i16, input, stereo_input, stream_all, RATE};
    use crate::{encode, AudioFormat, StreamEncoder};
    use std::io::Cursor;

    #[test]
    fn wav_round_trips_through_hound() {
        let a = input();
        let bytes = encode(&a, AudioFormat::Wav).unwrap();
        assert_eq!(bytes.len(), 44 + 2 * a.samples.len());
        assert_eq!(&bytes[4..8], &(bytes.len() as u32 - 8).to_le_bytes());
        assert_eq!(&bytes[40..44], &(2 * a.samples.len() as u32).to_le_bytes());
        let mut r = hound::WavReader::new(Cursor::new(&bytes)).unwrap();
        let spec = r.spec();
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.bits_per_sample),
            (RATE, 1, 16)
        );
        assert_eq!(spec.sample_format, hound::SampleFormat::Int);
        let got: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(got, expected_i16(&a));

        let s = stereo_input();
        let bytes = encode(&s, AudioFormat::Wav).unwrap();
        let mut r = hound::WavReader::new(Cursor::new(&bytes)).unwrap();
        assert_eq!(r.spec().channels, 2);
        let got: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(got, expected_i16(&s));
    }

    #[test]
    fn pcm_is_clipped_s16le() {
        let a = Audio {
            sample_rate: RATE,
            channels: 1,
            samples: vec![0.0, 0.5, -0.5, 1.0, -1.0, 1.5, -2.0, f32::NAN, 1e-6],
        };
        let bytes = encode(&a, AudioFormat::Pcm).unwrap();
        let got: Vec<i16> = bytes
            .chunks(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(got, [0, 16384, -16384, 32767, -32767, 32767, -32767, 0, 0]);
        let sine = input();
        let bytes = encode(&sine, AudioFormat::Pcm).unwrap();
        let got: Vec<i16> = bytes
            .chunks(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(got, expected_i16(&sine));
    }

    #[test]
    fn streamed_wav_and_pcm_match_whole_file() {
        let chunks = [1, 999, 4410, 7, 10_000];
        for a in [input(), stereo_input()] {
            let whole = encode(&a, AudioFormat::Wav).unwrap();
            let streamed = stream_all(AudioFormat::Wav, &a, &chunks);
            assert_eq!(&streamed[..4], b"RIFF");
            assert_eq!(&streamed[4..8], &[0xFF; 4]);
            assert_eq!(&streamed[40..44], &[0xFF; 4]);
            assert_eq!(&streamed[8..40], &whole[8..40], "fmt chunk");
            assert_eq!(&streamed[44..], &whole[44..], "body");

            let whole = encode(&a, AudioFormat::Pcm).unwrap();
            let mut enc = StreamEncoder::new(AudioFormat::Pcm, RATE, a.channels).unwrap();
            assert!(enc.header().is_empty());
            assert_eq!(stream_all(AudioFormat::Pcm, &a, &chunks), whole);
        }
    }
}
