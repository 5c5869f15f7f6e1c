//! Unit tests. Synthetic signals follow EBU Tech 3341: "a sine at X dBFS"
//! means peak amplitude 10^(X/20) in each channel.
//!
//! Expected value for a stereo sine of peak A per channel at frequency f:
//! each channel's mean square is A²/2, the two channels (weight 1.0) sum to
//! A², and the K-weighting power gain K(f) is added:
//!   L = −0.691 + 10·log10(A²) + K(f) = 20·log10(A) + (K(f) − 0.691).
//! K(f) from our coefficients (the BS.1770 table at 48 kHz):
//!   48 kHz: K(997 Hz) = +0.6910 dB, K(1000 Hz) = +0.6977 dB
//!   44.1 kHz: K(1 kHz) = +0.7005 dB; 22.05 kHz: +0.7269 dB; 16 kHz: +0.7377
//!   dB; 8 kHz: +0.7106 dB.
//! So a −23 dBFS stereo sine reads exactly −23.000 LUFS at 997 Hz / 48 kHz
//! (which is why Tech 3341 tones are at 997 Hz), −22.993 at 1 kHz / 48 kHz
//! and −22.964 at 1 kHz / 22.05 kHz — the bilinear transform bends the
//! shelf slightly differently at low rates (libebur128 does the same); all
//! well inside Tech 3341's ±0.1 LU. The same sine in mono reads
//! 10·log10(1/2) = 3.0103 dB lower.

use super::*;
use serde_json::json;
use std::f64::consts::PI;
use voxpipe_plugin_audio::{drive::run_blocks, Audio, MAX_STATE_BYTES};

mod blocks;
mod reference;

fn db(x: f64) -> f64 {
    10f64.powf(x / 20.0)
}

/// Interleaved sine of `freq` Hz, peak `dbfs`, in every channel.
fn sine(rate: u32, channels: u16, freq: f64, dbfs: f64, secs: f64) -> Vec<f32> {
    let frames = (secs * f64::from(rate)).round() as usize;
    let amp = db(dbfs);
    let mut out = Vec::with_capacity(frames * usize::from(channels));
    for i in 0..frames {
        let v = (amp * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()) as f32;
        out.extend(std::iter::repeat_n(v, usize::from(channels)));
    }
    out
}

fn silence(rate: u32, channels: u16, secs: f64) -> Vec<f32> {
    vec![0.0; (secs * f64::from(rate)).round() as usize * usize::from(channels)]
}

/// Speech-like test signal: a 150 Hz harmonic series (8 partials, falling
/// 6 dB/octave) with a 4 Hz syllable envelope and 300 ms pauses.
fn speechy(rate: u32, secs: f64, level: f64) -> Vec<f32> {
    let n = (secs * f64::from(rate)) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let env = if t % 2.0 > 1.7 {
                0.0
            } else {
                (PI * 4.0 * t).sin().abs()
            };
            let tone: f64 = (1..=8)
                .map(|h| (2.0 * PI * 150.0 * h as f64 * t).sin() / h as f64)
                .sum();
            (level * env * tone / 2.0) as f32
        })
        .collect()
}

fn audio(rate: u32, channels: u16, samples: Vec<f32>) -> Audio {
    Audio {
        sample_rate: rate,
        channels,
        samples,
    }
}

/// The stage over `a` the way the host runs it: blocks of ten seconds.
fn run(config: serde_json::Value, a: Audio) -> Result<Audio, StageError> {
    let frames = a.sample_rate as usize * 10;
    run_at(config, a, frames)
}

/// The stage over `a` in blocks of `block_frames` frames.
fn run_at(config: serde_json::Value, a: Audio, block_frames: usize) -> Result<Audio, StageError> {
    let c = Config::from_value(config).unwrap();
    Loudness::check_config(&c)?;
    run_blocks::<Loudness>(&Context::default(), &c, &a, block_frames)
}

/// K-weighting power gain (dB) at `freq` for `rate`.
fn k_gain(freq: f64, rate: u32) -> f64 {
    let [pre, rlb] = k_weighting(rate);
    pre.response_db(freq, f64::from(rate)) + rlb.response_db(freq, f64::from(rate))
}

fn close(got: f64, want: f64, tol: f64, what: &str) {
    println!("{what}: {got:.4} (want {want:.4} ± {tol})");
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, want {want} ± {tol}"
    );
}

// --- K-weighting ---------------------------------------------------------

#[test]
fn k_weighting_at_48k_matches_bs1770_table() {
    let [pre, rlb] = k_weighting(48000);
    let pre_b = [1.53512485958697, -2.69169618940638, 1.19839281085285];
    let pre_a = [1.0, -1.69065929318241, 0.73248077421585];
    let rlb_b = [1.0, -2.0, 1.0];
    let rlb_a = [1.0, -1.99004745483398, 0.99007225036621];
    for i in 0..3 {
        assert!((pre.b[i] - pre_b[i]).abs() < 1e-6, "pre b{i}: {}", pre.b[i]);
        assert!((pre.a[i] - pre_a[i]).abs() < 1e-6, "pre a{i}: {}", pre.a[i]);
        assert!((rlb.b[i] - rlb_b[i]).abs() < 1e-6, "rlb b{i}: {}", rlb.b[i]);
        assert!((rlb.a[i] - rlb_a[i]).abs() < 1e-6, "rlb a{i}: {}", rlb.a[i]);
    }
    println!("pre {pre:?}\nrlb {rlb:?}");
}

