//! Behaviour tests of the whole stage, driven block by block as the host
//! does: pitch measured before and after, duration, amplitude, passthrough,
//! channels, config and input checks. `blocks` compares the block-driven
//! output with the whole-utterance algorithm kept in `reference`.

use super::*;
use serde_json::json;
use std::f64::consts::TAU;
use voxpipe_plugin_audio::{drive::run_blocks, Passes, Style, MAX_BLOCK_SECONDS};

mod blocks;
mod reference;

const SR: u32 = 22050;

fn config(v: serde_json::Value) -> Config {
    Config::from_value(v).unwrap()
}

fn ctx_with_pitch(pitch: Option<f32>) -> Context {
    Context {
        request_id: "test".into(),
        style: pitch.map(|p| Style {
            pitch: Some(p),
            ..Style::default()
        }),
        ..Context::default()
    }
}

/// Runs the stage over `audio` as the host does, in blocks of 10 s.
fn run(ctx: &Context, config: &Config, audio: Audio) -> Result<Audio, StageError> {
    let block = (MAX_BLOCK_SECONDS * audio.sample_rate) as usize;
    run_blocks::<PitchShift>(ctx, config, &audio, block)
}

fn mono(samples: Vec<f32>, sample_rate: u32) -> Audio {
    Audio {
        sample_rate,
        channels: 1,
        samples,
    }
}

fn sine(freq: f64, secs: f64, sr: u32, amp: f64) -> Vec<f32> {
    let n = (secs * sr as f64) as usize;
    (0..n)
        .map(|i| (amp * (TAU * freq * i as f64 / sr as f64).sin()) as f32)
        .collect()
}

/// A band-limited sawtooth (harmonics 1/k up to 5 kHz): rich in harmonics
/// like a voice, without aliasing.
fn saw(freq: f64, secs: f64, sr: u32, amp: f64) -> Vec<f32> {
    let n = (secs * sr as f64) as usize;
    let harmonics = (5000.0 / freq) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / sr as f64;
            let v: f64 = (1..=harmonics)
                .map(|k| (TAU * freq * k as f64 * t).sin() / k as f64)
                .sum();
            (amp * v * 2.0 / std::f64::consts::PI) as f32
        })
        .collect()
}

