//! One synthesis, end to end: validate → admit → text stages → style stage →
//! phonemize → the voice, sentence by sentence → audio stages → resample.
//! HTTP-agnostic: the handlers in `http/` turn a [`SynthesisRequest`] into a
//! [`Job`] here and encode what comes out.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use candle_core::Device;
use tokio::sync::mpsc;
use tracing::field::Empty;
use tracing::Instrument;

use crate::pipeline::{Pipeline, PipelineRegistry, Stage, StageFailure};
use crate::telemetry::metrics;
use voxpipe_engine::phonemize::Phonemizer;
use voxpipe_engine::synth::{LoadedVoice, SynthOptions};
use voxpipe_engine::voice::{self, VoiceEntry};
use voxpipe_plugin::PluginError;
use voxpipe_types::{Audio, ChunkPosition, RequestContext, StageKind, StyleOutcome};

use super::admission::{Admission, Admitted};
use super::cache::AudioCache;
use super::timings::Timings;
use super::TtsError;

/// The request as a client gave it (both HTTP APIs map onto this).
#[derive(Debug, Clone, Default)]
pub struct SynthesisRequest {
    pub text: String,
    pub pipeline: Option<String>,
    pub voice: Option<String>,
    pub speaker: Option<String>,
    pub language: Option<String>,
    pub instruct: Option<String>,
    /// 0.25–4.0; above 1 is faster.
    pub speed: Option<f32>,
    /// Resample the output to this rate (8–192 kHz).
    pub sample_rate: Option<u32>,
    /// Seed of the voice's noise (default 0: the same request gives the same audio).
    pub seed: Option<u64>,
}

/// Server-side settings of the service.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    pub default_pipeline: String,
    pub max_text_chars: usize,
    pub request_timeout: Duration,
    /// Most phoneme ids per sentence (`[limits] max_sentence_phonemes`).
    pub max_sentence_phonemes: usize,
    /// Longest audio per sentence, seconds (`[limits] max_sentence_seconds`).
    pub max_sentence_seconds: f32,
}

/// A validated request, bound to one pipeline version.
#[derive(Clone)]
pub struct Job {
    pub trace_id: String,
    pub pipeline: Arc<Pipeline>,
    pub text: String,
    pub voice: Option<String>,
    pub speaker: Option<String>,
    pub language: Option<String>,
    pub instruct: Option<String>,
    pub speed: f32,
    pub sample_rate: Option<u32>,
    pub seed: u64,
    /// When the request arrived; the deadline counts from here.
    pub started: tokio::time::Instant,
}

/// What the style stage made of the instruction, for response headers and spans.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StyleReport {
    pub mapped: Option<String>,
    pub unmapped: Option<String>,
}

/// A finished (non-streamed) synthesis.
#[derive(Debug, Clone)]
pub struct Synthesis {
    pub audio: Audio,
    pub timings: Timings,
    pub style: StyleReport,
    pub voice: String,
    pub sentences: usize,
}

/// What a streamed synthesis sends, in order: `Started`, `Chunk`s, then `Done`
/// or `Failed`.
#[derive(Debug)]
pub enum StreamEvent {
    /// The first audio is ready (stages, phonemize and the first sentence
    /// are done); what follows has this format.
    Started {
        sample_rate: u32,
        channels: u16,
        style: StyleReport,
        voice: String,
        sentences: usize,
        timings: Timings,
    },
    /// One sentence of audio, audio stages applied.
    Chunk(Audio),
    Done(Timings),
    Failed(TtsError, Timings),
}

/// Voices by name, loaded on first use and kept.
pub struct VoiceStore {
    dir: PathBuf,
    device: Device,
    loaded: Mutex<HashMap<String, Arc<LoadedVoice>>>,
    /// Serializes loads so two first requests do not load a voice twice.
    loading: Mutex<()>,
}

impl VoiceStore {
    pub fn new(dir: PathBuf, device: Device) -> VoiceStore {
        VoiceStore {
            dir,
            device,
            loaded: Mutex::new(HashMap::new()),
            loading: Mutex::new(()),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The voice called `name`, loading it if needed (blocking: about a second).
    pub fn get(&self, name: &str) -> Result<Arc<LoadedVoice>, TtsError> {
        if let Some(v) = self.loaded_voice(name) {
            return Ok(v);
        }
        let _one_at_a_time = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = self.loaded_voice(name) {
            return Ok(v);
        }
        let voice = Arc::new(LoadedVoice::load_on(&self.dir, name, &self.device)?);
        tracing::info!(
            voice = name,
            device = %voxpipe_engine::device::device_label(&self.device),
            seconds = voice.load_time.as_secs_f64(),
            "voice loaded"
        );
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), voice.clone());
        Ok(voice)
    }

