//! The synthesis service: what every front end calls. It validates a request
//! into a [`Job`], admits it (bounded queue and concurrency), runs it off the
//! async executor ([`super::run`]) and hands back audio, timings and typed
//! errors. It knows nothing of HTTP: status codes, headers, encoding and the
//! response cache belong to the front end (`http/`).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::field::Empty;
use tracing::Instrument;

use crate::pipeline::PipelineRegistry;
use crate::telemetry::metrics;
use voxpipe_engine::phonemize::Phonemizer;
use voxpipe_types::Audio;

use super::admission::{Admission, Admitted};
use super::observe::{fail_span, finish_span, synthesis_span};
use super::request::{check_fields, non_empty};
use super::run::{Checkpoint, Runner};
use super::{InputFormat, Job, ServiceOptions, SynthesisRequest, Timings, TtsError, VoiceStore};

/// What the style stage made of the instruction, for response headers and spans.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StyleReport {
    pub mapped: Option<String>,
    pub unmapped: Option<String>,
    /// Style fields set but applied by nothing, as a label
    /// (`dialect=sichuanese;emotion=happy`); see `honored.rs`.
    pub unhonored: Option<String>,
}

impl StyleReport {
    pub(crate) fn set_unhonored(&mut self, fields: &[super::honored::UnhonoredField]) {
        self.unhonored = (!fields.is_empty()).then(|| super::honored::label(fields));
    }
}

/// A finished (non-streamed) synthesis.
#[derive(Debug, Clone)]
pub struct Synthesis {
    pub audio: Audio,
    pub timings: Timings,
    pub style: StyleReport,
    pub voice: String,
    pub sentences: usize,
    /// Word timestamps, when the request asked for them (`timestamps`).
    pub words: Vec<super::WordTiming>,
    pub timestamps: bool,
}

/// What a synthesis sends, in order: `Started`, `Chunk`s, then `Done` or
/// `Failed` (or only `Failed`).
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
    /// Audio, audio stages applied: one sentence when streamed, the whole
    /// utterance otherwise.
    Chunk(Audio),
    /// Words of the request and when they are heard, in seconds from the
    /// start of the response (asked by `SynthesisRequest::timestamps`): in a
    /// stream after the audio that holds them, sentence by sentence.
    Words(Vec<super::WordTiming>),
    Done(Timings),
    Failed(TtsError, Timings),
}

/// Everything a synthesis needs; shared by all requests.
pub struct TtsService {
    pub registry: Arc<PipelineRegistry>,
    pub voices: VoiceStore,
    pub admission: Arc<Admission>,
    pub options: ServiceOptions,
    phonemizer: Phonemizer,
}

impl TtsService {
    pub fn new(
        registry: Arc<PipelineRegistry>,
        voices: VoiceStore,
        admission: Arc<Admission>,
        options: ServiceOptions,
    ) -> Result<TtsService, TtsError> {
        let phonemizer =
            Phonemizer::new().map_err(|e| TtsError::Internal(format!("espeak-ng: {e}")))?;
        Ok(TtsService {
            registry,
            voices,
            admission,
            options,
            phonemizer,
        })
    }

