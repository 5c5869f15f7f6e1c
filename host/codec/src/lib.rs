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

use std::borrow::Cow;
use std::fmt;
use std::os::raw::c_int;
use std::ptr::NonNull;
use std::str::FromStr;

use voxpipe_types::Audio;

/// Lowest sample rate accepted by [`encode`] and [`StreamEncoder::new`].
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// Highest sample rate accepted by [`encode`] and [`StreamEncoder::new`].
pub const MAX_SAMPLE_RATE: u32 = 192_000;

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

const FLAC_STREAM_REASON: &str =
    "FLAC is produced as a whole file only; use wav, pcm, mp3 or opus for streaming";

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

/// Clip to [-1, 1] and scale to 16 bits (same rule as voxpipe's `wav::write`).
/// NaN becomes 0.
#[inline]
fn to_i16(s: f32) -> i16 {
    (s.clamp(-1.0, 1.0) * i16::MAX as f32).round() as i16
}

#[inline]
fn clip(s: f32) -> f32 {
    if s.is_nan() {
        0.0
    } else {
        s.clamp(-1.0, 1.0)
    }
}

fn pcm16_bytes(samples: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(samples.len() * 2);
    for &s in samples {
        out.extend_from_slice(&to_i16(s).to_le_bytes());
    }
    out
}

