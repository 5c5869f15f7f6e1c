//! `voxpipe-bench conv`: the engine's direct convolution against candle's im2col
//! `conv1d` on the model's shapes, on one and two threads. A measuring tool, not a check
//! (machines here are noisy: run it twice); it replaces the engine's ignored
//! `conv_speed` test.

use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};

use voxpipe_engine::vits::bench::{set_max_threads, DirectConv};

/// (in, out, kernel, dilation, length, what): decoder stages 0–2 of a 15 s sentence, a
/// flow WaveNet in_layer and its pointwise res/skip, and a text-encoder FFN conv at its
/// frame rate.
const SHAPES: [(usize, usize, usize, usize, usize, &str); 7] = [
    (128, 128, 3, 1, 10_776, "decoder stage 0"),
    (128, 128, 7, 3, 10_776, "decoder stage 0"),
    (64, 64, 5, 2, 86_208, "decoder stage 1"),
    (32, 32, 5, 2, 344_832, "decoder stage 2"),
    (192, 384, 5, 1, 1_347, "flow in_layer"),
    (192, 384, 1, 1, 1_347, "flow res_skip"),
    (192, 768, 3, 1, 623, "text-encoder FFN"),
];

/// Worker-thread caps the direct convolution is timed with.
const THREADS: [usize; 2] = [1, 2];

/// Median seconds of `reps` calls of `f`, after one warm-up call.
fn median(reps: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    f()?;
    let mut v = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64());
    }
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

pub fn conv_bench(reps: usize, tile: Option<&str>) -> anyhow::Result<()> {
    let reps = reps.max(1);
    let tile = tile
        .map(|t| -> anyhow::Result<(usize, usize)> {
            let (cb, nv) = t.split_once('x').context("--tile takes CBxNV, e.g. 8x3")?;
            Ok((cb.parse()?, nv.parse()?))
        })
        .transpose()?;
    let tile_column = tile.map_or(String::new(), |(cb, nv)| {
        format!(" direct, {cb}×{nv} tile, 1 thread |")
    });
    let dev = Device::Cpu;
    println!(
        "Direct convolution (LeakyReLU fused, kernels at `{}`; {} picks another level) vs \
         candle's im2col conv1d, medians of {reps} runs:\n",
        voxpipe_engine::vits::cpu_isa(),
        voxpipe_engine::vits::ISA_ENV,
    );
    println!(
        "| shape | layer | direct, 1 thread | direct, 2 threads |{tile_column} candle im2col (its threads) |"
    );
    println!("|---|---|---:|---:|{}---:|", tile.map_or("", |_| "---:|"));
    let cell = |s: f64, gmacs: f64| format!("{:.2} ms ({:.1} GMAC/s)", s * 1e3, gmacs / s);
    for (cin, cout, k, d, len, what) in SHAPES {
        let x = Tensor::zeros((1, cin, len), DType::F32, &dev)?;
        let w = Tensor::ones((cout, cin, k), DType::F32, &dev)?;
        let conv = DirectConv::new(&w, d)?;
        let gmacs = (cin * cout * k * len) as f64 / 1e9;
        let mut cells = Vec::new();
        for threads in THREADS {
            set_max_threads(threads);
            let s = median(reps, || {
                conv.forward(&x, Some(0.1))?;
                Ok(())
            });
            set_max_threads(usize::MAX);
            cells.push(cell(s?, gmacs));
        }
        if let Some((cb, nv)) = tile {
            let conv = DirectConv::with_tile(&w, d, cb, nv)?;
            set_max_threads(1);
            let s = median(reps, || {
                conv.forward(&x, Some(0.1))?;
                Ok(())
            });
            set_max_threads(usize::MAX);
            cells.push(cell(s?, gmacs));
        }
        let s = median(reps, || {
            x.conv1d(&w, d * (k - 1) / 2, 1, d, 1)?;
            Ok(())
        })?;
        cells.push(cell(s, gmacs));
        println!(
            "| {cin}→{cout} k{k} d{d} T {len} | {what} | {} |",
            cells.join(" | ")
        );
    }
    Ok(())
}