#[test]
fn k_gain_at_1khz_cancels_the_offset_at_every_rate() {
    // The −0.691 dB offset exists to cancel the K-filter gain at 1 kHz; the
    // rate-derived coefficients must keep that true at speech rates too.
    // At 48 kHz the gain at 997 Hz is 0.6910 dB, cancelling the offset.
    close(
        k_gain(997.0, 48000),
        0.691,
        0.0005,
        "K gain at 997 Hz, 48 kHz",
    );
    for rate in [8000u32, 16000, 22050, 24000, 44100, 48000, 96000, 192000] {
        let r = f64::from(rate);
        close(
            k_gain(1000.0, rate),
            0.691,
            0.05,
            &format!("K gain at 1 kHz, {rate} Hz"),
        );
        // The shelf is about +4 dB at high frequencies (checked below Nyquist).
        let hi = k_gain((r * 0.4).min(10_000.0), rate);
        assert!(hi > 3.0 && hi < 4.5, "{rate}: high-frequency gain {hi}");
        // The RLB high-pass: −inf at DC, strongly cut at 20 Hz.
        assert!(
            k_gain(20.0, rate) < -10.0,
            "{rate}: 20 Hz gain {}",
            k_gain(20.0, rate)
        );
    }
}

// --- integrated loudness: EBU Tech 3341 style -----------------------------

#[test]
fn stereo_1khz_sine_at_minus_23_dbfs_reads_minus_23_lufs() {
    // Tech 3341 case 1: expected −23.0 ±0.1. Exactly −23.000 at 997 Hz /
    // 48 kHz; elsewhere −23 + K(f) − 0.691 (see the module comment).
    let s = sine(48000, 2, 997.0, -23.0, 20.0);
    close(
        integrated_lufs(&s, 2, 48000).unwrap(),
        -23.0,
        0.002,
        "stereo 997 Hz at 48 kHz",
    );
    for rate in [48000u32, 44100, 22050, 16000] {
        let s = sine(rate, 2, 1000.0, -23.0, 20.0);
        let l = integrated_lufs(&s, 2, rate).unwrap();
        let exact = -23.0 + k_gain(1000.0, rate) - 0.691;
        close(
            l,
            exact,
            0.002,
            &format!("stereo −23 dBFS 1 kHz at {rate} Hz vs analytic"),
        );
        close(
            l,
            -23.0,
            0.05,
            &format!("stereo −23 dBFS 1 kHz at {rate} Hz"),
        );
    }
    // Tech 3341 case 2: −33 dBFS reads −33.0.
    let s = sine(48000, 2, 997.0, -33.0, 20.0);
    close(
        integrated_lufs(&s, 2, 48000).unwrap(),
        -33.0,
        0.002,
        "stereo −33 dBFS sine",
    );
}

#[test]
fn mono_sine_reads_3_db_below_stereo() {
    // One channel instead of two: 10·log10(1/2) = −3.0103 dB → −26.010 LUFS
    // at 997 Hz / 48 kHz, −25.974 at 1 kHz / 22.05 kHz (+0.0359 of K gain).
    let s = sine(48000, 1, 997.0, -23.0, 10.0);
    close(
        integrated_lufs(&s, 1, 48000).unwrap(),
        -26.0103,
        0.002,
        "mono 997 Hz / 48 kHz",
    );
    let s = sine(22050, 1, 1000.0, -23.0, 10.0);
    let exact = -23.0 - 3.0103 + k_gain(1000.0, 22050) - 0.691;
    close(
        integrated_lufs(&s, 1, 22050).unwrap(),
        exact,
        0.002,
        "mono 1 kHz / 22.05 kHz",
    );
}

#[test]
fn absolute_gate_ignores_silence() {
    // 10 s tone + 10 s digital silence measures like the tone alone: the
    // silent blocks (−inf) fail the −70 LUFS gate. The only difference: the
    // 3 blocks straddling the edge hold 3/4, 1/2 and 1/4 of the tone (within
    // 10 LU, so they count): the tone alone has 97 blocks, with silence the
    // mean is (97 + 1.5) / 100 of the tone power → −0.0656 LU.
    let rate = 22050;
    let tone = sine(rate, 1, 1000.0, -20.0, 10.0);
    let alone = integrated_lufs(&tone, 1, rate).unwrap();
    let mut both = tone.clone();
    both.extend(silence(rate, 1, 10.0));
    let gated = integrated_lufs(&both, 1, rate).unwrap();
    close(
        gated,
        alone + 10.0 * 0.985f64.log10(),
        0.002,
        "tone + silence vs tone alone",
    );
    // Silence first, then the tone: the same.
    let mut both = silence(rate, 1, 10.0);
    both.extend(&tone);
    close(
        integrated_lufs(&both, 1, rate).unwrap(),
        gated,
        0.002,
        "silence + tone",
    );
    // Without the gate, 10 s of silence would halve the power (−3 LU).
    assert!(gated > alone - 0.1);
}

#[test]
fn ebu_3341_case_3_relative_gate_drops_quiet_parts() {
    // −36 dBFS 10 s, −23 dBFS 60 s, −36 dBFS 10 s (stereo) → −23.0 ±0.1:
    // the −36 parts are 13 LU below and fall under the relative gate.
    let rate = 48000;
    let mut s = sine(rate, 2, 1000.0, -36.0, 10.0);
    s.extend(sine(rate, 2, 1000.0, -23.0, 60.0));
    s.extend(sine(rate, 2, 1000.0, -36.0, 10.0));
    close(
        integrated_lufs(&s, 2, rate).unwrap(),
        -23.0,
        0.1,
        "Tech 3341 case 3",
    );
}

