//! Length regulation: log-durations → integer frame counts → frame-rate prior.

use candle_core::Tensor;

use super::VitsError;

/// Frames per phoneme: `ceil(exp(logw) · length_scale)`, as the reference computes it in f32.
pub fn durations_from_logw(logw: &[f32], length_scale: f32) -> Vec<u32> {
    logw.iter()
        .map(|&l| (l.exp() * length_scale).ceil().max(0.0) as u32)
        .collect()
}

/// Repeats each time step `t` of `x` `[1, C, T]` `durations[t]` times → `[1, C, Σ durations]`.
///
/// A gather with repeat-interleave indices; cheaper than the alignment-matrix matmul.
/// An all-zero duration vector yields one frame of zeros, like the reference
/// (its frame count is clamped to at least 1 and no phoneme covers that frame).
pub fn expand_frames(x: &Tensor, durations: &[u32]) -> Result<Tensor, VitsError> {
    let (_, channels, len) = x.dims3()?;
    if durations.len() != len {
        return Err(VitsError::Internal(format!(
            "{} durations for {len} phonemes",
            durations.len()
        )));
    }
    let idx: Vec<u32> = durations
        .iter()
        .enumerate()
        .flat_map(|(t, &d)| std::iter::repeat_n(t as u32, d as usize))
        .collect();
    if idx.is_empty() {
        return Ok(Tensor::zeros((1, channels, 1), x.dtype(), x.device())?);
    }
    let frames = idx.len();
    let idx = Tensor::from_vec(idx, frames, x.device())?;
    Ok(x.index_select(&idx, 2)?)
}
