//! Behaviour of whole utterances driven block by block as the host drives
//! them: trimming, fades, pauses between a stream's sentences, edge cases,
//! the match with the 0.2 whole-utterance algorithm kept in [`reference`],
//! and the state's bound over long audio.

mod reference;

use super::*;
use serde_json::json;
use voxpipe_plugin_audio::{
    drive::{run_blocks, run_utterance},
    Passes, MAX_STATE_BYTES,
};

const RATE: u32 = 1000; // 1 frame per ms keeps the arithmetic readable

fn cfg(v: serde_json::Value) -> Config {
    Config::from_value(v).unwrap()
}

/// The host's block: 10 s of audio.
fn host_block(rate: u32) -> usize {
    10 * rate as usize
}

fn try_run(config: serde_json::Value, audio: Audio) -> Result<Audio, StageError> {
    let block = host_block(audio.sample_rate);
    run_blocks::<TrimFade>(&Context::default(), &cfg(config), &audio, block)
}

/// The stage's output for a whole response, in the host's blocks.
fn run(config: serde_json::Value, audio: Audio) -> Audio {
    try_run(config, audio).unwrap()
}

/// Drives one utterance as `run_blocks` does, but as sentence `utterance` of
/// a stream, and also returns the largest state handed from call to call.
fn drive(
    config: &Config,
    audio: &Audio,
    block: usize,
    utterance: u32,
) -> Result<(Audio, usize), StageError> {
    run_utterance::<TrimFade>(&Context::default(), config, audio, block, utterance)
        .map(|d| (d.audio, d.max_state))
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

#[test]
fn trims_to_exact_sample_counts_with_the_default_keep() {
    // 200 silent + 300 tone + 500 silent frames; keep 30 → 30 + 300 + 30.
    let input = burst(200, 300, 500, 0.5, 0.0);
    let out = run(no_fade(), mono(input.clone()));
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
    );
    assert_eq!(out.samples.len(), 55 + 100 + 55);
    assert!(out.samples[..55].iter().all(|&x| x == floor));
    assert_eq!(out.samples[55], 0.5);
    assert!(out.samples[155..].iter().all(|&x| x == floor));
}

#[test]
fn keep_margin_is_clipped_at_the_buffer_edges() {
    let input = burst(10, 100, 5, 0.5, 0.0);
    let out = run(no_fade(), mono(input.clone()));
    assert_eq!(out.samples, input);
}

#[test]
fn threshold_decides_what_is_silence() {
    // A -40 dB floor counts as sound at -50 dB but as silence at -30 dB.
    let input = burst(300, 100, 300, 0.5, 0.01);
    let loud_floor = run(no_fade(), mono(input.clone()));
    assert_eq!(loud_floor.samples.len(), 700);
    let out = run(
        json!({"fade_in_ms": 0, "fade_out_ms": 0, "threshold_db": -30}),
        mono(input),
    );
    assert_eq!(out.samples.len(), 160);
}

#[test]
fn fades_are_monotonic_and_start_and_end_at_zero() {
    for shape in ["cosine", "linear"] {
        let out = run(
            json!({"fade_in_ms": 20, "fade_out_ms": 40, "keep_ms": 0, "fade_shape": shape}),
            mono(vec![0.8; 500]),
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
    let out = run(
        json!({}),
        Audio {
            sample_rate: rate,
            channels: 1,
            samples: input,
        },
    );
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
    );
    // Cosine over 10 frames: steepest step 0.9·(0.5−0.5·cos(π/10)…) < 0.9·π/20.
    assert!(max_jump(&out.samples) < 0.9 * std::f32::consts::PI / 20.0 + 1e-6);
    let unfaded = run(no_fade(), mono(vec![0.9; 200]));
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
    );
    assert_eq!(&faded.samples[..2], &[0.0, 0.0]);
    assert_eq!(faded.samples[6], faded.samples[7]);
}

