//! `voxpipe-bench engine`: the native voice next to ONNX Runtime and Piper 1.8 on the
//! same voice and phoneme ids, interleaved call by call so that both see the same machine.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use voxpipe_engine::device::{device_label, gpu_memory, DeviceSpec};
use voxpipe_engine::phonemize::Phonemizer;
use voxpipe_engine::synth::{LoadedVoice, SynthOptions, DEFAULT_DECODER_CHUNKS};
use voxpipe_engine::vits::bench::{measure_peak, Peak};
use voxpipe_engine::vits::DecoderChunks;

use super::{repo_root, stats};

pub(crate) const TEXTS: [&str; 5] = [
    "Hi!",
    "The weather is nice today.",
    "Is this the right way to the station, or should we turn left at the next corner?",
    "The quick brown fox jumps over the lazy dog; meanwhile, the cat sleeps soundly by the warm fire, dreaming of summer.",
    "Loudness normalization, sentence splitting and pitch shifting all run as sandboxed plugins, while the voice itself runs natively, sentence by sentence, on the CPU or a GPU, and every stage appears as one span in a trace that an operator can open from a user's trace id.",
];

/// The phoneme ids of [`TEXTS`] for `voice`, and `sentences.json` in `dir` listing them
/// (what tests/engine/ort_bench.py and golden.py read).
pub(crate) fn sentence_cases(
    voice: &LoadedVoice,
    dir: &Path,
) -> anyhow::Result<(Vec<Vec<i64>>, std::path::PathBuf)> {
    let phonemizer = Phonemizer::new()?;
    let mut cases: Vec<Vec<i64>> = Vec::new();
    for t in TEXTS {
        cases.push(voice.sentence_ids(&phonemizer, t)?.remove(0));
    }
    let sentences = dir.join("sentences.json");
    let json: Vec<_> = cases
        .iter()
        .map(|ids| serde_json::json!({ "ids": ids }))
        .collect();
    std::fs::write(
        &sentences,
        serde_json::json!({ "sentences": json }).to_string(),
    )?;
    Ok((cases, sentences))
}

/// Pause before each timed call.
const SETTLE: Duration = Duration::from_millis(50);

/// How long each run of the peak loop takes (once before the rounds, once after).
const PEAK_TIME: Duration = Duration::from_millis(300);

/// The model's parts, in the order of [`voxpipe_engine::vits::ModuleTimings`].
const MODULES: [&str; 4] = ["text encoder", "duration predictor", "flow", "decoder"];

/// `tests/engine/ort_bench.py` running the same voice, answering one call at a time.
struct Reference {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// piper-tts's version when it is installed.
    piper: Option<String>,
}