#[test]
fn ebu_3341_case_4_both_gates() {
    // −72 dBFS 10 s, −36 dBFS 10 s, −23 dBFS 60 s, −36 dBFS 10 s, −72 dBFS
    // 10 s (stereo) → −23.0 ±0.1: the −72 parts fail the absolute gate, the
    // −36 parts the relative one (mean of the rest ≈ −24.2 → gate −34.2).
    let rate = 48000;
    let mut s = Vec::new();
    for (level, secs) in [
        (-72.0, 10.0),
        (-36.0, 10.0),
        (-23.0, 60.0),
        (-36.0, 10.0),
        (-72.0, 10.0),
    ] {
        s.extend(sine(rate, 2, 997.0, level, secs));
    }
    close(
        integrated_lufs(&s, 2, rate).unwrap(),
        -23.0,
        0.1,
        "Tech 3341 case 4",
    );
}

#[test]
fn ebu_3341_case_5_parts_within_10_lu_all_count() {
    // −26 dBFS 20 s, −20 dBFS 20.1 s, −26 dBFS 20 s → −23.0 ±0.1: the −26
    // parts lie within 10 LU of the mean and are averaged in (power mean:
    // (40·10^−2.6 + 20.1·10^−2) / 60.1 → −22.99).
    let rate = 48000;
    let mut s = sine(rate, 2, 1000.0, -26.0, 20.0);
    s.extend(sine(rate, 2, 1000.0, -20.0, 20.1));
    s.extend(sine(rate, 2, 1000.0, -26.0, 20.0));
    close(
        integrated_lufs(&s, 2, rate).unwrap(),
        -23.0,
        0.1,
        "Tech 3341 case 5",
    );
}

#[test]
fn surround_channels_are_weighted_and_lfe_ignored() {
    let rate = 48000;
    let one = sine(rate, 1, 1000.0, -23.0, 5.0);
    let frames = one.len();
    // 5.1 (L R C LFE Ls Rs) with the signal only in channel `ch`.
    let only = |ch: usize| {
        let mut s = vec![0.0f32; frames * 6];
        for (i, v) in one.iter().enumerate() {
            s[i * 6 + ch] = *v;
        }
        integrated_lufs(&s, 6, rate)
    };
    let mono = integrated_lufs(&one, 1, rate).unwrap();
    close(only(2).unwrap(), mono, 1e-9, "centre channel");
    close(
        only(4).unwrap(),
        mono + 10.0 * 1.41f64.log10(),
        1e-9,
        "left surround",
    );
    assert_eq!(only(3), None, "LFE alone has no loudness");
}

// --- true peak -------------------------------------------------------------

#[test]
fn true_peak_of_a_low_sine_is_its_amplitude() {
    let s = sine(48000, 1, 1000.0, -6.0, 1.0);
    close(
        true_peak_dbtp(&s, 1, 48000).unwrap(),
        -6.0,
        0.05,
        "1 kHz −6 dBFS true peak",
    );
}

#[test]
fn true_peak_sees_inter_sample_peaks() {
    // Square-ish full-scale pattern 1, 1, −1, −1 (fs/4): its band-limited
    // waveform is a sine of amplitude √2 through those samples, i.e. +3.01
    // dBTP, while the sample peak is 0 dBFS.
    let s: Vec<f32> = (0..48000)
        .map(|i| if i % 4 < 2 { 1.0 } else { -1.0 })
        .collect();
    let tp = true_peak_dbtp(&s, 1, 48000).unwrap();
    close(tp, 3.01, 0.2, "fs/4 square-ish true peak");
    assert_eq!(
        true_peak_dbtp(&[0.0; 10], 2, 48000),
        Some(f64::NEG_INFINITY)
    );
    assert_eq!(true_peak_dbtp(&[], 1, 48000), Some(f64::NEG_INFINITY));
}

#[test]
fn process_respects_the_true_peak_ceiling() {
    // Half-scale fs/4 square-ish wave: true peak ≈ −3 dBTP, loudness about
    // −4.7 LUFS (the shelf adds ~+4 dB at 12 kHz). With a −5 LUFS target the
    // gain would push the peak to ≈ −3.3 dBTP; the −6 dBTP ceiling wins.
    let rate = 48000;
    let s: Vec<f32> = (0..rate * 2)
        .map(|i| if i % 4 < 2 { 0.5 } else { -0.5 })
        .collect();
    let l_in = integrated_lufs(&s, 1, rate).unwrap();
    println!("square-ish input: {l_in:.3} LUFS");
    // `limiter = false`: this test is about the single-gain behaviour (the
    // limiter, on by default, would reach the target instead; see below).
    let out = run(
        json!({"target_lufs": -5.0, "true_peak_dbtp": -6.0, "limiter": false}),
        audio(rate, 1, s),
    )
    .unwrap();
    let tp = true_peak_dbtp(&out.samples, 1, rate).unwrap();
    close(tp, -6.0, 0.01, "output true peak at the −6 dBTP ceiling");
    assert!(tp <= -6.0 + 1e-4);
    assert!(out.samples.iter().all(|s| s.abs() <= 1.0));
    // Default ceiling: a sparse click train (0.5 every 50 ms, alternating
    // sign) is about 26 dB peakier than its loudness, so reaching −16 LUFS
    // would put the peak near +4 dBTP: the gain stops at −1 dBTP instead.
    let s: Vec<f32> = (0..rate * 3)
        .map(|i| match i % 4800 {
            0 => 0.5,
            2400 => -0.5,
            _ => 0.0,
        })
        .collect();
    let l_in = integrated_lufs(&s, 1, rate).unwrap();
    let out = run(json!({"limiter": false}), audio(rate, 1, s)).unwrap();
    let tp = true_peak_dbtp(&out.samples, 1, rate).unwrap();
    let l_out = integrated_lufs(&out.samples, 1, rate).unwrap();
    println!("click train: {l_in:.2} → {l_out:.2} LUFS");
    close(tp, -1.0, 0.01, "click train, default ceiling");
    assert!(tp <= -1.0 + 1e-4);
    assert!(
        l_out < -16.5,
        "the ceiling, not the target, decided: {l_out}"
    );
}