/// 44-byte canonical WAV header; `data_len == None` writes the unknown-length
/// marker 0xFFFFFFFF in both the RIFF and data sizes.
fn wav_header(rate: u32, channels: u16, data_len: Option<u32>) -> Vec<u8> {
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
        AudioFormat::Wav => {
            let body = pcm16_bytes(&audio.samples);
            let len = u32::try_from(body.len())
                .ok()
                .filter(|n| *n <= u32::MAX - 36)
                .ok_or_else(|| EncodeError::Codec("audio too long for a WAV file".into()))?;
            let mut out = wav_header(audio.sample_rate, audio.channels, Some(len));
            out.extend_from_slice(&body);
            Ok(out)
        }
        AudioFormat::Pcm => Ok(pcm16_bytes(&audio.samples)),
        AudioFormat::Flac => encode_flac(audio),
        AudioFormat::Mp3 => {
            let mut mp3 = Mp3State::new(audio.sample_rate, audio.channels, true)?;
            let mut out = mp3.push(&audio.samples)?;
            out.extend(mp3.finish()?);
            mp3.lame.write_lametag(&mut out);
            Ok(out)
        }
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

fn encode_flac(audio: &Audio) -> Result<Vec<u8>, EncodeError> {
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

// ---------------------------------------------------------------------------
// Resampling
// ---------------------------------------------------------------------------

/// Converts `audio` to `rate` Hz with a Kaiser-windowed-sinc polyphase filter
/// (anti-aliased, ~90 dB stopband, passband flat to 0.82 × the lower Nyquist
/// frequency). Output frame `n` is centred on input time `n / rate` (no
/// delay); length is `ceil(frames × rate / audio.sample_rate)`. Returns a
/// clone when the rates are equal, and empty audio if either rate or the
/// channel count is zero.
pub fn resample(audio: &Audio, rate: u32) -> Audio {
    if rate == audio.sample_rate {
        return audio.clone();
    }
    if rate == 0 || audio.sample_rate == 0 || audio.channels == 0 {
        return Audio {
            sample_rate: rate,
            channels: audio.channels,
            samples: Vec::new(),
        };
    }
    let ch = audio.channels as usize;
    let whole = audio.samples.len() - audio.samples.len() % ch;
    let mut r = Resampler::new(audio.sample_rate, rate, ch);
    let mut samples = r.process(&audio.samples[..whole]);
    samples.extend(r.flush());
    Audio {
        sample_rate: rate,
        channels: audio.channels,
        samples,
    }
}

/// Zero crossings of the sinc on each side of the centre, at the cutoff.
const RS_ZERO_CROSSINGS: f64 = 32.0;
/// Cutoff as a fraction of the lower of the two Nyquist frequencies.
const RS_ROLLOFF: f64 = 0.9;
/// Kaiser β for ≈ 90 dB stopband attenuation.
const RS_KAISER_BETA: f64 = 9.0;
/// Ratios with more output phases than this use an interpolated table.
const RS_MAX_EXACT_PHASES: u64 = 1024;

/// Streaming polyphase resampler (interleaved frames in, interleaved frames
/// out). Feeding input in any chunking gives the same output as one call.
struct Resampler {
    ch: usize,
    /// Output rate / gcd: phases per input sample.
    l: u64,
    /// Input rate / gcd: input step per output sample, in 1/l units.
    m: u64,
    /// Taps on each side: the filter has `2 * half` taps.
    half: usize,
    /// Rows in `table` minus one.
    phases: u64,
    /// `(phases + 1) × 2·half` coefficients; row p is for fractional offset p/phases.
    table: Vec<f32>,
    /// Interleaved input frames; frame i is input frame `buf_start + i`.
    buf: Vec<f32>,
    buf_start: i64,
    in_frames: u64,
    out_next: u64,
    row: Vec<f32>,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Dot product with eight independent accumulators so it vectorises.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut tail = 0.0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    let mut acc = [0.0f32; 8];
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..200 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-16 {
            break;
        }
    }
    sum
}

impl Resampler {
    fn new(in_rate: u32, out_rate: u32, ch: usize) -> Self {
        let g = gcd(in_rate as u64, out_rate as u64);
        let (l, m) = (out_rate as u64 / g, in_rate as u64 / g);
        let fc = RS_ROLLOFF * (out_rate as f64 / in_rate as f64).min(1.0);
        let width = RS_ZERO_CROSSINGS / fc; // half-width in input samples
        let half = width.ceil() as usize;
        let phases = if l <= RS_MAX_EXACT_PHASES {
            l
        } else {
            // The kernel gets smoother as fc drops, so fewer rows suffice.
            ((1024.0 * fc).ceil() as u64).max(64)
        };
        let taps = 2 * half;
        let i0_beta = bessel_i0(RS_KAISER_BETA);
        let mut table = Vec::with_capacity((phases as usize + 1) * taps);
        for p in 0..=phases {
            let frac = p as f64 / phases as f64;
            let start = table.len();
            for k in 0..taps {
                let x = frac + (half as f64 - 1.0) - k as f64;
                let h = if x.abs() >= width {
                    0.0
                } else {
                    let t = x / width;
                    let win = bessel_i0(RS_KAISER_BETA * (1.0 - t * t).sqrt()) / i0_beta;
                    let y = fc * x;
                    let sinc = if y == 0.0 {
                        1.0
                    } else {
                        (std::f64::consts::PI * y).sin() / (std::f64::consts::PI * y)
                    };
                    fc * sinc * win
                };
                table.push(h);
            }
            // Unity DC gain for every phase.
            let sum: f64 = table[start..].iter().sum();
            for c in &mut table[start..] {
                *c /= sum;
            }
        }
        let table = table.into_iter().map(|c| c as f32).collect();
        Resampler {
            ch,
            l,
            m,
            half,
            phases,
            table,
            buf: vec![0.0; (half - 1) * ch],
            buf_start: -(half as i64 - 1),
            in_frames: 0,
            out_next: 0,
            row: vec![0.0; taps],
        }
    }

    /// Feeds whole frames; returns the output frames that are now complete.
    fn process(&mut self, input: &[f32]) -> Vec<f32> {
        debug_assert_eq!(input.len() % self.ch, 0);
        self.buf.extend_from_slice(input);
        self.in_frames += (input.len() / self.ch) as u64;
        self.run(false)
    }

    /// Ends the input (zero-padded) and returns the remaining output.
    fn flush(&mut self) -> Vec<f32> {
        self.buf.resize(self.buf.len() + self.half * self.ch, 0.0);
        self.run(true)
    }

    fn run(&mut self, flush: bool) -> Vec<f32> {
        let (l, m, half, ch) = (self.l, self.m, self.half as i64, self.ch);
        let taps = 2 * self.half;
        let total_out = if flush {
            (self.in_frames * l).div_ceil(m)
        } else {
            u64::MAX
        };
        let mut out = Vec::new();
        while self.out_next < total_out {
            let pos = self.out_next * m;
            let base = (pos / l) as i64;
            let phase = pos % l;
            if !flush && base + half >= self.in_frames as i64 {
                break;
            }
            let off = (base - (half - 1) - self.buf_start) as usize;
            let row: &[f32] = if self.phases == l {
                &self.table[phase as usize * taps..][..taps]
            } else {
                let r = phase * self.phases;
                let i = (r / l) as usize;
                let a = (r % l) as f32 / l as f32;
                let (r0, r1) = (
                    &self.table[i * taps..][..taps],
                    &self.table[(i + 1) * taps..][..taps],
                );
                for k in 0..taps {
                    self.row[k] = r0[k] + a * (r1[k] - r0[k]);
                }
                &self.row
            };
            let frames = &self.buf[off * ch..(off + taps) * ch];
            if ch == 1 {
                out.push(dot(row, frames));
            } else {
                for c in 0..ch {
                    let mut acc = 0.0f32;
                    for (k, coef) in row.iter().enumerate() {
                        acc += coef * frames[k * ch + c];
                    }
                    out.push(acc);
                }
            }
            self.out_next += 1;
        }
        // Drop input no later output needs.
        let next_first = (self.out_next * m / l) as i64 - (half - 1);
        let buffered = (self.buf.len() / ch) as i64;
        let drop = (next_first - self.buf_start).clamp(0, buffered);
        self.buf.drain(..drop as usize * ch);
        self.buf_start += drop;
        out
    }
}

// ---------------------------------------------------------------------------
// MP3 (LAME, linked from the system libmp3lame)
// ---------------------------------------------------------------------------

#[allow(non_camel_case_types)]
mod lame_ffi {
    use std::os::raw::{c_int, c_uchar};

    #[repr(C)]
    pub struct lame_global_flags {
        _private: [u8; 0],
    }

    /// `MPEG_mode` values from lame.h.
    pub const JOINT_STEREO: c_int = 1;
    pub const MONO: c_int = 3;

    #[link(name = "mp3lame")]
    extern "C" {
        pub fn lame_init() -> *mut lame_global_flags;
        pub fn lame_close(gfp: *mut lame_global_flags) -> c_int;
        pub fn lame_set_in_samplerate(gfp: *mut lame_global_flags, rate: c_int) -> c_int;
        pub fn lame_set_out_samplerate(gfp: *mut lame_global_flags, rate: c_int) -> c_int;
        pub fn lame_set_num_channels(gfp: *mut lame_global_flags, n: c_int) -> c_int;
        pub fn lame_set_mode(gfp: *mut lame_global_flags, mode: c_int) -> c_int;
        pub fn lame_set_brate(gfp: *mut lame_global_flags, kbps: c_int) -> c_int;
        pub fn lame_set_quality(gfp: *mut lame_global_flags, q: c_int) -> c_int;
        pub fn lame_set_bWriteVbrTag(gfp: *mut lame_global_flags, on: c_int) -> c_int;
        pub fn lame_init_params(gfp: *mut lame_global_flags) -> c_int;
        pub fn lame_encode_buffer_ieee_float(
            gfp: *mut lame_global_flags,
            pcm_l: *const f32,
            pcm_r: *const f32,
            nsamples: c_int,
            mp3buf: *mut c_uchar,
            mp3buf_size: c_int,
        ) -> c_int;
        pub fn lame_encode_buffer_interleaved_ieee_float(
            gfp: *mut lame_global_flags,
            pcm: *const f32,
            nsamples: c_int,
            mp3buf: *mut c_uchar,
            mp3buf_size: c_int,
        ) -> c_int;
        pub fn lame_encode_flush(
            gfp: *mut lame_global_flags,
            mp3buf: *mut c_uchar,
            size: c_int,
        ) -> c_int;
        pub fn lame_get_lametag_frame(
            gfp: *const lame_global_flags,
            buffer: *mut c_uchar,
            size: usize,
        ) -> usize;
    }
}

/// Owned LAME encoder handle.
struct Lame {
    gfp: NonNull<lame_ffi::lame_global_flags>,
    channels: usize,
    write_tag: bool,
}

// SAFETY: a LAME handle has no thread affinity; `Lame` is only used through
// `&mut self`, so it is never accessed from two threads at once.
unsafe impl Send for Lame {}

impl Drop for Lame {
    fn drop(&mut self) {
        // SAFETY: gfp came from lame_init and is closed exactly once.
        unsafe { lame_ffi::lame_close(self.gfp.as_ptr()) };
    }
}

/// Sample rates MPEG-1/2/2.5 layer III can carry.
const MP3_RATES: [u32; 9] = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];