    /// The voice if it is already loaded.
    pub fn loaded_voice(&self, name: &str) -> Option<Arc<LoadedVoice>> {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Every voice in the folder (loaded or not).
    pub fn catalog(&self) -> Vec<VoiceEntry> {
        voice::scan(&self.dir).map(|(v, _)| v).unwrap_or_default()
    }
}

/// Everything a synthesis needs; shared by all requests.
pub struct TtsService {
    pub registry: Arc<PipelineRegistry>,
    pub voices: VoiceStore,
    pub admission: Arc<Admission>,
    pub cache: AudioCache,
    pub options: ServiceOptions,
    phonemizer: Phonemizer,
}

/// Sets the cancel flag when dropped: a handler future dropped because the
/// client went away stops the synthesis at the next sentence.
pub struct CancelOnDrop(pub Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl TtsService {
    pub fn new(
        registry: Arc<PipelineRegistry>,
        voices: VoiceStore,
        admission: Arc<Admission>,
        cache: AudioCache,
        options: ServiceOptions,
    ) -> Result<TtsService, TtsError> {
        let phonemizer =
            Phonemizer::new().map_err(|e| TtsError::Internal(format!("espeak-ng: {e}")))?;
        Ok(TtsService {
            registry,
            voices,
            admission,
            cache,
            options,
            phonemizer,
        })
    }

    /// Checks a request and binds it to the current version of its pipeline.
    pub fn prepare(&self, req: SynthesisRequest, trace_id: String) -> Result<Job, TtsError> {
        let started = tokio::time::Instant::now();
        let text = req.text;
        if text.trim().is_empty() {
            return Err(TtsError::InvalidInput("`text` is empty".into()));
        }
        if let Some(at) = text.chars().position(|c| c == '\0') {
            return Err(TtsError::InvalidInput(format!(
                "`text` contains a NUL character (at character {at})"
            )));
        }
        let chars = text.chars().count();
        if chars > self.options.max_text_chars {
            return Err(TtsError::TextTooLong {
                chars,
                limit: self.options.max_text_chars,
            });
        }
        let speed = req.speed.unwrap_or(1.0);
        if !(0.25..=4.0).contains(&speed) {
            return Err(TtsError::InvalidInput(format!(
                "`speed` {speed} is out of range 0.25–4.0"
            )));
        }
        if let Some(rate) = req.sample_rate {
            if !(8_000..=192_000).contains(&rate) {
                return Err(TtsError::InvalidInput(format!(
                    "`sample_rate` {rate} is out of range 8000–192000"
                )));
            }
        }
        if let Some(lang) = &req.language {
            let ok = !lang.is_empty()
                && lang.len() <= 35
                && lang
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return Err(TtsError::InvalidInput(format!(
                    "`language` {lang:?} is not a language tag such as en-US"
                )));
            }
        }
        let name = req
            .pipeline
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| self.options.default_pipeline.clone());
        let pipeline = self.registry.get(&name).ok_or_else(|| {
            let all = self.registry.all();
            TtsError::UnknownPipeline {
                name: name.clone(),
                available: all.keys().cloned().collect::<Vec<_>>().join(", "),
            }
        })?;
        let non_empty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        let voice = non_empty(req.voice);
        // Scanning the voices folder reads every voice's JSON: only for voices not loaded yet.
        if let Some(v) = voice
            .as_ref()
            .filter(|v| self.voices.loaded_voice(v).is_none())
        {
            let catalog = self.voices.catalog();
            if !catalog.iter().any(|e| &e.name == v) {
                return Err(TtsError::UnknownVoice {
                    name: v.clone(),
                    available: catalog
                        .iter()
                        .map(|e| e.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        Ok(Job {
            trace_id,
            pipeline,
            text,
            voice,
            speaker: non_empty(req.speaker),
            language: non_empty(req.language),
            instruct: non_empty(req.instruct),
            speed,
            sample_rate: req.sample_rate,
            seed: req.seed.unwrap_or(0),
            started,
        })
    }

    /// The cache key of a job's audio in `format`: the pipeline's version and
    /// every input that changes the output.
    pub fn cache_key(&self, job: &Job, format: &str) -> [u8; 32] {
        let p = &job.pipeline;
        super::cache::key(&[
            &p.name,
            &p.version.to_string(),
            &p.loaded_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
                .to_string(),
            &job.text,
            job.voice.as_deref().unwrap_or(""),
            job.speaker.as_deref().unwrap_or(""),
            job.language.as_deref().unwrap_or(""),
            job.instruct.as_deref().unwrap_or(""),
            &job.speed.to_string(),
            &job.sample_rate.unwrap_or(0).to_string(),
            &job.seed.to_string(),
            format,
        ])
    }

    fn deadline(&self, job: &Job) -> tokio::time::Instant {
        job.started + self.options.request_timeout
    }

    /// Synthesizes the whole text; audio stages see the whole utterance.
    pub async fn synthesize(self: &Arc<Self>, job: Job) -> Result<Synthesis, (TtsError, Timings)> {
        let span = synthesis_span(&job, false);
        let result = self.synthesize_in_span(job).instrument(span.clone()).await;
        match &result {
            Ok(s) => finish_span(&span, s.sentences, s.audio.seconds(), s.timings.busy()),
            Err((e, _)) => fail_span(&span, e),
        }
        result
    }

    async fn synthesize_in_span(
        self: &Arc<Self>,
        job: Job,
    ) -> Result<Synthesis, (TtsError, Timings)> {
        let mut timings = Timings::default();
        let admitted = self
            .admit(&job, &mut timings)
            .await
            .map_err(|e| (e, timings.clone()))?;
        let cancel = Arc::new(AtomicBool::new(false));
        let _cancel_on_drop = CancelOnDrop(cancel.clone());
        let service = self.clone();
        crate::pipeline::off_executor(move || {
            let _admitted = admitted;
            let mut collected: Vec<Audio> = Vec::new();
            let mut started = None;
            let cancelled = || cancel.load(Ordering::Relaxed);
            let result = service.run(&job, &cancelled, false, &mut timings, &mut |event| {
                match event {
                    StreamEvent::Started {
                        style,
                        voice,
                        sentences,
                        ..
                    } => started = Some((style, voice, sentences)),
                    StreamEvent::Chunk(a) => collected.push(a),
                    StreamEvent::Done(_) | StreamEvent::Failed(..) => {}
                }
                true
            });
            match (result, started) {
                (Ok(()), Some((style, voice, sentences))) => {
                    let audio = collected.pop().unwrap_or_default();
                    Ok(Synthesis {
                        audio,
                        timings,
                        style,
                        voice,
                        sentences,
                    })
                }
                (Ok(()), None) => Err((
                    TtsError::Internal("synthesis ended without audio".into()),
                    timings,
                )),
                (Err(e), _) => {
                    if let TtsError::Cancelled(why) = &e {
                        tracing::info!(reason = %why, "synthesis cancelled");
                    }
                    Err((e, timings))
                }
            }
        })
        .await
    }

    /// Synthesizes sentence by sentence, sending each as it is done. The first
    /// event is `Started` or `Failed`. Dropping the receiver (client gone)
    /// stops the synthesis at the next sentence.
    pub async fn stream(self: &Arc<Self>, job: Job) -> mpsc::Receiver<StreamEvent> {
        // Capacity 1: at most one sentence is made ahead of what the client has read.
        let (tx, rx) = mpsc::channel(1);
        let mut timings = Timings::default();
        let span = synthesis_span(&job, true);
        let admitted = match self
            .admit(&job, &mut timings)
            .instrument(span.clone())
            .await
        {
            Ok(a) => a,
            Err(e) => {
                fail_span(&span, &e);
                let _ = tx.send(StreamEvent::Failed(e, timings)).await;
                return rx;
            }
        };
        let service = self.clone();
        tokio::task::spawn_blocking(move || {
            let _span = span.clone().entered();
            let _admitted = admitted;
            let mut sent = 0usize;
            let mut audio_seconds = 0.0;
            let mut sentences = 0;
            let closed = tx.clone();
            let cancelled = move || closed.is_closed();
            let result = service.run(&job, &cancelled, true, &mut timings, &mut |event| {
                match &event {
                    StreamEvent::Started { sentences: n, .. } => sentences = *n,
                    StreamEvent::Chunk(a) => {
                        sent += 1;
                        audio_seconds += a.seconds();
                    }
                    StreamEvent::Done(_) | StreamEvent::Failed(..) => {}
                }
                tx.blocking_send(event).is_ok()
            });
            if let Err(TtsError::Cancelled(why)) = &result {
                tracing::info!(sentences_done = sent.saturating_sub(1), reason = %why, "synthesis cancelled");
            }
            let last = match result {
                Ok(()) => {
                    finish_span(&span, sentences, audio_seconds, timings.busy());
                    StreamEvent::Done(timings)
                }
                Err(e) => {
                    fail_span(&span, &e);
                    StreamEvent::Failed(e, timings)
                }
            };
            let _ = tx.blocking_send(last);
        });
        rx
    }

    async fn admit(&self, job: &Job, timings: &mut Timings) -> Result<Admitted, TtsError> {
        let queued = std::time::Instant::now();
        let span = tracing::info_span!("tts.queue", error.type = Empty);
        let admitted = self
            .admission
            .enter(self.deadline(job), self.options.request_timeout)
            .instrument(span.clone())
            .await;
        if let Err(e) = &admitted {
            span.record("error.type", e.kind());
        }
        timings.add("queue", None, queued.elapsed());
        metrics::stage("queue", "host", queued.elapsed());
        admitted
    }

    /// The blocking body of a synthesis. `emit` receives `Started`, then the
    /// audio as `Chunk`s (per sentence when `streaming`, else once), never
    /// `Done` / `Failed` (the caller sends those from the result); it returns
    /// false when nobody listens any more.
    fn run(
        &self,
        job: &Job,
        cancelled: &dyn Fn() -> bool,
        streaming: bool,
        timings: &mut Timings,
        emit: &mut dyn FnMut(StreamEvent) -> bool,
    ) -> Result<(), TtsError> {
        let deadline = Instant::now()
            + self
                .options
                .request_timeout
                .saturating_sub(job.started.elapsed());
        let check = || -> Result<(), TtsError> {
            if cancelled() {
                return Err(TtsError::Cancelled("the client went away".into()));
            }
            if Instant::now() > deadline {
                return Err(TtsError::Timeout(self.options.request_timeout));
            }
            Ok(())
        };
        let pipeline = &job.pipeline;
        let mut ctx = RequestContext {
            request_id: job.trace_id.clone(),
            language: job
                .language
                .clone()
                .or_else(|| pipeline.language.clone())
                .unwrap_or_default(),
            voice: job.voice.clone().unwrap_or_else(|| pipeline.voice.clone()),
            pipeline: pipeline.name.clone(),
            style: None,
        };
        let mut observe = |stage: &Stage, d: Duration| record_stage(timings, stage, d);

        let text = pipeline.run_text_observed(&ctx, job.text.clone(), &mut observe)?;
        check()?;

        let mut style = StyleReport::default();
        if let Some(instruct) = &job.instruct {
            match pipeline.run_style_observed(&ctx, instruct, &mut observe)? {
                Some(StyleOutcome::Mapped { style: s, label }) => {
                    tracing::info!(instruct_mapped = %label, "instruct mapped");
                    style.mapped = Some(label);
                    ctx.style = Some(s);
                }
                Some(StyleOutcome::Unmapped { reason }) => {
                    tracing::warn!(%reason, "instruct not mapped; speaking without a style");
                    style.unmapped = Some(reason);
                }
                None => {
                    style.unmapped = Some(format!(
                        "pipeline `{}` has no style stage; the instruction was ignored",
                        pipeline.name
                    ));
                }
            }
        }
        let s = ctx.style.clone().unwrap_or_default();
        // A voice or speaker named by the style stage (not by the client) that
        // does not exist is the style stage's fault, not the request's.
        let style_stage = || {
            pipeline
                .plugin_stages(StageKind::Style)
                .next()
                .map(|(st, _)| st.clone())
        };
        let blame_style = |e: TtsError| match (e, style_stage()) {
            (
                e @ (TtsError::UnknownVoice { .. } | TtsError::UnknownSpeaker { .. }),
                Some(stage),
            ) => TtsError::from(StageFailure {
                stage,
                error: PluginError::BadOutput(format!("the style names {e}")),
            }),
            (e, _) => e,
        };
        // The request's voice wins over the style's, which wins over the pipeline's.
        let voice_name = job
            .voice
            .clone()
            .or(s.voice.clone())
            .unwrap_or_else(|| pipeline.voice.clone());
        ctx.voice = voice_name.clone();
        tracing::Span::current().record("tts.voice", voice_name.as_str());
        let voice = match self.voices.get(&voice_name) {
            Ok(v) => v,
            Err(e) if job.voice.is_none() && s.voice.is_some() => return Err(blame_style(e)),
            Err(e) => return Err(e),
        };
        let speaker = match (&job.speaker, &s.speaker) {
            (Some(name), _) => speaker_id(&voice, Some(name))?,
            (None, Some(name)) => speaker_id(&voice, Some(name)).map_err(blame_style)?,
            (None, None) => 0,
        };
        let speed = (job.speed * s.speed.unwrap_or(1.0)).clamp(0.25, 4.0);
        let defaults = voice.entry.config.inference;
        let options = SynthOptions {
            noise_scale: s.noise_scale,
            length_scale: Some(defaults.length_scale / speed),
            noise_w: s.noise_w,
            speaker,
            seed: job.seed,
            max_phonemes: Some(self.options.max_sentence_phonemes),
            max_seconds: Some(self.options.max_sentence_seconds),
        };

        let started = Instant::now();
        let span = tracing::info_span!("phonemize", tts.sentences = Empty, tts.phonemes = Empty);
        let sentences = span.in_scope(|| voice.sentence_ids(&self.phonemizer, &text))?;
        span.record("tts.sentences", sentences.len() as i64);
        span.record(
            "tts.phonemes",
            sentences.iter().map(Vec::len).sum::<usize>() as i64,
        );
        drop(span);
        timings.add("phonemize", None, started.elapsed());
        metrics::stage("phonemize", "host", started.elapsed());
        let device = voxpipe_engine::device::device_label(voice.device());
        // What the response announces: the asked rate, else the voice's; the
        // channels of the first audio out of the audio stages.
        let rate = job.sample_rate.unwrap_or(voice.sample_rate());
        let mut started = Some(StreamEvent::Started {
            sample_rate: rate,
            channels: 1,
            style,
            voice: voice_name,
            sentences: sentences.len(),
            timings: Timings::default(),
        });
        let mut channels = None;
        // Sends `Started` (once, just before the first audio) and `audio`.
        let mut send = |audio: Audio, timings: &Timings| -> Result<(), TtsError> {
            let expected = *channels.get_or_insert(audio.channels);
            if audio.channels != expected {
                return Err(TtsError::Encode(format!(
                    "the audio stages changed the channel count mid-stream ({expected} → {}); a stream keeps one format",
                    audio.channels
                )));
            }
            if let Some(StreamEvent::Started {
                sample_rate,
                style,
                voice,
                sentences,
                ..
            }) = started.take()
            {
                let first = StreamEvent::Started {
                    sample_rate,
                    channels: expected,
                    style,
                    voice,
                    sentences,
                    timings: timings.clone(),
                };
                if !emit(first) {
                    return Err(TtsError::Cancelled("the client went away".into()));
                }
            }
            if !emit(StreamEvent::Chunk(audio)) {
                return Err(TtsError::Cancelled("the client went away".into()));
            }
            Ok(())
        };

        let mut whole = Vec::new();
        let count = sentences.len();
        for (i, ids) in sentences.iter().enumerate() {
            check()?;
            let span = tracing::info_span!(
                "model.inference",
                device = %device,
                batch.size = 1,
                sentence.index = i as i64,
                audio.seconds = Empty,
                rtf = Empty,
                error.type = Empty,
                otel.status_code = Empty,
            );
            let out = match span.in_scope(|| voice.synthesize(ids, &options)) {
                Ok(out) => out,
                Err(e) => {
                    let e = TtsError::from(e);
                    fail_span(&span, &e);
                    return Err(e);
                }
            };
            let seconds = out.samples.len() as f64 / f64::from(voice.sample_rate());
            span.record("audio.seconds", seconds);
            if seconds > 0.0 {
                span.record("rtf", out.model_time.as_secs_f64() / seconds);
            }
            drop(span);
            timings.add(
                "model",
                Some(format!("voice {}", voice.entry.name)),
                out.model_time,
            );
            metrics::stage("model", "host", out.model_time);
            if streaming {
                let audio = Audio {
                    sample_rate: voice.sample_rate(),
                    channels: 1,
                    samples: out.samples,
                };
                let position = ChunkPosition {
                    index: i as u32,
                    last: i + 1 == count,
                };
                let mut observe = |stage: &Stage, d: Duration| record_stage(timings, stage, d);
                let audio =
                    pipeline.run_audio_observed(&ctx, audio, position, true, &mut observe)?;
                // Every chunk at the announced rate, whatever the stages did.
                let audio = resample_timed(audio, Some(rate), timings);
                send(audio, timings)?;
            } else {
                whole.extend_from_slice(&out.samples);
            }
        }
        if !streaming {
            check()?;
            let audio = Audio {
                sample_rate: voice.sample_rate(),
                channels: 1,
                samples: whole,
            };
            let mut observe = |stage: &Stage, d: Duration| record_stage(timings, stage, d);
            let audio = pipeline.run_audio_observed(
                &ctx,
                audio,
                ChunkPosition::WHOLE,
                false,
                &mut observe,
            )?;
            let audio = resample_timed(audio, job.sample_rate, timings);
            send(audio, timings)?;
        }
        Ok(())
    }
}

/// A plugin stage's duration under its name, described as `<kind> <plugin>`.
fn record_stage(timings: &mut Timings, stage: &Stage, d: Duration) {
    let plugin = stage
        .plugin
        .as_ref()
        .map_or("", |p| p.plugin.id.name.as_str());
    timings.add(&stage.name, Some(format!("{} {plugin}", stage.kind)), d);
    metrics::stage(&stage.name, plugin, d);
}

/// The span of one synthesis; its outcome is recorded by [`finish_span`] or
/// [`fail_span`].
fn synthesis_span(job: &Job, stream: bool) -> tracing::Span {
    let language = job
        .language
        .as_deref()
        .or(job.pipeline.language.as_deref())
        .unwrap_or("");
    tracing::info_span!(
        "tts.synthesize",
        tts.language = language,
        tts.mode = if job.instruct.is_some() { "instruct" } else { "plain" },
        tts.voice = Empty,
        tts.stream = stream,
        pipeline.name = %job.pipeline.name,
        pipeline.version = job.pipeline.version as i64,
        tts.sentences = Empty,
        tts.audio_seconds = Empty,
        tts.rtf = Empty,
        error.type = Empty,
        otel.status_code = Empty,
    )
}

fn finish_span(span: &tracing::Span, sentences: usize, audio_seconds: f64, busy: Duration) {
    span.record("tts.sentences", sentences as i64);
    span.record("tts.audio_seconds", audio_seconds);
    if audio_seconds > 0.0 {
        span.record("tts.rtf", busy.as_secs_f64() / audio_seconds);
    }
}

/// Marks `span` failed with the API error type of `e`. A client that went
/// away is not the server's error: the type is recorded, the status is not.
fn fail_span(span: &tracing::Span, e: &TtsError) {
    span.record("error.type", e.kind());
    if !matches!(e, TtsError::Cancelled(_)) {
        span.record("otel.status_code", "ERROR");
    }
}

fn resample_timed(audio: Audio, rate: Option<u32>, timings: &mut Timings) -> Audio {
    match rate {
        Some(rate) if rate != audio.sample_rate => {
            let started = Instant::now();
            let out =
                tracing::info_span!("resample").in_scope(|| voxpipe_codec::resample(&audio, rate));
            timings.add("resample", None, started.elapsed());
            metrics::stage("resample", "host", started.elapsed());
            out
        }
        _ => audio,
    }
}

/// The speaker id of `speaker` for `voice` (none given: 0). Piper voices with one
/// speaker take no speaker (or its only id); others take a name from their
/// `speaker_id_map` or a number below `num_speakers`.
fn speaker_id(voice: &LoadedVoice, speaker: Option<&str>) -> Result<u32, TtsError> {
    let Some(speaker) = speaker else {
        return Ok(0);
    };
    let config = &voice.entry.config;
    config
        .speaker_id(speaker)
        .ok_or_else(|| TtsError::UnknownSpeaker {
            name: speaker.to_string(),
            voice: voice.entry.name.clone(),
            available: config.speakers_hint(),
        })
}