#[test]
fn all_silent_input_becomes_keep_ms_of_digital_silence() {
    let noise: Vec<f32> = (0..1000)
        .map(|i| if i % 2 == 0 { 1e-4 } else { -1e-4 })
        .collect();
    let out = run(json!({}), mono(noise.clone()));
    assert_eq!(out.samples, vec![0.0; 30]);
    // Never longer than the input, empty with keep 0, pause still added.
    assert_eq!(run(json!({}), mono(vec![0.0; 12])).samples.len(), 12);
    assert!(run(json!({"keep_ms": 0}), mono(noise.clone()))
        .samples
        .is_empty());
    // In a stream, a later sentence gets its pause before the silence.
    let config = cfg(json!({"sentence_pause_ms": 100}));
    let later = drive(&config, &mono(noise), 333, 1).unwrap().0;
    assert_eq!(later.samples, vec![0.0; 130]);
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
        // The last case is refused for its pause, due in a later sentence.
        let config = cfg(json!({"sentence_pause_ms": 5000}));
        let r = drive(&config, &a, host_block(a.sample_rate), u32::from(i == 4));
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
    // process_block refuses a bad config too (the host may skip check_config).
    let r = try_run(json!({"window_ms": 0}), mono(vec![0.1]));
    assert!(matches!(r, Err(StageError::InvalidConfig(_))));
}

#[test]
fn every_block_size_gives_the_whole_result() {
    let rate = 16000;
    let mut input = vec![0.0f32; 3000];
    input.extend(sine(4000, rate, 220.0, 0.6));
    input.extend(vec![0.0f32; 1500]);
    input.extend(sine(5000, rate, 330.0, 0.4));
    input.extend(vec![0.0f32; 2500]);
    let audio = Audio {
        sample_rate: rate,
        channels: 1,
        samples: input,
    };
    let whole = run_blocks::<TrimFade>(&Context::default(), &cfg(json!({})), &audio, 1 << 20)
        .unwrap()
        .samples;
    assert_eq!(whole.len(), 4000 + 1500 + 5000 + 2 * 480 - 1);
    for block in [7, 480, 4097, 5000, 16000] {
        let got = run_blocks::<TrimFade>(&Context::default(), &cfg(json!({})), &audio, block);
        assert_eq!(got.unwrap().samples, whole, "blocks of {block}");
    }
    assert_eq!(TrimFade::info().passes, Passes::Two);
}

#[test]
fn a_pause_goes_before_every_streamed_sentence_but_the_first() {
    let config = cfg(json!({"sentence_pause_ms": 250, "fade_in_ms": 0, "fade_out_ms": 0}));
    let input = mono(burst(0, 100, 0, 0.5, 0.0));
    let first = drive(&config, &input, host_block(RATE), 0).unwrap().0;
    assert_eq!(first.samples, input.samples);
    for (utterance, block) in [(1, 37), (2, 1), (7, 10000)] {
        let later = drive(&config, &input, block, utterance).unwrap().0;
        assert_eq!(later.samples.len(), 250 + 100);
        assert!(later.samples[..250].iter().all(|&x| x == 0.0));
        assert_eq!(&later.samples[250..], &input.samples[..]);
    }
    // A whole response is one utterance (0): no pause.
    let whole = run(
        json!({"sentence_pause_ms": 250, "fade_in_ms": 0, "fade_out_ms": 0}),
        input.clone(),
    );
    assert_eq!(whole.samples, input.samples);
    // Stereo at 22.05 kHz: 250 ms = 5512.5 → 5513 frames of 2 samples.
    let st = drive(
        &cfg(json!({"sentence_pause_ms": 250})),
        &Audio {
            sample_rate: 22050,
            channels: 2,
            samples: vec![0.3; 200],
        },
        host_block(22050),
        1,
    )
    .unwrap()
    .0;
    assert_eq!(st.samples.len(), 200 + 2 * 5513);
}

#[test]
fn both_sides_of_a_pause_are_faded() {
    let config = cfg(json!({"sentence_pause_ms": 100, "fade_in_ms": 5, "fade_out_ms": 10}));
    let sentence = mono(vec![0.7; 300]);
    let a = drive(&config, &sentence, 64, 1).unwrap().0.samples;
    let b = drive(&config, &sentence, 64, 2).unwrap().0.samples;
    assert_eq!(a.len(), 400);
    assert_eq!(a[100], 0.0); // fade-in after the pause
    assert_eq!(a[399], 0.0); // fade-out before the next sentence's pause
    assert_eq!(b[100], 0.0);
    let joined: Vec<f32> = a.iter().chain(&b).copied().collect();
    assert!(max_jump(&joined) < 0.7 * std::f32::consts::PI / 10.0 + 1e-6);
}

#[test]
fn empty_input_gives_empty_output_with_or_without_a_pause() {
    for utterance in [0, 1] {
        let (out, _) = drive(
            &cfg(json!({"sentence_pause_ms": 100})),
            &mono(vec![]),
            1,
            utterance,
        )
        .unwrap();
        assert!(out.samples.is_empty());
        assert_eq!(out.sample_rate, RATE);
    }
}