/// Frames per LAME call, bounding the output buffer.
const MP3_CHUNK_FRAMES: usize = 1 << 15;

impl Lame {
    fn new(rate: u32, channels: u16, write_tag: bool) -> Result<Self, EncodeError> {
        debug_assert!(MP3_RATES.contains(&rate) && (1..=2).contains(&channels));
        // CBR; enough for clean speech at every MPEG version's rates.
        let kbps = match rate {
            0..=12_000 => 32,
            12_001..=24_000 => 64,
            _ => 96,
        } * channels as c_int;
        // SAFETY: plain FFI calls on a handle we own; checked for null.
        unsafe {
            let gfp = NonNull::new(lame_ffi::lame_init())
                .ok_or_else(|| EncodeError::Codec("lame_init failed".into()))?;
            let lame = Lame {
                gfp,
                channels: channels as usize,
                write_tag,
            };
            let p = gfp.as_ptr();
            let mode = if channels == 1 {
                lame_ffi::MONO
            } else {
                lame_ffi::JOINT_STEREO
            };
            let rc = [
                lame_ffi::lame_set_in_samplerate(p, rate as c_int),
                lame_ffi::lame_set_out_samplerate(p, rate as c_int),
                lame_ffi::lame_set_num_channels(p, channels as c_int),
                lame_ffi::lame_set_mode(p, mode),
                lame_ffi::lame_set_brate(p, kbps),
                lame_ffi::lame_set_quality(p, 2),
                lame_ffi::lame_set_bWriteVbrTag(p, write_tag as c_int),
            ];
            if rc.iter().any(|&r| r < 0) {
                return Err(EncodeError::Codec(format!(
                    "LAME rejected settings: {rc:?}"
                )));
            }
            let rc = lame_ffi::lame_init_params(p);
            if rc < 0 {
                return Err(EncodeError::Codec(format!(
                    "lame_init_params failed ({rc})"
                )));
            }
            Ok(lame)
        }
    }

    /// Encodes clipped interleaved frames, appending to `out`.
    fn encode(&mut self, samples: &[f32], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        for chunk in samples.chunks(MP3_CHUNK_FRAMES * self.channels) {
            let frames = chunk.len() / self.channels;
            let cap = frames + frames / 4 + 7200;
            out.reserve(cap);
            let dst = out.spare_capacity_mut();
            // SAFETY: `chunk` holds `frames` whole frames; `dst` has room for
            // `cap` bytes, and LAME writes at most that many.
            let n = unsafe {
                let p = self.gfp.as_ptr();
                let dst_ptr = dst.as_mut_ptr().cast::<u8>();
                if self.channels == 1 {
                    lame_ffi::lame_encode_buffer_ieee_float(
                        p,
                        chunk.as_ptr(),
                        std::ptr::null(),
                        frames as c_int,
                        dst_ptr,
                        cap as c_int,
                    )
                } else {
                    lame_ffi::lame_encode_buffer_interleaved_ieee_float(
                        p,
                        chunk.as_ptr(),
                        frames as c_int,
                        dst_ptr,
                        cap as c_int,
                    )
                }
            };
            if n < 0 {
                return Err(EncodeError::Codec(format!("LAME encode failed ({n})")));
            }
            // SAFETY: LAME initialised the first `n` bytes of the spare capacity.
            unsafe { out.set_len(out.len() + n as usize) };
        }
        Ok(())
    }

