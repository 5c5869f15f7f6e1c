//! [`StreamEncoder`]: incremental encoding for chunked synthesis, so the
//! first sentence can be sent while later ones are still being synthesised.
//! WAV and PCM are written directly; MP3 and Ogg Opus keep codec state
//! between pushes. FLAC is whole-file only.

use std::borrow::Cow;
use std::fmt;

use crate::mp3::Mp3State;
use crate::ogg_opus::OpusState;
use crate::pcm::{pcm16_bytes, wav_header};
use crate::{check_params, unsupported, AudioFormat, EncodeError, AAC_REASON};

const FLAC_STREAM_REASON: &str =
    "FLAC is produced as a whole file only; use wav, pcm, mp3 or opus for streaming";

enum Inner {
    Wav,
    Pcm,
    Mp3(Box<Mp3State>),
    Opus(Box<OpusState>),
}

/// Incremental encoder for chunked synthesis (e.g. one chunk per sentence).
///
/// Send [`header`](Self::header) first, then the bytes from every
/// [`push`](Self::push), then [`finish`](Self::finish). If `header` is never
/// called, the header is prepended to the first output instead. Chunks may
/// have any length; a trailing partial multi-channel frame is carried over to
/// the next push (and dropped at `finish`).
pub struct StreamEncoder {
    format: AudioFormat,
    channels: usize,
    header: Option<Vec<u8>>,
    carry: Vec<f32>,
    finished: bool,
    inner: Inner,
}

impl fmt::Debug for StreamEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamEncoder")
            .field("format", &self.format)
            .field("channels", &self.channels)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl StreamEncoder {
    pub fn new(format: AudioFormat, sample_rate: u32, channels: u16) -> Result<Self, EncodeError> {
        check_params(format, sample_rate, channels)?;
        let (header, inner) = match format {
            AudioFormat::Wav => (wav_header(sample_rate, channels, None), Inner::Wav),
            AudioFormat::Pcm => (Vec::new(), Inner::Pcm),
            AudioFormat::Mp3 => (
                Vec::new(),
                Inner::Mp3(Box::new(Mp3State::new(sample_rate, channels, false)?)),
            ),
            AudioFormat::Opus => {
                let (state, header) = OpusState::new(sample_rate, channels)?;
                (header, Inner::Opus(Box::new(state)))
            }
            AudioFormat::Flac => return Err(unsupported(format, FLAC_STREAM_REASON)),
            AudioFormat::Aac => return Err(unsupported(format, AAC_REASON)),
        };
        Ok(StreamEncoder {
            format,
            channels: channels as usize,
            header: Some(header),
            carry: Vec::new(),
            finished: false,
            inner,
        })
    }

    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// Bytes to send before any pushed audio (WAV header with unknown sizes,
    /// Ogg OpusHead/OpusTags pages; empty for pcm and mp3). Returns them once;
    /// later calls return an empty vector.
    pub fn header(&mut self) -> Vec<u8> {
        self.header.take().unwrap_or_default()
    }

    /// Encodes a chunk of interleaved samples and returns the bytes ready so
    /// far (codecs may hold back a partial frame until the next push/finish).
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, EncodeError> {
        if self.finished {
            return Err(EncodeError::Codec("push after finish".into()));
        }
        let mut out = self.header();
        let frames: Cow<[f32]> = if self.channels == 1 {
            Cow::Borrowed(samples)
        } else {
            let mut all = std::mem::take(&mut self.carry);
            all.extend_from_slice(samples);
            let whole = all.len() - all.len() % self.channels;
            self.carry = all.split_off(whole);
            Cow::Owned(all)
        };
        match &mut self.inner {
            Inner::Wav | Inner::Pcm => out.extend(pcm16_bytes(&frames)),
            Inner::Mp3(s) => out.extend(s.push(&frames)?),
            Inner::Opus(s) => out.extend(s.push(&frames)?),
        }
        Ok(out)
    }

    /// Flushes buffered audio and ends the stream. Later calls return nothing.
    pub fn finish(&mut self) -> Result<Vec<u8>, EncodeError> {
        if self.finished {
            return Ok(Vec::new());
        }
        self.finished = true;
        self.carry.clear();
        let mut out = self.header();
        match &mut self.inner {
            Inner::Wav | Inner::Pcm => {}
            Inner::Mp3(s) => out.extend(s.finish()?),
            Inner::Opus(s) => out.extend(s.finish()?),
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{input, RATE};

    #[test]
    fn stream_encoder_is_send() {
        fn is_send<T: Send>() {}
        is_send::<StreamEncoder>();
    }

    #[test]
    fn header_is_prepended_if_not_requested() {
        let a = input();
        let mut enc = StreamEncoder::new(AudioFormat::Wav, RATE, 1).unwrap();
        let mut out = enc.push(&a.samples).unwrap();
        out.extend(enc.finish().unwrap());
        assert_eq!(out.len(), 44 + 2 * a.samples.len());
        assert!(enc.header().is_empty());
        assert!(enc.finish().unwrap().is_empty());
        assert!(enc.push(&a.samples).is_err());
    }
}
