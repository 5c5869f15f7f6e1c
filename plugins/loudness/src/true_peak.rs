//! True-peak measurement per ITU-R BS.1770-4 Annex 2: 4× oversampling with
//! the published 48-tap (4 phases × 12 taps) polyphase interpolator, then
//! the largest absolute value.
//!
//! The interpolator runs frame by frame with its last `TAPS − 1` inputs
//! per channel carried along, so a signal cut into blocks gives exactly the
//! values the whole signal would.
//!
//! The Annex designs the filter for 48 kHz; we use it at every rate (its
//! response is defined relative to the sample rate, and 4× is at least what
//! the Annex asks for below 96 kHz). The result is additionally never below
//! the sample peak, so it can only over-read, never under-read, which is the
//! safe side for a ceiling.

use crate::integrated::sized;
use voxpipe_plugin_audio::StageError;

/// The Annex 2 coefficients, phase by phase. Phase `p` interpolates the
/// point `p/4` of a sample period; tap `k` multiplies the input `x[n - k]`.
pub(crate) const PHASES: [[f64; 12]; 4] = [
    [
        0.0017089843750,
        0.0109863281250,
        -0.0196533203125,
        0.0332031250000,
        -0.0594482421875,
        0.1373291015625,
        0.9721679687500,
        -0.1022949218750,
        0.0476074218750,
        -0.0266113281250,
        0.0148925781250,
        -0.0083007812500,
    ],
    [
        -0.0291748046875,
        0.0292968750000,
        -0.0517578125000,
        0.0891113281250,
        -0.1665039062500,
        0.4650878906250,
        0.7797851562500,
        -0.2003173828125,
        0.1015625000000,
        -0.0582275390625,
        0.0330810546875,
        -0.0189208984375,
    ],
    [
        -0.0189208984375,
        0.0330810546875,
        -0.0582275390625,
        0.1015625000000,
        -0.2003173828125,
        0.7797851562500,
        0.4650878906250,
        -0.1665039062500,
        0.0891113281250,
        -0.0517578125000,
        0.0292968750000,
        -0.0291748046875,
    ],
    [
        -0.0083007812500,
        0.0148925781250,
        -0.0266113281250,
        0.0476074218750,
        -0.1022949218750,
        0.9721679687500,
        0.1373291015625,
        -0.0594482421875,
        0.0332031250000,
        -0.0196533203125,
        0.0109863281250,
        0.0017089843750,
    ],
];

pub(crate) const TAPS: usize = 12;

/// The most any phase can amplify: `max_p Σ_k |PHASES[p][k]|` (about 2.02),
/// with a hair of margin for the sums' rounding. An interpolated value is
/// at most this times the largest |input| of its window.
const GAIN_BOUND: f64 = {
    let mut most = 0.0;
    let mut p = 0;
    while p < 4 {
        let mut sum = 0.0;
        let mut k = 0;
        while k < TAPS {
            let c = PHASES[p][k];
            sum += if c < 0.0 { -c } else { c };
            k += 1;
        }
        if sum > most {
            most = sum;
        }
        p += 1;
    }
    most * (1.0 + 1e-9)
};

/// Linear true peak of interleaved `samples` with `channels` channels
/// (validated by the caller: `channels > 0`, all samples finite). 0.0 for
/// empty input.
pub(crate) fn true_peak_linear(samples: &[f32], channels: usize) -> f64 {
    let mut interpolator = Interpolator::new(channels);
    let mut peak = samples
        .iter()
        .fold(0.0f64, |m, &s| m.max(f64::from(s).abs()));
    for frame in samples.chunks_exact(channels) {
        peak = peak.max(interpolator.push(frame));
    }
    for _ in 0..TAPS - 1 {
        peak = peak.max(interpolator.push_silence());
    }
    peak
}

/// The 4× interpolator over an interleaved signal fed one frame at a time.
/// Before the first frame it has seen silence; after the last one, feed it
/// `TAPS − 1` frames of silence ([`Interpolator::push_silence`]) so that
/// the values around the last samples are seen too.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Interpolator {
    channels: usize,
    /// The last `TAPS − 1` inputs, per channel, oldest first.
    history: Vec<f64>,
    /// Frames in a row, up to the newest, that [`Interpolator::push_above`]
    /// found quiet (not carried in the state: after a read it starts at 0,
    /// which only costs the windows of the first few frames).
    quiet: usize,
}

impl Interpolator {
    pub(crate) fn new(channels: usize) -> Self {
        Interpolator {
            channels,
            history: vec![0.0; channels * (TAPS - 1)],
            quiet: 0,
        }
    }

    /// [`Interpolator::push`] for a caller to whom values at or below
    /// `floor` all mean the same (the limiter: a peak under its threshold
    /// asks for no gain change, whatever its size). A window whose inputs
    /// are all at most `floor / GAIN_BOUND` cannot exceed `floor`, so it is
    /// not computed: 0 is returned and only the history moves on. `floor`
    /// must not fall from one call to the next (a frame judged quiet stays
    /// judged by the level it was taken at).
    pub(crate) fn push_above(&mut self, frame: &[f32], floor: f64) -> f64 {
        let quiet_below = floor / GAIN_BOUND;
        if frame.iter().all(|&s| f64::from(s).abs() <= quiet_below) {
            self.quiet += 1;
        } else {
            self.quiet = 0;
        }
        if self.quiet < TAPS {
            return self.push(frame);
        }
        for (&s, history) in frame.iter().zip(self.history.chunks_exact_mut(TAPS - 1)) {
            history.copy_within(1.., 0);
            history[TAPS - 2] = f64::from(s);
        }
        0.0
    }

    /// Take the next frame; returns the largest |interpolated value| over
    /// the channels and the four phases of the window it completes, whose
    /// largest taps weigh the frames 5 and 6 frames back.
    pub(crate) fn push(&mut self, frame: &[f32]) -> f64 {
        let mut best = 0.0f64;
        for (&s, history) in frame.iter().zip(self.history.chunks_exact_mut(TAPS - 1)) {
            let newest = f64::from(s);
            // Tap `k` multiplies x[n − k]: the newest input, then the
            // history from the newest end.
            for phase in &PHASES {
                let mut acc = phase[0] * newest;
                for (c, x) in phase[1..].iter().zip(history.iter().rev()) {
                    acc += c * x;
                }
                best = best.max(acc.abs());
            }
            history.copy_within(1.., 0);
            history[TAPS - 2] = newest;
        }
        best
    }

    /// Take a frame of silence past the end of the signal.
    pub(crate) fn push_silence(&mut self) -> f64 {
        self.push(&vec![0.0; self.channels])
    }

    pub(crate) fn history(&self) -> &[f64] {
        &self.history
    }

    pub(crate) fn with_history(channels: usize, history: Vec<f64>) -> Result<Self, StageError> {
        Ok(Interpolator {
            channels,
            history: sized(history, channels * (TAPS - 1), "interpolator history")?,
            quiet: 0,
        })
    }
}

/// Linear amplitude to dB (−inf for 0).
pub(crate) fn to_db(linear: f64) -> f64 {
    if linear > 0.0 {
        20.0 * linear.log10()
    } else {
        f64::NEG_INFINITY
    }
}