    fn flush(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        const CAP: usize = 16 * 1024;
        out.reserve(CAP);
        let dst = out.spare_capacity_mut();
        // SAFETY: `dst` has at least CAP writable bytes.
        let n = unsafe {
            lame_ffi::lame_encode_flush(self.gfp.as_ptr(), dst.as_mut_ptr().cast(), CAP as c_int)
        };
        if n < 0 {
            return Err(EncodeError::Codec(format!("LAME flush failed ({n})")));
        }
        // SAFETY: LAME initialised the first `n` bytes.
        unsafe { out.set_len(out.len() + n as usize) };
        Ok(())
    }

    /// Overwrites the placeholder first frame with the final LAME/Info tag
    /// (frame count, encoder delay and padding for gapless decoding).
    fn write_lametag(&self, file: &mut [u8]) {
        if !self.write_tag {
            return;
        }
        let mut tag = vec![0u8; 2880];
        // SAFETY: `tag` is writable for its full length.
        let n = unsafe {
            lame_ffi::lame_get_lametag_frame(self.gfp.as_ptr(), tag.as_mut_ptr(), tag.len())
        };
        if n > 0 && n <= tag.len() && n <= file.len() {
            file[..n].copy_from_slice(&tag[..n]);
        }
    }
}

struct Mp3State {
    lame: Lame,
    resampler: Option<Resampler>,
}

impl Mp3State {
    fn new(rate: u32, channels: u16, write_tag: bool) -> Result<Self, EncodeError> {
        // Rates MP3 cannot carry go to the next one up (48 kHz at most).
        let target = MP3_RATES.into_iter().find(|&r| r >= rate).unwrap_or(48_000);
        let resampler = (target != rate).then(|| Resampler::new(rate, target, channels as usize));
        Ok(Mp3State {
            lame: Lame::new(target, channels, write_tag)?,
            resampler,
        })
    }

    fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, EncodeError> {
        let clipped: Vec<f32> = samples.iter().map(|&s| clip(s)).collect();
        let input = match &mut self.resampler {
            Some(r) => r.process(&clipped),
            None => clipped,
        };
        let mut out = Vec::new();
        self.lame.encode(&input, &mut out)?;
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        if let Some(r) = &mut self.resampler {
            let tail = r.flush();
            self.lame.encode(&tail, &mut out)?;
        }
        self.lame.flush(&mut out)?;
        Ok(out)
    }
}

// ---------------------------------------------------------------------------
// Ogg Opus (libopus + ogg)
// ---------------------------------------------------------------------------

const OPUS_RATE: u32 = 48_000;
/// 20 ms frames.
const OPUS_FRAME: usize = 960;
const OPUS_MAX_PACKET: usize = 4000;
/// Single logical stream per file, so any serial works; fixed for
/// reproducible output.
const OGG_SERIAL: u32 = 0x766f_7870;

struct OpusState {
    enc: opus::Encoder,
    resampler: Option<Resampler>,
    writer: ogg::writing::PacketWriter<'static, Vec<u8>>,
    ch: usize,
    pre_skip: u64,
    /// 48 kHz frames not yet encoded (interleaved).
    pending: Vec<f32>,
    /// 48 kHz frames received so far.
    frames_in: u64,
    packets: u64,
}

fn opus_err(e: opus::Error) -> EncodeError {
    EncodeError::Codec(format!("opus: {e}"))
}

