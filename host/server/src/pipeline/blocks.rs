//! Driving a pipeline's audio stages over an utterance in bounded blocks.
//!
//! The voice makes audio piece by piece (decoder windows, sentences); the
//! [`AudioChain`] pushes each piece through the audio stages as it comes,
//! so no plugin call sees more than [`MAX_BLOCK_SECONDS`] of audio and only
//! the stages that must see a whole utterance before answering make the
//! host hold one. Each stage is driven by what it is
//! ([`voxpipe_types::AudioMode`], from its WIT version and `plugin-info`):
//!
//! - `one-pass` (0.3+): every block once, in order, with the state its
//!   previous call returned; its output may lag and is flushed by the last
//!   block. In a stream, the whole stream is one utterance.
//! - `two-pass` (0.3+): a measuring pass (0) over every block as it comes,
//!   the blocks held here, then on the utterance's end an applying pass (1)
//!   over the held blocks, each dropped as soon as it has been applied. In a
//!   stream, each sentence is one utterance.
//! - `chunks` (0.1/0.2, `streamable`): every block once, no state.
//! - `whole` (0.1/0.2, not streamable): the utterance held here and given in
//!   one call, as those versions promise; refused with
//!   [`ChainError::TooLong`] when it is longer than the stage was measured
//!   to take ([`WholeCapacity`]).
//!
//! The host checks what the WIT promises across calls: no audio out of a
//! measuring pass, one sample rate and channel count per utterance, and at
//! most 4 × the input plus ten seconds out of an utterance.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use voxpipe_plugin::{LoadedPlugin, PluginError, PluginLimits, StageConfig};
use voxpipe_types::{
    Audio, AudioMode, BlockPosition, ChunkPosition, RequestContext, StageKind, MAX_BLOCK_SECONDS,
};

use super::run::{finish, stage_span};
use super::{Pipeline, PluginStage, Stage, StageFailure};

/// Where a piece of audio ends, as far as the chain is concerned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct End {
    /// The piece ends a sentence (in a stream, the utterance of `two-pass`
    /// and `whole` stages).
    pub sentence: bool,
    /// The piece ends the response: every stage's utterance.
    pub stream: bool,
}

impl End {
    pub const NONE: End = End {
        sentence: false,
        stream: false,
    };
    pub const ALL: End = End {
        sentence: true,
        stream: true,
    };

    fn any(self) -> bool {
        self.sentence || self.stream
    }
}

/// Why the chain stopped.
#[derive(Debug)]
pub enum ChainError {
    /// A stage failed (its own fault, a limit, or a broken rule of the WIT).
    Stage(StageFailure),
    /// A `whole` (0.1/0.2) stage was about to get more audio than it was
    /// measured to take: the request is too long for this pipeline.
    TooLong {
        stage: Arc<Stage>,
        seconds: f64,
        capacity: WholeCapacity,
    },
}

impl From<StageFailure> for ChainError {
    fn from(e: StageFailure) -> Self {
        ChainError::Stage(e)
    }
}

impl std::error::Error for ChainError {}

impl std::fmt::Display for ChainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainError::Stage(e) => e.fmt(f),
            ChainError::TooLong {
                stage,
                seconds,
                capacity,
            } => write!(
                f,
                "{seconds:.1} s of audio; {}",
                capacity.describe(stage.as_ref())
            ),
        }
    }
}

/// The longest utterance a `whole` (0.1/0.2, not streamable) stage takes in
/// one call, measured when the pipeline loads by calling it on growing
/// lengths of a speech-like test signal until a limit of the stage (memory,
/// output size, deadline) stops it; 90 % of the longest that passed, since
/// a plugin's memory may depend on what it is given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WholeCapacity {
    /// Seconds of audio at the rate measured with.
    pub seconds: f64,
    /// The limit that stopped the largest try (`memory`, `output size`,
    /// `deadline`…), or `None` when none did up to the largest try.
    pub limit: Option<&'static str>,
}

impl WholeCapacity {
    /// The longest try: an hour, far beyond any response the server makes.
    const MAX_SECONDS: f64 = 3600.0;
    /// The share of the longest passing try that requests may use.
    const MARGIN: f64 = 0.9;