/// Fundamental frequency of the middle half of `x`: normalised
/// autocorrelation over lags for 60..1000 Hz, the first local maximum
/// within 10 % of the best one (so a harmonic-rich tone is not read an
/// octave low), refined by parabolic interpolation.
fn pitch_of(x: &[f32], sr: u32) -> f64 {
    let min_lag = (sr / 1000) as usize;
    let max_lag = (sr / 60) as usize;
    let seg = &x[x.len() / 4..3 * x.len() / 4];
    let w = seg.len() - max_lag - 1;
    let r: Vec<f64> = (0..=max_lag + 1)
        .map(|lag| {
            let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
            for i in 0..w {
                let (a, b) = (seg[i] as f64, seg[i + lag] as f64);
                xy += a * b;
                xx += a * a;
                yy += b * b;
            }
            xy / (xx * yy).sqrt().max(1e-30)
        })
        .collect();
    let best = (min_lag..=max_lag).map(|l| r[l]).fold(f64::MIN, f64::max);
    let lag = (min_lag..=max_lag)
        .find(|&l| r[l] >= 0.9 * best && r[l] >= r[l - 1] && r[l] >= r[l + 1])
        .unwrap();
    let (a, b, c) = (r[lag - 1], r[lag], r[lag + 1]);
    let denom = a - 2.0 * b + c;
    let offset = if denom.abs() > 1e-12 {
        0.5 * (a - c) / denom
    } else {
        0.0
    };
    sr as f64 / (lag as f64 + offset)
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// RMS away from the edges (the middle 80 %).
fn inner_rms(x: &[f32]) -> f64 {
    rms(&x[x.len() / 10..x.len() * 9 / 10])
}

fn shift(samples: Vec<f32>, sr: u32, semitones: f32) -> Vec<f32> {
    let c = config(json!({ "semitones": semitones }));
    run(&ctx_with_pitch(None), &c, mono(samples, sr))
        .unwrap()
        .samples
}

fn assert_pitch(x: &[f32], sr: u32, expected: f64) {
    let got = pitch_of(x, sr);
    assert!(
        (got / expected - 1.0).abs() < 0.01,
        "pitch {got:.2} Hz, expected {expected:.2} Hz"
    );
}

fn semis(f: f64, s: f64) -> f64 {
    f * 2f64.powf(s / 12.0)
}

#[test]
fn the_estimator_reads_the_test_tones() {
    assert_pitch(&sine(220.0, 1.0, SR, 0.5), SR, 220.0);
    assert_pitch(&saw(150.0, 1.0, SR, 0.5), SR, 150.0);
    assert_pitch(&saw(75.0, 1.0, SR, 0.5), SR, 75.0);
}

#[test]
fn sine_up_an_octave() {
    assert_pitch(&shift(sine(220.0, 1.0, SR, 0.5), SR, 12.0), SR, 440.0);
}

#[test]
fn sine_down_an_octave() {
    assert_pitch(&shift(sine(220.0, 1.0, SR, 0.5), SR, -12.0), SR, 110.0);
}

#[test]
fn sine_up_a_fifth_and_fractional_shifts() {
    assert_pitch(&shift(sine(220.0, 1.0, SR, 0.5), SR, 7.0), SR, 329.63);
    for s in [-7.5, -3.0, 1.0, 2.5, 5.0] {
        let out = shift(sine(200.0, 1.0, SR, 0.5), SR, s);
        assert_pitch(&out, SR, semis(200.0, s as f64));
    }
}

#[test]
fn harmonic_rich_tone_shifts() {
    for s in [12.0, -12.0, 7.0, -5.0] {
        let out = shift(saw(150.0, 1.0, SR, 0.5), SR, s);
        assert_pitch(&out, SR, semis(150.0, s as f64));
    }
}

#[test]
fn duration_is_preserved_exactly() {
    for len in [0, 1, 7, 100, 511, 1023, 1024, 1025, 22050, 30001] {
        for s in [-12.0, -7.3, 0.5, 3.0, 12.0] {
            let x = sine(220.0, len as f64 / SR as f64 + 1e-9, SR, 0.5);
            assert_eq!(x.len(), len);
            assert_eq!(shift(x, SR, s).len(), len, "len {len}, {s} semitones");
        }
    }
}

#[test]
fn zero_shift_is_a_bit_exact_passthrough() {
    let x = vec![0.25, -0.0, 1e-40, -1.0, 1.0, f32::NAN, 0.123_456_79];
    let bits: Vec<u32> = x.iter().map(|v| v.to_bits()).collect();
    let cases = [
        (None, json!({})),
        (Some(0.0), json!({ "semitones": 0.0 })),
        (Some(3.0), json!({ "semitones": -3.0 })),
        (Some(0.004), json!({ "tempo": 1.0 })),
    ];
    for (style, cfg) in cases {
        let out = run(
            &ctx_with_pitch(style),
            &config(cfg.clone()),
            mono(x.clone(), SR),
        )
        .unwrap();
        let got: Vec<u32> = out.samples.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, bits, "style {style:?}, config {cfg}");
        assert_eq!((out.sample_rate, out.channels), (SR, 1));
    }
}

/// Energy of `x` (middle 80 %) left after removing the best-fitting
/// sinusoid of frequency `freq`, in dB relative to the whole: how clean a
/// shifted sine is (phasiness and modulation show up here).
fn residual_db(x: &[f32], freq: f64, sr: u32) -> f64 {
    let (a, b) = (x.len() / 10, x.len() * 9 / 10);
    let w = TAU * freq / sr as f64;
    let (mut sc, mut cc, mut ss, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &v) in x.iter().enumerate().take(b).skip(a) {
        let (s, c) = (w * i as f64).sin_cos();
        let v = v as f64;
        ss += s * s;
        cc += c * c;
        sc += s * c;
        xs += v * s;
        xc += v * c;
    }
    // Least squares for v ≈ p·sin + q·cos.
    let det = ss * cc - sc * sc;
    let p = (xs * cc - xc * sc) / det;
    let q = (xc * ss - xs * sc) / det;
    let (mut res, mut total) = (0.0, 0.0);
    for (i, &v) in x.iter().enumerate().take(b).skip(a) {
        let (s, c) = (w * i as f64).sin_cos();
        let e = v as f64 - p * s - q * c;
        res += e * e;
        total += (v as f64).powi(2);
    }
    10.0 * (res / total).log10()
}

#[test]
fn a_shifted_sine_stays_a_clean_sine() {
    for s in [-12.0, -7.0, -2.0, 3.0, 7.0, 12.0] {
        let out = shift(sine(220.0, 1.0, SR, 0.5), SR, s);
        let want = semis(220.0, s as f64);
        let db = residual_db(&out, pitch_of(&out, SR), SR);
        assert!(db < -40.0, "{s} semitones: residual {db:.1} dB");
        assert!((pitch_of(&out, SR) / want - 1.0).abs() < 0.001);
    }
}

