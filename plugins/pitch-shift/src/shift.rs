//! Pitch and tempo change of one channel: a phase-vocoder time stretch by
//! `pitch / tempo` followed by resampling by `pitch`, fed block by block.
//!
//! Why this method rather than PSOLA: PSOLA needs reliable pitch marks, and
//! a wrong mark (unvoiced consonants, breathy or creaky TTS output) is an
//! audible glitch; the phase vocoder needs no analysis of the voice at all,
//! handles noise and polyphony (music beds, reverb) the same way, and with
//! identity phase locking its remaining artefact at ±12 semitones is a mild
//! smearing of transients. Formants move with the pitch (no formant
//! preservation), as with any resampling-based shifter.

use voxpipe_plugin_audio::state::{Reader, Writer};
use voxpipe_plugin_audio::StageError;

use crate::resample::{ResampleState, Resampler};
use crate::vocoder::{StretchState, Stretcher};
use crate::Shift;

/// FFT size for a sample rate: 1024 at 22.05 kHz (46 ms), scaled with the
/// rate and rounded to the nearest power of two (512 at 8–16 kHz… 4096 at
/// 96 kHz), so the frequency resolution in Hz stays about the same.
pub fn frame_size(sample_rate: u32) -> usize {
    let ideal = 1024.0 * sample_rate as f64 / 22050.0;
    let exp = ideal.log2().round().clamp(8.0, 12.0);
    1usize << exp as u32
}

/// The fixed part of a shift, rebuilt on every call and shared by the
/// channels: the ratios, and the vocoder and resampler the shift needs. The
/// vocoder is left out when pitch and tempo cancel (pure resampling), the
/// resampler when only the tempo changes.
pub struct Shifter {
    pitch: f64,
    tempo: f64,
    stretcher: Option<Stretcher>,
    resampler: Option<Resampler>,
}

/// What one channel carries from one block to the next.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelState {
    stretch: Option<StretchState>,
    resample: Option<ResampleState>,
}

impl Shifter {
    /// The shifter for `shift` (not the identity) at `sample_rate`.
    pub fn new(shift: &Shift, sample_rate: u32) -> Result<Shifter, StageError> {
        let pitch = shift.pitch_ratio();
        let tempo = shift.tempo;
        let alpha = pitch / tempo;
        let tempo_only = (pitch - 1.0).abs() < 1e-12;
        let stretcher = if (alpha - 1.0).abs() < 1e-12 {
            None
        } else {
            Some(Stretcher::new(frame_size(sample_rate), alpha)?)
        };
        Ok(Shifter {
            pitch,
            tempo,
            stretcher,
            resampler: (!tempo_only).then(|| Resampler::new(pitch)),
        })
    }

    /// Output frames for `frames` input frames: as many when the tempo is 1,
    /// else `frames / tempo` rounded.
    pub fn out_len(&self, frames: u64) -> u64 {
        if self.tempo == 1.0 {
            frames
        } else {
            (frames as f64 / self.tempo).round() as u64
        }
    }

    /// Stretched samples for `frames` input frames: the output itself when
    /// only the tempo changes, else what the resampler reads, which is up to
    /// its `reach` (< 64) samples past its last position.
    fn stretched_len(&self, frames: u64) -> u64 {
        let out_len = self.out_len(frames);
        if self.resampler.is_none() {
            out_len
        } else {
            (out_len as f64 * self.pitch).ceil() as u64 + 64
        }
    }

    /// A channel's state before any input.
    pub fn start(&self) -> ChannelState {
        ChannelState {
            stretch: self.stretcher.as_ref().map(Stretcher::start),
            resample: self.resampler.as_ref().map(|_| ResampleState::default()),
        }
    }

    /// Feed one channel's next `input` samples, `frames` being the input's
    /// length so far (these included), and append the output samples that
    /// are final to `out`; on the `last` block, all the rest. Both lengths
    /// are monotonic in `frames`, so the ones taken before the last block
    /// never exceed the final ones.
    pub fn push(
        &mut self,
        state: &mut ChannelState,
        input: &[f32],
        frames: u64,
        last: bool,
        out: &mut Vec<f32>,
    ) {
        let start = out.len();
        let out_len = self.out_len(frames);
        let stretched_len = self.stretched_len(frames);
        // `start` and `read` give a channel the parts its shifter has.
        let mut stretched = Vec::new();
        let input = match (&mut self.stretcher, &mut state.stretch) {
            (Some(v), Some(vs)) => {
                v.push(vs, input, stretched_len, last, &mut stretched);
                &stretched[..]
            }
            _ => input,
        };
        match (&self.resampler, &mut state.resample) {
            (Some(r), Some(rs)) => r.push(rs, input, out_len, last, out),
            _ => out.extend_from_slice(input),
        }
        // Overlap-add and the resampler's ripple can overshoot slightly; the
        // contract is samples in [-1, 1].
        for s in &mut out[start..] {
            *s = s.clamp(-1.0, 1.0);
        }
    }
}

impl ChannelState {
    /// Append the state to `w` (see [`ChannelState::read`]).
    pub fn write(&self, mut w: Writer) -> Writer {
        if let Some(s) = &self.stretch {
            w = s.write(w);
        }
        if let Some(s) = &self.resample {
            w = s.write(w);
        }
        w
    }

    /// Read a state written by [`ChannelState::write`] for `shifter`.
    pub fn read(r: &mut Reader, shifter: &Shifter) -> Result<ChannelState, StageError> {
        Ok(ChannelState {
            stretch: match &shifter.stretcher {
                Some(s) => Some(StretchState::read(r, s)?),
                None => None,
            },
            resample: match &shifter.resampler {
                Some(s) => Some(ResampleState::read(r, s)?),
                None => None,
            },
        })
    }
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
