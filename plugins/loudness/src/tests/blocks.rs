//! The block-driven stage against the whole-utterance reference
//! (`reference.rs`), at the host's block size and smaller, odd ones.

use super::*;

/// One utterance and a config to run it with.
struct Case {
    name: String,
    config: serde_json::Value,
    audio: Audio,
}

fn case(name: &str, config: serde_json::Value, rate: u32, channels: u16, s: Vec<f32>) -> Case {
    Case {
        name: name.to_string(),
        config,
        audio: audio(rate, channels, s),
    }
}

/// Speech-like audio whose level wanders over `secs` (±6 dB, a slow sine)
/// with a click every 100 ms on top: long enough to span several of the
/// host's blocks, peaky enough for the limiter.
fn wandering(rate: u32, secs: f64) -> Vec<f32> {
    let mut s = peaky_at(rate, secs, 0.2);
    for (i, v) in s.iter_mut().enumerate() {
        let t = i as f64 / f64::from(rate);
        *v = (f64::from(*v) * db(6.0 * (2.0 * PI * t / 23.0).sin())).clamp(-1.0, 1.0) as f32;
    }
    s
}

/// The utterances compared: speech-like and synthetic signals, a few
/// seconds to a minute, mono to 5.1, 8 to 192 kHz, every path of the
/// stage (pure gain, limiter with make-up, capped gain, undefined).
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (level, target) in [(0.1, -16.0), (0.3, -23.0), (0.6, -16.0)] {
        cases.push(case(
            &format!("speechy {level} → {target}"),
            json!({ "target_lufs": target }),
            22050,
            1,
            speechy(22050, 6.0, level),
        ));
    }
    cases.push(case("peaky 22k", json!({}), 22050, 1, peaky(22050, 6.0)));
    // Short enough to run in blocks of one frame too.
    cases.push(case("peaky 8k, 1 s", json!({}), 8000, 1, peaky(8000, 1.0)));
    cases.push(case(
        "very peaky, max_gain 30",
        json!({"max_gain_db": 30.0}),
        22050,
        1,
        peaky_at(22050, 6.0, 0.1),
    ));
    for (target, ceiling) in [(-14.0, -1.0), (-23.0, -6.0), (-10.0, -0.5)] {
        cases.push(case(
            &format!("peaky {target} / {ceiling} dBTP"),
            json!({"target_lufs": target, "true_peak_dbtp": ceiling, "max_gain_db": 40}),
            22050,
            1,
            peaky(22050, 4.0),
        ));
    }
    let stereo: Vec<f32> = peaky(48000, 5.0)
        .iter()
        .flat_map(|&v| [v, v * 0.6])
        .collect();
    cases.push(case("peaky stereo 48k", json!({}), 48000, 2, stereo));
    let surround: Vec<f32> = peaky(48000, 3.0)
        .iter()
        .flat_map(|&v| [v, v * 0.8, v * 0.5, v * 0.3, v * 0.4, v * 0.2])
        .collect();
    cases.push(case("peaky 5.1 48k", json!({}), 48000, 6, surround));
    cases.push(case(
        "wandering 60 s",
        json!({}),
        22050,
        1,
        wandering(22050, 60.0),
    ));
    cases.push(case(
        "wandering 30 s, -23",
        json!({"target_lufs": -23.0}),
        16000,
        1,
        wandering(16000, 30.0),
    ));
    cases.push(case(
        "peaky, limiter off",
        json!({"limiter": false}),
        22050,
        1,
        peaky(22050, 6.0),
    ));
    cases.push(case(
        "stereo sine",
        json!({}),
        44100,
        2,
        sine(44100, 2, 440.0, -30.0, 3.0),
    ));
    let mut tone = sine(22050, 1, 1000.0, -20.0, 10.0);
    tone.extend(silence(22050, 1, 10.0));
    cases.push(case("tone + silence", json!({}), 22050, 1, tone));
    cases.push(case(
        "near silence",
        json!({}),
        22050,
        1,
        sine(22050, 1, 1000.0, -60.0, 2.0),
    ));
    cases.push(case("silence", json!({}), 22050, 1, silence(22050, 1, 2.0)));
    cases.push(case(
        "399 ms",
        json!({}),
        22050,
        1,
        sine(22050, 1, 1000.0, -30.0, 0.399),
    ));
    cases.push(case("empty", json!({}), 22050, 1, vec![]));
    for rate in [MIN_RATE, 11025, 24000, 96000, MAX_RATE] {
        cases.push(case(
            &format!("speechy {rate} Hz"),
            json!({}),
            rate,
            1,
            speechy(rate, 3.0, 0.5),
        ));
    }
    let n = 22050 * 3;
    let extremes: [(&str, Vec<f32>); 3] = [
        (
            "fs/4 full scale",
            (0..n).map(|i| if i % 4 < 2 { 1.0 } else { -1.0 }).collect(),
        ),
        (
            "noise",
            lcg(7).take(n).map(|r| (2.0 * r - 1.0) as f32).collect(),
        ),
        (
            "click train",
            (0..n)
                .map(|i| if i % 2205 == 0 { 0.9 } else { 0.0 })
                .collect(),
        ),
    ];
    for (name, s) in extremes {
        for cfg in [
            json!({}),
            json!({"target_lufs": -5.0, "true_peak_dbtp": 0.0}),
            json!({"target_lufs": -5.0, "true_peak_dbtp": -20.0, "max_gain_db": 60.0}),
        ] {
            cases.push(case(&format!("{name} {cfg}"), cfg, 22050, 1, s.clone()));
        }
    }
    cases
}

