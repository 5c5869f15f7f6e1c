//! Behaviour of whole calls: trimming, fades, chunk positions, pauses.

use super::*;
use serde_json::json;

const RATE: u32 = 1000; // 1 frame per ms keeps the arithmetic readable

fn cfg(v: serde_json::Value) -> Config {
    Config::from_value(v).unwrap()
}

fn run(config: serde_json::Value, audio: Audio, pos: ChunkPosition) -> Audio {
    TrimFade::process(&Context::default(), &cfg(config), audio, pos).unwrap()
}

fn mono(samples: Vec<f32>) -> Audio {
    Audio {
        sample_rate: RATE,
        channels: 1,
        samples,
    }
}

/// `lead` frames of `floor`, `tone` frames of a ±`amp` square wave, `tail`
/// frames of `floor`.
fn burst(lead: usize, tone: usize, tail: usize, amp: f32, floor: f32) -> Vec<f32> {
    let mut v = vec![floor; lead];
    v.extend((0..tone).map(|i| if i % 2 == 0 { amp } else { -amp }));
    v.extend(std::iter::repeat_n(floor, tail));
    v
}

fn sine(frames: usize, rate: u32, hz: f32, amp: f32) -> Vec<f32> {
    (0..frames)
        .map(|i| amp * (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin())
        .collect()
}

fn max_jump(s: &[f32]) -> f32 {
    s.windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0, f32::max)
}

fn no_fade() -> serde_json::Value {
    json!({"fade_in_ms": 0, "fade_out_ms": 0})
}

const FIRST: ChunkPosition = ChunkPosition {
    index: 0,
    last: false,
};
const MIDDLE: ChunkPosition = ChunkPosition {
    index: 3,
    last: false,
};
const LAST: ChunkPosition = ChunkPosition {
    index: 4,
    last: true,
};

#[test]
fn trims_to_exact_sample_counts_with_the_default_keep() {
    // 200 silent + 300 tone + 500 silent frames; keep 30 → 30 + 300 + 30.
    let input = burst(200, 300, 500, 0.5, 0.0);
    let out = run(no_fade(), mono(input.clone()), ChunkPosition::WHOLE);
    assert_eq!(out.samples.len(), 360);
    assert_eq!(out.samples, input[170..530].to_vec());
    assert_eq!(out.sample_rate, RATE);
    assert_eq!(out.channels, 1);
}

#[test]
fn trim_is_sample_exact_off_the_window_grid() {
    // Sound starts and ends mid-window: 207 + 289 + 504 frames.
    let input = burst(207, 289, 504, 0.5, 0.0);
    let out = run(
        json!({"fade_in_ms": 0, "fade_out_ms": 0, "keep_ms": 0}),
        mono(input.clone()),
        ChunkPosition::WHOLE,
    );
    assert_eq!(out.samples, input[207..496].to_vec());
}

#[test]
fn keep_margin_is_original_audio_of_exactly_keep_ms() {
    // A -80 dB noise floor (below the -50 dB threshold) is kept verbatim.
    let floor = 1e-4;
    let input = burst(400, 100, 400, 0.5, floor);
    let out = run(
        json!({"fade_in_ms": 0, "fade_out_ms": 0, "keep_ms": 55}),
        mono(input),
        ChunkPosition::WHOLE,
    );
    assert_eq!(out.samples.len(), 55 + 100 + 55);
    assert!(out.samples[..55].iter().all(|&x| x == floor));
    assert_eq!(out.samples[55], 0.5);
    assert!(out.samples[155..].iter().all(|&x| x == floor));
}

#[test]
fn keep_margin_is_clipped_at_the_buffer_edges() {
    let input = burst(10, 100, 5, 0.5, 0.0);
    let out = run(no_fade(), mono(input.clone()), ChunkPosition::WHOLE);
    assert_eq!(out.samples, input);
}

#[test]
fn threshold_decides_what_is_silence() {
    // A -40 dB floor counts as sound at -50 dB but as silence at -30 dB.
    let input = burst(300, 100, 300, 0.5, 0.01);
    let loud_floor = run(no_fade(), mono(input.clone()), ChunkPosition::WHOLE);
    assert_eq!(loud_floor.samples.len(), 700);
    let out = run(
        json!({"fade_in_ms": 0, "fade_out_ms": 0, "threshold_db": -30}),
        mono(input),
        ChunkPosition::WHOLE,
    );
    assert_eq!(out.samples.len(), 160);
}

