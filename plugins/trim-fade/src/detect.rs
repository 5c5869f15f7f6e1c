//! Finding where the sound is: the span from the first to the last
//! non-silent frame of interleaved audio.
//!
//! A window of `window` frames (all channels together) is *loud* when its
//! RMS is at or above the threshold. Windows for the leading edge are laid
//! from the start of the buffer, windows for the trailing edge from its end:
//! so the leading edge found in a first chunk equals the one found in the
//! whole utterance, and likewise the trailing edge of a last chunk (which is
//! what makes per-chunk trimming agree with whole-utterance trimming).
//!
//! Inside the outermost loud window the edge is refined to the first (last)
//! frame having a sample at or above the threshold amplitude. Such a frame
//! always exists: a mean square ≥ t² implies some sample² ≥ t². This gives a
//! sample-exact keep margin instead of a window-granular one, while the RMS
//! gate still ignores isolated low-level ticks in otherwise silent windows.

/// Span of sound, in frames: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// Loudness test over interleaved samples with `channels` per frame.
pub struct Detector<'a> {
    samples: &'a [f32],
    channels: usize,
    frames: usize,
    window: usize,
    /// Threshold amplitude squared (a mean square is compared to it).
    thr2: f64,
}

impl<'a> Detector<'a> {
    /// `samples.len()` must be a multiple of `channels` (checked by the
    /// caller); `window` is clamped to at least one frame.
    pub fn new(samples: &'a [f32], channels: usize, window: usize, threshold_db: f64) -> Self {
        let channels = channels.max(1);
        let thr = 10f64.powf(threshold_db / 20.0);
        Detector {
            samples,
            channels,
            frames: samples.len() / channels,
            window: window.max(1),
            thr2: thr * thr,
        }
    }

    fn frame(&self, f: usize) -> &[f32] {
        let c = self.channels;
        self.samples.get(f * c..(f + 1) * c).unwrap_or(&[])
    }

    /// Mean square over frames `[from, to)` ≥ threshold². NaN counts as
    /// loud: garbage is never trimmed away silently.
    fn loud_window(&self, from: usize, to: usize) -> bool {
        let c = self.channels;
        let s = self.samples.get(from * c..to * c).unwrap_or(&[]);
        if s.is_empty() {
            return false;
        }
        let sum: f64 = s.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        self.at_or_above(sum / s.len() as f64)
    }

    /// `power ≥ threshold²`, with NaN counted as loud.
    fn at_or_above(&self, power: f64) -> bool {
        power.is_nan() || power >= self.thr2
    }

    fn loud_frame(&self, f: usize) -> bool {
        self.frame(f)
            .iter()
            .any(|&x| self.at_or_above(f64::from(x) * f64::from(x)))
    }

    /// First loud frame, found through start-aligned windows.
    fn first(&self) -> Option<usize> {
        let mut from = 0;
        while from < self.frames {
            let to = (from + self.window).min(self.frames);
            if self.loud_window(from, to) {
                return (from..to).find(|&f| self.loud_frame(f));
            }
            from = to;
        }
        None
    }

    /// One past the last loud frame, found through end-aligned windows.
    fn last_end(&self) -> Option<usize> {
        let mut to = self.frames;
        while to > 0 {
            let from = to.saturating_sub(self.window);
            if self.loud_window(from, to) {
                return (from..to)
                    .rev()
                    .find(|&f| self.loud_frame(f))
                    .map(|f| f + 1);
            }
            to = from;
        }
        None
    }

    /// The span of sound, or `None` when every window is silent. The two
    /// scans use different window grids, so in rare borderline cases only
    /// one of them sees a loud window; the span then covers what either saw.
    pub fn sound(&self) -> Option<Span> {
        match (self.first(), self.last_end()) {
            (Some(s), Some(e)) => Some(Span {
                start: s.min(e.saturating_sub(1)),
                end: e.max(s + 1),
            }),
            (Some(s), None) => Some(Span {
                start: s,
                end: s + 1,
            }),
            (None, Some(e)) => Some(Span {
                start: e - 1,
                end: e,
            }),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_exact_first_and_last_loud_frames() {
        // 1000 Hz-ish grid: 10-frame windows, tone from frame 205 to 493.
        let mut s = vec![0.0f32; 1000];
        for x in &mut s[205..494] {
            *x = 0.5;
        }
        let d = Detector::new(&s, 1, 10, -50.0);
        assert_eq!(
            d.sound(),
            Some(Span {
                start: 205,
                end: 494
            })
        );
    }

    #[test]
    fn a_quiet_tick_in_a_silent_window_is_ignored() {
        // One sample at -40 dB in a 100-frame window: RMS is -60 dB < -50.
        let mut s = vec![0.0f32; 1000];
        s[50] = 0.01;
        let d = Detector::new(&s, 1, 100, -50.0);
        assert_eq!(d.sound(), None);
        // With a 1-frame window it is loud.
        assert_eq!(
            Detector::new(&s, 1, 1, -50.0).sound(),
            Some(Span { start: 50, end: 51 })
        );
    }

    #[test]
    fn stereo_frames_count_once_and_any_channel_is_enough() {
        // Sound only on the right channel of frames 30..40.
        let mut s = vec![0.0f32; 200];
        for f in 30..40 {
            s[2 * f + 1] = 0.3;
        }
        let d = Detector::new(&s, 2, 10, -50.0);
        assert_eq!(d.sound(), Some(Span { start: 30, end: 40 }));
    }

    #[test]
    fn nan_is_loud_and_empty_is_silent() {
        let s = [0.0, f32::NAN, 0.0];
        assert_eq!(
            Detector::new(&s, 1, 2, -50.0).sound(),
            Some(Span { start: 1, end: 2 })
        );
        assert_eq!(Detector::new(&[], 1, 10, -50.0).sound(), None);
    }
}
