//! Fade-in and fade-out ramps on the kept part of an utterance, applied a
//! block at a time.
//!
//! A fade of `len` frames multiplies frame `i` of the ramp by
//! `shape(i / len)`, so the outermost frame gets gain exactly 0 and the
//! innermost faded frame `(len-1)/len`; the next (unfaded) frame has gain 1.
//! Fade-in and fade-out are mirror images. A fade longer than the kept audio
//! is cut to its length; when both overlap (very short audio) the gains
//! multiply, which keeps both ends at 0. A frame's gains depend only on its
//! place in the kept audio, so fading block by block equals fading the whole.

use crate::settings::FadeShape;

/// Gain at position `x` ∈ [0, 1] of a ramp going from 0 up to 1.
pub fn gain(shape: FadeShape, x: f64) -> f32 {
    let x = x.clamp(0.0, 1.0);
    let g = match shape {
        FadeShape::Linear => x,
        FadeShape::Cosine => 0.5 - 0.5 * (std::f64::consts::PI * x).cos(),
    };
    g as f32
}

/// Both fades of one utterance's kept audio of `kept` frames.
#[derive(Debug, Clone, Copy)]
pub struct Fades {
    kept: u64,
    fade_in: u64,
    fade_out: u64,
    shape: FadeShape,
}

impl Fades {
    /// Fades of `fade_in` and `fade_out` frames, each cut to `kept`.
    pub fn new(kept: u64, fade_in: u64, fade_out: u64, shape: FadeShape) -> Self {
        Fades {
            kept,
            fade_in: fade_in.min(kept),
            fade_out: fade_out.min(kept),
            shape,
        }
    }

    /// Fades the interleaved `samples`, whose first frame is frame `first`
    /// of the kept audio. The fade-in gain is applied before the fade-out
    /// gain, as two passes over a whole buffer would.
    pub fn apply(&self, samples: &mut [f32], channels: usize, first: u64) {
        let channels = channels.max(1);
        for (k, frame) in samples.chunks_exact_mut(channels).enumerate() {
            let i = first + k as u64;
            if i < self.fade_in {
                let g = gain(self.shape, i as f64 / self.fade_in as f64);
                frame.iter_mut().for_each(|s| *s *= g);
            }
            if i + self.fade_out >= self.kept && i < self.kept {
                let from_end = self.kept - 1 - i;
                let g = gain(self.shape, from_end as f64 / self.fade_out as f64);
                frame.iter_mut().for_each(|s| *s *= g);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faded(len: usize, channels: usize, fin: u64, fout: u64, shape: FadeShape) -> Vec<f32> {
        let mut s = vec![1.0f32; len * channels];
        Fades::new(len as u64, fin, fout, shape).apply(&mut s, channels, 0);
        s
    }

    #[test]
    fn fade_in_is_monotonic_from_zero_to_one() {
        for shape in [FadeShape::Linear, FadeShape::Cosine] {
            let s = faded(100, 1, 40, 0, shape);
            assert_eq!(s[0], 0.0);
            assert!(s.windows(2).all(|w| w[1] >= w[0]), "{shape:?}");
            assert!(s[39] < 1.0 && s[40] == 1.0);
        }
    }

    #[test]
    fn fade_out_mirrors_fade_in() {
        for shape in [FadeShape::Linear, FadeShape::Cosine] {
            let a = faded(50, 1, 20, 0, shape);
            let mut b = faded(50, 1, 0, 20, shape);
            b.reverse();
            assert_eq!(a, b);
            assert_eq!(*b.first().unwrap(), 0.0);
        }
    }

    #[test]
    fn cosine_is_gentler_at_the_ends_than_linear() {
        assert!(gain(FadeShape::Cosine, 0.1) < gain(FadeShape::Linear, 0.1));
        assert!(gain(FadeShape::Cosine, 0.9) > gain(FadeShape::Linear, 0.9));
        assert!((gain(FadeShape::Cosine, 0.5) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn overlong_fades_cover_the_audio_and_keep_both_ends_at_zero() {
        let s = faded(3, 2, 100, 100, FadeShape::Linear);
        assert_eq!(&s[..2], &[0.0, 0.0]);
        assert_eq!(&s[4..], &[0.0, 0.0]);
        Fades::new(0, 10, 10, FadeShape::Cosine).apply(&mut [], 1, 0); // no panic on empty
    }

    #[test]
    fn fading_in_pieces_equals_fading_the_whole() {
        let whole = faded(97, 2, 30, 41, FadeShape::Cosine);
        let fades = Fades::new(97, 30, 41, FadeShape::Cosine);
        let mut pieces = vec![1.0f32; 97 * 2];
        for (n, piece) in pieces.chunks_mut(2 * 13).enumerate() {
            fades.apply(piece, 2, 13 * n as u64);
        }
        assert_eq!(pieces, whole);
    }
}