    /// Measure `plugin` with `limits` and `config` at `rate`.
    pub fn measure(
        plugin: &LoadedPlugin,
        limits: &PluginLimits,
        config: &StageConfig,
        rate: u32,
    ) -> WholeCapacity {
        let ctx = RequestContext {
            request_id: "capacity-probe".into(),
            language: String::new(),
            voice: String::new(),
            pipeline: String::new(),
            style: None,
        };
        let fits = |seconds: f64| -> Result<(), &'static str> {
            let audio = probe_signal(rate, (seconds * f64::from(rate)) as usize);
            match plugin.call_audio(limits, &ctx, config, audio, ChunkPosition::WHOLE) {
                Ok(_) => Ok(()),
                Err(e) => Err(limit_name(&e)),
            }
        };
        // Double from 5 s until a try fails, then halve the gap three times:
        // the answer is within 1/8 of the gap below the true one.
        let (mut good, mut bad) = (0.0, None);
        let mut seconds = 5.0;
        let mut limit = None;
        while seconds <= Self::MAX_SECONDS {
            match fits(seconds) {
                Ok(()) => good = seconds,
                Err(l) => {
                    bad = Some(seconds);
                    limit = Some(l);
                    break;
                }
            }
            seconds *= 2.0;
        }
        if let Some(mut hi) = bad {
            for _ in 0..3 {
                let mid = (good + hi) / 2.0;
                match fits(mid) {
                    Ok(()) => good = mid,
                    Err(l) => {
                        hi = mid;
                        limit = Some(l);
                    }
                }
            }
        }
        WholeCapacity {
            seconds: good * Self::MARGIN,
            limit,
        }
    }

    /// One line for errors and listings.
    pub fn describe(&self, stage: &Stage) -> String {
        let plugin = stage
            .plugin
            .as_ref()
            .map(|p| {
                format!(
                    ", plugin {}@{} built against voxpipe:stages@{}",
                    p.plugin.id.name, p.plugin.id.version, p.plugin.wit_version
                )
            })
            .unwrap_or_default();
        let why = match self.limit {
            Some(limit) => format!(" (its {limit} limit)"),
            None => String::new(),
        };
        format!(
            "stage {} \"{}\" (audio{plugin}) takes a whole utterance in one call and was measured \
             to take at most {:.1} s{why}: send shorter text, raise the stage's limits, or rebuild \
             the plugin against voxpipe:stages@0.3.0 (blocks)",
            stage.index + 1,
            stage.name,
            self.seconds
        )
    }
}

/// Which limit a failed capacity try hit.
fn limit_name(e: &PluginError) -> &'static str {
    match e {
        PluginError::MemoryLimit(_) => "memory",
        PluginError::OutputTooLarge { .. } => "output size",
        PluginError::Timeout(_) => "deadline",
        _ => "own",
    }
}

/// A deterministic test signal as hard on an audio stage as speech gets: a
/// quiet 150 Hz buzz with harmonics, its level moving like syllables, and a
/// near-full-scale click every 20 ms — low loudness with high peaks, so a
/// loudness stage applies a large gain and its limiter works hard (the
/// first-party loudness plugin of 0.2 needs about twice the memory on such
/// audio as on a smooth signal of the same length).
fn probe_signal(rate: u32, frames: usize) -> Audio {
    let r = f64::from(rate);
    let click_every = (rate / 50).max(1) as usize;
    let samples = (0..frames)
        .map(|n| {
            if n.is_multiple_of(click_every) {
                return if (n / click_every).is_multiple_of(2) {
                    0.98
                } else {
                    -0.98
                };
            }
            let t = n as f64 / r;
            let envelope = 0.5 + 0.5 * (std::f64::consts::TAU * 4.0 * t).sin();
            let buzz: f64 = (1..=5)
                .map(|h| (std::f64::consts::TAU * 150.0 * h as f64 * t).sin() / h as f64)
                .sum();
            (0.02 * envelope * buzz) as f32
        })
        .collect();
    Audio {
        sample_rate: rate,
        channels: 1,
        samples,
    }
}

impl Pipeline {
    /// Run every audio stage over one whole utterance (as a whole response
    /// does) and return the audio out, joined.
    pub fn run_audio(&self, ctx: &RequestContext, audio: Audio) -> Result<Audio, ChainError> {
        let rate = audio.sample_rate;
        let stages: Vec<_> = self.plugin_stages(StageKind::Audio).collect();
        let mut chain = AudioChain::from_stages(stages, ctx, rate, false);
        join(chain.push(audio, End::ALL)?, rate)
    }
}

