//! Gated integrated loudness of ITU-R BS.1770-4 (as used by EBU R128).
//!
//! The K-weighted signal is cut into 400 ms blocks overlapping by 75 %
//! (a new block every 100 ms). A block's loudness is
//! `-0.691 + 10 log10(Σ_ch G_ch · mean_square_ch)`. Blocks at or below
//! −70 LUFS are dropped (absolute gate), then blocks at or below the mean of
//! the survivors minus 10 LU (relative gate); the integrated loudness is that
//! same formula over the mean power of the remaining blocks.
//!
//! Only complete blocks are used: a trailing partial block is ignored, as
//! BS.1770 prescribes (pyloudnorm may round up and count one more, partial,
//! block, which only matters for very short signals).
//!
//! Block boundaries fall on sample `floor(j · rate / 10)`, so rates not
//! divisible by 10 (11025 Hz) still get exact 100 ms steps on average.

use crate::kweight::k_weighting;

/// Absolute gate (LUFS).
const ABSOLUTE_GATE: f64 = -70.0;
/// Relative gate (LU below the absolutely-gated mean).
const RELATIVE_GATE: f64 = -10.0;
/// Loudness offset of BS.1770: cancels the K-filter gain at 1 kHz.
const OFFSET: f64 = -0.691;

/// BS.1770-4 channel weight. Positions follow the WAV/SMPTE order used by
/// libebur128: L, R, C, LFE, Ls, Rs for 6 channels; L, R, C, Ls, Rs for 5;
/// L, R, Ls, Rs for 4. The LFE is excluded (weight 0), surrounds get 1.41.
/// Channels beyond the sixth are weighted 1.0 (no standard position).
pub(crate) fn channel_weight(channels: usize, index: usize) -> f64 {
    match (channels, index) {
        (4, 2 | 3) => 1.41,
        (5, 3 | 4) => 1.41,
        (c, 3) if c >= 6 => 0.0,
        (c, 4 | 5) if c >= 6 => 1.41,
        _ => 1.0,
    }
}

/// Power (not dB) to loudness in LUFS.
fn lufs(power: f64) -> f64 {
    if power > 0.0 {
        OFFSET + 10.0 * power.log10()
    } else {
        f64::NEG_INFINITY
    }
}

/// Start sample of the 100 ms step `j`.
fn step_start(j: usize, rate: u32) -> usize {
    // u64: j·rate cannot overflow for any realistic length.
    ((j as u64 * u64::from(rate)) / 10) as usize
}

/// Integrated loudness (LUFS) of validated interleaved audio, or `None` when
/// it is undefined: shorter than one 400 ms block, or no block above the
/// absolute gate (silence).
pub(crate) fn integrated(samples: &[f32], channels: usize, rate: u32) -> Option<f64> {
    let frames = samples.len() / channels;
    // Number of complete 100 ms steps; a block spans 4 of them.
    let steps = (frames as u64 * 10 / u64::from(rate)) as usize;
    if steps < 4 {
        return None;
    }
    let used = step_start(steps, rate);

    // Weighted energy per 100 ms step, summed over channels.
    let mut step_energy = vec![0.0f64; steps];
    let filters = k_weighting(rate);
    let mut x = vec![0.0f64; used];
    for ch in 0..channels {
        let weight = channel_weight(channels, ch);
        if weight == 0.0 {
            continue;
        }
        for (i, v) in x.iter_mut().enumerate() {
            *v = f64::from(samples[i * channels + ch]);
        }
        for f in &filters {
            f.run(&mut x);
        }
        for (j, e) in step_energy.iter_mut().enumerate() {
            let seg = &x[step_start(j, rate)..step_start(j + 1, rate)];
            *e += weight * seg.iter().map(|v| v * v).sum::<f64>();
        }
    }

    // Mean weighted power of each 400 ms block.
    let blocks: Vec<f64> = (0..steps - 3)
        .map(|j| {
            let len = step_start(j + 4, rate) - step_start(j, rate);
            step_energy[j..j + 4].iter().sum::<f64>() / len as f64
        })
        .collect();

    let gated_mean = |threshold: f64| -> Option<f64> {
        let kept: Vec<f64> = blocks
            .iter()
            .copied()
            .filter(|&p| lufs(p) > threshold)
            .collect();
        if kept.is_empty() {
            None
        } else {
            Some(kept.iter().sum::<f64>() / kept.len() as f64)
        }
    };

    let absolute_mean = gated_mean(ABSOLUTE_GATE)?;
    let relative = lufs(absolute_mean) + RELATIVE_GATE;
    // The relative gate can lie below −70 LUFS (the mean is only known to be
    // above −70), so a block must pass both gates: take the stricter one.
    let mean = gated_mean(relative.max(ABSOLUTE_GATE))?;
    Some(lufs(mean))
}
