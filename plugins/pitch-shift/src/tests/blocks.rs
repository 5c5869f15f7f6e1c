//! The block-driven stage against the whole-utterance algorithm it replaces
//! ([`super::reference`]), at the host's block size and odd ones, and the
//! state's size over long utterances.

use super::*;
use voxpipe_plugin_audio::{BlockPosition, MAX_STATE_BYTES};

/// A speech-like signal: a harmonic voice (harmonics up to 5 kHz) whose
/// pitch glides between 90 and 260 Hz, syllables at 4 Hz, a pause every
/// three seconds, and a little noise; each channel at its own pitch.
/// Deterministic.
fn speech(secs: f64, sr: u32, channels: u16) -> Audio {
    let frames = (secs * sr as f64) as usize;
    let mut samples = vec![0.0f32; frames * channels as usize];
    let mut seed = 7u32;
    for ch in 0..channels as usize {
        let mut phase = 0.0f64;
        for i in 0..frames {
            let t = i as f64 / sr as f64;
            let f0 = (175.0 + 85.0 * (TAU * 0.3 * t).sin()) * (1.0 + 0.1 * ch as f64);
            phase = (phase + TAU * f0 / sr as f64) % TAU;
            let harmonics = (5000.0 / f0) as usize;
            let voice: f64 = (1..=harmonics)
                .map(|k| (k as f64 * phase).sin() / k as f64)
                .sum();
            let syllable = (TAU * 2.0 * t).sin().abs().sqrt();
            let pause = if t % 3.0 > 2.6 { 0.0 } else { 1.0 };
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (seed >> 8) as f64 / (1u32 << 23) as f64 - 1.0;
            samples[i * channels as usize + ch] =
                (pause * (0.3 * syllable * voice + 0.02 * noise)) as f32;
        }
    }
    Audio {
        sample_rate: sr,
        channels,
        samples,
    }
}

/// How far `got` is from `want`: the largest sample difference relative
/// to `want`'s peak, in dB (−∞ when equal), and whether every sample is
/// bit for bit the same. Both must have the same shape.
fn distance(got: &Audio, want: &Audio) -> (f64, bool) {
    assert_eq!(
        (got.sample_rate, got.channels, got.samples.len()),
        (want.sample_rate, want.channels, want.samples.len())
    );
    let peak = want.samples.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = got
        .samples
        .iter()
        .zip(&want.samples)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    let exact = got
        .samples
        .iter()
        .zip(&want.samples)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    (20.0 * (diff as f64 / peak.max(1e-30) as f64).log10(), exact)
}

/// Runs the stage at each block size and checks it against the reference
/// (within −100 dB: the block port was bit-exact; since then the resampler
/// sums its kernel from a bank of filters, whose roundings differ from the
/// reference's table lookups by about −110 dB) and against the first block
/// size, bit for bit: the block size never changes a sample.
fn check(ctx: &Context, cfg: &serde_json::Value, audio: &Audio, blocks: &[usize]) {
    let c = config(cfg.clone());
    let want = reference::process(ctx, &c, audio.clone()).unwrap();
    let mut first: Option<Audio> = None;
    for &block in blocks {
        let got = run_blocks::<PitchShift>(ctx, &c, audio, block).unwrap();
        let (db, exact) = distance(&got, &want);
        let secs = audio.samples.len() as f64 / audio.channels as f64 / audio.sample_rate as f64;
        eprintln!(
            "{cfg} style {:?}, {secs:.2} s at {} Hz × {}, blocks of {block}: {db:.1} dB, bit-exact {exact}",
            ctx.style.as_ref().and_then(|s| s.pitch),
            audio.sample_rate,
            audio.channels
        );
        assert!(db <= -100.0, "{cfg}, blocks of {block}: {db:.1} dB");
        match &first {
            None => first = Some(got),
            Some(first) => {
                let (db, exact) = distance(&got, first);
                assert!(
                    exact,
                    "{cfg}, blocks of {block}: not bit-exact with blocks of {} ({db:.1} dB)",
                    blocks[0]
                );
            }
        }
    }
}