/// Run one audio plugin alone over a whole utterance, driven as a pipeline
/// stage would be (tests, benchmarks).
pub fn run_alone(
    plugin: Arc<LoadedPlugin>,
    limits: &PluginLimits,
    config: &StageConfig,
    ctx: &RequestContext,
    audio: Audio,
) -> Result<Audio, ChainError> {
    let stage = Arc::new(Stage {
        index: 0,
        name: plugin.id.name.clone(),
        kind: StageKind::Audio,
        plugin: Some(PluginStage {
            plugin,
            config: config.clone(),
            limits: *limits,
            whole_capacity: None,
        }),
    });
    let p = stage.plugin.as_ref().expect("just made");
    let rate = audio.sample_rate;
    let mut chain = AudioChain::from_stages(vec![(&stage, p)], ctx, rate, false);
    join(chain.push(audio, End::ALL)?, rate)
}

/// Blocks of one format joined (no audio: empty at `rate`).
fn join(blocks: Vec<Audio>, rate: u32) -> Result<Audio, ChainError> {
    let mut blocks = blocks.into_iter();
    let Some(mut audio) = blocks.next() else {
        return Ok(Audio {
            sample_rate: rate,
            channels: 1,
            samples: Vec::new(),
        });
    };
    for b in blocks {
        audio.samples.extend_from_slice(&b.samples);
    }
    Ok(audio)
}

/// One stage's progress through the current utterance.
struct Runner<'a> {
    stage: &'a Arc<Stage>,
    p: &'a PluginStage,
    mode: AudioMode,
    /// Blocks sent in the current pass (one-pass, two-pass pass 0).
    index: u32,
    /// Frames sent in the current pass.
    offset: u64,
    state: Vec<u8>,
    /// Two-pass and whole stages: the utterance so far.
    held: VecDeque<Audio>,
    held_frames: u64,
    /// Frames in and out of the current utterance (the growth rule).
    frames_in: u64,
    frames_out: u64,
    /// The rate and channels of the utterance's output so far.
    format: Option<(u32, u16)>,
    /// 0.1/0.2 chunks: their index runs over the whole response.
    chunk_index: u32,
    /// Utterances finished before the current one (a stream's sentences,
    /// for two-pass stages).
    utterance: u32,
    /// The sample rate of the stage's input (the last non-empty block's).
    rate_in: u32,
    /// Time in this stage's calls, for the request's timings.
    time: Duration,
}

/// The audio stages of one request, driven block by block.
pub struct AudioChain<'a> {
    ctx: &'a RequestContext,
    /// The voice's rate: what an empty block says before any audio came.
    rate: u32,
    streaming: bool,
    runners: Vec<Runner<'a>>,
}

fn frames(a: &Audio) -> u64 {
    (a.samples.len() / usize::from(a.channels.max(1))) as u64
}

/// `audio` cut into blocks of at most [`MAX_BLOCK_SECONDS`] (one empty block
/// for empty audio).
fn split(audio: Audio) -> Vec<Audio> {
    let channels = usize::from(audio.channels.max(1));
    let max = (MAX_BLOCK_SECONDS as usize) * (audio.sample_rate.max(1) as usize) * channels;
    if audio.samples.len() <= max {
        return vec![audio];
    }
    audio
        .samples
        .chunks(max)
        .map(|c| Audio {
            sample_rate: audio.sample_rate,
            channels: audio.channels,
            samples: c.to_vec(),
        })
        .collect()
}

impl<'a> AudioChain<'a> {
    /// The chain of `pipeline`'s audio stages for one request. `streaming`:
    /// a `two-pass` or `whole` stage's utterance is a sentence, not the
    /// whole response.
    pub fn new(
        pipeline: &'a Pipeline,
        ctx: &'a RequestContext,
        rate: u32,
        streaming: bool,
    ) -> Self {
        let stages = pipeline.plugin_stages(StageKind::Audio).collect();
        Self::from_stages(stages, ctx, rate, streaming)
    }

    fn from_stages(
        stages: Vec<(&'a Arc<Stage>, &'a PluginStage)>,
        ctx: &'a RequestContext,
        rate: u32,
        streaming: bool,
    ) -> Self {
        let runners = stages
            .into_iter()
            .map(|(stage, p)| Runner {
                stage,
                p,
                mode: p.plugin.mode,
                index: 0,
                offset: 0,
                state: Vec::new(),
                held: VecDeque::new(),
                held_frames: 0,
                frames_in: 0,
                frames_out: 0,
                format: None,
                chunk_index: 0,
                utterance: 0,
                rate_in: 0,
                time: Duration::ZERO,
            })
            .collect();
        AudioChain {
            ctx,
            rate,
            streaming,
            runners,
        }
    }

