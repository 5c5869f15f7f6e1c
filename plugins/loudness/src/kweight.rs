//! K-weighting of ITU-R BS.1770-4: a high-shelf "pre-filter" (the acoustic
//! effect of the head) followed by the "RLB" high-pass (revised low-frequency
//! B-curve).
//!
//! BS.1770 only tabulates the coefficients at 48 kHz. Speech models emit
//! 16, 22.05 or 24 kHz, so the coefficients are derived for the actual rate
//! from the analogue prototypes with the bilinear transform, using the same
//! parameters as libebur128 (and, to within a rounding, pyloudnorm). At
//! 48 kHz these formulas reproduce the published table to better than 1e-8.

/// One second-order IIR section, `a[0]` normalised to 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Biquad {
    /// Feed-forward coefficients b0, b1, b2.
    pub b: [f64; 3],
    /// Feedback coefficients 1, a1, a2.
    pub a: [f64; 3],
}

impl Biquad {
    /// Magnitude response in dB at `freq` Hz for a filter running at `rate`.
    /// Used to state test expectations (the K-weighting gain at 1 kHz).
    pub fn response_db(&self, freq: f64, rate: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * freq / rate;
        // H(e^jw) = (b0 + b1 z^-1 + b2 z^-2) / (1 + a1 z^-1 + a2 z^-2)
        let (c1, s1) = (w.cos(), -w.sin());
        let (c2, s2) = ((2.0 * w).cos(), -(2.0 * w).sin());
        let num = (
            self.b[0] + self.b[1] * c1 + self.b[2] * c2,
            self.b[1] * s1 + self.b[2] * s2,
        );
        let den = (
            self.a[0] + self.a[1] * c1 + self.a[2] * c2,
            self.a[1] * s1 + self.a[2] * s2,
        );
        let mag2 = (num.0 * num.0 + num.1 * num.1) / (den.0 * den.0 + den.1 * den.1);
        10.0 * mag2.log10()
    }

    /// Filter one sample (transposed direct form II); `state` is the
    /// section's memory, zero before the first sample. Per sample so the
    /// memory can be carried from one block of an utterance to the next.
    pub fn step(&self, input: f64, state: &mut [f64; 2]) -> f64 {
        let [b0, b1, b2] = self.b;
        let [_, a1, a2] = self.a;
        let y = b0 * input + state[0];
        state[0] = b1 * input - a1 * y + state[1];
        state[1] = b2 * input - a2 * y;
        y
    }
}

/// The two K-weighting stages (pre-filter, RLB high-pass) for `rate` Hz.
pub fn k_weighting(rate: u32) -> [Biquad; 2] {
    let rate = f64::from(rate);
    let pi = std::f64::consts::PI;

    // Stage 1: high shelf, +4 dB above ~1.7 kHz.
    let f0 = 1681.974450955533;
    let gain_db = 3.999843853973347;
    let q = 0.7071752369554196;
    let k = (pi * f0 / rate).tan();
    let vh = 10f64.powf(gain_db / 20.0);
    let vb = vh.powf(0.4996667741545416);
    let a0 = 1.0 + k / q + k * k;
    let pre = Biquad {
        b: [
            (vh + vb * k / q + k * k) / a0,
            2.0 * (k * k - vh) / a0,
            (vh - vb * k / q + k * k) / a0,
        ],
        a: [1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0],
    };

    // Stage 2: RLB high-pass at ~38 Hz. BS.1770 publishes b = [1, -2, 1],
    // not divided by a0: that leaves ~+0.04 dB of passband gain, which the
    // standard's -0.691 dB constant assumes, so we keep it.
    let f0 = 38.13547087602444;
    let q = 0.5003270373238773;
    let k = (pi * f0 / rate).tan();
    let a0 = 1.0 + k / q + k * k;
    let rlb = Biquad {
        b: [1.0, -2.0, 1.0],
        a: [1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0],
    };

    [pre, rlb]
}