#[test]
fn fades_are_monotonic_and_start_and_end_at_zero() {
    for shape in ["cosine", "linear"] {
        let out = run(
            json!({"fade_in_ms": 20, "fade_out_ms": 40, "keep_ms": 0, "fade_shape": shape}),
            mono(vec![0.8; 500]),
            ChunkPosition::WHOLE,
        );
        let s = &out.samples;
        assert_eq!(s.len(), 500);
        assert_eq!(s[0], 0.0, "{shape}");
        assert_eq!(s[499], 0.0, "{shape}");
        assert!(s[..21].windows(2).all(|w| w[1] > w[0]), "{shape} fade-in");
        assert!(s[459..].windows(2).all(|w| w[1] < w[0]), "{shape} fade-out");
        assert!(
            s[20..460].iter().all(|&x| x == 0.8),
            "{shape} untouched middle"
        );
    }
}

#[test]
fn no_click_at_the_trimmed_edges_of_a_sine() {
    // 440 Hz at 22.05 kHz, 0.5 amplitude: natural step ≤ 0.5·2π·440/22050 ≈ 0.063.
    let rate = 22050;
    let mut input = vec![0.0f32; 4410];
    input.extend(sine(11025, rate, 440.0, 0.5));
    input.extend(vec![0.0f32; 4410]);
    let out = TrimFade::process(
        &Context::default(),
        &cfg(json!({})),
        Audio {
            sample_rate: rate,
            channels: 1,
            samples: input,
        },
        ChunkPosition::WHOLE,
    )
    .unwrap();
    let s = &out.samples;
    // Trimmed to the sine plus 30 ms (662 frames at 22.05 kHz) on both sides.
    assert_eq!(
        s.len(),
        11025 + 2 * 662 - 1 /* the sine's own first sample is 0 */
    );
    assert_eq!(s[0], 0.0);
    assert_eq!(*s.last().unwrap(), 0.0);
    assert!(max_jump(s) <= 0.0628, "max jump {}", max_jump(s));
}

#[test]
fn no_click_when_a_fade_cuts_into_sound() {
    // A loud, constant signal from the first frame: the fade is the only
    // thing between 0 and 0.9, so the step is bounded by the fade slope.
    let out = run(
        json!({"fade_in_ms": 10, "fade_out_ms": 10}),
        mono(vec![0.9; 200]),
        ChunkPosition::WHOLE,
    );
    // Cosine over 10 frames: steepest step 0.9·(0.5−0.5·cos(π/10)…) < 0.9·π/20.
    assert!(max_jump(&out.samples) < 0.9 * std::f32::consts::PI / 20.0 + 1e-6);
    let unfaded = run(no_fade(), mono(vec![0.9; 200]), ChunkPosition::WHOLE);
    assert_eq!(unfaded.samples[0], 0.9); // the fades are what remove the click
}

#[test]
fn stereo_is_trimmed_on_whole_frames() {
    // Left silent throughout; right has sound on frames 100..150.
    let mut s = vec![0.0f32; 2 * 400];
    for f in 100..150 {
        s[2 * f + 1] = if f % 2 == 0 { 0.4 } else { -0.4 };
    }
    let out = run(
        no_fade(),
        Audio {
            sample_rate: RATE,
            channels: 2,
            samples: s.clone(),
        },
        ChunkPosition::WHOLE,
    );
    assert_eq!(out.channels, 2);
    assert_eq!(out.samples.len(), 2 * (30 + 50 + 30));
    assert_eq!(out.samples, s[2 * 70..2 * 180].to_vec());
    // And the fades act on both channels of a frame alike.
    let faded = run(
        json!({"keep_ms": 0}),
        Audio {
            sample_rate: RATE,
            channels: 2,
            samples: vec![0.5; 200],
        },
        ChunkPosition::WHOLE,
    );
    assert_eq!(&faded.samples[..2], &[0.0, 0.0]);
    assert_eq!(faded.samples[6], faded.samples[7]);
}