    /// Push the next piece of the voice's audio through every stage; returns
    /// what came out of the last one (possibly nothing yet). `end` says what
    /// the piece ends; the response's last piece must say `stream`.
    pub fn push(&mut self, audio: Audio, end: End) -> Result<Vec<Audio>, ChainError> {
        let mut out = Vec::new();
        self.feed(0, audio, end, &mut out)?;
        Ok(out)
    }

    /// Time spent in each stage's calls so far, and the stage.
    pub fn stage_times(&self) -> impl Iterator<Item = (&Arc<Stage>, Duration)> {
        self.runners.iter().map(|r| (r.stage, r.time))
    }

    fn feed(
        &mut self,
        k: usize,
        audio: Audio,
        end: End,
        out: &mut Vec<Audio>,
    ) -> Result<(), ChainError> {
        if k == self.runners.len() {
            if !audio.samples.is_empty() {
                out.push(audio);
            }
            return Ok(());
        }
        let mode = self.runners[k].mode;
        // Where this stage's utterance ends.
        let ends = end.stream || (self.streaming && end.sentence && mode.buffers());
        let mut made = Vec::new();
        match mode {
            AudioMode::OnePass | AudioMode::Chunks => {
                let empty = audio.samples.is_empty();
                if !empty || ends {
                    let blocks = split(audio);
                    let count = blocks.len();
                    for (i, block) in blocks.into_iter().enumerate() {
                        let last = ends && i + 1 == count;
                        made.extend(self.call(k, block, 0, last, None)?);
                    }
                }
            }
            AudioMode::TwoPass => {
                let blocks = split(audio);
                let count = blocks.len();
                for (i, block) in blocks.into_iter().enumerate() {
                    let last = ends && i + 1 == count;
                    if block.samples.is_empty() && !last {
                        continue;
                    }
                    let r = &mut self.runners[k];
                    r.held_frames += frames(&block);
                    if !block.samples.is_empty() {
                        r.held.push_back(block.clone());
                    }
                    let measured = self.call(k, block, 0, last, None)?;
                    if measured.iter().any(|a| !a.samples.is_empty()) {
                        return Err(self.broken(k, "returned audio from its measuring pass (0)"));
                    }
                }
                if ends {
                    // The applying pass feeds its output on as it goes.
                    self.apply(k, out)?;
                    self.reset(k);
                    let rate = self.runners[k].rate_in;
                    return self.feed(k + 1, self.empty(rate), end, out);
                }
            }
            AudioMode::Whole => {
                let r = &mut self.runners[k];
                if !audio.samples.is_empty() {
                    r.held_frames += frames(&audio);
                    r.held.push_back(audio);
                }
                if ends {
                    made = self.whole(k)?;
                }
            }
        }
        if ends {
            self.reset(k);
        }
        let count = made.len();
        for (i, a) in made.into_iter().enumerate() {
            let e = if i + 1 == count { end } else { End::NONE };
            self.feed(k + 1, a, e, out)?;
        }
        if count == 0 && end.any() {
            let rate = self.runners[k]
                .format
                .map_or(self.runners[k].rate_in, |f| f.0);
            self.feed(k + 1, self.empty(rate), end, out)?;
        }
        Ok(())
    }

    /// The applying pass of a two-pass stage over its held blocks, each fed
    /// on to the next stage as soon as it comes out (and dropped here).
    fn apply(&mut self, k: usize, out: &mut Vec<Audio>) -> Result<(), ChainError> {
        let empty = self.empty(self.runners[k].rate_in);
        let r = &mut self.runners[k];
        let total = r.held_frames;
        r.index = 0;
        r.offset = 0;
        if r.held.is_empty() {
            r.held.push_back(empty);
        }
        while let Some(block) = self.runners[k].held.pop_front() {
            let last = self.runners[k].held.is_empty();
            for a in self.call(k, block, 1, last, Some(total))? {
                self.feed(k + 1, a, End::NONE, out)?;
            }
        }
        Ok(())
    }

    /// No audio, at `rate` (the voice's when nothing is known yet).
    fn empty(&self, rate: u32) -> Audio {
        Audio {
            sample_rate: if rate == 0 { self.rate } else { rate },
            channels: 1,
            samples: Vec::new(),
        }
    }

