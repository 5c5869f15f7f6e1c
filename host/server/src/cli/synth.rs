//! `voxpipe synth`

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;

use voxpipe_engine::device::DeviceSpec;
use voxpipe_engine::phonemize::Phonemizer;
use voxpipe_engine::synth::{LoadedVoice, SynthOptions};
use voxpipe_types::Audio;

#[derive(Args)]
#[command(after_help = "Examples:\n  \
voxpipe synth --text 'Hello, world. This is voxpipe.' -o hello.wav\n  \
voxpipe synth --file chapter.txt -o chapter.wav --length-scale 1.1 --seed 7\n  \
voxpipe synth --text 'It costs $3.50 today.' -o price.wav --vtt price.vtt --words price.json")]
pub struct SynthArgs {
    /// Voice name (a NAME.onnx + NAME.onnx.json in the voices folder).
    #[arg(long, default_value = "en_US-joe-medium")]
    voice: String,
    /// Folder of Piper voices.
    #[arg(long, default_value = "voices", value_name = "DIR")]
    voices: PathBuf,
    /// Text to speak.
    #[arg(long, conflicts_with = "file", required_unless_present = "file")]
    text: Option<String>,
    /// A text file to speak (`-` reads stdin).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Output WAV file (16-bit mono at the voice's rate).
    #[arg(long, short, value_name = "FILE.wav")]
    output: PathBuf,
    /// Variation of the voice [default: the voice's, e.g. 0.667].
    #[arg(long)]
    noise_scale: Option<f32>,
    /// Duration multiplier: above 1 is slower [default: the voice's].
    #[arg(long)]
    length_scale: Option<f32>,
    /// Variation of the rhythm [default: the voice's, e.g. 0.8].
    #[arg(long)]
    noise_w: Option<f32>,
    /// Speaker of a multi-speaker voice: a name from its speaker map or an id
    /// (`voxpipe voices` lists them) [default: the first].
    #[arg(long, value_name = "NAME|ID")]
    speaker: Option<String>,
    /// Seed of the model's noise: same seed, same audio.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the model runs: cpu, cuda, cuda:N or auto (GPU when there is one).
    #[arg(long, default_value = "cpu", env = "VOXPIPE_DEVICE")]
    device: DeviceSpec,
    /// Also write WebVTT captions of the text, timed by the voice's own
    /// durations (a cue per phrase; docs/api.md, "Word timestamps").
    #[arg(long, value_name = "FILE.vtt")]
    vtt: Option<PathBuf>,
    /// Also write every word of the text with when it is heard, as JSON
    /// (`[{"text", "start", "end"}]`, seconds).
    #[arg(long, value_name = "FILE.json")]
    words: Option<PathBuf>,
}

impl SynthArgs {
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let text = match (&self.text, &self.file) {
            (Some(t), _) => t.clone(),
            (None, Some(f)) if f.as_os_str() == "-" => std::io::read_to_string(std::io::stdin())?,
            (None, Some(f)) => {
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
            }
            (None, None) => bail!("give --text or --file"),
        };
        let device = self.device.open()?;
        let voice = LoadedVoice::load_on(&self.voices, &self.voice, &device)?;
        let phonemizer = Phonemizer::new()?;
        let config = &voice.entry.config;
        let speaker = match &self.speaker {
            None => 0,
            Some(s) => config.speaker_id(s).with_context(|| {
                format!(
                    "voice {} has no speaker `{s}`; it has: {}",
                    voice.entry.name,
                    config.speakers_hint()
                )
            })?,
        };
        let sentences = voice.sentence_ids(&phonemizer, &text)?;
        let options = SynthOptions {
            noise_scale: self.noise_scale,
            length_scale: self.length_scale,
            noise_w: self.noise_w,
            speaker,
            seed: self.seed,
            ..SynthOptions::default()
        };
        let started = Instant::now();
        let mut progress = Progress::new(sentences.len());
        let mut samples = Vec::new();
        // No audio stages here: the voice's timeline is the file's.
        let mut clock = (self.vtt.is_some() || self.words.is_some()).then(|| {
            let mut c = voxpipe::tts::words::WordClock::new();
            c.piece(&text, &text);
            c.begin();
            c
        });
        for (i, ids) in sentences.iter().enumerate() {
            let sentence = voice.synthesize(ids, &options)?;
            if let Some(c) = clock.as_mut() {
                c.call_starts();
                c.input(&sentence.samples, voice.sample_rate());
                c.output(&sentence.samples, 1, voice.sample_rate());
                c.call_words(voice.spoken_words(ids, &sentence.durations));
            }
            samples.extend_from_slice(&sentence.samples);
            progress.update(i + 1, samples.len() as f64 / voice.sample_rate() as f64);
        }
        progress.finish();
        if let Some(mut c) = clock {
            let words = c.finish();
            if let Some(path) = &self.vtt {
                std::fs::write(path, voxpipe::tts::webvtt(&words))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if let Some(path) = &self.words {
                std::fs::write(path, serde_json::to_vec_pretty(&words)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        let audio = Audio {
            sample_rate: voice.sample_rate(),
            channels: 1,
            samples,
        };
        voxpipe_codec::wav::write(&self.output, &audio)?;
        let wall = started.elapsed().as_secs_f64();
        eprintln!(
            "wrote {}: {:.2} s of audio, {} sentences, synthesis {:.2} s (RTF {:.3}), voice loaded in {:.2} s",
            self.output.display(),
            audio.seconds(),
            sentences.len(),
            wall,
            wall / audio.seconds().max(1e-9),
            voice.load_time.as_secs_f64()
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// A one-line progress bar on a terminal; nothing when stderr is a pipe
/// except for long inputs, which get a line every 10 %.
struct Progress {
    total: usize,
    tty: bool,
    last_decile: usize,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            total,
            tty: std::io::stderr().is_terminal(),
            last_decile: 0,
        }
    }

    fn update(&mut self, done: usize, audio_seconds: f64) {
        let width = 30;
        let filled = width * done / self.total.max(1);
        if self.tty {
            eprint!(
                "\r[{}{}] {done}/{} sentences, {audio_seconds:.1} s of audio",
                "#".repeat(filled),
                ".".repeat(width - filled),
                self.total
            );
            let _ = std::io::stderr().flush();
        } else if self.total >= 10 {
            let decile = 10 * done / self.total;
            if decile > self.last_decile {
                self.last_decile = decile;
                eprintln!("{}% ({done}/{} sentences)", decile * 10, self.total);
            }
        }
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}
