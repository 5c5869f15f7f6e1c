//! Finding where the sound is, block by block (the measuring pass): the span
//! from the first to the last non-silent frame of an utterance.
//!
//! A window of `window` frames (all channels together) is *loud* when its
//! mean square is at or above the threshold squared. Windows for the leading
//! edge are laid from the start of the utterance, windows for the trailing
//! edge from its end. Inside the outermost loud window the edge is refined to
//! the first (last) frame having a sample at or above the threshold
//! amplitude. Such a frame exists: a mean square ≥ t² implies some sample²
//! ≥ t². This gives a sample-exact keep margin instead of a window-granular
//! one, while the RMS gate still ignores isolated low-level ticks in
//! otherwise silent windows. NaN counts as loud: garbage is never trimmed
//! away silently.
//!
//! The leading edge needs only the window being filled: its running sum of
//! squares (added sample by sample in order, so it is bit for bit the sum a
//! whole-buffer scan makes) and its first loud frame.
//!
//! The trailing edge's windows depend on the utterance's length, which is
//! unknown until the last block. So [`Measure`] keeps the utterance's last
//! frames (the *tail*: at most [`TAIL_SECONDS`] and [`TAIL_BYTES`]) and scans
//! them from the end once the length is known, exactly as a whole-buffer scan
//! would. Only when that scan runs off the start of the tail without finding
//! a loud window (more than the tail of silence at the end) does it fall back
//! to a running candidate: the last loud frame of any loud window of
//! `window` frames (sliding, every alignment), or, when the tail cannot hold
//! one window, the last loud frame. The end-aligned window that a
//! whole-buffer scan would stop at is one of those windows, so the fallback
//! keeps at least as much as it (up to about one window more), never less.

use voxpipe_plugin_audio::state::{Reader, Writer};
use voxpipe_plugin_audio::StageError;

/// Span of sound, in frames: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

/// Longest tail kept for the trailing-edge scan, in seconds of audio: longer
/// than the silence a TTS engine leaves after a sentence, so the scan is
/// exact for every utterance that ends in speech.
pub const TAIL_SECONDS: u32 = 2;

/// Most bytes of samples the tail may hold, whatever the rate and channels:
/// with the few numbers beside it, the state stays under the host's 1 MiB.
pub const TAIL_BYTES: usize = 768 << 10;

/// The most bytes [`Measure::encode`] writes: seven numbers, a flag, the
/// tail's length and a full tail.
pub const MAX_MEASURE_BYTES: usize = 7 * 8 + 1 + 8 + TAIL_BYTES;

/// The loudness test: settings of one utterance (not carried in the state;
/// every call derives them from the config and the audio).
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    channels: usize,
    window: u64,
    /// Threshold amplitude squared (a mean square is compared to it).
    thr2: f64,
    /// Frames the tail holds at most.
    tail: usize,
}

impl Gate {
    /// `window` is clamped to at least one frame, `channels` to one.
    pub fn new(sample_rate: u32, channels: usize, window: usize, threshold_db: f64) -> Self {
        let channels = channels.max(1);
        let thr = 10f64.powf(threshold_db / 20.0);
        let seconds = TAIL_SECONDS as usize * sample_rate as usize;
        Gate {
            channels,
            window: window.max(1) as u64,
            thr2: thr * thr,
            tail: seconds.min(TAIL_BYTES / (4 * channels)).max(1),
        }
    }

    /// `power ≥ threshold²`, with NaN counted as loud.
    fn at_or_above(&self, power: f64) -> bool {
        power.is_nan() || power >= self.thr2
    }

    /// Sum of squares of a frame, channel by channel.
    fn energy(frame: &[f32]) -> f64 {
        frame.iter().map(|&x| f64::from(x) * f64::from(x)).sum()
    }

    fn loud_frame(&self, frame: &[f32]) -> bool {
        frame
            .iter()
            .any(|&x| self.at_or_above(f64::from(x) * f64::from(x)))
    }

    /// Whether the sliding windows can be followed: the one leaving a
    /// window must still be in the tail.
    fn slides(&self) -> bool {
        self.tail as u64 >= self.window
    }
}

/// What the measuring pass knows after some blocks of an utterance: a few
/// numbers and the tail. Its encoding is at most [`MAX_MEASURE_BYTES`]
/// however long the utterance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measure {
    /// Frames seen so far.
    frames: u64,
    /// `Some(edge)` once the leading scan has decided: the first loud frame,
    /// or `None` when the loud window had no loud frame (rounding).
    lead: Option<Option<u64>>,
    /// Sum of squares of the leading window being filled, in sample order.
    lead_sum: f64,
    lead_frames: u64,
    lead_first_loud: Option<u64>,
    /// The last loud frame seen.
    last_loud: Option<u64>,
    /// One past the last loud frame of a loud sliding window: the fallback
    /// trailing edge.
    slide_end: Option<u64>,
    /// The last `min(frames, gate.tail)` frames, interleaved.
    tail: Vec<f32>,
}