    /// Checks a request and binds it to the current version of its pipeline.
    /// `streamed`: it will be streamed (a longer text is allowed).
    pub fn prepare(
        &self,
        req: SynthesisRequest,
        trace_id: String,
        streamed: bool,
    ) -> Result<Job, TtsError> {
        let started = tokio::time::Instant::now();
        let max = if streamed {
            self.options.max_stream_chars
        } else {
            self.options.max_text_chars
        };
        let speed = check_fields(&req, max, streamed)?;
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
        let voice = non_empty(req.voice);
        // Scanning the voices folder reads every voice's JSON: only for voices not loaded yet.
        if let Some(v) = voice
            .as_ref()
            .filter(|v| self.voices.loaded_voice(v).is_none())
        {
            if !self.voices.catalog().iter().any(|e| &e.name == v) {
                return Err(self.voices.unknown(v));
            }
        }
        let ssml = match req.input_format {
            InputFormat::Text => None,
            InputFormat::Ssml => {
                let blocks = super::ssml::parse(&req.text)?;
                // Every voice the document names exists (like `voice`).
                for name in blocks.iter().filter_map(|b| match b {
                    super::ssml::Block::Speech { settings, .. } => settings.voice.as_ref(),
                    super::ssml::Block::Silence { .. } => None,
                }) {
                    if self.voices.loaded_voice(name).is_none()
                        && !self.voices.catalog().iter().any(|e| &e.name == name)
                    {
                        return Err(self.voices.unknown(name));
                    }
                }
                Some(Arc::new(blocks))
            }
        };
        Ok(Job {
            trace_id,
            pipeline,
            ssml,
            timestamps: req.timestamps,
            streamed,
            text: super::request::without_controls(req.text),
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

    /// Synthesizes the whole text; audio stages see the whole utterance. The
    /// same run as [`TtsService::stream`], collected.
    pub async fn synthesize(self: &Arc<Self>, job: Job) -> Result<Synthesis, (TtsError, Timings)> {
        let timestamps = job.timestamps;
        let mut rx = self.start(job, false).await;
        let mut started = None;
        let mut audio = None;
        let mut words = Vec::new();
        while let Some(event) = rx.recv().await {
            match event {
                StreamEvent::Started {
                    style,
                    voice,
                    sentences,
                    ..
                } => started = Some((style, voice, sentences)),
                StreamEvent::Chunk(a) => audio = Some(a),
                StreamEvent::Words(w) => words.extend(w),
                StreamEvent::Failed(e, timings) => return Err((e, timings)),
                StreamEvent::Done(timings) => {
                    return match (started, audio) {
                        (Some((style, voice, sentences)), Some(audio)) => Ok(Synthesis {
                            audio,
                            timings,
                            style,
                            voice,
                            sentences,
                            words,
                            timestamps,
                        }),
                        _ => Err((
                            TtsError::Internal("synthesis ended without audio".into()),
                            timings,
                        )),
                    };
                }
            }
        }
        Err((
            TtsError::Internal("the synthesis ended early".into()),
            Timings::default(),
        ))
    }

    /// Synthesizes sentence by sentence, sending each as it is done. The first
    /// event is `Started` or `Failed`. Dropping the receiver (client gone)
    /// stops the synthesis at the next sentence.
    pub async fn stream(self: &Arc<Self>, job: Job) -> mpsc::Receiver<StreamEvent> {
        self.start(job, true).await
    }

    /// Admits `job` and runs it off the executor, sending its events. The
    /// run stops at its next step once the receiver is dropped.
    async fn start(self: &Arc<Self>, job: Job, streaming: bool) -> mpsc::Receiver<StreamEvent> {
        // Capacity 1: at most one sentence is made ahead of what the client has read.
        let (tx, rx) = mpsc::channel(1);
        let mut timings = Timings::default();
        let span = synthesis_span(&job, streaming);
        let admitted = match self
            .admit(&job, streaming, &mut timings)
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
        let work = move || service.run_admitted(job, admitted, streaming, timings, tx);
        tokio::spawn(crate::blocking::off_executor(work).instrument(span));
        rx
    }

    /// The blocking part of [`TtsService::start`], in the synthesis span.
    fn run_admitted(
        &self,
        job: Job,
        mut admitted: Admitted,
        streaming: bool,
        mut timings: Timings,
        tx: mpsc::Sender<StreamEvent>,
    ) {
        let span = tracing::Span::current();
        let closed = tx.clone();
        let cancelled = move || closed.is_closed();
        let checkpoint = Checkpoint {
            deadline: std::cell::Cell::new(job.deadline(self.options.request_timeout)),
            timeout: self.options.request_timeout,
            cancelled: &cancelled,
        };
        let runner = Runner {
            voices: &self.voices,
            phonemizer: &self.phonemizer,
            options: &self.options,
        };
        let (mut chunks, mut audio_seconds, mut sentences) = (0usize, 0.0, 0);
        let memory = &mut admitted;
        let result = runner.run(
            &job,
            &checkpoint,
            streaming,
            Some(memory),
            &mut timings,
            &mut |event| {
                match &event {
                    StreamEvent::Started { sentences: n, .. } => sentences = *n,
                    StreamEvent::Chunk(a) => {
                        chunks += 1;
                        audio_seconds += a.seconds();
                    }
                    StreamEvent::Words(_) | StreamEvent::Done(_) | StreamEvent::Failed(..) => {}
                }
                tx.blocking_send(event).is_ok()
            },
        );
        let last = match result {
            Ok(()) => {
                finish_span(&span, sentences, audio_seconds, timings.busy());
                StreamEvent::Done(timings)
            }
            Err(e) => {
                if let TtsError::Cancelled(why) = &e {
                    tracing::info!(chunks_sent = chunks, reason = %why, "synthesis cancelled");
                }
                fail_span(&span, &e);
                StreamEvent::Failed(e, timings)
            }
        };
        // The slot is free before the client hears the end, so a client that
        // sends its next request on `Done` (a Wyoming stream's next sentence)
        // is never refused by its own finished run.
        drop(admitted);
        let _ = tx.blocking_send(last);
    }

    async fn admit(
        &self,
        job: &Job,
        streaming: bool,
        timings: &mut Timings,
    ) -> Result<Admitted, TtsError> {
        let queued = Instant::now();
        let span = tracing::info_span!("tts.queue", error.type = Empty);
        // The voice's rate is not known yet: a rate above most voices'.
        let rate = job.sample_rate.unwrap_or(24_000);
        let mib = super::estimate::from_text(job.text.chars().count(), job.speed, streaming, rate);
        let admitted = self
            .admission
            .enter(
                job.deadline(self.options.request_timeout).into(),
                self.options.request_timeout,
                mib,
            )
            .instrument(span.clone())
            .await;
        if let Err(e) = &admitted {
            span.record("error.type", e.kind());
        }
        timings.add("queue", None, queued.elapsed());
        metrics::stage("queue", "host", queued.elapsed());
        admitted
    }
}
