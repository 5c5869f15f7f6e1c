//! Audio encoding for the speech endpoint (OpenAI `response_format` semantics).
//!
//! | format | output                                   | whole file | streaming |
//! |--------|------------------------------------------|------------|-----------|
//! | `wav`  | 16-bit PCM RIFF/WAVE                      | yes        | yes (sizes `0xFFFFFFFF`) |
//! | `pcm`  | raw signed 16-bit little-endian, no header| yes        | yes       |
//! | `flac` | FLAC, 16-bit (pure-Rust `flacenc`)        | yes        | no        |
//! | `mp3`  | MPEG audio layer III, CBR (LAME)          | yes (with LAME/Info tag for gapless) | yes |
//! | `opus` | Opus in Ogg (RFC 7845), 48 kHz (libopus)  | yes        | yes       |
//! | `aac`  | not available: [`EncodeError::Unsupported`] | no       | no        |
//!
//! Samples are clipped to [-1, 1] before any 16-bit conversion or encoding.
//! Sample rates outside 8 kHz..=192 kHz are rejected.
//!
//! System libraries (Debian): `libopus-dev` and `libmp3lame-dev` at build
//! time, `libopus0` and `libmp3lame0` at run time.
//!
//! This file holds the format names, the errors, the parameter checks and the
//! whole-file [`encode`] entry point; each format's encoder lives in its own
//! module (`pcm`, `flac`, `mp3`, `ogg_opus`), streaming in `stream`,
//! sample-rate conversion in `resample`, and WAV file I/O in [`wav`].

mod flac;
mod mp3;
mod ogg_opus;
mod pcm;
pub mod regions;
mod resample;
mod stream;
#[cfg(test)]
mod test_util;
pub mod wav;

use std::fmt;
use std::str::FromStr;

use voxpipe_types::Audio;

pub use resample::resample;
pub use stream::StreamEncoder;

/// Lowest sample rate accepted by [`encode`] and [`StreamEncoder::new`].
pub(crate) const MIN_SAMPLE_RATE: u32 = 8_000;
/// Highest sample rate accepted by [`encode`] and [`StreamEncoder::new`].
pub(crate) const MAX_SAMPLE_RATE: u32 = 192_000;

/// Output container/codec, as named by the OpenAI speech API `response_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    Wav,
    Pcm,
    Flac,
    Mp3,
    Opus,
    Aac,
}

impl AudioFormat {
    /// Every format, in the order used in error messages.
    pub const ALL: [AudioFormat; 6] = [
        AudioFormat::Wav,
        AudioFormat::Pcm,
        AudioFormat::Flac,
        AudioFormat::Mp3,
        AudioFormat::Opus,
        AudioFormat::Aac,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            AudioFormat::Wav => "wav",
            AudioFormat::Pcm => "pcm",
            AudioFormat::Flac => "flac",
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Opus => "opus",
            AudioFormat::Aac => "aac",
        }
    }

    /// HTTP `Content-Type`. `pcm` has no registered type without parameters
    /// (`audio/L16;rate=..` is big-endian); `audio/pcm` is what OpenAI-style
    /// servers send. Opus is in an Ogg container, hence `audio/ogg`.
    pub fn content_type(&self) -> &'static str {
        match self {
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Pcm => "audio/pcm",
            AudioFormat::Flac => "audio/flac",
            AudioFormat::Mp3 => "audio/mpeg",
            AudioFormat::Opus => "audio/ogg",
            AudioFormat::Aac => "audio/aac",
        }
    }

    /// Whether [`encode`] can produce this format (`aac` has no encoder).
    pub fn encodable(&self) -> bool {
        !matches!(self, AudioFormat::Aac)
    }

    /// Whether [`StreamEncoder`] supports this format.
    pub fn streamable(&self) -> bool {
        matches!(
            self,
            AudioFormat::Wav | AudioFormat::Pcm | AudioFormat::Mp3 | AudioFormat::Opus
        )
    }
}

