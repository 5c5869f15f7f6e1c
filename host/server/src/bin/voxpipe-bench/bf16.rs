//! `voxpipe-bench bf16`: what a bfloat16 path would cost in fidelity (issue 18, part 3),
//! measured on any CPU.
//!
//! A bf16 kernel (AVX512-BF16 dot products, AMX-BF16 tiles) multiplies bf16 weights by
//! bf16 activations — products exact in f32 — and sums in f32. `Kernels::Bf16Emulated`
//! computes exactly that with the f32 kernels: the flow's and the decoder's convolution
//! weights and activated inputs rounded to bf16, sums in f32, the text encoder and the
//! duration predictor left in f32 (so durations stay exact; they are about 13 % of the
//! model's time, the flow and the decoder the rest). It is no faster — the point is the
//! fidelity a bf16 kernel would have, before anyone writes one for hardware this machine
//! may lack.
//!
//! Against ONNX Runtime in f32 (tests/engine/golden.py, noise scales 0 so both sides are
//! deterministic) on the engine bench's five sentences: durations, SNR, and a
//! mel-cepstral distortion (MCD) — SNR is harsh on vocoders, whose small phase
//! differences it counts as noise; MCD compares spectral envelopes. MCD here: 1024-point
//! frames, hop 256, Hann window, 80 mel bands (HTK mel scale, 0 Hz to Nyquist), natural-log
//! band energies, DCT-II (orthonormal) to cepstra c1..c13 (c0, the level, left out),
//! `MCD = 10 / ln 10 · sqrt(2 Σ (c − c')²)` averaged over the frames whose reference energy
//! is within 60 dB of the loudest. Our f32 path is shown beside it as the floor.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use candle_core::Device;
use voxpipe_engine::onnx::read_weights;
use voxpipe_engine::synth::LoadedVoice;
use voxpipe_engine::vits::{Kernels, Params, Voice};

use super::engine::sentence_cases;
use super::repo_root;

const FRAME: usize = 1024;
const HOP: usize = 256;
const MELS: usize = 80;
const CEPSTRA: usize = 13;

