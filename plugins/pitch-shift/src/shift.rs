//! Pitch and tempo change of one channel: a phase-vocoder time stretch by
//! `pitch / tempo` followed by resampling by `pitch`.
//!
//! Why this method rather than PSOLA: PSOLA needs reliable pitch marks, and
//! a wrong mark (unvoiced consonants, breathy or creaky TTS output) is an
//! audible glitch; the phase vocoder needs no analysis of the voice at all,
//! handles noise and polyphony (music beds, reverb) the same way, and with
//! identity phase locking its remaining artefact at ±12 semitones is a mild
//! smearing of transients. Formants move with the pitch (no formant
//! preservation), as with any resampling-based shifter.

use crate::{resample, vocoder};

/// FFT size for a sample rate: 1024 at 22.05 kHz (46 ms), scaled with the
/// rate and rounded to the nearest power of two (512 at 8–16 kHz… 4096 at
/// 96 kHz), so the frequency resolution in Hz stays about the same.
pub fn frame_size(sample_rate: u32) -> usize {
    let ideal = 1024.0 * sample_rate as f64 / 22050.0;
    let exp = ideal.log2().round().clamp(8.0, 12.0);
    1usize << exp as u32
}

/// Shift `input` by the frequency ratio `pitch` and play it at `tempo`,
/// returning exactly `out_len` samples (`out_len` ≈ `input.len() / tempo`).
pub fn shift_channel(
    input: &[f32],
    pitch: f64,
    tempo: f64,
    sample_rate: u32,
    out_len: usize,
) -> Vec<f32> {
    let alpha = pitch / tempo;
    let pitch_only = (pitch - 1.0).abs() < 1e-12;
    // The resampler reads up to `reach` samples past its last position.
    let needed = if pitch_only {
        out_len
    } else {
        (out_len as f64 * pitch).ceil() as usize + 64
    };
    let stretched = if (alpha - 1.0).abs() < 1e-12 {
        // Pitch and tempo cancel: pure resampling, no vocoder needed.
        input.to_vec()
    } else {
        vocoder::stretch(input, alpha, frame_size(sample_rate), needed)
    };
    let mut out = if pitch_only {
        let mut s = stretched;
        s.resize(out_len, 0.0);
        s
    } else {
        resample::resample(&stretched, pitch, out_len)
    };
    // Overlap-add and the resampler's ripple can overshoot slightly; the
    // contract is samples in [-1, 1].
    for s in &mut out {
        *s = s.clamp(-1.0, 1.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_size_scales_with_the_sample_rate() {
        assert_eq!(frame_size(22050), 1024);
        assert_eq!(frame_size(24000), 1024);
        assert_eq!(frame_size(8000), 512);
        assert_eq!(frame_size(16000), 1024);
        assert_eq!(frame_size(44100), 2048);
        assert_eq!(frame_size(48000), 2048);
        assert_eq!(frame_size(96000), 4096);
    }
}