// --- the stage ---------------------------------------------------------------

#[test]
fn process_hits_the_target_at_speech_and_music_rates() {
    for rate in [22050u32, 44100, 48000] {
        for (target, level) in [(-16.0, 0.1), (-23.0, 0.3), (-16.0, 0.6)] {
            let s = speechy(rate, 6.0, level);
            let before = integrated_lufs(&s, 1, rate).unwrap();
            let out = run(json!({"target_lufs": target}), audio(rate, 1, s)).unwrap();
            let after = integrated_lufs(&out.samples, 1, rate).unwrap();
            let tp = true_peak_dbtp(&out.samples, 1, rate).unwrap();
            println!("{rate} Hz: {before:.2} → {after:.3} LUFS (target {target}), {tp:.2} dBTP");
            assert!((after - target).abs() <= 0.1, "{rate} Hz: {after}");
            assert!(tp <= -1.0 + 1e-4, "{rate} Hz: true peak {tp}");
        }
    }
}

#[test]
fn stereo_is_normalized_with_one_gain() {
    let rate = 44100;
    let mut s = sine(rate, 2, 440.0, -30.0, 3.0);
    for frame in s.chunks_mut(2) {
        frame[1] *= 0.5; // right channel 6 dB quieter
    }
    let out = run(json!({}), audio(rate, 2, s.clone())).unwrap();
    close(
        integrated_lufs(&out.samples, 2, rate).unwrap(),
        -16.0,
        0.1,
        "stereo output",
    );
    // The balance is kept: one gain for both channels.
    let ratio = out.samples[1001] / s[1001];
    assert!((out.samples[1000] / s[1000] - ratio).abs() < 1e-4);
}

#[test]
fn plan_gain_applies_target_cap_and_ceiling() {
    let s = Settings::default();
    assert_eq!(
        plan_gain(-20.0, -10.0, &s),
        GainPlan {
            gain_db: 4.0,
            limit: Limit::Target
        }
    );
    assert_eq!(
        plan_gain(-10.0, -1.0, &s),
        GainPlan {
            gain_db: -6.0,
            limit: Limit::Target
        }
    );
    assert_eq!(
        plan_gain(-50.0, -40.0, &s),
        GainPlan {
            gain_db: 20.0,
            limit: Limit::MaxGain
        }
    );
    assert_eq!(
        plan_gain(-20.0, -3.0, &s),
        GainPlan {
            gain_db: 2.0,
            limit: Limit::TruePeak
        }
    );
    // Both: cap at 20, then the peak (−25 + 20 = −5 ≤ −1) is fine;
    // with a peakier input the ceiling cuts further.
    assert_eq!(
        plan_gain(-50.0, -15.0, &s),
        GainPlan {
            gain_db: 14.0,
            limit: Limit::TruePeak
        }
    );
}

#[test]
fn near_silence_is_boosted_at_most_max_gain_db() {
    let rate = 22050;
    let s = sine(rate, 1, 1000.0, -60.0, 2.0); // ≈ −63 LUFS
    let out = run(json!({}), audio(rate, 1, s.clone())).unwrap();
    let gain = 20.0 * (out.samples[500] / s[500]).log10();
    close(f64::from(gain), 20.0, 1e-3, "gain on a −63 LUFS tone");
    let out = run(json!({"max_gain_db": 0.0}), audio(rate, 1, s.clone())).unwrap();
    assert_eq!(out.samples, s);
}

#[test]
fn undefined_loudness_leaves_audio_unchanged() {
    let rate = 22050;
    // Digital silence.
    let a = audio(rate, 1, silence(rate, 1, 2.0));
    assert_eq!(run(json!({}), a.clone()).unwrap(), a);
    // Below the −70 LUFS absolute gate.
    let a = audio(rate, 1, sine(rate, 1, 1000.0, -80.0, 2.0));
    assert_eq!(run(json!({}), a.clone()).unwrap(), a);
    // Shorter than one 400 ms block (399 ms).
    let a = audio(rate, 1, sine(rate, 1, 1000.0, -30.0, 0.399));
    assert_eq!(integrated_lufs(&a.samples, 1, rate), None);
    assert_eq!(run(json!({}), a.clone()).unwrap(), a);
    // Exactly 400 ms is one block and is measured.
    let s = sine(rate, 1, 1000.0, -30.0, 0.4);
    assert!(integrated_lufs(&s, 1, rate).is_some());
    // Empty.
    let a = audio(rate, 1, vec![]);
    assert_eq!(run(json!({}), a.clone()).unwrap(), a);
}