/// Largest |a − b| of two sample sequences, dBFS (−inf when identical).
fn difference_db(a: &[f32], b: &[f32]) -> f64 {
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs())
        .fold(0.0, f64::max);
    20.0 * d.log10()
}

/// The comparison: at the host's 10 s blocks, 1 s, 4097 frames (and
/// single frames for utterances of at most a second), the output has the
/// reference's length, its loudness is within 0.1 LU of the reference
/// output's (both measured by the crate's meter), its true peak is at or
/// under the ceiling, and it is the same whatever the block size.
#[test]
fn block_output_matches_the_whole_utterance_reference() {
    let mut worst_lu: f64 = 0.0;
    let mut worst_diff = f64::NEG_INFINITY;
    for c in cases() {
        let rate = c.audio.sample_rate;
        let ch = c.audio.channels;
        let config = Config::from_value(c.config.clone()).unwrap();
        let want = reference::process(&Context::default(), &config, c.audio.clone()).unwrap();
        let ceiling = c.config["true_peak_dbtp"].as_f64().unwrap_or(-1.0);
        let frames = c.audio.samples.len() / usize::from(ch);
        let mut sizes = vec![rate as usize * 10, rate as usize, 4097];
        if frames <= rate as usize {
            sizes.push(1);
        }
        let mut first: Option<Audio> = None;
        for size in sizes {
            let got = run_at(c.config.clone(), c.audio.clone(), size).unwrap();
            assert_eq!(got.samples.len(), want.samples.len(), "{}", c.name);
            assert_eq!((got.sample_rate, got.channels), (rate, ch), "{}", c.name);
            match &first {
                None => first = Some(got.clone()),
                Some(f) => assert_eq!(&got, f, "{}: block size {size} changed the output", c.name),
            }
        }
        let got = first.unwrap();
        let diff = difference_db(&got.samples, &want.samples);
        let tp = true_peak_dbtp(&got.samples, ch, rate).unwrap();
        let tp_ref = true_peak_dbtp(&want.samples, ch, rate).unwrap();
        match (
            integrated_lufs(&got.samples, ch, rate),
            integrated_lufs(&want.samples, ch, rate),
        ) {
            (Some(l), Some(l_ref)) => {
                println!(
                    "{:48} out {l:8.3} LUFS (reference {l_ref:8.3}, Δ {:+.4} LU), \
                     true peak {tp:7.3} dBTP (reference {tp_ref:7.3}), largest sample difference {diff:7.1} dBFS",
                    c.name,
                    l - l_ref
                );
                worst_lu = worst_lu.max((l - l_ref).abs());
                assert!((l - l_ref).abs() <= 0.1, "{}: {l} vs {l_ref}", c.name);
            }
            (l, l_ref) => {
                println!("{:48} undefined loudness, as the reference's", c.name);
                assert_eq!(l, l_ref, "{}", c.name);
            }
        }
        worst_diff = worst_diff.max(diff);
        assert!(
            tp <= ceiling + 1e-4,
            "{}: true peak {tp} over {ceiling}",
            c.name
        );
    }
    println!(
        "largest loudness difference {worst_lu:.4} LU, largest sample difference {worst_diff:.1} dBFS"
    );
}