/// The shifts compared: pitch 0, ±3, ±12 semitones, and tempo with and
/// without pitch (2.0 with +12 is pure resampling, tempo only is the
/// vocoder alone).
fn shifts() -> Vec<serde_json::Value> {
    vec![
        json!({}),
        json!({ "semitones": 3 }),
        json!({ "semitones": -3 }),
        json!({ "semitones": 12 }),
        json!({ "semitones": -12 }),
        json!({ "tempo": 0.8 }),
        json!({ "tempo": 1.25, "semitones": -3 }),
        json!({ "tempo": 2.0, "semitones": 12 }),
        json!({ "tempo": 0.5, "semitones": 7.5 }),
    ]
}

#[test]
fn matches_the_reference_at_host_and_odd_block_sizes() {
    let ctx = ctx_with_pitch(None);
    let host = (MAX_BLOCK_SECONDS * SR) as usize;
    let audio = speech(3.0, SR, 1);
    for cfg in shifts() {
        check(&ctx, &cfg, &audio, &[host, SR as usize, 4097]);
    }
    // Three host blocks, the last one short.
    let audio = speech(21.5, SR, 1);
    for cfg in [json!({ "semitones": 12 }), json!({ "tempo": 0.8 })] {
        check(&ctx, &cfg, &audio, &[host, 4097]);
    }
}

#[test]
fn matches_the_reference_over_a_minute() {
    let ctx = ctx_with_pitch(None);
    let audio = speech(61.0, SR, 1);
    let host = (MAX_BLOCK_SECONDS * SR) as usize;
    check(&ctx, &json!({ "semitones": -12 }), &audio, &[host, 4097]);
}

#[test]
fn matches_the_reference_one_frame_at_a_time() {
    let ctx = ctx_with_pitch(None);
    let audio = speech(0.1, SR, 1);
    for cfg in [
        json!({ "semitones": -3 }),
        json!({ "tempo": 0.8 }),
        json!({ "tempo": 2.0, "semitones": 12 }),
    ] {
        check(&ctx, &cfg, &audio, &[1, 255]);
    }
}

#[test]
fn matches_the_reference_with_a_style_channels_and_other_rates() {
    // The style's pitch adds to the config's semitones.
    check(
        &ctx_with_pitch(Some(5.0)),
        &json!({ "semitones": -2 }),
        &speech(4.0, SR, 1),
        &[4097],
    );
    for (sr, channels) in [(44_100, 2), (8000, 1), (96_000, 3)] {
        let audio = speech(1.0, sr, channels);
        for cfg in [json!({ "semitones": -12 }), json!({ "tempo": 1.5 })] {
            check(&ctx_with_pitch(None), &cfg, &audio, &[sr as usize, 4097]);
        }
    }
    // Empty and very short utterances.
    for frames in [0, 1, 100, 1500] {
        let audio = mono(sine(220.0, 1.0, SR, 0.5)[..frames].to_vec(), SR);
        for cfg in shifts() {
            check(&ctx_with_pitch(None), &cfg, &audio, &[7, 4097]);
        }
    }
}

/// Drives the stage like `run_blocks` and returns the output's length in
/// frames and the size of the state each block returned, in bytes. `audio` is made
/// block by block (`make(offset, frames)`), so that hours of it need no
/// memory.
fn run_long(
    cfg: &serde_json::Value,
    sample_rate: u32,
    channels: u16,
    total_frames: u64,
    block_frames: u64,
    make: impl Fn(u64, u64) -> Vec<f32>,
) -> (u64, Vec<usize>) {
    let c = config(cfg.clone());
    let ctx = ctx_with_pitch(None);
    let (mut state, mut sizes, mut out_frames) = (Vec::new(), Vec::new(), 0);
    let mut offset = 0;
    for index in 0.. {
        let frames = block_frames.min(total_frames - offset);
        let block = Block {
            audio: Audio {
                sample_rate,
                channels,
                samples: make(offset, frames),
            },
            position: BlockPosition {
                index,
                offset,
                last: offset + frames == total_frames,
                ..BlockPosition::default()
            },
            state: std::mem::take(&mut state),
        };
        let out = PitchShift::process_block(&ctx, &c, block).unwrap();
        out_frames += (out.audio.samples.len() / channels as usize) as u64;
        sizes.push(out.state.len());
        state = out.state;
        offset += frames;
        if offset == total_frames {
            break;
        }
    }
    (out_frames, sizes)
}