impl OpusState {
    /// Returns the state and the OpusHead + OpusTags pages.
    fn new(rate: u32, channels: u16) -> Result<(Self, Vec<u8>), EncodeError> {
        let layout = if channels == 1 {
            opus::Channels::Mono
        } else {
            opus::Channels::Stereo
        };
        let mut enc =
            opus::Encoder::new(OPUS_RATE, layout, opus::Application::Audio).map_err(opus_err)?;
        enc.set_bitrate(opus::Bitrate::Bits(32_000 * channels as i32))
            .map_err(opus_err)?;
        let pre_skip = enc.get_lookahead().map_err(opus_err)?.max(0) as u64;

        // RFC 7845 §5.1 identification header, channel mapping family 0.
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1);
        head.push(channels as u8);
        head.extend_from_slice(&(pre_skip as u16).to_le_bytes());
        head.extend_from_slice(&rate.to_le_bytes()); // original input rate
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        head.push(0);
        // §5.2 comment header.
        let vendor = opus::version().as_bytes();
        let comment = b"ENCODER=voxpipe";
        let mut tags = Vec::new();
        tags.extend_from_slice(b"OpusTags");
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&1u32.to_le_bytes());
        tags.extend_from_slice(&(comment.len() as u32).to_le_bytes());
        tags.extend_from_slice(comment);

        let mut writer = ogg::writing::PacketWriter::new(Vec::new());
        let end_page = ogg::writing::PacketWriteEndInfo::EndPage;
        for packet in [head, tags] {
            writer
                .write_packet(packet, OGG_SERIAL, end_page, 0)
                .map_err(|e| EncodeError::Codec(format!("ogg: {e}")))?;
        }
        let header = std::mem::take(writer.inner_mut());
        let resampler =
            (rate != OPUS_RATE).then(|| Resampler::new(rate, OPUS_RATE, channels as usize));
        Ok((
            OpusState {
                enc,
                resampler,
                writer,
                ch: channels as usize,
                pre_skip,
                pending: Vec::new(),
                frames_in: 0,
                packets: 0,
            },
            header,
        ))
    }

    fn feed(&mut self, at48k: Vec<f32>) {
        self.frames_in += (at48k.len() / self.ch) as u64;
        if self.pending.is_empty() {
            self.pending = at48k;
        } else {
            self.pending.extend(at48k);
        }
    }

    /// Encodes `count` frames from `pending` (zero-padded when short).
    fn encode_packets(&mut self, count: usize) -> Result<Vec<Vec<u8>>, EncodeError> {
        let flen = OPUS_FRAME * self.ch;
        let mut packets = Vec::with_capacity(count);
        let mut frame = vec![0.0f32; flen];
        let mut used = 0;
        for _ in 0..count {
            let avail = (self.pending.len() - used).min(flen);
            frame[..avail].copy_from_slice(&self.pending[used..used + avail]);
            frame[avail..].fill(0.0);
            used += avail;
            packets.push(
                self.enc
                    .encode_vec_float(&frame, OPUS_MAX_PACKET)
                    .map_err(opus_err)?,
            );
        }
        self.pending.drain(..used);
        Ok(packets)
    }

    /// Writes packets; the last one ends a page (or the stream), so the
    /// returned bytes are whole Ogg pages.
    fn write(
        &mut self,
        packets: Vec<Vec<u8>>,
        last_granule: Option<u64>,
    ) -> Result<Vec<u8>, EncodeError> {
        use ogg::writing::PacketWriteEndInfo as End;
        let n = packets.len();
        for (i, packet) in packets.into_iter().enumerate() {
            self.packets += 1;
            let is_last = i + 1 == n;
            let (info, granule) = match (is_last, last_granule) {
                (true, Some(g)) => (End::EndStream, g),
                (true, None) => (End::EndPage, self.packets * OPUS_FRAME as u64),
                _ => (End::NormalPacket, self.packets * OPUS_FRAME as u64),
            };
            self.writer
                .write_packet(packet, OGG_SERIAL, info, granule)
                .map_err(|e| EncodeError::Codec(format!("ogg: {e}")))?;
        }
        Ok(std::mem::take(self.writer.inner_mut()))
    }

    fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, EncodeError> {
        let clipped: Vec<f32> = samples.iter().map(|&s| clip(s)).collect();
        let at48k = match &mut self.resampler {
            Some(r) => r.process(&clipped),
            None => clipped,
        };
        self.feed(at48k);
        let count = self.pending.len() / (OPUS_FRAME * self.ch);
        if count == 0 {
            return Ok(Vec::new());
        }
        let packets = self.encode_packets(count)?;
        self.write(packets, None)
    }

    fn finish(&mut self) -> Result<Vec<u8>, EncodeError> {
        if let Some(r) = &mut self.resampler {
            let tail = r.flush();
            self.feed(tail);
        }
        // Enough packets to cover pre-skip + all input (the encoder's
        // lookahead must be flushed out), and at least one to carry EOS.
        let end = self.pre_skip + self.frames_in;
        let total = end.div_ceil(OPUS_FRAME as u64).max(self.packets + 1);
        let packets = self.encode_packets((total - self.packets) as usize)?;
        // The final granule position trims the padding (RFC 7845 §4.4).
        self.write(packets, Some(end))
    }
}