#[test]
fn first_chunk_trims_and_fades_only_its_start() {
    let input = burst(200, 300, 100, 0.5, 0.0);
    let out = run(
        json!({"fade_in_ms": 5, "fade_out_ms": 10}),
        mono(input.clone()),
        FIRST,
    );
    assert_eq!(out.samples.len(), 30 + 300 + 100);
    assert_eq!(out.samples[0], 0.0);
    assert_eq!(&out.samples[5..], &input[175..]); // after the fade-in, untouched
}

#[test]
fn middle_chunk_passes_through_untouched_without_pause() {
    let input = burst(200, 300, 100, 0.5, 0.0);
    let out = run(json!({}), mono(input.clone()), MIDDLE);
    assert_eq!(out.samples, input);
    let silent = run(json!({}), mono(vec![0.0; 50]), MIDDLE);
    assert_eq!(silent.samples, vec![0.0; 50]);
}

#[test]
fn last_chunk_trims_and_fades_only_its_end() {
    let input = burst(200, 300, 100, 0.5, 0.0);
    let out = run(
        json!({"fade_in_ms": 5, "fade_out_ms": 10}),
        mono(input.clone()),
        LAST,
    );
    assert_eq!(out.samples.len(), 200 + 300 + 30);
    assert_eq!(&out.samples[..520], &input[..520]); // before the fade-out, untouched
    assert_eq!(*out.samples.last().unwrap(), 0.0);
}

#[test]
fn chunks_concatenate_to_the_whole_result_without_pause() {
    let rate = 16000;
    let mut input = vec![0.0f32; 3000];
    input.extend(sine(4000, rate, 220.0, 0.6));
    input.extend(vec![0.0f32; 1500]);
    input.extend(sine(5000, rate, 330.0, 0.4));
    input.extend(vec![0.0f32; 2500]);
    let audio = |s: &[f32]| Audio {
        sample_rate: rate,
        channels: 1,
        samples: s.to_vec(),
    };
    let whole = run(json!({}), audio(&input), ChunkPosition::WHOLE);
    let cuts = [0, 5000, 8100, input.len()];
    let mut chunked = Vec::new();
    for i in 0..3 {
        let pos = ChunkPosition {
            index: i as u32,
            last: i == 2,
        };
        chunked.extend(run(json!({}), audio(&input[cuts[i]..cuts[i + 1]]), pos).samples);
    }
    assert_eq!(chunked, whole.samples);
    assert!(TrimFade::info().streamable);
}

#[test]
fn pause_is_appended_after_every_non_last_chunk_with_the_right_length() {
    let config = json!({"sentence_pause_ms": 250, "fade_in_ms": 0, "fade_out_ms": 0});
    let input = burst(0, 100, 0, 0.5, 0.0);
    let first = run(config.clone(), mono(input.clone()), FIRST);
    let middle = run(config.clone(), mono(input.clone()), MIDDLE);
    let last = run(config.clone(), mono(input.clone()), LAST);
    let whole = run(config, mono(input.clone()), ChunkPosition::WHOLE);
    assert_eq!(first.samples.len(), 100 + 250);
    assert_eq!(middle.samples.len(), 100 + 250);
    assert!(middle.samples[100..].iter().all(|&x| x == 0.0));
    assert_eq!(&middle.samples[..100], &input[..]);
    assert_eq!(last.samples.len(), 100);
    assert_eq!(whole.samples.len(), 100);
    // Stereo at 22.05 kHz: 250 ms = 5512.5 → 5513 frames of 2 samples.
    let st = run(
        json!({"sentence_pause_ms": 250}),
        Audio {
            sample_rate: 22050,
            channels: 2,
            samples: vec![0.3; 200],
        },
        MIDDLE,
    );
    assert_eq!(st.samples.len(), 200 + 2 * 5513);
}