#[test]
fn bad_audio_is_invalid_input() {
    let rate = 22050;
    let mut s = sine(rate, 1, 1000.0, -20.0, 1.0);
    let is_invalid = |r: Result<Audio, StageError>| matches!(r, Err(StageError::InvalidInput(_)));
    s[100] = f32::NAN;
    assert!(is_invalid(run(json!({}), audio(rate, 1, s.clone()))));
    assert_eq!(integrated_lufs(&s, 1, rate), None);
    assert_eq!(true_peak_dbtp(&s, 1, rate), None);
    s[100] = f32::INFINITY;
    assert!(is_invalid(run(json!({}), audio(rate, 1, s.clone()))));
    s[100] = f32::NEG_INFINITY;
    assert!(is_invalid(run(json!({}), audio(rate, 1, s.clone()))));
    s[100] = 0.0;
    assert!(is_invalid(run(json!({}), audio(rate, 0, s.clone()))));
    assert!(is_invalid(run(json!({}), audio(rate, 0, vec![]))));
    assert!(is_invalid(run(json!({}), audio(rate, 2, vec![0.1; 3]))));
    for bad in [0u32, 7999, 192_001, u32::MAX] {
        assert!(
            is_invalid(run(json!({}), audio(bad, 1, s.clone()))),
            "{bad} Hz"
        );
    }
}

#[test]
fn every_supported_rate_works() {
    for rate in [
        MIN_RATE, 11025, 16000, 22050, 24000, 32000, 88200, 96000, MAX_RATE,
    ] {
        let s = speechy(rate, 3.0, 0.2);
        let out = run(json!({}), audio(rate, 1, s)).unwrap();
        let l = integrated_lufs(&out.samples, 1, rate).unwrap();
        close(l, -16.0, 0.1, &format!("output at {rate} Hz"));
    }
}

#[test]
fn config_is_checked_key_by_key() {
    let check = |v: serde_json::Value| Loudness::check_config(&Config::from_value(v).unwrap());
    assert!(check(json!({})).is_ok());
    assert!(check(json!({"target_lufs": -23, "true_peak_dbtp": -2.0, "max_gain_db": 10})).is_ok());
    let msg = |r: Result<(), StageError>| match r {
        Err(StageError::InvalidConfig(m)) => m,
        other => panic!("expected InvalidConfig, got {other:?}"),
    };
    assert!(msg(check(json!({"target_lufd": -16}))).contains("target_lufd"));
    assert!(msg(check(json!({"target_lufs": "loud"}))).contains("target_lufs"));
    assert!(msg(check(json!({"target_lufs": 3.0}))).contains("target_lufs"));
    assert!(msg(check(json!({"true_peak_dbtp": 0.5}))).contains("true_peak_dbtp"));
    assert!(msg(check(json!({"max_gain_db": -1}))).contains("max_gain_db"));
    assert!(msg(check(json!({"max_gain_db": null}))).contains("max_gain_db"));
    // process refuses a bad config too (it may be called without a check).
    let c = Config::from_value(json!({"target_lufs": 100})).unwrap();
    let a = audio(22050, 1, vec![0.0; 10]);
    assert!(run_blocks::<Loudness>(&Context::default(), &c, &a, 22050).is_err());
}

#[test]
fn info_says_two_passes_and_applies_volume() {
    let info = Loudness::info();
    assert_eq!(info.name, "loudness");
    assert_eq!(info.passes, voxpipe_plugin_audio::Passes::Two);
    assert_eq!(info.applies, vec!["volume".to_string()]);
}

/// The style's volume moves the target: −6 dB ends 6 LU below, through the
/// limiter path (speech-like peaks) as through the plain gain.
#[test]
fn style_volume_moves_the_target() {
    let rate = 22050;
    let c = Config::from_value(json!({"target_lufs": -16.0})).unwrap();
    let with = |volume: Option<f32>| {
        let ctx = Context {
            style: Some(voxpipe_plugin_audio::Style {
                volume,
                ..Default::default()
            }),
            ..Default::default()
        };
        let a = audio(rate, 1, speechy(rate, 4.0, 0.3));
        let out = run_blocks::<Loudness>(&ctx, &c, &a, 22050 * 10).unwrap();
        integrated_lufs(&out.samples, 1, rate).unwrap()
    };
    let plain = with(None);
    close(plain, -16.0, 0.1, "plain");
    close(with(Some(-6.0)), -22.0, 0.1, "softly");
    close(with(Some(3.0)), -13.0, 0.1, "louder");
    // Kept in range: +24 dB cannot go above -5 LUFS.
    assert!(with(Some(24.0)) <= -4.9);
}

/// Ten seconds in one call keep every sample (its speed is measured by
/// `voxpipe-bench plugins`, not here).
#[test]
fn ten_seconds_of_22k_mono_keep_their_length() {
    let rate = 22050;
    let s = speechy(rate, 10.0, 0.3);
    let out = run(json!({}), audio(rate, 1, s)).unwrap();
    assert_eq!(out.samples.len(), 220_500);
}

// --- the limiter ---------------------------------------------------------------

/// High-crest test signal: the speech-like 150 Hz harmonic tone (`speechy`
/// at `level`) plus a near-full-scale click (0.9, alternating sign, 3
/// samples: 0.45, 0.9, 0.45) every 100 ms. Peak-to-loudness ratio ≈ 20 dB
/// at level 0.25, ≈ 27 dB at 0.1 (there the clicks carry much of the
/// loudness and the limiter has to cut them by ~20 dB).
fn peaky_at(rate: u32, secs: f64, level: f64) -> Vec<f32> {
    let mut s = speechy(rate, secs, level);
    let every = rate as usize / 10;
    for (k, start) in (every / 2..s.len().saturating_sub(3))
        .step_by(every)
        .enumerate()
    {
        let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
        for (i, v) in [0.45f32, 0.9, 0.45].iter().enumerate() {
            s[start + i] = (s[start + i] + sign * v).clamp(-1.0, 1.0);
        }
    }
    s
}