/// The state's bound per channel for a frame size `n`: four spectra of
/// `n/2 + 1` bins, under `n` samples each of held input and open
/// overlap-add sums (signal and window), the resampler's reach, and the
/// counters and list lengths.
fn state_bound(n: usize, channels: usize) -> usize {
    let per_channel = 4 * 4 * (n / 2 + 1) + 3 * 4 * n + 4 * 72 + 200;
    28 + channels * per_channel
}

#[test]
fn the_state_stays_under_its_bound_with_8_channels_at_96_khz() {
    // The largest frame (4096) and channel count, and the shifts that hold
    // the most: squeezing by 4 (the smallest synthesis hop, so the longest
    // open sums) and +12 (the resampler's longest reach).
    let sr = 96_000;
    let audio = speech(0.6, sr, 8);
    for cfg in [
        json!({ "semitones": -12, "tempo": 2.0 }),
        json!({ "semitones": 12, "tempo": 0.5 }),
        json!({ "semitones": 12 }),
    ] {
        let total = (audio.samples.len() / 8) as u64;
        let (out, sizes) = run_long(&cfg, sr, 8, total, sr as u64 / 4, |offset, frames| {
            audio.samples[offset as usize * 8..(offset + frames) as usize * 8].to_vec()
        });
        let largest = sizes.into_iter().max().unwrap();
        let tempo = cfg["tempo"].as_f64().unwrap_or(1.0);
        assert_eq!(out, (total as f64 / tempo).round() as u64);
        eprintln!("{cfg}: 8 channels at 96 kHz, largest state {largest} bytes");
        assert!(largest <= state_bound(4096, 8), "{cfg}: {largest}");
    }
    assert!(state_bound(4096, 8) < MAX_STATE_BYTES);
}

/// 35 minutes at the host's 10 s blocks: the state does not grow with the
/// utterance (the largest over 35 minutes is no larger than over the first
/// minute, give or take the few samples a block boundary moves) and stays
/// under its bound, and the output keeps its length. Slow in a debug build:
/// `cargo test --release -p pitch-shift -- --ignored`.
#[test]
#[ignore = "35 minutes of audio; run with --release -- --ignored"]
fn the_state_does_not_grow_over_35_minutes() {
    let total = 35 * 60 * SR as u64;
    let block = (MAX_BLOCK_SECONDS * SR) as u64;
    // A chirp with harmonics, generated block by block: every block holds
    // sound, so the vocoder's buffers are as full as they get.
    let make = |offset: u64, frames: u64| -> Vec<f32> {
        (offset..offset + frames)
            .map(|i| {
                let t = i as f64 / SR as f64;
                let phase = TAU * (150.0 * t + 40.0 * (t % 7.0).powi(2));
                (0.3 * (phase.sin() + 0.5 * (2.0 * phase).sin())) as f32
            })
            .collect()
    };
    for cfg in [
        json!({ "semitones": 12 }),
        json!({ "semitones": -3 }),
        json!({ "tempo": 1.25, "semitones": -12 }),
    ] {
        let (out, sizes) = run_long(&cfg, SR, 1, total, block, make);
        let tempo = cfg["tempo"].as_f64().unwrap_or(1.0);
        assert_eq!(out, (total as f64 / tempo).round() as u64);
        let first_minute = sizes[..6].iter().max().unwrap();
        let largest = sizes.iter().max().unwrap();
        eprintln!(
            "{cfg}: 35 min in {} blocks of 10 s, largest state {largest} bytes \
             (over the first minute: {first_minute}, bound {})",
            sizes.len(),
            state_bound(1024, 1)
        );
        assert!(largest <= &state_bound(1024, 1), "{cfg}: {largest}");
        assert!(largest - first_minute <= 4 * 64, "{cfg}: grew to {largest}");
    }
}