/// `None` is written as `u64::MAX`, which no frame index reaches.
fn opt(v: Option<u64>) -> u64 {
    v.unwrap_or(u64::MAX)
}

fn unopt(v: u64) -> Option<u64> {
    (v != u64::MAX).then_some(v)
}

impl Measure {
    /// Writes the measure after `w` (which holds the state's tag and the
    /// audio format).
    pub fn encode(&self, w: Writer) -> Writer {
        let (lead_done, lead) = match self.lead {
            Some(edge) => (1, opt(edge)),
            None => (0, u64::MAX),
        };
        w.u64(self.frames)
            .u8(lead_done)
            .u64(lead)
            .f64(self.lead_sum)
            .u64(self.lead_frames)
            .u64(opt(self.lead_first_loud))
            .u64(opt(self.last_loud))
            .u64(opt(self.slide_end))
            .f32s(&self.tail)
    }

    pub fn decode(r: &mut Reader) -> Result<Self, StageError> {
        let frames = r.u64()?;
        let lead_done = r.u8()? != 0;
        let lead = unopt(r.u64()?);
        Ok(Measure {
            frames,
            lead: lead_done.then_some(lead),
            lead_sum: r.f64()?,
            lead_frames: r.u64()?,
            lead_first_loud: unopt(r.u64()?),
            last_loud: unopt(r.u64()?),
            slide_end: unopt(r.u64()?),
            tail: r.f32s()?,
        })
    }

    /// Frames measured so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Measures the next block (`samples.len()` a multiple of the channels).
    pub fn push(&mut self, g: &Gate, samples: &[f32]) {
        let c = g.channels;
        // The tail followed by the block: the frame leaving a sliding window
        // is `window` frames back, in the tail when the block is short.
        let before = self.tail.len() / c;
        let mut buf = std::mem::take(&mut self.tail);
        buf.extend_from_slice(samples);
        let frame = |k: usize| &buf[k * c..(k + 1) * c];
        let w = g.window as usize;
        // The sliding sum, recomputed from the samples every `window` frames
        // so that adding and subtracting cannot drift.
        let resum = |end: usize| -> f64 {
            (end.saturating_sub(w)..end)
                .map(|k| Gate::energy(frame(k)))
                .sum()
        };
        let mut slide_sum = if g.slides() { resum(before) } else { 0.0 };
        for k in before..buf.len() / c {
            let f = self.frames;
            let fr = frame(k);
            let loud = g.loud_frame(fr);
            if loud {
                self.last_loud = Some(f);
            }
            if self.lead.is_none() {
                for &x in fr {
                    self.lead_sum += f64::from(x) * f64::from(x);
                }
                if loud && self.lead_first_loud.is_none() {
                    self.lead_first_loud = Some(f);
                }
                self.lead_frames += 1;
                if self.lead_frames == g.window {
                    self.close_lead_window(g);
                }
            }
            self.frames += 1;
            if g.slides() {
                slide_sum = if self.frames.is_multiple_of(g.window) {
                    resum(k + 1)
                } else if f >= g.window {
                    slide_sum + Gate::energy(fr) - Gate::energy(frame(k - w))
                } else {
                    slide_sum + Gate::energy(fr)
                };
                let n = self.frames.min(g.window);
                let in_window = self.last_loud.is_some_and(|l| l + n >= self.frames);
                if in_window && g.at_or_above(slide_sum / (n as usize * c) as f64) {
                    self.slide_end = self.last_loud.map(|l| l + 1);
                }
            }
        }
        let keep = (buf.len() / c).min(g.tail);
        buf.drain(..buf.len() - keep * c);
        self.tail = buf;
    }

    /// Decides the leading window just filled (or the partial last one):
    /// a loud window ends the leading scan, a silent one starts the next.
    fn close_lead_window(&mut self, g: &Gate) {
        let samples = self.lead_frames as usize * g.channels;
        if g.at_or_above(self.lead_sum / samples as f64) {
            self.lead = Some(self.lead_first_loud);
        }
        self.lead_sum = 0.0;
        self.lead_frames = 0;
        self.lead_first_loud = None;
    }

    /// One past the last loud frame, found through windows aligned to the
    /// end of the utterance (the measured frames so far), scanned back
    /// through the tail; the fallback when the tail is silent throughout.
    fn trailing_edge(&self, g: &Gate) -> Option<u64> {
        let c = g.channels;
        let tail_start = self.frames - (self.tail.len() / c) as u64;
        let frame = |f: u64| {
            let k = (f - tail_start) as usize;
            &self.tail[k * c..(k + 1) * c]
        };
        let mut to = self.frames;
        while to > 0 {
            let from = to.saturating_sub(g.window);
            if from < tail_start {
                return if g.slides() {
                    self.slide_end
                } else {
                    self.last_loud.map(|l| l + 1)
                };
            }
            let sum: f64 = (from..to)
                .flat_map(|f| frame(f).iter())
                .map(|&x| f64::from(x) * f64::from(x))
                .sum();
            if g.at_or_above(sum / ((to - from) as usize * c) as f64) {
                return (from..to)
                    .rev()
                    .find(|&f| g.loud_frame(frame(f)))
                    .map(|f| f + 1);
            }
            to = from;
        }
        None
    }