impl fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error from parsing an [`AudioFormat`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audio format {0:?}; expected one of: wav, pcm, flac, mp3, opus, aac")]
pub struct ParseFormatError(pub String);

impl FromStr for AudioFormat {
    type Err = ParseFormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        AudioFormat::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| ParseFormatError(s.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("{format} output is not supported: {reason}")]
    Unsupported {
        format: &'static str,
        reason: String,
    },
    #[error("invalid sample rate {rate} Hz: {reason}")]
    InvalidSampleRate { rate: u32, reason: String },
    #[error("audio codec error: {0}")]
    Codec(String),
}

const AAC_REASON: &str = "no AAC encoder is built into voxpipe (the only embeddable \
     encoder, Fraunhofer FDK AAC, is under a non-free licence and adds a large C++ build); \
     use response_format opus (Ogg Opus) or mp3 instead, or convert wav with ffmpeg";

fn unsupported(format: AudioFormat, reason: impl Into<String>) -> EncodeError {
    EncodeError::Unsupported {
        format: format.as_str(),
        reason: reason.into(),
    }
}

/// Validates rate and channel count for `format`.
fn check_params(format: AudioFormat, rate: u32, channels: u16) -> Result<(), EncodeError> {
    if format == AudioFormat::Aac {
        return Err(unsupported(format, AAC_REASON));
    }
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        return Err(EncodeError::InvalidSampleRate {
            rate,
            reason: format!("must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz"),
        });
    }
    let max_channels = match format {
        AudioFormat::Mp3 | AudioFormat::Opus => 2,
        AudioFormat::Flac => 8,
        _ => u16::MAX,
    };
    if channels == 0 {
        return Err(unsupported(format, "audio has zero channels"));
    }
    if channels > max_channels {
        return Err(unsupported(
            format,
            format!("{channels} channels (at most {max_channels})"),
        ));
    }
    Ok(())
}

