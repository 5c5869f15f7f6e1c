//! Checks on the audio handed to the stage and to the public measurement
//! functions, so the DSP code below can assume a well-formed signal.

/// Lowest and highest supported sample rates (Hz). The K-weighting formulas
/// hold across this range; outside it the request is almost surely corrupt.
pub const MIN_RATE: u32 = 8000;
pub const MAX_RATE: u32 = 192_000;

/// Why `samples` cannot be measured, or `None` if they can.
pub(crate) fn problem(samples: &[f32], channels: u16, rate: u32) -> Option<String> {
    if channels == 0 {
        return Some("channels is 0".to_string());
    }
    if !(MIN_RATE..=MAX_RATE).contains(&rate) {
        return Some(format!(
            "sample rate {rate} Hz is outside {MIN_RATE}..={MAX_RATE}"
        ));
    }
    if !samples.len().is_multiple_of(usize::from(channels)) {
        return Some(format!(
            "{} samples is not a whole number of {channels}-channel frames",
            samples.len()
        ));
    }
    if let Some(i) = samples.iter().position(|s| !s.is_finite()) {
        return Some(format!("sample {i} is not finite ({})", samples[i]));
    }
    None
}