#[test]
fn a_gliding_tone_keeps_its_glide() {
    // 150 → 250 Hz over 1 s, like an intonation rise.
    let x: Vec<f32> = (0..SR as usize)
        .map(|i| {
            let t = i as f64 / SR as f64;
            (0.5 * (TAU * (150.0 * t + 50.0 * t * t)).sin()) as f32
        })
        .collect();
    for s in [12.0, -7.0] {
        let out = shift(x.clone(), SR, s);
        let ratio = 2f64.powf(s as f64 / 12.0);
        for (a, b) in [(0.15, 0.35), (0.65, 0.85)] {
            let range = (a * SR as f64) as usize..(b * SR as f64) as usize;
            let (before, after) = (pitch_of(&x[range.clone()], SR), pitch_of(&out[range], SR));
            assert!(
                (after / before / ratio - 1.0).abs() < 0.01,
                "{s}: {before} -> {after}"
            );
        }
    }
}

#[test]
fn amplitude_is_roughly_preserved() {
    let inputs = [sine(220.0, 1.0, SR, 0.5), saw(150.0, 1.0, SR, 0.4)];
    for x in inputs {
        let before = inner_rms(&x);
        for s in [-12.0, -7.0, -1.0, 4.0, 7.0, 12.0] {
            let out = shift(x.clone(), SR, s);
            let db = 20.0 * (inner_rms(&out) / before).log10();
            assert!(db.abs() < 1.5, "{s} semitones: {db:.2} dB");
        }
    }
}

