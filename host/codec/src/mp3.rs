//! MP3 (MPEG audio layer III, CBR) through LAME, linked from the system
//! libmp3lame with a minimal hand-written FFI.
//!
//! Whole files get a LAME/Info tag (encoder delay and padding) so decoders
//! can play them gaplessly; streams do not, as the tag can only be written
//! once the whole file is known. Rates MP3 cannot carry are resampled to the
//! next one it can (48 kHz at most).

use std::os::raw::c_int;
use std::ptr::NonNull;

use voxpipe_types::Audio;

use crate::pcm::clip;
use crate::resample::Resampler;
use crate::EncodeError;

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

pub(crate) struct Mp3State {
    lame: Lame,
    resampler: Option<Resampler>,
}

impl Mp3State {
    pub(crate) fn new(rate: u32, channels: u16, write_tag: bool) -> Result<Self, EncodeError> {
        // Rates MP3 cannot carry go to the next one up (48 kHz at most).
        let target = MP3_RATES.into_iter().find(|&r| r >= rate).unwrap_or(48_000);
        let resampler = (target != rate).then(|| Resampler::new(rate, target, channels as usize));
        Ok(Mp3State {
            lame: Lame::new(target, channels, write_tag)?,
            resampler,
        })
    }

    pub(crate) fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, EncodeError> {
        let clipped: Vec<f32> = samples.iter().map(|&s| clip(s)).collect();
        let input = match &mut self.resampler {
            Some(r) => r.process(&clipped),
            None => clipped,
        };
        let mut out = Vec::new();
        self.lame.encode(&input, &mut out)?;
        Ok(out)
    }

    pub(crate) fn finish(&mut self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        if let Some(r) = &mut self.resampler {
            let tail = r.flush();
            self.lame.encode(&tail, &mut out)?;
        }
        self.lame.flush(&mut out)?;
        Ok(out)
    }
}

/// Encodes a whole file, with the LAME/Info tag for gapless playback.
pub(crate) fn encode(audio: &Audio) -> Result<Vec<u8>, EncodeError> {
    let mut mp3 = Mp3State::new(audio.sample_rate, audio.channels, true)?;
    let mut out = mp3.push(&audio.samples)?;
    out.extend(mp3.finish()?);
    mp3.lame.write_lametag(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::test_util::{
        best_lag, corr_at, db, decode_mp3, input, lame_tag, rms, sine, stereo_input, stream_all,
        MP3_DECODER_DELAY, RATE,
    };
    use crate::{encode, AudioFormat};

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
}
