//! Fade-in and fade-out ramps on interleaved audio.
//!
//! A fade of `len` frames multiplies frame `i` of the ramp by
//! `shape(i / len)`, so the outermost frame gets gain exactly 0 and the
//! innermost faded frame `(len-1)/len`; the next (unfaded) frame has gain 1.
//! Fade-in and fade-out are mirror images. A fade longer than the audio is
//! cut to the audio's length; when both overlap (very short audio) the
//! gains multiply, which keeps both ends at 0.

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

fn scale_frame(samples: &mut [f32], channels: usize, frame: usize, g: f32) {
    if let Some(fr) = samples.get_mut(frame * channels..(frame + 1) * channels) {
        for s in fr {
            *s *= g;
        }
    }
}

/// Fade the first `len` frames in from silence.
pub fn fade_in(samples: &mut [f32], channels: usize, len: usize, shape: FadeShape) {
    let channels = channels.max(1);
    let len = len.min(samples.len() / channels);
    for i in 0..len {
        scale_frame(samples, channels, i, gain(shape, i as f64 / len as f64));
    }
}

/// Fade the last `len` frames out to silence.
pub fn fade_out(samples: &mut [f32], channels: usize, len: usize, shape: FadeShape) {
    let channels = channels.max(1);
    let frames = samples.len() / channels;
    let len = len.min(frames);
    for j in 0..len {
        let g = gain(shape, (len - 1 - j) as f64 / len as f64);
        scale_frame(samples, channels, frames - len + j, g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fade_in_is_monotonic_from_zero_to_one() {
        for shape in [FadeShape::Linear, FadeShape::Cosine] {
            let mut s = vec![1.0f32; 100];
            fade_in(&mut s, 1, 40, shape);
            assert_eq!(s[0], 0.0);
            assert!(s.windows(2).all(|w| w[1] >= w[0]), "{shape:?}");
            assert!(s[39] < 1.0 && s[40] == 1.0);
        }
    }

    #[test]
    fn fade_out_mirrors_fade_in() {
        for shape in [FadeShape::Linear, FadeShape::Cosine] {
            let mut a = vec![1.0f32; 50];
            let mut b = vec![1.0f32; 50];
            fade_in(&mut a, 1, 20, shape);
            fade_out(&mut b, 1, 20, shape);
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
        let mut s = vec![1.0f32; 6]; // 3 stereo frames
        fade_in(&mut s, 2, 100, FadeShape::Linear);
        fade_out(&mut s, 2, 100, FadeShape::Linear);
        assert_eq!(&s[..2], &[0.0, 0.0]);
        assert_eq!(&s[4..], &[0.0, 0.0]);
        fade_in(&mut [], 1, 10, FadeShape::Cosine); // no panic on empty
    }
}