impl Reference {
    fn start(voice: &Path, sentences: &Path, threads: usize) -> anyhow::Result<Self> {
        let mut child = Command::new("python3")
            .arg(repo_root().join("tests/engine/ort_bench.py"))
            .arg(voice)
            .arg(sentences)
            .arg(threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("running tests/engine/ort_bench.py (pip install onnxruntime)")?;
        let stdin = child.stdin.take().context("ort_bench.py stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("ort_bench.py stdout")?);
        let mut reference = Self {
            child,
            stdin,
            stdout,
            piper: None,
        };
        let hello = reference.line()?;
        reference.piper = hello["piper"].as_str().map(str::to_string);
        Ok(reference)
    }

    fn line(&mut self) -> anyhow::Result<serde_json::Value> {
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        anyhow::ensure!(
            !line.is_empty(),
            "tests/engine/ort_bench.py stopped (see its error above)"
        );
        Ok(serde_json::from_str(&line)?)
    }

    /// Times one synthesis of sentence `i` by `what` (`ort` or `piper`).
    fn time(&mut self, what: &str, i: usize) -> anyhow::Result<Duration> {
        writeln!(self.stdin, "{what} {i}")?;
        self.stdin.flush()?;
        let reply = self.line()?;
        let seconds = reply["s"]
            .as_f64()
            .context("ort_bench.py reply without time")?;
        Ok(Duration::from_secs_f64(seconds))
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Median of `ours / theirs` over sentences.
fn median_ratio(mut ratios: Vec<f64>) -> f64 {
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

pub fn engine_bench(
    reps: usize,
    ort_threads: usize,
    device: DeviceSpec,
    voices: &Path,
    voice_name: &str,
    one_decode: bool,
) -> anyhow::Result<()> {
    let root = repo_root();
    let device = device.open()?;
    let (rss_before, _) = memory_mib();
    let gpu_before = gpu_memory(&device);
    let voice = LoadedVoice::load_on(&root.join(voices), voice_name, &device)?;
    let (rss_loaded, _) = memory_mib();
    let dir = tempfile::tempdir()?;
    let (cases, sentences) = sentence_cases(&voice, dir.path())?;
    // The roofline's peak, before the rounds and again after them (a shared machine's
    // clock and load drift; the higher of the two is the ceiling reported).
    let on_cpu = device_label(&device).starts_with("cpu");
    let peak_before = on_cpu.then(|| measure_peak(PEAK_TIME));
    let mut reference = Reference::start(&voice.entry.model, &sentences, ort_threads)?;
    let piper = reference.piper.clone();
    // The decoder of one sentence in one piece: no window is smaller than it.
    let whole = DecoderChunks {
        first: usize::MAX,
        frames: usize::MAX,
        overlap: 0,
        paced: None,
    };
    let options = SynthOptions {
        decoder_chunks: one_decode.then_some(whole),
        ..SynthOptions::default()
    };
    let rate = f64::from(voice.sample_rate());

    // Per sentence: our times, ONNX Runtime's, Piper's; one warm-up call each first,
    // then `reps` rounds in which every sentence runs once on each side in turn.
    let n = cases.len();
    let mut ours = vec![Vec::new(); n];
    let mut ort = vec![Vec::new(); n];
    let mut piper_times = vec![Vec::new(); n];
    let mut samples = vec![0usize; n];
    // Per sentence, per module: the times of each round.
    let mut module_times: Vec<[Vec<f64>; 4]> = vec![Default::default(); n];
    // Per module: multiply-adds and seconds summed over every sentence and round.
    let mut module_work = [(0u64, 0f64); 4];
    // A pause before each call lets the other side's worker threads (ONNX Runtime's and
    // rayon's spin after their work) go idle, so that no call pays for the previous one.
    let settle = || std::thread::sleep(SETTLE);
    for round in 0..=reps {
        for (i, ids) in cases.iter().enumerate() {
            settle();
            let theirs = reference.time("ort", i)?;
            settle();
            let s = voice.synthesize(ids, &options)?;
            let p = match piper {
                Some(_) => {
                    settle();
                    Some(reference.time("piper", i)?)
                }
                None => None,
            };
            if round == 0 {
                continue; // warm-up
            }
            ort[i].push(theirs);
            ours[i].push(s.model_time);
            piper_times[i].extend(p);
            samples[i] = s.samples.len();
            let t = s.timings;
            let times = [t.text_encoder, t.duration_predictor, t.flow, t.decoder];
            let macs = [
                t.macs.text_encoder,
                t.macs.duration_predictor,
                t.macs.flow,
                t.macs.decoder,
            ];
            for m in 0..4 {
                module_times[i][m].push(times[m].as_secs_f64());
                module_work[m].0 += macs[m];
                module_work[m].1 += times[m].as_secs_f64();
            }
        }
    }
    drop(reference);
    let peak_after = on_cpu.then(|| measure_peak(PEAK_TIME));

    println!(
        "## Native voice (candle, {}) vs ONNX Runtime (CPU, {ort_threads} threads), {voice_name}\n",
        device_label(&device)
    );
    println!(
        "Medians of {reps} rounds; in each round every sentence runs once on each side in turn, \
         {} ms apart. voxpipe's decoder runs {}.\n",
        SETTLE.as_millis(),
        if one_decode {
            "once over each sentence, as ONNX Runtime's does (--one-decode)".to_string()
        } else {
            let c = DEFAULT_DECODER_CHUNKS;
            format!(
                "as the server runs it for a whole response: a sentence of up to {} frames in one \
                 piece, a longer one in windows of {} frames with {} frames of context on both \
                 sides (--one-decode: every sentence in one piece)",
                c.frames + 2 * c.overlap,
                c.frames,
                c.overlap
            )
        }
    );
    match &piper {
        Some(v) => {
            println!("| sentence | ids | audio | voxpipe | RTF | ONNX Runtime | RTF | ratio | Piper {v} | ratio |");
            println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        }
        None => {
            println!("| sentence | ids | audio | voxpipe | RTF | ONNX Runtime | RTF | ratio |");
            println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
        }
    }
    let mut ratios = Vec::new();
    let mut piper_ratios = Vec::new();
    for i in 0..n {
        let our = stats(ours[i].clone()).p50.as_secs_f64();
        let their = stats(ort[i].clone()).p50.as_secs_f64();
        let seconds = samples[i] as f64 / rate;
        let ratio = our / their;
        ratios.push(ratio);
        print!(
            "| {} | {} | {seconds:.2} s | {:.0} ms | {:.3} | {:.0} ms | {:.3} | {ratio:.2} |",
            i + 1,
            cases[i].len(),
            our * 1e3,
            our / seconds,
            their * 1e3,
            their / seconds,
        );
        if piper.is_some() {
            let p = stats(piper_times[i].clone()).p50.as_secs_f64();
            piper_ratios.push(our / p);
            println!(" {:.0} ms | {:.2} |", p * 1e3, our / p);
        } else {
            println!();
        }
    }
    println!(
        "\nMedian ratio voxpipe / ONNX Runtime: {:.2} (below 1.0 is faster than ONNX Runtime).",
        median_ratio(ratios)
    );
    if piper_ratios.is_empty() {
        println!("(pip install piper-tts==1.8.0 adds Piper's own API as a column.)");
    } else {
        println!(
            "Median ratio voxpipe / Piper (its own `phoneme_ids_to_audio`, same ids): {:.2}.",
            median_ratio(piper_ratios)
        );
    }
    // Each module's total over all sentences and rounds.
    let modules: Vec<f64> = (0..4)
        .map(|m| module_times.iter().flat_map(|t| &t[m]).sum())
        .collect();
    let total: f64 = modules.iter().sum();
    println!(
        "Where voxpipe's time goes (all sentences): text encoder {:.0} %, duration predictor {:.0} %, flow {:.0} %, decoder {:.0} %.",
        100.0 * modules[0] / total,
        100.0 * modules[1] / total,
        100.0 * modules[2] / total,
        100.0 * modules[3] / total
    );
    let median_ms = |v: &Vec<f64>| {
        let mut v = v.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).map_or(0.0, |s| s * 1e3)
    };
    println!("\nvoxpipe per module (medians):\n");
    println!("| sentence | text encoder | duration predictor | flow | decoder | rest |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (i, times) in module_times.iter().enumerate() {
        let m: Vec<f64> = times.iter().map(median_ms).collect();
        let whole = stats(ours[i].clone()).p50.as_secs_f64() * 1e3;
        println!(
            "| {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
            i + 1,
            m[0],
            m[1],
            m[2],
            m[3],
            whole - m.iter().sum::<f64>()
        );
    }
    if let (Some(before), Some(after)) = (peak_before, peak_after) {
        print_roofline(&module_work, reps, before, after);
    }
    let (_, peak) = memory_mib();
    println!(
        "Memory: voice loaded +{:.0} MiB RSS ({:.0} → {:.0} MiB); peak RSS during synthesis {:.0} MiB, \
         i.e. {:.0} MiB of working memory for one synthesis of these sentences.",
        rss_loaded - rss_before,
        rss_before,
        rss_loaded,
        peak,
        peak - rss_loaded
    );
    // Concurrent syntheses of the longest sentence: the working memory each one adds.
    let longest = &cases[n - 1];
    for n in [2usize, 4] {
        let started = std::time::Instant::now();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .map(|_| s.spawn(|| voice.synthesize(longest, &options)))
                .collect();
            handles.into_iter().try_for_each(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("synthesis thread panicked"))?
                    .map(|_| ())
                    .map_err(anyhow::Error::from)
            })
        })?;
        let (_, peak_n) = memory_mib();
        println!(
            "{n} concurrent syntheses of sentence 5: {:.2} s wall, peak RSS {:.0} MiB \
             (≤ {:.0} MiB per synthesis above the loaded voice).",
            started.elapsed().as_secs_f64(),
            peak_n,
            (peak_n - rss_loaded) / n as f64
        );
    }
    if let (Some(before), Some(after)) = (gpu_before, gpu_memory(&device)) {
        println!(
            "GPU memory: {:.0} MiB in use before loading, {:.0} MiB after the runs, of {:.0} MiB.",
            before.used_bytes as f64 / 1048576.0,
            after.used_bytes as f64 / 1048576.0,
            after.total_bytes as f64 / 1048576.0
        );
    }
    if on_cpu && !one_decode {
        // What the windows' context costs: each sentence once more in one piece,
        // its decoder's multiply-adds against the windowed runs'. Last, since a whole
        // decode would raise the peak memory reported above.
        let mut once = 0u64;
        for ids in &cases {
            let run = voice.synthesize(
                ids,
                &SynthOptions {
                    decoder_chunks: Some(whole),
                    ..options
                },
            )?;
            once += run.timings.macs.decoder;
        }
        let windowed = module_work[3].0 as f64 / reps.max(1) as f64;
        println!(
            "\nOf the decoder's {:.2} GMAC per round, {:.0} % recompute the windows' context: \
             one decode of each sentence takes {:.2} GMAC (`--one-decode` times that).",
            windowed / 1e9,
            100.0 * (1.0 - once as f64 / windowed),
            once as f64 / 1e9
        );
    }
    Ok(())
}