    /// The span of sound once every block was measured, or `None` when every
    /// window is silent. The two scans use different window grids, so in
    /// rare borderline cases only one of them sees a loud window; the span
    /// then covers what either saw.
    pub fn finish(mut self, g: &Gate) -> Option<Span> {
        if self.lead.is_none() && self.lead_frames > 0 {
            self.close_lead_window(g);
        }
        match (self.lead.flatten(), self.trailing_edge(g)) {
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

    /// Measures `s` in blocks of `block` frames, through the state encoding
    /// as the host hands it from call to call.
    fn sound(s: &[f32], channels: usize, window: usize, block: usize) -> Option<Span> {
        let g = Gate::new(1000, channels, window, -50.0);
        let mut m = Measure::default();
        for b in s.chunks(block * channels) {
            m.push(&g, b);
            let bytes = m.encode(Writer::new()).finish();
            m = Measure::decode(&mut Reader::new(&bytes)).unwrap();
        }
        m.finish(&g)
    }

    #[test]
    fn finds_the_exact_first_and_last_loud_frames() {
        // 1000 Hz-ish grid: 10-frame windows, tone from frame 205 to 493.
        let mut s = vec![0.0f32; 1000];
        for x in &mut s[205..494] {
            *x = 0.5;
        }
        for block in [1, 7, 1000] {
            assert_eq!(
                sound(&s, 1, 10, block),
                Some(Span {
                    start: 205,
                    end: 494
                })
            );
        }
    }

    #[test]
    fn a_quiet_tick_in_a_silent_window_is_ignored() {
        // One sample at -40 dB in a 100-frame window: RMS is -60 dB < -50.
        let mut s = vec![0.0f32; 1000];
        s[50] = 0.01;
        assert_eq!(sound(&s, 1, 100, 64), None);
        // With a 1-frame window it is loud.
        assert_eq!(sound(&s, 1, 1, 64), Some(Span { start: 50, end: 51 }));
    }

    #[test]
    fn stereo_frames_count_once_and_any_channel_is_enough() {
        // Sound only on the right channel of frames 30..40.
        let mut s = vec![0.0f32; 200];
        for f in 30..40 {
            s[2 * f + 1] = 0.3;
        }
        assert_eq!(sound(&s, 2, 10, 3), Some(Span { start: 30, end: 40 }));
    }

    #[test]
    fn nan_is_loud_and_empty_is_silent() {
        let s = [0.0, f32::NAN, 0.0];
        assert_eq!(sound(&s, 1, 2, 1), Some(Span { start: 1, end: 2 }));
        assert_eq!(sound(&[], 1, 10, 1), None);
    }

    #[test]
    fn the_trailing_windows_are_aligned_to_the_end() {
        // 10-frame windows over 1005 frames end at 1005, 995, …, 5. A burst
        // of two loud frames at 988..990 is loud in the window 985..995 but
        // a lone loud frame at 1000 shares 995..1005 with nine zeros and
        // stays under the threshold with a -21 dB gate.
        let mut s = vec![0.0f32; 1005];
        s[988] = 0.5;
        s[989] = 0.5;
        s[1000] = 0.2;
        let g = Gate::new(1000, 1, 10, -21.0);
        let mut m = Measure::default();
        m.push(&g, &s);
        assert_eq!(
            m.finish(&g),
            Some(Span {
                start: 988,
                end: 990
            })
        );
    }

    #[test]
    fn past_the_tail_the_fallback_keeps_the_last_loud_window() {
        // Sound, then more than the tail (2 s at 1 kHz) of silence: the
        // sliding fallback finds the same last loud frame.
        let mut s = vec![0.0f32; 5000];
        for x in &mut s[100..1234] {
            *x = 0.5;
        }
        let g = Gate::new(1000, 1, 10, -50.0);
        let mut m = Measure::default();
        for b in s.chunks(999) {
            m.push(&g, b);
        }
        assert!(m.tail.len() == 2000);
        assert_eq!(
            m.finish(&g),
            Some(Span {
                start: 100,
                end: 1234
            })
        );
    }

    #[test]
    fn nan_past_the_tail_is_still_sound() {
        // The fallback's sliding sum counts NaN as loud too.
        let mut s = vec![0.0f32; 5000];
        s[1000] = f32::NAN;
        assert_eq!(
            sound(&s, 1, 10, 999),
            Some(Span {
                start: 1000,
                end: 1001
            })
        );
    }

    #[test]
    fn the_tail_is_bounded_by_bytes_and_seconds() {
        assert_eq!(Gate::new(22050, 1, 221, -50.0).tail, 44100);
        assert_eq!(Gate::new(768_000, 8, 7680, -50.0).tail, TAIL_BYTES / 32);
        assert_eq!(Gate::new(1000, 65535, 10, -50.0).tail, 3);
    }
}