// ---------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------

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
    use std::f32::consts::PI;
    use std::io::Cursor;

    const RATE: u32 = 22_050;

    /// Every format with an encoder (all but aac).
    const ENCODABLE: [AudioFormat; 5] = [
        AudioFormat::Wav,
        AudioFormat::Pcm,
        AudioFormat::Flac,
        AudioFormat::Mp3,
        AudioFormat::Opus,
    ];

    fn sine(freq: f32, rate: u32, secs: f32, amp: f32) -> Audio {
        let n = (rate as f32 * secs).round() as usize;
        Audio {
            sample_rate: rate,
            channels: 1,
            samples: (0..n)
                .map(|i| amp * (2.0 * PI * freq * i as f32 / rate as f32).sin())
                .collect(),
        }
    }

    /// The standard test input: 1 s of 440 Hz at 22050 Hz, mono.
    fn input() -> Audio {
        sine(440.0, RATE, 1.0, 0.5)
    }

    fn stereo_input() -> Audio {
        let a = sine(440.0, RATE, 1.0, 0.5);
        let b = sine(660.0, RATE, 1.0, 0.3);
        Audio {
            sample_rate: RATE,
            channels: 2,
            samples: a
                .samples
                .iter()
                .zip(&b.samples)
                .flat_map(|(x, y)| [*x, *y])
                .collect(),
        }
    }

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
    }

    fn db(ratio: f32) -> f32 {
        20.0 * ratio.log10()
    }

    /// Normalised correlation of `a[lag..]` with `b` over `len` samples.
    fn corr_at(a: &[f32], b: &[f32], lag: usize, len: usize) -> f32 {
        let a = &a[lag..lag + len];
        let b = &b[..len];
        let ab: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let aa: f32 = a.iter().map(|x| x * x).sum();
        let bb: f32 = b.iter().map(|x| x * x).sum();
        ab / (aa * bb).sqrt().max(1e-12)
    }

    /// Best lag of `reference` inside `decoded` (lags 0..max_lag).
    fn best_lag(decoded: &[f32], reference: &[f32], max_lag: usize, len: usize) -> (usize, f32) {
        (0..max_lag)
            .filter(|lag| lag + len <= decoded.len())
            .map(|lag| (lag, corr_at(decoded, reference, lag, len)))
            .fold((0, f32::MIN), |best, c| if c.1 > best.1 { c } else { best })
    }

    fn expected_i16(audio: &Audio) -> Vec<i16> {
        audio.samples.iter().map(|&s| to_i16(s)).collect()
    }

    fn stream_all(format: AudioFormat, audio: &Audio, chunks: &[usize]) -> Vec<u8> {
        let mut enc = StreamEncoder::new(format, audio.sample_rate, audio.channels).unwrap();
        let mut out = enc.header();
        let mut pos = 0;
        for &c in chunks {
            let end = (pos + c).min(audio.samples.len());
            out.extend(enc.push(&audio.samples[pos..end]).unwrap());
            pos = end;
        }
        out.extend(enc.push(&audio.samples[pos..]).unwrap());
        out.extend(enc.finish().unwrap());
        out
    }

    // ---- names -----------------------------------------------------------

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

    #[test]
    fn stream_encoder_is_send() {
        fn is_send<T: Send>() {}
        is_send::<StreamEncoder>();
    }

    // ---- wav / pcm ---------------------------------------------------------

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

    // ---- flac --------------------------------------------------------------

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

    // ---- mp3 ---------------------------------------------------------------

    /// Decodes with minimp3: (rate, channels, interleaved samples, frames).
    fn decode_mp3(bytes: &[u8]) -> (u32, usize, Vec<f32>, Vec<usize>) {
        let mut dec = minimp3::Decoder::new(Cursor::new(bytes));
        let (mut rate, mut ch, mut pcm, mut frames) = (0, 0, Vec::new(), Vec::new());
        loop {
            match dec.next_frame() {
                Ok(f) => {
                    rate = f.sample_rate as u32;
                    ch = f.channels;
                    assert_eq!(f.layer, 3);
                    frames.push(f.data.len());
                    pcm.extend(f.data.iter().map(|&s| s as f32 / 32768.0));
                }
                Err(minimp3::Error::Eof) => break,
                Err(e) => panic!("mp3 decode: {e:?}"),
            }
        }
        (rate, ch, pcm, frames)
    }

    /// (encoder delay, padding) from the LAME tag in the first frame.
    fn lame_tag(bytes: &[u8]) -> Option<(usize, usize)> {
        let head = &bytes[..bytes.len().min(200)];
        let info = head.windows(4).position(|w| w == b"Info" || w == b"Xing")?;
        let lame = info + head[info..].windows(4).position(|w| w == b"LAME")?;
        let d = &bytes[lame + 21..lame + 24];
        let delay = ((d[0] as usize) << 4) | (d[1] as usize >> 4);
        let padding = (((d[1] & 0x0F) as usize) << 8) | d[2] as usize;
        Some((delay, padding))
    }

    /// Standard MP3 decoder delay (hybrid filterbank), added to the LAME
    /// tag's encoder delay by gapless decoders.
    const MP3_DECODER_DELAY: usize = 529;

    #[test]
    fn mp3_decodes_gaplessly_to_the_input() {
        let a = input();
        let bytes = encode(&a, AudioFormat::Mp3).unwrap();
        let (rate, ch, pcm, frames) = decode_mp3(&bytes);
        assert_eq!((rate, ch), (RATE, 1));
        let (delay, padding) = lame_tag(&bytes).expect("LAME tag");
        // Gapless decoders drop the Info frame, then delay + 529 samples at
        // the start and padding - 529 at the end.
        let audio = &pcm[frames[0]..];
        let trimmed = audio.len() as i64 - delay as i64 - padding as i64;
        let err_ms = (trimmed - a.samples.len() as i64).abs() as f32 * 1000.0 / RATE as f32;
        assert!(err_ms < 60.0, "duration off by {err_ms} ms");
        assert_eq!(trimmed, a.samples.len() as i64, "gapless length");
        let start = delay + MP3_DECODER_DELAY;
        // (A sine only pins alignment modulo its period; see the chirp test.)
        let c = corr_at(audio, &a.samples, start, a.samples.len() - 600);
        assert!(c > 0.95, "correlation at tag delay {c}");
        let level = db(rms(&audio[start..start + a.samples.len()]) / rms(&a.samples));
        assert!(level.abs() < 1.0, "level {level} dB");
    }

    #[test]
    fn mp3_stream_decodes() {
        for a in [input(), stereo_input()] {
            let ch = a.channels as usize;
            let bytes = stream_all(AudioFormat::Mp3, &a, &[2 * 1000, 2 * 3, 2 * 7000]);
            assert!(
                lame_tag(&bytes).is_none(),
                "no placeholder tag frame in streams"
            );
            let (rate, dch, pcm, _) = decode_mp3(&bytes);
            assert_eq!((rate, dch), (RATE, ch));
            let mono: Vec<f32> = pcm.chunks(ch).map(|f| f[0]).collect();
            let src: Vec<f32> = a.samples.chunks(ch).map(|f| f[0]).collect();
            let extra = mono.len() as i64 - src.len() as i64;
            // LAME delay (576 + 529) plus up to one frame of padding (576 at 22.05 kHz).
            assert!((1105..1105 + 2 * 576).contains(&extra), "extra {extra}");
            let (lag, c) = best_lag(&mono, &src, 3000, src.len() - 2000);
            assert!(c > 0.95, "corr {c} at {lag}");
        }
    }

    #[test]
    fn mp3_resamples_rates_it_cannot_carry() {
        let a = sine(440.0, 37_000, 1.0, 0.5);
        let bytes = encode(&a, AudioFormat::Mp3).unwrap();
        let (rate, _, pcm, frames) = decode_mp3(&bytes);
        assert_eq!(rate, 44_100);
        let (delay, padding) = lame_tag(&bytes).unwrap();
        assert_eq!(pcm.len() - frames[0] - delay - padding, 44_100);
    }

    // ---- opus --------------------------------------------------------------

    struct OggOpus {
        channels: usize,
        pre_skip: usize,
        input_rate: u32,
        tags: Vec<u8>,
        /// (packet, page granule, last in stream)
        packets: Vec<(Vec<u8>, u64, bool)>,
    }

    /// Checks page-level structure with raw bytes and the `ogg` reader.
    fn parse_ogg_opus(bytes: &[u8]) -> OggOpus {
        assert_eq!(&bytes[..4], b"OggS");
        // First page: BOS flag, granule 0, a single 19-byte OpusHead packet.
        assert_eq!(bytes[5], 0x02, "BOS flag");
        assert_eq!(&bytes[6..14], &[0; 8], "head granule");
        assert_eq!((bytes[26], bytes[27]), (1, 19), "one segment of 19 bytes");
        assert_eq!(&bytes[28..36], b"OpusHead");
        let second = 28 + 19;
        assert_eq!(&bytes[second..second + 4], b"OggS");

        let mut r = ogg::reading::PacketReader::new(Cursor::new(bytes));
        let head = r.read_packet_expected().unwrap();
        assert!(head.first_in_stream() && head.last_in_page());
        let d = &head.data;
        assert_eq!(&d[..8], b"OpusHead");
        assert_eq!(d[8], 1, "version");
        let out = OggOpus {
            channels: d[9] as usize,
            pre_skip: u16::from_le_bytes([d[10], d[11]]) as usize,
            input_rate: u32::from_le_bytes([d[12], d[13], d[14], d[15]]),
            tags: {
                let t = r.read_packet_expected().unwrap();
                assert!(t.last_in_page(), "OpusTags ends its page");
                t.data
            },
            packets: {
                let mut v = Vec::new();
                while let Some(p) = r.read_packet().unwrap() {
                    v.push((p.data.clone(), p.absgp_page(), p.last_in_stream()));
                }
                v
            },
        };
        assert_eq!(&out.tags[..8], b"OpusTags");
        assert_eq!(d[18], 0, "mapping family");
        out
    }

    /// Decodes all packets, applies pre-skip and end trimming.
    fn decode_opus(o: &OggOpus) -> Vec<f32> {
        let layout = if o.channels == 1 {
            opus::Channels::Mono
        } else {
            opus::Channels::Stereo
        };
        let mut dec = opus::Decoder::new(48_000, layout).unwrap();
        let mut pcm = Vec::new();
        let mut buf = vec![0.0f32; 5760 * o.channels];
        let mut prev_granule = 0;
        for (p, granule, _) in &o.packets {
            assert!(*granule >= prev_granule, "granules must not decrease");
            prev_granule = *granule;
            let n = dec.decode_float(p, &mut buf, false).unwrap();
            assert_eq!(n, OPUS_FRAME);
            pcm.extend_from_slice(&buf[..n * o.channels]);
        }
        let (_, final_granule, eos) = o.packets.last().unwrap();
        assert!(eos, "EOS on last page");
        let end = *final_granule as usize * o.channels;
        assert!(end <= pcm.len(), "final granule beyond decoded data");
        pcm.truncate(end);
        pcm.drain(..o.pre_skip * o.channels);
        pcm
    }

    fn check_opus(bytes: &[u8], a: &Audio) {
        let o = parse_ogg_opus(bytes);
        assert_eq!(o.channels, a.channels as usize);
        assert_eq!(o.input_rate, a.sample_rate);
        assert!(
            o.pre_skip > 0 && o.pre_skip < 4000,
            "pre-skip {}",
            o.pre_skip
        );
        let pcm = decode_opus(&o);
        let ch = o.channels;
        let reference = resample(a, 48_000);
        assert_eq!(pcm.len(), reference.samples.len(), "duration");
        assert_eq!(pcm.len() / ch, 48_000);
        for c in 0..ch {
            let got: Vec<f32> = pcm.iter().skip(c).step_by(ch).copied().collect();
            let want: Vec<f32> = reference
                .samples
                .iter()
                .skip(c)
                .step_by(ch)
                .copied()
                .collect();
            // Pre-skip applied correctly: aligned with no lag.
            let corr = corr_at(&got, &want, 0, want.len());
            assert!(corr > 0.95, "channel {c}: corr {corr}");
            let level = db(rms(&got[480..got.len() - 480]) / rms(&want[480..want.len() - 480]));
            assert!(level.abs() < 1.0, "channel {c}: level {level} dB");
        }
    }

    #[test]
    fn ogg_opus_round_trips() {
        for a in [input(), stereo_input()] {
            let bytes = encode(&a, AudioFormat::Opus).unwrap();
            check_opus(&bytes, &a);
            // ~32 kbit/s per channel: well under 16-bit PCM size.
            assert!(
                bytes.len() < 10_000 * a.channels as usize,
                "{} bytes",
                bytes.len()
            );
        }
    }

    #[test]
    fn ogg_opus_stream_decodes() {
        for a in [input(), stereo_input()] {
            let mut enc = StreamEncoder::new(AudioFormat::Opus, RATE, a.channels).unwrap();
            let header = enc.header();
            assert_eq!(&header[28..36], b"OpusHead");
            let mut out = header;
            let mut pages_per_push = Vec::new();
            let ch = a.channels as usize;
            for chunk in a.samples.chunks(ch * 3001) {
                let bytes = enc.push(chunk).unwrap();
                // Each non-empty push yields whole pages.
                if !bytes.is_empty() {
                    assert_eq!(&bytes[..4], b"OggS");
                }
                pages_per_push.push(bytes.len());
                out.extend(bytes);
            }
            out.extend(enc.finish().unwrap());
            assert!(
                pages_per_push.iter().filter(|&&n| n > 0).count() >= 5,
                "{pages_per_push:?}"
            );
            check_opus(&out, &a);
        }
        // Tiny chunks and an empty stream are still valid.
        let a = input();
        let bytes = stream_all(AudioFormat::Opus, &a, &[1; 50]);
        check_opus(&bytes, &a);
        let empty = Audio {
            sample_rate: RATE,
            channels: 1,
            samples: vec![],
        };
        let o = parse_ogg_opus(&encode(&empty, AudioFormat::Opus).unwrap());
        assert!(decode_opus(&o).is_empty());
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

    // ---- resampling ----------------------------------------------------------

    /// Frequency from upward zero crossings over the middle of the signal.
    fn zero_crossing_freq(x: &[f32], rate: u32) -> f32 {
        let mid = &x[x.len() / 10..x.len() * 9 / 10];
        let ups: Vec<usize> = (1..mid.len())
            .filter(|&i| mid[i - 1] < 0.0 && mid[i] >= 0.0)
            .collect();
        let periods = (ups.len() - 1) as f32;
        periods * rate as f32 / (ups[ups.len() - 1] - ups[0]) as f32
    }

    fn middle(x: &[f32]) -> &[f32] {
        &x[x.len() / 10..x.len() * 9 / 10]
    }

    #[test]
    fn resample_keeps_frequency_and_level() {
        let a = sine(1000.0, RATE, 1.0, 0.5);
        for rate in [8_000, 16_000, 24_000, 44_100, 48_000, 47_999, 11_111] {
            let r = resample(&a, rate);
            assert_eq!(r.sample_rate, rate);
            assert_eq!(r.samples.len(), rate as usize, "1 s in, 1 s out");
            let f = zero_crossing_freq(&r.samples, rate);
            assert!((f - 1000.0).abs() < 1.0, "{rate}: {f} Hz");
            let level = db(rms(middle(&r.samples)) / rms(middle(&a.samples)));
            assert!(level.abs() < 0.1, "{rate}: {level} dB");
            // Zero delay: resampled sine matches the analytic one.
            let ideal = sine(1000.0, rate, 1.0, 0.5);
            let c = corr_at(
                middle(&r.samples),
                middle(&ideal.samples),
                0,
                middle(&ideal.samples).len() - 1,
            );
            assert!(c > 0.9999, "{rate}: corr {c}");
        }
    }

    #[test]
    fn resample_to_48k_for_the_voice_rate() {
        let a = sine(1000.0, RATE, 1.0, 0.5);
        let r = resample(&a, 48_000);
        assert_eq!(r.samples.len(), 48_000);
        let f = zero_crossing_freq(&r.samples, 48_000);
        assert!((f - 1000.0).abs() < 0.5, "{f}");
        let level = db(rms(middle(&r.samples)) / rms(middle(&a.samples)));
        assert!(level.abs() < 1.0, "{level}");
    }

    #[test]
    fn resample_anti_aliases() {
        // 10 kHz is above the 8 kHz Nyquist of 16 kHz: must be removed, not folded to 6 kHz.
        let a = sine(10_000.0, RATE, 1.0, 0.5);
        let r = resample(&a, 16_000);
        let att = db(rms(middle(&r.samples)) / rms(middle(&a.samples)));
        assert!(att < -40.0, "10 kHz only {att} dB down");
        // Same for 8 kHz output with a 5 kHz tone (Nyquist 4 kHz).
        let r = resample(&sine(5_000.0, RATE, 1.0, 0.5), 8_000);
        let att = db(rms(middle(&r.samples)) / (0.5 / 2f32.sqrt()));
        assert!(att < -40.0, "5 kHz only {att} dB down");
        // And a passband tone survives downsampling.
        let r = resample(&sine(3_000.0, RATE, 1.0, 0.5), 16_000);
        let level = db(rms(middle(&r.samples)) / (0.5 / 2f32.sqrt()));
        assert!(level.abs() < 0.1, "3 kHz at {level} dB");
    }

    #[test]
    fn resample_identity_and_streaming_consistency() {
        let a = stereo_input();
        assert_eq!(resample(&a, RATE), a);
        for rate in [48_000, 16_000, 47_999] {
            let whole = resample(&a, rate);
            let mut r = Resampler::new(RATE, rate, 2);
            let mut streamed = Vec::new();
            for chunk in a.samples.chunks(2 * 777) {
                streamed.extend(r.process(chunk));
            }
            streamed.extend(r.flush());
            assert_eq!(streamed, whole.samples, "{rate}");
            // Channels stay separate.
            let left: Vec<f32> = whole.samples.iter().step_by(2).copied().collect();
            let f = zero_crossing_freq(&left, rate);
            assert!((f - 440.0).abs() < 1.0, "{f}");
        }
        let empty = Audio {
            sample_rate: RATE,
            channels: 1,
            samples: vec![],
        };
        assert!(resample(&empty, 48_000).samples.is_empty());
    }
}
pub mod wav;