fn peaky(rate: u32, secs: f64) -> Vec<f32> {
    peaky_at(rate, secs, 0.25)
}

/// Peak-to-loudness ratio (dB) of mono/interleaved audio.
fn plr(s: &[f32], channels: u16, rate: u32) -> f64 {
    true_peak_dbtp(s, channels, rate).unwrap() - integrated_lufs(s, channels, rate).unwrap()
}

#[test]
fn limiter_reaches_the_target_on_peaky_mono_22k() {
    let rate = 22050;
    let s = peaky(rate, 6.0);
    let ratio = plr(&s, 1, rate);
    println!("peaky 22.05 kHz input: PLR {ratio:.2} dB");
    assert!(ratio >= 18.0, "test signal not peaky enough: {ratio}");
    let out = run(json!({}), audio(rate, 1, s)).unwrap();
    let l = integrated_lufs(&out.samples, 1, rate).unwrap();
    let tp = true_peak_dbtp(&out.samples, 1, rate).unwrap();
    close(l, -16.0, 0.2, "peaky mono 22.05 kHz, output loudness");
    println!("true peak {tp:.3} dBTP");
    assert!(tp <= -1.0 + 0.05, "true peak {tp}");
    // Much peakier (PLR ≈ 27 dB): the clicks must come down ~20 dB, more
    // than the default `max_gain_db` = 20 allows for make-up; with room
    // for it the target is reached too.
    let s = peaky_at(rate, 6.0, 0.1);
    println!("very peaky input: PLR {:.2} dB", plr(&s, 1, rate));
    let out = run(json!({"max_gain_db": 30.0}), audio(rate, 1, s)).unwrap();
    let l = integrated_lufs(&out.samples, 1, rate).unwrap();
    let tp = true_peak_dbtp(&out.samples, 1, rate).unwrap();
    close(l, -16.0, 0.2, "very peaky, output loudness");
    assert!(tp <= -1.0 + 0.05, "true peak {tp}");
    // Other targets and ceilings too.
    for (target, ceiling) in [(-14.0, -1.0), (-23.0, -6.0), (-10.0, -0.5)] {
        let s = peaky(rate, 4.0);
        // −10 LUFS needs ~25 dB of gain + make-up on this signal.
        let cfg = json!({"target_lufs": target, "true_peak_dbtp": ceiling, "max_gain_db": 40});
        let out = run(cfg, audio(rate, 1, s)).unwrap();
        let l = integrated_lufs(&out.samples, 1, rate).unwrap();
        let tp = true_peak_dbtp(&out.samples, 1, rate).unwrap();
        close(
            l,
            target,
            0.2,
            &format!("target {target}, ceiling {ceiling}"),
        );
        assert!(tp <= ceiling + 0.05, "true peak {tp} over {ceiling}");
    }
}

#[test]
fn limiter_reaches_the_target_on_peaky_stereo_48k_with_linked_channels() {
    let rate = 48000;
    let mono = peaky(rate, 5.0);
    // Right = 0.6 × left: one linked gain must keep that ratio everywhere.
    let s: Vec<f32> = mono.iter().flat_map(|&v| [v, v * 0.6]).collect();
    let ratio = plr(&s, 2, rate);
    println!("peaky 48 kHz stereo input: PLR {ratio:.2} dB");
    assert!(ratio >= 18.0, "{ratio}");
    let out = run(json!({}), audio(rate, 2, s.clone())).unwrap();
    assert_eq!(out.samples.len(), s.len());
    let l = integrated_lufs(&out.samples, 2, rate).unwrap();
    let tp = true_peak_dbtp(&out.samples, 2, rate).unwrap();
    close(l, -16.0, 0.2, "peaky stereo 48 kHz, output loudness");
    println!("true peak {tp:.3} dBTP");
    assert!(tp <= -1.0 + 0.05, "true peak {tp}");
    for (i, f) in out.samples.chunks(2).enumerate() {
        if s[2 * i].abs() > 1e-3 {
            assert!((f[1] - f[0] * 0.6).abs() <= 1e-5, "frame {i}: {f:?}");
        }
    }
}

#[test]
fn limiter_false_keeps_the_old_lower_loudness() {
    let rate = 22050;
    let s = peaky(rate, 6.0);
    let l_in = integrated_lufs(&s, 1, rate).unwrap();
    let tp_in = true_peak_dbtp(&s, 1, rate).unwrap();
    let plan = plan_gain(l_in, tp_in, &Settings::default());
    assert_eq!(plan.limit, Limit::TruePeak);
    let off = run(json!({"limiter": false}), audio(rate, 1, s.clone())).unwrap();
    let l_off = integrated_lufs(&off.samples, 1, rate).unwrap();
    let tp_off = true_peak_dbtp(&off.samples, 1, rate).unwrap();
    println!("limiter off: {l_in:.2} → {l_off:.2} LUFS, {tp_off:.3} dBTP");
    close(tp_off, -1.0, 0.01, "limiter off: peak on the ceiling");
    close(l_off, l_in + plan.gain_db, 0.01, "limiter off: a pure gain");
    assert!(l_off < -16.0 - 5.0, "the ceiling decided: {l_off}");
    // Exactly the single static gain, sample by sample.
    let factor = 10f64.powf(plan.gain_db / 20.0);
    for (o, i) in off.samples.iter().zip(&s) {
        assert_eq!(*o, ((f64::from(*i) * factor) as f32).clamp(-1.0, 1.0));
    }
    let on = run(json!({}), audio(rate, 1, s)).unwrap();
    let l_on = integrated_lufs(&on.samples, 1, rate).unwrap();
    println!("limiter on: {l_on:.2} LUFS");
    assert!(l_on > l_off + 5.0);
}