#[test]
fn no_nan_and_within_range_on_hostile_input() {
    let mut seed = 12345u32;
    let noise: Vec<f32> = (0..20000)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect();
    let mut impulses = vec![0.0; 20000];
    for i in (0..20000).step_by(3000) {
        impulses[i] = 1.0;
    }
    let square: Vec<f32> = (0..20000)
        .map(|i| if (i / 50) % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let mut broken = sine(220.0, 0.5, SR, 0.9);
    broken[100] = f32::NAN;
    broken[2000] = f32::INFINITY;
    broken[3000] = f32::NEG_INFINITY;
    for x in [noise, impulses, square, vec![0.0; 5000], broken] {
        for s in [-12.0, -0.7, 5.0, 12.0] {
            let out = shift(x.clone(), SR, s);
            assert_eq!(out.len(), x.len());
            assert!(out.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
        }
    }
}

#[test]
fn stereo_channels_are_shifted_independently() {
    let (l, r) = (sine(220.0, 1.0, SR, 0.5), saw(330.0, 1.0, SR, 0.3));
    let samples: Vec<f32> = l.iter().zip(&r).flat_map(|(&a, &b)| [a, b]).collect();
    let audio = Audio {
        sample_rate: SR,
        channels: 2,
        samples,
    };
    let c = config(json!({ "semitones": 12 }));
    let out = run(&ctx_with_pitch(None), &c, audio).unwrap();
    assert_eq!(out.channels, 2);
    assert_eq!(out.samples.len(), 2 * l.len());
    let left: Vec<f32> = out.samples.iter().step_by(2).copied().collect();
    let right: Vec<f32> = out.samples.iter().skip(1).step_by(2).copied().collect();
    assert_pitch(&left, SR, 440.0);
    assert_pitch(&right, SR, 660.0);
    // Each channel keeps its own level.
    assert!((inner_rms(&left) / inner_rms(&l) - 1.0).abs() < 0.2);
    assert!((inner_rms(&right) / inner_rms(&r) - 1.0).abs() < 0.2);
}

#[test]
fn style_pitch_and_config_semitones_add_up() {
    let pitch_with = |style: Option<f32>, cfg: serde_json::Value| {
        let out = run(
            &ctx_with_pitch(style),
            &config(cfg),
            mono(sine(220.0, 1.0, SR, 0.5), SR),
        )
        .unwrap();
        pitch_of(&out.samples, SR)
    };
    let close = |got: f64, want: f64| (got / want - 1.0).abs() < 0.01;
    assert!(close(
        pitch_with(Some(5.0), json!({ "semitones": 7 })),
        440.0
    ));
    assert!(close(pitch_with(Some(-12.0), json!({})), 110.0));
    assert!(close(
        pitch_with(Some(4.0), json!({ "semitones": -11 })),
        semis(220.0, -7.0)
    ));
    // Beyond ±12 the total is clamped, not refused.
    assert!(close(
        pitch_with(Some(10.0), json!({ "semitones": 12 })),
        440.0
    ));
    assert!(close(pitch_with(Some(-30.0), json!({})), 110.0));
    // A broken style is refused.
    let err = run(
        &ctx_with_pitch(Some(f32::NAN)),
        &config(json!({})),
        mono(vec![0.0; 10], SR),
    )
    .unwrap_err();
    assert!(matches!(err, StageError::InvalidInput(m) if m.contains("pitch")));
}

#[test]
fn config_is_validated_naming_the_key() {
    let ok = [
        json!({}),
        json!({ "semitones": 12 }),
        json!({ "semitones": -12.0, "tempo": 0.5 }),
        json!({ "tempo": 2 }),
    ];
    for c in ok {
        assert!(PitchShift::check_config(&config(c.clone())).is_ok(), "{c}");
    }
    let bad = [
        (json!({ "semitone": 2 }), "semitone"),
        (json!({ "semitones": "high" }), "semitones"),
        (json!({ "semitones": 12.5 }), "semitones"),
        (json!({ "semitones": -13 }), "semitones"),
        (json!({ "tempo": 0.4 }), "tempo"),
        (json!({ "tempo": 2.01 }), "tempo"),
        (json!({ "tempo": "fast" }), "tempo"),
        (json!({ "speed": 1.2 }), "speed"),
    ];
    for (c, key) in bad {
        let err = PitchShift::check_config(&config(c.clone())).unwrap_err();
        assert!(
            matches!(&err, StageError::InvalidConfig(m) if m.contains(key)),
            "{c}: {err}"
        );
        // Processing refuses the same config.
        let err = run(&ctx_with_pitch(None), &config(c), mono(vec![0.0; 4], SR)).unwrap_err();
        assert!(matches!(err, StageError::InvalidConfig(_)));
    }
}

#[test]
fn tempo_changes_duration_but_not_pitch() {
    let x = sine(220.0, 1.0, SR, 0.5);
    for (tempo, semitones, want) in [
        (2.0, 0.0, 220.0),
        (0.5, 0.0, 220.0),
        (1.25, 0.0, 220.0),
        (1.5, 7.0, 329.63),
        (0.8, -12.0, 110.0),
        (2.0, 12.0, 440.0),
    ] {
        let c = config(json!({ "tempo": tempo, "semitones": semitones }));
        let out = run(&ctx_with_pitch(None), &c, mono(x.clone(), SR))
            .unwrap()
            .samples;
        assert_eq!(out.len(), (x.len() as f64 / tempo).round() as usize);
        assert_pitch(&out, SR, want);
        let db = 20.0 * (inner_rms(&out) / inner_rms(&x)).log10();
        assert!(db.abs() < 1.5, "tempo {tempo}: {db:.2} dB");
    }
}

#[test]
fn other_sample_rates_work() {
    for sr in [8000, 16000, 24000, 44100, 48000, 96000] {
        let out = shift(saw(180.0, 1.0, sr, 0.5), sr, 5.0);
        assert_eq!(out.len(), sr as usize);
        assert_pitch(&out, sr, semis(180.0, 5.0));
    }
}

#[test]
fn malformed_audio_is_refused() {
    let c = config(json!({ "semitones": 3 }));
    let bad = [
        Audio {
            sample_rate: SR,
            channels: 0,
            samples: vec![0.0; 4],
        },
        Audio {
            sample_rate: SR,
            channels: 2,
            samples: vec![0.0; 5],
        },
        Audio {
            sample_rate: 4000,
            channels: 1,
            samples: vec![0.0; 4],
        },
        Audio {
            sample_rate: 192_000,
            channels: 1,
            samples: vec![0.0; 4],
        },
    ];
    for audio in bad {
        let err = run(&ctx_with_pitch(None), &c, audio.clone()).unwrap_err();
        assert!(matches!(err, StageError::InvalidInput(_)), "{audio:?}");
    }
    // Empty audio is fine.
    let out = run(&ctx_with_pitch(None), &c, mono(vec![], SR)).unwrap();
    assert!(out.samples.is_empty());
}

#[test]
fn output_is_deterministic_and_the_stage_is_one_pass() {
    let x = saw(130.0, 0.5, SR, 0.5);
    assert_eq!(shift(x.clone(), SR, 3.3), shift(x, SR, 3.3));
    let info = PitchShift::info();
    assert_eq!(info.passes, Passes::One);
    assert_eq!(info.applies, vec!["pitch".to_string()]);
    assert_eq!(info.name, "pitch-shift");
}
