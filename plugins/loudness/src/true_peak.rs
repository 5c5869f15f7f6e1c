//! True-peak measurement per ITU-R BS.1770-4 Annex 2: 4× oversampling with
//! the published 48-tap (4 phases × 12 taps) polyphase interpolator, then
//! the largest absolute value.
//!
//! The Annex designs the filter for 48 kHz; we use it at every rate (its
//! response is defined relative to the sample rate, and 4× is at least what
//! the Annex asks for below 96 kHz). The result is additionally never below
//! the sample peak, so it can only over-read, never under-read, which is the
//! safe side for a ceiling.

/// The Annex 2 coefficients, phase by phase. Phase `p` interpolates the
/// point `p/4` of a sample period; tap `k` multiplies the input `x[n - k]`.
const PHASES: [[f64; 12]; 4] = [
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

const TAPS: usize = 12;

/// Linear true peak of interleaved `samples` with `channels` channels
/// (validated by the caller: `channels > 0`, all samples finite). 0.0 for
/// empty input.
pub(crate) fn true_peak_linear(samples: &[f32], channels: usize) -> f64 {
    let mut peak = samples
        .iter()
        .fold(0.0f64, |m, &s| m.max(f64::from(s).abs()));
    interpolate(samples, channels, |_, v| peak = peak.max(v));
    peak
}

/// Per-frame true peak, all channels linked: entry `m` is the largest of
/// |sample| over the channels of frame `m` and the interpolated values on
/// either side of it (between frames `m − 1` and `m`, and `m` and `m + 1`).
/// The limiter uses it as its detector; its maximum equals
/// [`true_peak_linear`] (every interpolated value lands on some frame).
pub(crate) fn frame_peaks(samples: &[f32], channels: usize) -> Vec<f64> {
    let mut peaks: Vec<f64> = samples
        .chunks_exact(channels)
        .map(|f| f.iter().fold(0.0f64, |m, &s| m.max(f64::from(s).abs())))
        .collect();
    let frames = peaks.len();
    if frames == 0 {
        return peaks;
    }
    interpolate(samples, channels, |w, v| {
        // Window `w` ends at frame w; its four phases interpolate between
        // frames w − 6 and w − 5 (the largest taps sit at k = 6 and k = 5).
        // Credit both neighbours, clamped to the signal.
        for m in [w.saturating_sub(6), w.saturating_sub(5)] {
            let slot = &mut peaks[m.min(frames - 1)];
            *slot = slot.max(v);
        }
    });
    peaks
}

/// Run the 4× interpolator over every channel and call `sink(w, |y|)` for
/// each interpolated value, `w` being the index of the newest input frame
/// of the filter window (0 ..= frames + TAPS − 2).
fn interpolate(samples: &[f32], channels: usize, mut sink: impl FnMut(usize, f64)) {
    let frames = samples.len() / channels;
    // One channel at a time, zero-padded on both sides by TAPS - 1 so the
    // interpolated values around the first and last samples are seen too.
    let mut padded = vec![0.0f64; frames + 2 * (TAPS - 1)];
    for ch in 0..channels {
        for (i, slot) in padded[TAPS - 1..TAPS - 1 + frames].iter_mut().enumerate() {
            *slot = f64::from(samples[i * channels + ch]);
        }
        for (w, window) in padded.windows(TAPS).enumerate() {
            // window[TAPS - 1] is the newest input x[n], window[0] is x[n - 11].
            let mut best = 0.0f64;
            for phase in &PHASES {
                let mut acc = 0.0;
                for (k, c) in phase.iter().enumerate() {
                    acc += c * window[TAPS - 1 - k];
                }
                best = best.max(acc.abs());
            }
            sink(w, best);
        }
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