/// Encodes a whole utterance into a complete file of `format`.
pub fn encode(audio: &Audio, format: AudioFormat) -> Result<Vec<u8>, EncodeError> {
    check_params(format, audio.sample_rate, audio.channels)?;
    let ch = audio.channels as usize;
    if !audio.samples.len().is_multiple_of(ch) {
        return Err(EncodeError::Codec(format!(
            "{} samples is not a whole number of {ch}-channel frames",
            audio.samples.len()
        )));
    }
    match format {
        AudioFormat::Wav => pcm::encode_wav(audio),
        AudioFormat::Pcm => Ok(pcm::pcm16_bytes(&audio.samples)),
        AudioFormat::Flac => flac::encode(audio),
        AudioFormat::Mp3 => mp3::encode(audio),
        AudioFormat::Opus => {
            let mut enc = StreamEncoder::new(format, audio.sample_rate, audio.channels)?;
            let mut out = enc.header();
            out.extend(enc.push(&audio.samples)?);
            out.extend(enc.finish()?);
            Ok(out)
        }
        AudioFormat::Aac => Err(unsupported(format, AAC_REASON)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{
        best_lag, decode_mp3, decode_opus, input, lame_tag, parse_ogg_opus, MP3_DECODER_DELAY, RATE,
    };
    use std::f32::consts::PI;
    use std::io::Cursor;

    /// Every format with an encoder (all but aac).
    const ENCODABLE: [AudioFormat; 5] = [
        AudioFormat::Wav,
        AudioFormat::Pcm,
        AudioFormat::Flac,
        AudioFormat::Mp3,
        AudioFormat::Opus,
    ];

    #[test]
    fn format_names_parse_case_insensitively() {
        for f in AudioFormat::ALL {
            assert_eq!(f.as_str().parse::<AudioFormat>().unwrap(), f);
            assert_eq!(f.as_str().to_uppercase().parse::<AudioFormat>().unwrap(), f);
            assert_eq!(f.to_string(), f.as_str());
        }
        assert_eq!(" Opus ".parse::<AudioFormat>().unwrap(), AudioFormat::Opus);
        let err = "ogg".parse::<AudioFormat>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"ogg\""), "{msg}");
        for name in ["wav", "pcm", "flac", "mp3", "opus", "aac"] {
            assert!(msg.contains(name), "{msg} lacks {name}");
        }
        assert!("".parse::<AudioFormat>().is_err());
        assert_eq!(AudioFormat::Mp3.content_type(), "audio/mpeg");
        assert_eq!(AudioFormat::Opus.content_type(), "audio/ogg");
        assert_eq!(AudioFormat::Wav.content_type(), "audio/wav");
        let streamable: Vec<_> = AudioFormat::ALL
            .into_iter()
            .filter(|f| f.streamable())
            .collect();
        assert_eq!(
            streamable,
            [
                AudioFormat::Wav,
                AudioFormat::Pcm,
                AudioFormat::Mp3,
                AudioFormat::Opus
            ]
        );
    }

    #[test]
    fn encodable_says_what_encode_does() {
        for f in AudioFormat::ALL {
            assert_eq!(f.encodable(), encode(&input(), f).is_ok(), "{f}");
        }
    }

    #[test]
    fn aac_and_flac_streaming_are_unsupported() {
        let err = encode(&input(), AudioFormat::Aac).unwrap_err();
        match &err {
            EncodeError::Unsupported { format, reason } => {
                assert_eq!(*format, "aac");
                assert!(
                    reason.contains("opus") && reason.contains("mp3"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().starts_with("aac output is not supported"));
        for f in AudioFormat::ALL.into_iter().filter(|f| !f.streamable()) {
            assert!(matches!(
                StreamEncoder::new(f, RATE, 1),
                Err(EncodeError::Unsupported { .. })
            ));
        }
    }

    #[test]
    fn rejects_bad_rates_and_channels() {
        for rate in [0, 7_999, 192_001] {
            let mut a = input();
            a.sample_rate = rate;
            for f in ENCODABLE {
                assert!(
                    matches!(encode(&a, f), Err(EncodeError::InvalidSampleRate { rate: r, .. }) if r == rate),
                    "{f} at {rate}"
                );
                assert!(matches!(
                    StreamEncoder::new(f, rate, 1),
                    Err(EncodeError::InvalidSampleRate { .. })
                        | Err(EncodeError::Unsupported { .. })
                ));
            }
        }
        for f in [
            AudioFormat::Wav,
            AudioFormat::Pcm,
            AudioFormat::Mp3,
            AudioFormat::Opus,
        ] {
            assert!(StreamEncoder::new(f, 8_000, 1).is_ok(), "{f}");
            assert!(StreamEncoder::new(f, 192_000, 1).is_ok(), "{f}");
            assert!(matches!(
                StreamEncoder::new(f, RATE, 0),
                Err(EncodeError::Unsupported { .. })
            ));
        }
        assert!(matches!(
            StreamEncoder::new(AudioFormat::Mp3, RATE, 3),
            Err(EncodeError::Unsupported { .. })
        ));
        assert!(matches!(
            StreamEncoder::new(AudioFormat::Opus, RATE, 3),
            Err(EncodeError::Unsupported { .. })
        ));
        let ragged = Audio {
            sample_rate: RATE,
            channels: 2,
            samples: vec![0.0; 3],
        };
        assert!(matches!(
            encode(&ragged, AudioFormat::Wav),
            Err(EncodeError::Codec(_))
        ));
    }

    #[test]
    fn empty_audio_encodes() {
        let empty = Audio {
            sample_rate: RATE,
            channels: 1,
            samples: vec![],
        };
        for f in ENCODABLE {
            let bytes = encode(&empty, f).unwrap_or_else(|e| panic!("{f}: {e}"));
            match f {
                AudioFormat::Wav => assert_eq!(bytes.len(), 44),
                AudioFormat::Pcm => assert!(bytes.is_empty()),
                AudioFormat::Flac => {
                    // STREAMINFO total 0 reads back as "unknown".
                    let mut r = claxon::FlacReader::new(Cursor::new(&bytes)).unwrap();
                    assert!(matches!(r.streaminfo().samples, None | Some(0)));
                    assert_eq!(r.samples().count(), 0);
                }
                _ => {}
            }
        }
    }

    /// A non-periodic signal pins down alignment exactly (a sine only
    /// modulo its period).
    #[test]
    fn mp3_and_opus_alignment_with_chirp() {
        let n = RATE as usize;
        let (f0, f1) = (300.0f32, 3000.0f32);
        let chirp = Audio {
            sample_rate: RATE,
            channels: 1,
            samples: (0..n)
                .map(|i| {
                    let t = i as f32 / RATE as f32;
                    0.5 * (2.0 * PI * (f0 * t + (f1 - f0) * t * t / 2.0)).sin()
                })
                .collect(),
        };
        let bytes = encode(&chirp, AudioFormat::Mp3).unwrap();
        let (_, _, pcm, frames) = decode_mp3(&bytes);
        let (delay, _) = lame_tag(&bytes).unwrap();
        let audio = &pcm[frames[0]..];
        let (lag, c) = best_lag(audio, &chirp.samples, 4000, n - 4000);
        assert!(c > 0.9, "mp3 chirp corr {c}");
        assert!(
            lag.abs_diff(delay + MP3_DECODER_DELAY) <= 1,
            "mp3 lag {lag}, tag says {}",
            delay + MP3_DECODER_DELAY
        );

        let o = parse_ogg_opus(&encode(&chirp, AudioFormat::Opus).unwrap());
        let got = decode_opus(&o);
        let want = resample(&chirp, 48_000).samples;
        let len = want.len() - 200;
        let (lag_fwd, c_fwd) = best_lag(&got, &want, 100, len);
        let (lag_back, c_back) = best_lag(&want, &got, 100, len);
        // libopus' true delay is ~1.5 samples under its reported lookahead
        // (which is the standard pre-skip, as opusenc writes it).
        let (lag, c) = if c_fwd >= c_back {
            (lag_fwd, c_fwd)
        } else {
            (lag_back, c_back)
        };
        assert!(c > 0.9, "opus chirp corr {c}");
        assert!(
            lag <= 3,
            "opus misaligned by {lag} samples (fwd {lag_fwd}, back {lag_back})"
        );
    }
}