/// `parts`: which of `flow` and `decoder` run in bf16.
pub fn bf16_bench(
    voices: &Path,
    voice_name: &str,
    reps: usize,
    parts: &[String],
) -> anyhow::Result<()> {
    let (flow, decoder) = (
        parts.iter().any(|p| p == "flow"),
        parts.iter().any(|p| p == "decoder"),
    );
    anyhow::ensure!(
        parts.iter().all(|p| p == "flow" || p == "decoder") && (flow || decoder),
        "--parts takes flow, decoder or both"
    );
    let root = repo_root();
    let voice = LoadedVoice::load_on(&root.join(voices), voice_name, &Device::Cpu)?;
    let rate = voice.sample_rate();
    let dir = tempfile::tempdir()?;
    let (_, sentences) = sentence_cases(&voice, dir.path())?;
    let out = dir.path().join("golden");
    let status = Command::new("python3")
        .arg(root.join("tests/engine/golden.py"))
        .arg(&voice.entry.model)
        .arg(&sentences)
        .arg(&out)
        .status()
        .context("running tests/engine/golden.py (pip install onnxruntime onnx)")?;
    anyhow::ensure!(status.success(), "golden.py failed");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json"))?)?;

    let weights = read_weights(&voice.entry.model)?;
    let f32_voice = Voice::from_onnx_with(&weights, &Device::Cpu, Kernels::Auto)?;
    let bf16_voice = Voice::from_onnx_with(
        &weights,
        &Device::Cpu,
        Kernels::Bf16Emulated { flow, decoder },
    )?;
    let params = Params::deterministic();

    println!(
        "## bf16 fidelity (emulated: the convolution weights and inputs of the {} rounded to \
         bfloat16, sums in f32; text encoder and duration predictor f32) vs ONNX Runtime f32, {voice_name}\n",
        parts.join(" and ")
    );
    println!(
        "| sentence | ids | audio | durations | f32: SNR | f32: MCD | bf16: SNR | bf16: MCD | f32 time | bf16 (emulated) time |"
    );
    println!("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    let (mut snrs, mut mcds) = (Vec::new(), Vec::new());
    for (i, golden) in manifest["sentences"]
        .as_array()
        .context("manifest")?
        .iter()
        .enumerate()
    {
        let ids: Vec<i64> = serde_json::from_value(golden["ids"].clone())?;
        let durations: Vec<u32> = serde_json::from_value(golden["durations"].clone())?;
        let bytes = std::fs::read(out.join(golden["audio"].as_str().context("audio")?))?;
        let reference: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let mut row = Vec::new();
        let mut same_durations = true;
        let mut times = Vec::new();
        for v in [&f32_voice, &bf16_voice] {
            let ours = v.synthesize(&ids, &params)?;
            same_durations &= ours.durations == durations;
            anyhow::ensure!(
                ours.audio.len() == reference.len() || ours.durations != durations,
                "sentence {i}: same durations, different lengths"
            );
            let n = ours.audio.len().min(reference.len());
            row.push((
                snr_db(&reference[..n], &ours.audio[..n]),
                mcd_db(&reference[..n], &ours.audio[..n], rate),
            ));
            let mut t = Vec::new();
            for _ in 0..reps {
                let start = Instant::now();
                v.synthesize(&ids, &params)?;
                t.push(start.elapsed().as_secs_f64() * 1e3);
            }
            t.sort_by(f64::total_cmp);
            times.push(t[t.len() / 2]);
        }
        snrs.push(row[1].0);
        mcds.push(row[1].1);
        println!(
            "| {} | {} | {:.2} s | {} | {:.1} dB | {:.3} dB | {:.1} dB | {:.3} dB | {:.0} ms | {:.0} ms |",
            i + 1,
            ids.len(),
            reference.len() as f64 / f64::from(rate),
            if same_durations { "exact" } else { "DIFFER" },
            row[0].0,
            row[0].1,
            row[1].0,
            row[1].1,
            times[0],
            times[1],
        );
    }
    snrs.sort_by(f64::total_cmp);
    mcds.sort_by(f64::total_cmp);
    println!(
        "\nbf16 (emulated) against ONNX Runtime f32: SNR median {:.1} dB (worst {:.1}), MCD median {:.3} dB \
         (worst {:.3}); our f32 path, the floor, is the f32 columns. MCD weighs every mel band \
         alike, so a broadband error floor shows in the quiet high bands even at a high SNR. \
         Times are medians of {reps}: the emulation rounds in f32 and is not a speed figure.",
        snrs[snrs.len() / 2],
        snrs[0],
        mcds[mcds.len() / 2],
        mcds[mcds.len() - 1],
    );
    Ok(())
}

fn snr_db(reference: &[f32], ours: &[f32]) -> f64 {
    let (mut signal, mut noise) = (0.0f64, 0.0f64);
    for (&r, &o) in reference.iter().zip(ours) {
        signal += f64::from(r) * f64::from(r);
        noise += (f64::from(r) - f64::from(o)).powi(2);
    }
    10.0 * (signal / noise.max(1e-30)).log10()
}

/// Mel-cepstral distortion between two time-aligned signals (see the module docs).
fn mcd_db(reference: &[f32], ours: &[f32], rate: u32) -> f64 {
    let a = cepstra(reference, rate);
    let b = cepstra(ours, rate);
    let loudest = a.iter().map(|f| f.0).fold(f64::NEG_INFINITY, f64::max);
    let (mut sum, mut n) = (0.0, 0usize);
    for ((ea, ca), (_, cb)) in a.iter().zip(&b) {
        // Energies are natural-log: 60 dB is 6 ln 10.
        if *ea < loudest - 6.0 * std::f64::consts::LN_10 {
            continue;
        }
        let d: f64 = ca.iter().zip(cb).map(|(x, y)| (x - y).powi(2)).sum();
        sum += (2.0 * d).sqrt();
        n += 1;
    }
    10.0 / std::f64::consts::LN_10 * sum / n.max(1) as f64
}

/// Per frame: ln of its energy, and its cepstra c1..c13.
fn cepstra(x: &[f32], rate: u32) -> Vec<(f64, [f64; CEPSTRA])> {
    let window: Vec<f64> = (0..FRAME)
        .map(|j| 0.5 - 0.5 * (std::f64::consts::TAU * j as f64 / FRAME as f64).cos())
        .collect();
    let bank = mel_bank(rate);
    let mut frames = Vec::new();
    let mut start = 0;
    while start + FRAME <= x.len() {
        let mut re: Vec<f64> = x[start..start + FRAME]
            .iter()
            .zip(&window)
            .map(|(&s, &w)| f64::from(s) * w)
            .collect();
        let mut im = vec![0.0; FRAME];
        fft(&mut re, &mut im);
        let power: Vec<f64> = (0..=FRAME / 2)
            .map(|k| re[k] * re[k] + im[k] * im[k])
            .collect();
        let energy = power.iter().sum::<f64>().max(1e-30).ln();
        let logmel: Vec<f64> = bank
            .iter()
            .map(|band| {
                band.iter()
                    .map(|&(k, w)| w * power[k])
                    .sum::<f64>()
                    .max(1e-12)
                    .ln()
            })
            .collect();
        let mut c = [0.0; CEPSTRA];
        for (q, cq) in c.iter_mut().enumerate() {
            let q = q + 1;
            *cq = (2.0 / MELS as f64).sqrt()
                * logmel
                    .iter()
                    .enumerate()
                    .map(|(m, &l)| {
                        l * (std::f64::consts::PI * q as f64 * (m as f64 + 0.5) / MELS as f64).cos()
                    })
                    .sum::<f64>();
        }
        frames.push((energy, c));
        start += HOP;
    }
    frames
}

/// Triangular mel filters (HTK mel scale, 0 Hz to Nyquist): per band, (bin, weight).
fn mel_bank(rate: u32) -> Vec<Vec<(usize, f64)>> {
    let mel = |f: f64| 2595.0 * (1.0 + f / 700.0).log10();
    let hz = |m: f64| 700.0 * (10f64.powf(m / 2595.0) - 1.0);
    let nyquist = f64::from(rate) / 2.0;
    let edges: Vec<f64> = (0..MELS + 2)
        .map(|i| hz(mel(nyquist) * i as f64 / (MELS + 1) as f64))
        .collect();
    let bin_hz = f64::from(rate) / FRAME as f64;
    (0..MELS)
        .map(|b| {
            let (lo, mid, hi) = (edges[b], edges[b + 1], edges[b + 2]);
            (0..=FRAME / 2)
                .filter_map(|k| {
                    let f = k as f64 * bin_hz;
                    let w = if f > lo && f <= mid {
                        (f - lo) / (mid - lo)
                    } else if f > mid && f < hi {
                        (hi - f) / (hi - mid)
                    } else {
                        0.0
                    };
                    (w > 0.0).then_some((k, w))
                })
                .collect()
        })
        .collect()
}

/// In-place radix-2 complex FFT (length a power of two).
fn fft(re: &mut [f64], im: &mut [f64]) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let angle = -std::f64::consts::TAU / len as f64;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (s, c) = (angle * k as f64).sin_cos();
                let (a, b) = (start + k, start + k + len / 2);
                let (tr, ti) = (re[b] * c - im[b] * s, re[b] * s + im[b] * c);
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len <<= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_matches_a_direct_dft_and_mcd_of_a_signal_with_itself_is_zero() {
        let x: Vec<f64> = (0..16).map(|i| ((i * 7) % 5) as f64 - 2.0).collect();
        let (mut re, mut im) = (x.clone(), vec![0.0; 16]);
        fft(&mut re, &mut im);
        for k in 0..16 {
            let (mut r, mut i) = (0.0, 0.0);
            for (n, &v) in x.iter().enumerate() {
                let a = -std::f64::consts::TAU * (k * n) as f64 / 16.0;
                r += v * a.cos();
                i += v * a.sin();
            }
            assert!(
                (re[k] - r).abs() < 1e-9 && (im[k] - i).abs() < 1e-9,
                "bin {k}"
            );
        }
        let s: Vec<f32> = (0..8000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        assert_eq!(mcd_db(&s, &s, 22050), 0.0);
        // A level change moves c0 only, which MCD leaves out (broadband, so no band is
        // at the floor).
        let mut state = 1u32;
        let noise: Vec<f32> = (0..8000)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect();
        let louder: Vec<f32> = noise.iter().map(|v| v * 1.5).collect();
        assert!(mcd_db(&noise, &louder, 22050) < 1e-6);
        let other: Vec<f32> = (0..8000).map(|i| (i as f32 * 0.2).sin() * 0.3).collect();
        assert!(mcd_db(&s, &other, 22050) > 1.0);
    }
}