    /// A whole (0.1/0.2) stage's one call on the held utterance.
    fn whole(&mut self, k: usize) -> Result<Vec<Audio>, ChainError> {
        let r = &mut self.runners[k];
        let mut held = std::mem::take(&mut r.held);
        let mut audio = held.pop_front().unwrap_or_default();
        for more in held {
            audio.samples.extend_from_slice(&more.samples);
        }
        if let Some(capacity) = r.p.whole_capacity {
            let rate = f64::from(audio.sample_rate.max(1));
            let seconds = frames(&audio) as f64 / rate;
            if seconds > capacity.seconds {
                return Err(ChainError::TooLong {
                    stage: r.stage.clone(),
                    seconds,
                    capacity,
                });
            }
        }
        let got = self.call(k, audio, 0, true, None)?;
        Ok(got.into_iter().flat_map(split).collect())
    }

    fn reset(&mut self, k: usize) {
        let r = &mut self.runners[k];
        r.index = 0;
        r.offset = 0;
        r.state = Vec::new();
        r.held.clear();
        r.held_frames = 0;
        r.frames_in = 0;
        r.frames_out = 0;
        r.format = None;
        r.utterance += 1;
    }

    fn broken(&self, k: usize, what: &str) -> ChainError {
        ChainError::Stage(StageFailure {
            stage: self.runners[k].stage.clone(),
            error: PluginError::BadOutput(what.to_string()),
        })
    }

    /// One plugin call on `block`, with its span; checks the rules across
    /// calls and returns the audio out (nothing, or one block).
    fn call(
        &mut self,
        k: usize,
        block: Audio,
        pass: u8,
        last: bool,
        total_frames: Option<u64>,
    ) -> Result<Vec<Audio>, ChainError> {
        let ctx = self.ctx;
        let r = &mut self.runners[k];
        let (stage, p) = (r.stage, r.p);
        let n = frames(&block);
        if n > 0 {
            r.rate_in = block.sample_rate;
        }
        let span = stage_span(stage, p, block.samples.len() * 4);
        span.record("audio.pass", i64::from(pass));
        let started = Instant::now();
        let result = match r.mode {
            AudioMode::OnePass | AudioMode::TwoPass => {
                span.record("audio.block", i64::from(r.index));
                let position = BlockPosition {
                    utterance: r.utterance,
                    pass,
                    index: r.index,
                    offset: r.offset,
                    last,
                    total_frames,
                };
                let state = std::mem::take(&mut r.state);
                span.in_scope(|| {
                    p.plugin
                        .call_block(&p.limits, ctx, &p.config, block, position, &state)
                })
                .map(|(audio, state)| {
                    r.state = state;
                    audio
                })
            }
            AudioMode::Chunks => {
                span.record("audio.block", i64::from(r.chunk_index));
                let position = ChunkPosition {
                    index: r.chunk_index,
                    last,
                };
                r.chunk_index += 1;
                span.in_scope(|| {
                    p.plugin
                        .call_audio(&p.limits, ctx, &p.config, block, position)
                })
            }
            AudioMode::Whole => span.in_scope(|| {
                p.plugin
                    .call_audio(&p.limits, ctx, &p.config, block, ChunkPosition::WHOLE)
            }),
        };
        r.time += started.elapsed();
        r.index += 1;
        r.offset += n;
        let audio = finish(&span, stage, p, result, |a| a.samples.len() * 4)?;
        if pass == 0 {
            r.frames_in += n;
        }
        if audio.samples.is_empty() {
            return Ok(Vec::new());
        }
        let format = (audio.sample_rate, audio.channels);
        match r.format {
            None => r.format = Some(format),
            Some(f) if f != format => {
                return Err(self.broken(
                    k,
                    &format!(
                        "changed its output from {} Hz × {} to {} Hz × {} within an utterance",
                        f.0, f.1, format.0, format.1
                    ),
                ))
            }
            Some(_) => {}
        }
        r.frames_out += frames(&audio);
        // Growth is counted in seconds, so a stage that changes the rate is
        // judged by duration, not frame counts.
        let rate_in = f64::from(r.rate_in.max(1));
        let seconds_in = r.frames_in as f64 / rate_in;
        let seconds_out = r.frames_out as f64 / f64::from(format.0.max(1));
        if seconds_out > 4.0 * seconds_in + f64::from(MAX_BLOCK_SECONDS) {
            return Err(self.broken(
                k,
                &format!(
                    "returned {seconds_out:.1} s of audio for {seconds_in:.1} s in; an audio stage \
                     may return at most 4 × its input plus {MAX_BLOCK_SECONDS} s"
                ),
            ));
        }
        Ok(vec![audio])
    }
}