#[test]
fn both_sides_of_a_pause_are_faded() {
    let config = json!({"sentence_pause_ms": 100, "fade_in_ms": 5, "fade_out_ms": 10});
    let a = run(config.clone(), mono(vec![0.7; 300]), MIDDLE);
    let b = run(config, mono(vec![0.7; 300]), LAST);
    let joined: Vec<f32> = a.samples.iter().chain(&b.samples).copied().collect();
    assert_eq!(a.samples[0], 0.0); // fade-in: a pause came before this chunk
    assert_eq!(a.samples[299], 0.0); // fade-out before its own pause
    assert_eq!(b.samples[0], 0.0);
    assert!(max_jump(&joined) < 0.7 * std::f32::consts::PI / 10.0 + 1e-6);
}

#[test]
fn all_silent_input_becomes_keep_ms_of_digital_silence() {
    let noise: Vec<f32> = (0..1000)
        .map(|i| if i % 2 == 0 { 1e-4 } else { -1e-4 })
        .collect();
    let out = run(json!({}), mono(noise.clone()), ChunkPosition::WHOLE);
    assert_eq!(out.samples, vec![0.0; 30]);
    // Never longer than the input, empty with keep 0, pause still added.
    assert_eq!(
        run(json!({}), mono(vec![0.0; 12]), ChunkPosition::WHOLE)
            .samples
            .len(),
        12
    );
    assert!(run(
        json!({"keep_ms": 0}),
        mono(noise.clone()),
        ChunkPosition::WHOLE
    )
    .samples
    .is_empty());
    let first = run(json!({"sentence_pause_ms": 100}), mono(noise), FIRST);
    assert_eq!(first.samples, vec![0.0; 130]);
}

#[test]
fn empty_input_gives_empty_output_in_every_position() {
    for pos in [ChunkPosition::WHOLE, FIRST, MIDDLE, LAST] {
        let out = run(json!({"sentence_pause_ms": 100}), mono(vec![]), pos);
        assert!(out.samples.is_empty());
        assert_eq!(out.sample_rate, RATE);
    }
}

#[test]
fn invalid_audio_is_invalid_input_not_a_panic() {
    let bad = [
        Audio {
            sample_rate: RATE,
            channels: 0,
            samples: vec![0.1; 4],
        },
        Audio {
            sample_rate: RATE,
            channels: 2,
            samples: vec![0.1; 5],
        },
        Audio {
            sample_rate: 0,
            channels: 1,
            samples: vec![0.1; 5],
        },
        Audio {
            sample_rate: 10_000_000,
            channels: 1,
            samples: vec![0.1; 5],
        },
        Audio {
            sample_rate: 768_000,
            channels: u16::MAX,
            samples: vec![0.1; 65535],
        },
    ];
    for (i, a) in bad.into_iter().enumerate() {
        let pos = if i == 4 { MIDDLE } else { ChunkPosition::WHOLE };
        let r = TrimFade::process(
            &Context::default(),
            &cfg(json!({"sentence_pause_ms": 5000})),
            a,
            pos,
        );
        assert!(
            matches!(r, Err(StageError::InvalidInput(_))),
            "case {i}: {r:?}"
        );
    }
}

#[test]
fn check_config_errors_name_the_key() {
    for (v, key) in [
        (json!({"threshold_db": 1}), "threshold_db"),
        (json!({"window_ms": 0}), "window_ms"),
        (json!({"keep_ms": 6000}), "keep_ms"),
        (json!({"fade_in_ms": -1}), "fade_in_ms"),
        (json!({"fade_out_ms": true}), "fade_out_ms"),
        (json!({"fade_shape": "sigmoid"}), "fade_shape"),
        (json!({"sentence_pause_ms": "1s"}), "sentence_pause_ms"),
        (json!({"keepms": 30}), "keepms"),
    ] {
        match TrimFade::check_config(&cfg(v)) {
            Err(StageError::InvalidConfig(m)) => assert!(m.contains(key), "{m}"),
            other => panic!("{key}: {other:?}"),
        }
    }
    assert!(TrimFade::check_config(&cfg(json!({}))).is_ok());
    // process refuses a bad config too (the host may skip check_config).
    let r = TrimFade::process(
        &Context::default(),
        &cfg(json!({"window_ms": 0})),
        mono(vec![0.1]),
        ChunkPosition::WHOLE,
    );
    assert!(matches!(r, Err(StageError::InvalidConfig(_))));
}