/// Achieved multiply-add rate per module against the measured peak.
fn print_roofline(work: &[(u64, f64); 4], reps: usize, before: Peak, after: Peak) {
    let (peak, one) = if after.macs_per_s > before.macs_per_s {
        (after.macs_per_s, after.macs_per_s_one_thread)
    } else {
        (before.macs_per_s, before.macs_per_s_one_thread)
    };
    println!(
        "\nRoofline: kernels at `{}` ({} to change it). Peak = a register-only loop of \
         independent {} multiply-adds on {} threads at once, measured before and after the \
         rounds: {:.1} and {:.1} GMAC/s ({:.1} GMAC/s on one thread alone); the higher is the \
         ceiling below. Achieved = the multiply-adds of the module's convolutions and matrix \
         products (counted by the kernels; elementwise passes not counted) over its wall \
         time; per round = the five sentences once.\n",
        before.isa,
        voxpipe_engine::vits::ISA_ENV,
        match before.isa {
            "avx512" => "512-bit FMA",
            "avx2" => "256-bit FMA",
            _ => "4-lane mul + add (SSE2)",
        },
        before.threads,
        before.macs_per_s / 1e9,
        after.macs_per_s / 1e9,
        one / 1e9,
    );
    println!("| module | GMAC per round | time per round | achieved | of peak |");
    println!("|---|---:|---:|---:|---:|");
    let total: (u64, f64) = work.iter().fold((0, 0.0), |a, w| (a.0 + w.0, a.1 + w.1));
    for (&name, &(macs, secs)) in MODULES.iter().zip(work).chain([(&"model", &total)]) {
        let rate = if secs > 0.0 { macs as f64 / secs } else { 0.0 };
        let rounds = reps.max(1) as f64;
        println!(
            "| {name} | {:.2} | {:.1} ms | {:.1} GMAC/s | {:.0} % |",
            macs as f64 / 1e9 / rounds,
            secs * 1e3 / rounds,
            rate / 1e9,
            100.0 * rate / peak
        );
    }
}

/// Resident and peak resident memory of this process, in MiB.
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