#[test]
fn a_format_change_or_a_foreign_state_is_refused() {
    let call = |audio: Audio, offset: u64, state: Vec<u8>| {
        TrimFade::process_block(
            &Context::default(),
            &cfg(json!({})),
            Block {
                audio,
                position: BlockPosition {
                    index: offset as u32,
                    offset,
                    ..BlockPosition::default()
                },
                state,
            },
        )
    };
    let first = call(mono(vec![0.5; 10]), 0, Vec::new()).unwrap();
    let r = call(
        Audio {
            sample_rate: 2 * RATE,
            channels: 1,
            samples: vec![0.5; 10],
        },
        10,
        first.state.clone(),
    );
    assert!(matches!(r, Err(StageError::InvalidInput(_))), "{r:?}");
    // A state that does not end where the block starts, or is not ours.
    let r = call(mono(vec![0.5; 10]), 20, first.state);
    assert!(matches!(r, Err(StageError::PluginFault(_))), "{r:?}");
    let r = call(mono(vec![0.5; 10]), 0, vec![9, 9, 9]);
    assert!(matches!(r, Err(StageError::PluginFault(_))), "{r:?}");
}

/// A deterministic pseudo-random sequence in [0, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// Speech-like audio: `lead` s of noise floor (-70 dB), then `speech` s of
/// syllables (a harmonic tone of 90-260 Hz under a raised-cosine envelope,
/// 60-300 ms, peaks of -30 to -2 dBFS, some soft) separated by 20-400 ms
/// gaps, then `trail` s of floor. Channel `k` is the same at `1 - k/4` of the
/// level, so every channel counts.
fn speechlike(seed: u64, rate: u32, channels: u16, lead: f64, speech: f64, trail: f64) -> Audio {
    let mut rng = Lcg(seed);
    let r = f64::from(rate);
    let frames = |s: f64| (s * r) as usize;
    let mut mono = vec![0.0f64; frames(lead)];
    let speech_end = mono.len() + frames(speech);
    while mono.len() < speech_end {
        let len = frames(rng.range(0.06, 0.3)).min(speech_end - mono.len());
        let f0 = rng.range(90.0, 260.0);
        let peak = 10f64.powf(rng.range(-30.0, -2.0) / 20.0);
        for i in 0..len {
            let t = i as f64 / r;
            let env = 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / len as f64).cos();
            let tone: f64 = (1..=4)
                .map(|h| (std::f64::consts::TAU * f0 * h as f64 * t).sin() / h as f64)
                .sum();
            mono.push(peak * env * tone / 2.1);
        }
        let gap = frames(rng.range(0.02, 0.4)).min(speech_end - mono.len());
        mono.extend(std::iter::repeat_n(0.0, gap));
    }
    mono.extend(std::iter::repeat_n(0.0, frames(trail)));
    let floor = 10f64.powf(-70.0 / 20.0) * 3f64.sqrt();
    let mut samples = Vec::with_capacity(mono.len() * usize::from(channels));
    for x in mono {
        for k in 0..channels {
            let level = 1.0 - f64::from(k) / 4.0;
            samples.push(((x + floor * rng.range(-1.0, 1.0)) * level) as f32);
        }
    }
    Audio {
        sample_rate: rate,
        channels,
        samples,
    }
}

/// The 0.2 algorithm's output for a whole utterance.
fn reference_output(config: &serde_json::Value, audio: &Audio) -> Vec<f32> {
    let s = Settings::from_config(&cfg(config.clone())).unwrap();
    reference::whole(&s, audio.clone()).unwrap().samples
}

/// The largest difference from `want` relative to its peak, in dB (−∞ when
/// identical); the lengths must agree.
fn diff_db(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let peak = want.iter().fold(0f32, |m, x| m.max(x.abs()));
    let diff = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    if diff == 0.0 {
        f64::NEG_INFINITY
    } else {
        20.0 * (f64::from(diff) / f64::from(peak)).log10()
    }
}

/// Runs `audio` at each block size and compares it with the reference.
fn assert_matches_reference(
    name: &str,
    config: serde_json::Value,
    audio: &Audio,
    blocks: &[usize],
) {
    let want = reference_output(&config, audio);
    assert!(!want.is_empty(), "{name}: the reference kept nothing");
    for &block in blocks {
        let got = run_blocks::<TrimFade>(&Context::default(), &cfg(config.clone()), audio, block)
            .unwrap()
            .samples;
        let db = diff_db(&got, &want);
        println!(
            "{name}, blocks of {block}: {} of {} samples kept, max diff {db} dB",
            got.len(),
            audio.samples.len()
        );
        assert!(db <= -60.0, "{name}, blocks of {block}: {db} dB");
        assert!(got == want, "{name}, blocks of {block}: not bit-exact");
    }
}

