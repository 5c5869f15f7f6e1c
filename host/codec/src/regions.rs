//! Where a signal has sound: silence detection for checking timings against
//! the audio itself (word timestamps in `tests/ssml.rs` and
//! `voxpipe-bench timestamps`). Deliberately independent of the server's
//! own envelope code (`tts/words.rs`): it is the yardstick, not the thing
//! measured.

/// Speech regions of mono `samples` at `rate`: 5 ms RMS windows, silent when
/// `floor_db` (e.g. -40) under the loudest window; a silence shorter than
/// `min_pause` seconds (a stop consonant's closure) does not split a region.
/// (start, end) in seconds.
pub fn speech_regions(
    samples: &[f32],
    rate: u32,
    floor_db: f64,
    min_pause: f64,
) -> Vec<(f64, f64)> {
    let hop = (rate / 200).max(1) as usize;
    let rms: Vec<f64> = samples
        .chunks(hop)
        .map(|c| (c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
        .collect();
    let loudest = rms.iter().copied().fold(0.0, f64::max);
    let floor = loudest * 10f64.powf(floor_db / 20.0);
    let at = |k: usize| (k * hop) as f64 / f64::from(rate);
    let mut regions: Vec<(f64, f64)> = Vec::new();
    let mut k = 0;
    while k < rms.len() {
        if rms[k] < floor || loudest <= 0.0 {
            k += 1;
            continue;
        }
        let start = k;
        while k < rms.len() && rms[k] >= floor {
            k += 1;
        }
        match regions.last_mut() {
            Some(last) if at(start) - last.1 < min_pause => last.1 = at(k),
            _ => regions.push((at(start), at(k))),
        }
    }
    regions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_split_by_pauses_not_by_short_dips() {
        let rate = 1000;
        let mut s = vec![0.0f32; 100];
        s.extend(vec![0.5; 300]); // 0.1..0.4
        s.extend(vec![0.0; 50]); // a dip
        s.extend(vec![0.5; 200]); // ..0.65
        s.extend(vec![0.0; 300]); // a pause
        s.extend(vec![0.5; 100]); // 0.95..1.05
        let r = speech_regions(&s, rate, -40.0, 0.15);
        assert_eq!(r, vec![(0.1, 0.65), (0.95, 1.05)]);
        assert!(speech_regions(&[0.0; 100], rate, -40.0, 0.15).is_empty());
    }
}