#[test]
fn limiter_inactive_is_bit_identical_to_pure_gain() {
    // Speech-like audio whose peak stays under the ceiling at the target:
    // the limiter must not touch it.
    for rate in [22050u32, 48000] {
        let s = speechy(rate, 4.0, 0.2);
        let l_in = integrated_lufs(&s, 1, rate).unwrap();
        let tp_in = true_peak_dbtp(&s, 1, rate).unwrap();
        let plan = plan_gain(l_in, tp_in, &Settings::default());
        assert_ne!(plan.limit, Limit::TruePeak);
        let on = run(json!({"limiter": true}), audio(rate, 1, s.clone())).unwrap();
        let off = run(json!({"limiter": false}), audio(rate, 1, s.clone())).unwrap();
        assert_eq!(on, off);
        let factor = 10f64.powf(plan.gain_db / 20.0);
        let pure: Vec<f32> = s
            .iter()
            .map(|v| ((f64::from(*v) * factor) as f32).clamp(-1.0, 1.0))
            .collect();
        assert_eq!(on.samples, pure);
    }
}

/// Deterministic pseudo-random numbers in [0, 1) (64-bit LCG).
fn lcg(seed: u64) -> impl Iterator<Item = f64> {
    let mut x = seed;
    std::iter::from_fn(move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Some((x >> 11) as f64 / (1u64 << 53) as f64)
    })
}

#[test]
fn extreme_inputs_stay_finite_in_range_and_under_the_ceiling() {
    let rate = 22050;
    let n = rate as usize * 3;
    let cases: Vec<(&str, Vec<f32>)> = vec![
        // Full-scale fs/4 pattern: +3 dBTP between the samples.
        (
            "fs/4 full scale",
            (0..n).map(|i| if i % 4 < 2 { 1.0 } else { -1.0 }).collect(),
        ),
        // Full-scale white noise.
        (
            "noise",
            lcg(7).take(n).map(|r| (2.0 * r - 1.0) as f32).collect(),
        ),
        // Sparse clicks only: the loudness *is* the peaks.
        (
            "click train",
            (0..n)
                .map(|i| if i % 2205 == 0 { 0.9 } else { 0.0 })
                .collect(),
        ),
        ("peaky", peaky(rate, 3.0)),
    ];
    for (name, s) in cases {
        for cfg in [
            json!({}),
            json!({"target_lufs": -5.0, "true_peak_dbtp": 0.0}),
            json!({"target_lufs": -5.0, "true_peak_dbtp": -20.0, "max_gain_db": 60.0}),
        ] {
            let out = run(cfg.clone(), audio(rate, 1, s.clone())).unwrap();
            assert_eq!(out.samples.len(), s.len());
            assert!(
                out.samples.iter().all(|v| v.is_finite() && v.abs() <= 1.0),
                "{name} {cfg}"
            );
            let ceiling = cfg["true_peak_dbtp"].as_f64().unwrap_or(-1.0);
            let tp = true_peak_dbtp(&out.samples, 1, rate).unwrap();
            let l = integrated_lufs(&out.samples, 1, rate).unwrap();
            println!("{name} {cfg}: {l:.2} LUFS, {tp:.3} dBTP");
            assert!(tp <= ceiling + 1e-4, "{name} {cfg}: true peak {tp}");
        }
    }
}

/// The limiter's envelope for per-frame `peaks` at `rate` (which sets the
/// look-ahead and release), run frame by frame as the stage runs it: the
/// window maxima by brute force, then [`limiter::Envelope`].
fn envelope(peaks: &[f64], threshold: f64, rate: u32) -> Vec<f64> {
    let lookahead = limiter::lookahead_frames(rate);
    let mut e = limiter::Envelope::new(rate);
    (0..peaks.len())
        .map(|n| {
            let window = &peaks[n..(n + lookahead + 1).min(peaks.len())];
            let largest = window.iter().copied().fold(0.0, f64::max);
            e.gain(limiter::required(largest, threshold))
        })
        .collect()
}