#[test]
fn matches_the_whole_utterance_reference_at_every_block_size() {
    let tuned = json!({"threshold_db": -40, "window_ms": 25, "keep_ms": 0,
                       "fade_in_ms": 50, "fade_out_ms": 120, "fade_shape": "linear"});
    let long_fades = json!({"keep_ms": 200, "fade_in_ms": 800, "fade_out_ms": 1500});
    let cases = [
        (
            "3 s, 16 kHz",
            json!({}),
            speechlike(1, 16000, 1, 0.4, 2.2, 0.4),
        ),
        (
            "12 s, 22.05 kHz",
            json!({}),
            speechlike(2, 22050, 1, 1.3, 10.0, 0.7),
        ),
        (
            "60 s, 22.05 kHz",
            json!({}),
            speechlike(3, 22050, 1, 0.5, 59.0, 0.5),
        ),
        (
            "8 s, 48 kHz stereo, tuned",
            tuned,
            speechlike(4, 48000, 2, 0.2, 7.5, 0.3),
        ),
        (
            "5 s, 16 kHz, long fades",
            long_fades,
            speechlike(5, 16000, 1, 1.0, 3.0, 1.0),
        ),
        (
            "4 s, 24 kHz, 3 channels, 1 ms windows",
            json!({"window_ms": 1}),
            speechlike(6, 24000, 3, 0.05, 3.9, 0.05),
        ),
    ];
    for (name, config, audio) in cases {
        let rate = audio.sample_rate as usize;
        assert_matches_reference(name, config, &audio, &[10 * rate, rate, 4097]);
    }
}

#[test]
fn matches_the_reference_in_one_frame_blocks() {
    let audio = speechlike(7, 8000, 1, 0.3, 1.0, 0.2);
    assert_matches_reference("1.5 s, 8 kHz", json!({}), &audio, &[1, 2, 3]);
    let stereo = Audio {
        channels: 2,
        ..mono(burst(207, 289, 504, 0.5, 1e-4).repeat(2))
    };
    assert_matches_reference("stereo bursts", json!({"fade_out_ms": 33}), &stereo, &[1]);
}

#[test]
fn past_the_tail_the_trailing_edge_keeps_at_most_a_window_more() {
    // Over 2 s of silence at the end: the end-aligned scan runs off the
    // tail and the sliding-window candidate decides (detect.rs).
    let config = json!({});
    for seed in 10..14 {
        let audio = speechlike(seed, 16000, 1, 0.3, 4.0, 3.5);
        let want = reference_output(&config, &audio);
        let got = run(config.clone(), audio).samples;
        let extra = got.len() - want.len();
        println!("seed {seed}: {extra} frames more than the reference");
        assert!(extra <= 160, "{extra} frames more than one window");
        let unfaded = want.len() - 160;
        assert_eq!(got[..unfaded], want[..unfaded]);
    }
}

#[test]
fn state_stays_bounded_over_half_an_hour() {
    // 32 minutes at 8 kHz in the host's 10 s blocks: the state never grows
    // past one full tail (2 s) and the numbers beside it.
    let long = speechlike(20, 8000, 1, 0.5, 32.0 * 60.0, 0.5);
    let config = cfg(json!({}));
    let (out, max_state) = drive(&config, &long, host_block(8000), 0).unwrap();
    let full_tail = MAX_STATE - detect::TAIL_BYTES + 2 * 8000 * 4;
    println!("32 min at 8 kHz: largest state {max_state} bytes");
    assert_eq!(max_state, full_tail);
    let (_, one_minute) =
        drive(&config, &speechlike(21, 8000, 1, 0.5, 60.0, 0.5), 80000, 0).unwrap();
    assert_eq!(one_minute, max_state);
    assert!(out.samples == reference_output(&json!({}), &long));
    // Where the byte cap binds (96 kHz × 8 channels: 2 s would be 6 MiB),
    // the state reaches MAX_STATE and no more.
    let wide = speechlike(22, 96000, 8, 0.2, 11.0, 0.2);
    let (out, max_state) = drive(&config, &wide, host_block(96000), 0).unwrap();
    println!("11.4 s at 96 kHz × 8: largest state {max_state} bytes");
    assert_eq!(max_state, MAX_STATE);
    const { assert!(MAX_STATE <= MAX_STATE_BYTES) };
    assert!(out.samples == reference_output(&json!({}), &wide));
}
