//! FLAC, 16-bit, whole files only, with the pure-Rust `flacenc` (no system
//! library needed).

use voxpipe_types::Audio;

use crate::pcm::to_i16;
use crate::EncodeError;

/// Encodes a whole FLAC file.
pub(crate) fn encode(audio: &Audio) -> Result<Vec<u8>, EncodeError> {
    use flacenc::component::BitRepr;
    use flacenc::error::Verify;

    let samples: Vec<i32> = audio
        .samples
        .iter()
        .map(|&s| i32::from(to_i16(s)))
        .collect();
    let config = flacenc::config::Encoder::default()
        .into_verified()
        .map_err(|(_, e)| EncodeError::Codec(format!("flac config: {e}")))?;
    let source = flacenc::source::MemSource::from_samples(
        &samples,
        audio.channels as usize,
        16,
        audio.sample_rate as usize,
    );
    let stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
        .map_err(|e| EncodeError::Codec(format!("flac: {e}")))?;
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream
        .write(&mut sink)
        .map_err(|e| EncodeError::Codec(format!("flac write: {e}")))?;
    Ok(sink.into_inner())
}

#[cfg(test)]
mod tests {
    use crate::test_util::{expected_i16, input, stereo_input, RATE};
    use crate::{encode, AudioFormat};
    use std::io::Cursor;

    #[test]
    fn flac_is_bit_exact() {
        for a in [input(), stereo_input()] {
            let bytes = encode(&a, AudioFormat::Flac).unwrap();
            assert_eq!(&bytes[..4], b"fLaC");
            assert!(
                bytes.len() < 2 * a.samples.len(),
                "no compression: {}",
                bytes.len()
            );
            let mut r = claxon::FlacReader::new(Cursor::new(&bytes)).unwrap();
            let info = r.streaminfo();
            assert_eq!(info.sample_rate, RATE);
            assert_eq!(info.channels, a.channels as u32);
            assert_eq!(info.bits_per_sample, 16);
            assert_eq!(
                info.samples,
                Some((a.samples.len() / a.channels as usize) as u64)
            );
            let got: Vec<i16> = r.samples().map(|s| s.unwrap() as i16).collect();
            assert_eq!(got, expected_i16(&a));
        }
    }
}