#[test]
fn envelope_is_smooth_and_keeps_peaks_under_the_threshold() {
    let rate = 22050;
    let (lookahead, release) = (110, limiter::release_coefficient(rate));
    assert_eq!(limiter::lookahead_frames(rate), lookahead);
    // Random peaks, some far above the threshold.
    let peaks: Vec<f64> = lcg(3)
        .take(20_000)
        .map(|r| if r > 0.995 { 4.0 * r } else { 0.5 * r })
        .collect();
    let threshold = 0.8;
    let env = envelope(&peaks, threshold, rate);
    // Exactly what the whole-utterance limiter computed.
    assert_eq!(
        env,
        reference::gain_envelope(&peaks, threshold, lookahead, release)
    );
    let min = env.iter().copied().fold(1.0, f64::min);
    let bound = (1.0 - min) / (lookahead + 1) as f64 + 1e-12;
    let step = env
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0, f64::max);
    println!("min gain {min:.4}, largest step {step:.6} (bound {bound:.6})");
    assert!(step <= bound, "step {step} > {bound}");
    for (i, (&g, &p)) in env.iter().zip(&peaks).enumerate() {
        assert!(g > 0.0 && g <= 1.0, "{i}: {g}");
        assert!(g * p <= threshold * (1.0 + 1e-9), "{i}: {g} × {p}");
    }
    // One isolated peak: the gain ramps down linearly over the look-ahead
    // before it, sits at threshold/peak on it, and recovers afterwards.
    let mut peaks = vec![0.1; 12_000];
    peaks[1000] = 1.6;
    let env = envelope(&peaks, threshold, rate);
    assert_eq!(env[1000 - lookahead - 1], 1.0);
    assert!((env[1000] - 0.5).abs() < 1e-12, "{}", env[1000]);
    assert!(env[1000 - lookahead / 2] < 1.0 && env[1000 - lookahead / 2] > 0.5);
    // Exponential release: h = 1 − 0.5·a^j, j frames after the peak, then
    // the (L + 1)-frame average: 1 − 0.5·a^j·(1 − a^(L+1)) / ((L+1)(1 − a))
    // at frame 1000 + j + L.
    let j = 1000;
    let k = 1000 + j + lookahead;
    let w = (lookahead + 1) as f64;
    let want = 1.0
        - 0.5 * release.powi(j as i32) * (1.0 - release.powi(lookahead as i32 + 1))
            / (w * (1.0 - release));
    assert!(
        (env[k] - want).abs() < 1e-3,
        "released: {} vs {want}",
        env[k]
    );
    assert!(env[11_999] > 0.99, "released: {}", env[11_999]);
    // Nothing above the threshold: all ones.
    assert!(envelope(&[0.5; 100], threshold, rate)
        .iter()
        .all(|&g| g == 1.0));
    // A peak on the very first frame is handled too (no ramp from 1).
    let env = envelope(&[2.0, 0.1, 0.1], 1.0, rate);
    assert!(env[0] <= 0.5 + 1e-12, "{env:?}");
}

/// The detector gives every frame back with the largest true peak of its
/// look-ahead window, exactly as the whole-utterance limiter's per-frame
/// peaks and forward window had it, whatever the block boundaries; and the
/// largest of them is the true-peak meter's reading. With a floor, the
/// peaks above it are still exact and those below stay below.
#[test]
fn detector_agrees_with_the_whole_utterance_peaks() {
    let rate = 22050;
    let lookahead = limiter::lookahead_frames(rate);
    for (s, ch) in [
        (peaky(rate, 1.0), 1usize),
        (
            (0..4000)
                .map(|i| if i % 4 < 2 { 0.7 } else { -0.7 })
                .collect(),
            2,
        ),
        (vec![0.0, 0.0, 0.9], 1),
    ] {
        let frames = reference::frame_peaks(&s, ch);
        let want: Vec<f64> = (0..frames.len())
            .map(|n| {
                let window = &frames[n..(n + lookahead + 1).min(frames.len())];
                window.iter().copied().fold(0.0, f64::max)
            })
            .collect();
        for block in [1, 7, 4097, s.len()] {
            let mut d = limiter::Lookahead::new(ch, rate);
            let mut got = Vec::new();
            let mut samples = Vec::new();
            let mut give = |f: &[f32], p: f64| {
                samples.extend_from_slice(f);
                got.push(p);
            };
            for chunk in s.chunks(block * ch) {
                for frame in chunk.chunks_exact(ch) {
                    d.take(frame, 0.0, &mut give);
                }
            }
            d.finish(&mut give);
            assert_eq!(got, want, "block {block}");
            assert_eq!(samples, s, "block {block}");
            assert_eq!(d.peak(), reference::true_peak_linear(&s, ch));
            assert_eq!(d.peak(), true_peak::true_peak_linear(&s, ch));
        }
        // With a floor, the windows below it may be skipped: every peak
        // above the floor is still exact, every one at or below it stays
        // there (what the limiter's gain and the probes depend on).
        let top = want.iter().copied().fold(0.0, f64::max);
        for floor in [0.05 * top, 0.3 * top, 0.8 * top, top] {
            let mut d = limiter::Lookahead::new(ch, rate);
            let mut got = Vec::new();
            let mut give = |_: &[f32], p: f64| got.push(p);
            for frame in s.chunks_exact(ch) {
                d.take(frame, floor, &mut give);
            }
            d.finish(&mut give);
            for (n, (&g, &w)) in got.iter().zip(&want).enumerate() {
                if w > floor {
                    assert_eq!(g, w, "floor {floor}, frame {n}");
                } else {
                    assert!(g <= floor, "floor {floor}, frame {n}: {g} > {floor}");
                }
            }
        }
    }
}

#[test]
fn limiter_config_must_be_a_bool() {
    let check = |v: serde_json::Value| Loudness::check_config(&Config::from_value(v).unwrap());
    assert!(check(json!({"limiter": true})).is_ok());
    assert!(check(json!({"limiter": false})).is_ok());
    for bad in [json!("yes"), json!(1), json!(null), json!([true])] {
        match check(json!({ "limiter": bad })) {
            Err(StageError::InvalidConfig(m)) => assert!(m.contains("limiter"), "{m}"),
            other => panic!("limiter = {bad}: {other:?}"),
        }
    }
    assert!(Settings::default().limiter);
}

#[test]
fn ten_seconds_of_peaky_22k_mono_with_the_limiter() {
    let rate = 22050;
    let s = peaky(rate, 10.0);
    let out = run(json!({}), audio(rate, 1, s)).unwrap();
    assert_eq!(out.samples.len(), 220_500);
    close(
        integrated_lufs(&out.samples, 1, rate).unwrap(),
        -16.0,
        0.2,
        "10 s peaky",
    );
}
