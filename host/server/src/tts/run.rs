//! The blocking body of one synthesis, shared by whole and streamed requests:
//! text stages → style stage → phonemize → the voice, sentence by sentence →
//! audio stages → resample. A whole request is the same run with one chunk:
//! its audio stages see the whole utterance ([`ChunkPosition::WHOLE`]); a
//! streamed one sends each sentence through them as it is made.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::field::Empty;
use voxpipe_engine::phonemize::Phonemizer;
use voxpipe_engine::synth::{LoadedVoice, SynthOptions};
use voxpipe_plugin::PluginError;
use voxpipe_types::{Audio, ChunkPosition, RequestContext, StageKind, Style, StyleOutcome};

use super::admission::Admitted;
use super::honored::{self, UnhonoredField};
use super::observe::{fail_span, record_host, record_stage, record_unhonored};
use super::{Job, ServiceOptions, StreamEvent, StyleReport, Timings, TtsError, VoiceStore};
use crate::pipeline::routes;
use crate::pipeline::{OnUnhonored, Stage, StageFailure};

/// What a run needs from the service.
pub(super) struct Runner<'a> {
    pub voices: &'a VoiceStore,
    pub phonemizer: &'a Phonemizer,
    pub options: &'a ServiceOptions,
}

/// Stops a run between steps: the client went away, or the deadline passed.
pub(super) struct Checkpoint<'a> {
    pub deadline: Instant,
    pub timeout: Duration,
    pub cancelled: &'a dyn Fn() -> bool,
}

impl Checkpoint<'_> {
    pub fn check(&self) -> Result<(), TtsError> {
        if (self.cancelled)() {
            return Err(TtsError::Cancelled("the client went away".into()));
        }
        if Instant::now() > self.deadline {
            return Err(TtsError::Timeout(self.timeout));
        }
        Ok(())
    }
}

/// The voice to speak with: the request's wins over the style's, which wins
/// over the chosen route's, which wins over the pipeline's.
pub(super) fn choose_voice(
    request: Option<&str>,
    style: &Style,
    route: Option<&str>,
    pipeline: &str,
) -> String {
    request
        .or(style.voice.as_deref())
        .or(route)
        .unwrap_or(pipeline)
        .to_string()
}

/// The speed to speak at: the request's times the style's, kept in 0.25–4.
pub(super) fn effective_speed(request: f32, style: &Style) -> f32 {
    (request * style.speed.unwrap_or(1.0)).clamp(0.25, 4.0)
}

/// Who named the speaker: the request wins over the style.
#[derive(Debug, PartialEq)]
pub(super) enum SpeakerChoice<'a> {
    Request(&'a str),
    Style(&'a str),
    Default,
}

pub(super) fn choose_speaker<'a>(request: Option<&'a str>, style: &'a Style) -> SpeakerChoice<'a> {
    match (request, style.speaker.as_deref()) {
        (Some(name), _) => SpeakerChoice::Request(name),
        (None, Some(name)) => SpeakerChoice::Style(name),
        (None, None) => SpeakerChoice::Default,
    }
}

/// A voice or speaker that does not exist, named by the style stage (not by
/// the client), is the style stage's fault: a `plugin_fault` naming it.
fn blame_style(e: TtsError, pipeline: &crate::pipeline::Pipeline) -> TtsError {
    let stage = pipeline
        .plugin_stages(StageKind::Style)
        .next()
        .map(|(st, _)| st.clone());
    match (e, stage) {
        (e @ (TtsError::UnknownVoice { .. } | TtsError::UnknownSpeaker { .. }), Some(stage)) => {
            TtsError::from(StageFailure {
                stage,
                error: PluginError::BadOutput(format!("the style names {e}")),
            })
        }
        (e, _) => e,
    }
}

impl Runner<'_> {
    /// Runs `job`. `emit` receives `Started` (just before the first audio),
    /// then the audio as `Chunk`s (per sentence when `streaming`, else once),
    /// never `Done` / `Failed` (the caller sends those from the result); it
    /// returns false when nobody listens any more.
    pub fn run(
        &self,
        job: &Job,
        checkpoint: &Checkpoint<'_>,
        streaming: bool,
        memory: Option<&mut Admitted>,
        timings: &mut Timings,
        emit: &mut dyn FnMut(StreamEvent) -> bool,
    ) -> Result<(), TtsError> {
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
        checkpoint.check()?;

        let mut report = self.run_style(job, &mut ctx, timings)?;
        let mut style = ctx.style.take().unwrap_or_default();
        // Routes choose the voice when neither the request nor the style
        // named one; the chosen route fills the style where it is silent.
        let routed = if job.voice.is_none() && style.voice.is_none() {
            routes::choose(
                &pipeline.routes,
                &routes::Subject {
                    style: &style,
                    request_language: job.language.as_deref(),
                },
            )
        } else {
            None
        };
        if let Some((route, _)) = &routed {
            route.fill(&mut style);
            tracing::Span::current().record("style.route", route.number as i64);
        }
        let voice_name = choose_voice(
            job.voice.as_deref(),
            &style,
            routed.as_ref().and_then(|(r, _)| r.voice.as_deref()),
            &pipeline.voice,
        );
        ctx.voice = voice_name.clone();
        tracing::Span::current().record("tts.voice", voice_name.as_str());
        let voice = match self.voices.get(&voice_name) {
            Ok(v) => v,
            Err(e) if job.voice.is_none() && style.voice.is_some() => {
                return Err(blame_style(e, pipeline))
            }
            Err(e) => return Err(e),
        };
        // The audio is in the voice's language, whatever the request said.
        if let Some(tag) = voice.entry.config.language_tag() {
            let primary = ctx.language.split(['-', '_']).next().unwrap_or("");
            if !routes::language_matches(primary, &tag) {
                ctx.language = tag;
            }
        }
        let speaker = match choose_speaker(job.speaker.as_deref(), &style) {
            SpeakerChoice::Request(name) => speaker_id(&voice, name)?,
            SpeakerChoice::Style(name) => {
                speaker_id(&voice, name).map_err(|e| blame_style(e, pipeline))?
            }
            SpeakerChoice::Default => match routed.as_ref().and_then(|(r, _)| r.speaker.as_deref())
            {
                Some(name) => speaker_id(&voice, name)?,
                None => 0,
            },
        };
        let unhonored = self.account(job, &style, &voice, &voice_name, routed.as_ref());
        report.set_unhonored(&unhonored);
        if !unhonored.is_empty() && pipeline.on_unhonored == OnUnhonored::Refuse {
            let catalog: Vec<(String, String)> = self
                .voices
                .catalog()
                .into_iter()
                .filter_map(|v| Some((v.name.clone(), v.config.language_tag()?)))
                .collect();
            let why: Vec<String> = unhonored
                .iter()
                .map(|f| honored::who_serves(f, &pipeline.routes, &pipeline.voice, &catalog))
                .collect();
            return Err(TtsError::StyleUnsupported(format!(
                "pipeline `{}` cannot honor {} (on_unhonored = \"refuse\"): {}",
                pipeline.name,
                honored::label(&unhonored),
                why.join("; ")
            )));
        }
        ctx.style = Some(style.clone());
        let speed = effective_speed(job.speed, &style);
        // Runs of another script go to the voice the routes give their
        // language (mixed.rs); one part, the main voice, otherwise.
        let parts = super::mixed::parts(
            &text,
            &voice,
            job.language.as_deref().or(pipeline.language.as_deref()),
            &pipeline.routes,
            &pipeline.voice,
            self.voices,
        )?;
        let mut options = Vec::with_capacity(parts.len());
        for part in &parts {
            let main = Arc::ptr_eq(&part.voice, &voice);
            let speaker = match (&part.route_speaker, main) {
                (_, true) => speaker,
                (Some(name), false) => speaker_id(&part.voice, name)?,
                (None, false) => 0,
            };
            options.push(SynthOptions {
                noise_scale: style.noise_scale,
                length_scale: Some(part.voice.entry.config.inference.length_scale / speed),
                noise_w: style.noise_w,
                speaker,
                seed: job.seed,
                max_phonemes: Some(self.options.max_call_phonemes),
                max_seconds: Some(self.options.max_sentence_seconds),
                decoder_chunks: None,
            });
        }

        let started = Instant::now();
        let span = tracing::info_span!("phonemize", tts.sentences = Empty, tts.phonemes = Empty);
        // A check that stops the engine mid-way (between clauses, modules and
        // decoder windows): the same as `checkpoint`, which then says why.
        let stop = || checkpoint.check().is_err();
        let why_stopped = |e: TtsError| match e {
            TtsError::Stopped => checkpoint
                .check()
                .err()
                .unwrap_or_else(|| TtsError::Cancelled("the synthesis was stopped".into())),
            e => e,
        };
        // (part, ids) per model call, in order.
        let mut sentences: Vec<(usize, Vec<i64>)> = Vec::new();
        span.in_scope(|| {
            for (p, part) in parts.iter().enumerate() {
                // A stream's first audio waits for the first model call only:
                // it is kept short when audio goes out sentence by sentence
                // (window by window, the decoder already sends early).
                let first = if sentences.is_empty() && streaming && !pipeline.audio_streamable() {
                    voxpipe_engine::synth::DEFAULT_FIRST_CALL_PHONEMES
                } else {
                    self.options.max_call_phonemes
                };
                let used: usize = sentences.iter().map(|(_, ids)| ids.len()).sum();
                let ids = part.voice.sentence_ids_with(
                    self.phonemizer,
                    &part.text,
                    self.options.max_call_phonemes,
                    first,
                    self.options.max_request_phonemes.saturating_sub(used),
                    &stop,
                );
                let ids = match ids {
                    Ok(ids) => ids,
                    // A part with nothing to say (punctuation only) is skipped;
                    // the request fails only if every part is empty.
                    Err(voxpipe_engine::synth::EngineError::NothingToSay) if parts.len() > 1 => {
                        continue
                    }
                    Err(e) => return Err(e),
                };
                sentences.extend(ids.into_iter().map(|ids| (p, ids)));
            }
            if sentences.is_empty() {
                return Err(voxpipe_engine::synth::EngineError::NothingToSay);
            }
            Ok(())
        })
        .map_err(|e| why_stopped(e.into()))?;
        span.record("tts.sentences", sentences.len() as i64);
        span.record(
            "tts.phonemes",
            sentences.iter().map(|(_, ids)| ids.len()).sum::<usize>() as i64,
        );
        drop(span);
        record_host(timings, "phonemize", None, started.elapsed());
        // The size is known now: bounded work per request, and the memory
        // admitted for it (a text stage may have made the text longer).
        let ids: usize = sentences.iter().map(|(_, ids)| ids.len()).sum();
        if ids > self.options.max_request_phonemes {
            return Err(TtsError::RequestTooLarge(format!(
                "the text makes {ids} phoneme ids; this server synthesizes at most {} per \
                 request ([limits] max_request_phonemes)",
                self.options.max_request_phonemes
            )));
        }
        if let Some(admitted) = memory {
            let rate = job.sample_rate.unwrap_or(voice.sample_rate());
            let mib = super::estimate::from_ids(ids, speed, streaming, rate);
            admitted.grow_to(mib, &|| checkpoint.check())?;
        }

        // What the response announces: the asked rate, else the voice's; the
        // channels of the first audio out of the audio stages.
        let rate = job.sample_rate.unwrap_or(voice.sample_rate());
        let mut out = Output {
            started: Some(StreamEvent::Started {
                sample_rate: rate,
                channels: 1,
                style: report,
                voice: voice_name,
                sentences: sentences.len(),
                timings: Timings::default(),
            }),
            channels: None,
            emit,
        };
        // A stream keeps one rate whatever the stages did; a whole response
        // keeps the stages' rate unless the client asked for one.
        let target_rate = if streaming {
            Some(rate)
        } else {
            job.sample_rate
        };
        let mut finish = |audio: Audio, position: ChunkPosition, timings: &mut Timings| {
            let mut observe = |stage: &Stage, d: Duration| record_stage(timings, stage, d);
            let audio =
                pipeline.run_audio_observed(&ctx, audio, position, streaming, &mut observe)?;
            let audio = resample_timed(audio, target_rate, timings);
            out.send(audio, timings)
        };

        // Streamed, each decoder window goes through the audio stages as soon
        // as it is made when they all take chunks (streamable); otherwise each
        // sentence does, as a whole, once it is complete. Whole, the utterance
        // goes through them once.
        let per_window = streaming && pipeline.audio_streamable();
        let mut whole = Vec::new();
        let mut chunks = 0u32;
        let count = sentences.len();
        for (i, (p, ids)) in sentences.iter().enumerate() {
            checkpoint.check()?;
            let part_voice = &parts[*p].voice;
            // Another voice's audio joins the main voice's rate.
            let convert = |samples: &[f32]| -> Vec<f32> {
                if part_voice.sample_rate() == voice.sample_rate() {
                    return samples.to_vec();
                }
                voxpipe_codec::resample(
                    &voice_audio(part_voice, samples.to_vec()),
                    voice.sample_rate(),
                )
                .samples
            };
            let mut failed = None;
            let mut sentence = Vec::new();
            let mut on_audio = |samples: &[f32], last_piece: bool, timings: &mut Timings| {
                let samples = convert(samples);
                if !streaming {
                    whole.extend_from_slice(&samples);
                    return true;
                }
                if !per_window {
                    sentence.extend_from_slice(&samples);
                    if !last_piece {
                        return true;
                    }
                }
                let samples = if per_window {
                    samples
                } else {
                    std::mem::take(&mut sentence)
                };
                let position = ChunkPosition {
                    index: chunks,
                    last: last_piece && i + 1 == count,
                };
                chunks += 1;
                match finish(voice_audio(&voice, samples), position, timings) {
                    Ok(()) => true,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            };
            let result = self.sentence(
                part_voice,
                i,
                ids,
                &options[*p],
                &stop,
                timings,
                &mut on_audio,
            );
            if let Some(e) = failed {
                return Err(e);
            }
            result.map_err(why_stopped)?;
        }
        if !streaming {
            checkpoint.check()?;
            finish(voice_audio(&voice, whole), ChunkPosition::WHOLE, timings)?;
        }
        Ok(())
    }

    /// The style fields nothing applies (see `honored.rs`), recorded on the
    /// request's span and counted.
    fn account(
        &self,
        job: &Job,
        style: &Style,
        voice: &LoadedVoice,
        voice_name: &str,
        routed: Option<&(&crate::pipeline::Route, routes::Matched)>,
    ) -> Vec<UnhonoredField> {
        let audio: Vec<&voxpipe_types::Applies> = job
            .pipeline
            .plugin_stages(StageKind::Audio)
            .flat_map(|(_, p)| p.plugin.applies.iter())
            .collect();
        let tag = voice.entry.config.language_tag();
        let applied = honored::Applied {
            voice: voice_name,
            voice_language: tag.as_deref(),
            speaker_overridden: job.speaker.is_some(),
            route: routed.map(|(_, m)| m),
            audio: &audio,
        };
        let fields = honored::unhonored(style, &applied);
        if !fields.is_empty() {
            record_unhonored(&job.pipeline.name, &fields);
        }
        fields
    }

    /// Runs the style stage on the instruction, if any; sets `ctx.style`.
    fn run_style(
        &self,
        job: &Job,
        ctx: &mut RequestContext,
        timings: &mut Timings,
    ) -> Result<StyleReport, TtsError> {
        let mut report = StyleReport::default();
        let Some(instruct) = &job.instruct else {
            return Ok(report);
        };
        let mut observe = |stage: &Stage, d: Duration| record_stage(timings, stage, d);
        match job
            .pipeline
            .run_style_observed(ctx, instruct, &mut observe)?
        {
            Some(StyleOutcome::Mapped { style, label }) => {
                tracing::info!(instruct_mapped = %label, "instruct mapped");
                report.mapped = Some(label);
                ctx.style = Some(style);
            }
            Some(StyleOutcome::Unmapped { reason }) => {
                tracing::warn!(%reason, "instruct not mapped; speaking without a style");
                report.unmapped = Some(reason);
            }
            None => {
                report.unmapped = Some(format!(
                    "pipeline `{}` has no style stage; the instruction was ignored",
                    job.pipeline.name
                ));
            }
        }
        Ok(report)
    }

    /// One sentence (or piece of one) through the voice, in its
    /// `model.inference` span; its audio goes to `on_audio` window by window,
    /// outside that span (audio stages are the request's, not the model's).
    #[allow(clippy::too_many_arguments)]
    fn sentence(
        &self,
        voice: &LoadedVoice,
        index: usize,
        ids: &[i64],
        options: &SynthOptions,
        stop: &dyn Fn() -> bool,
        timings: &mut Timings,
        on_audio: &mut dyn FnMut(&[f32], bool, &mut Timings) -> bool,
    ) -> Result<(), TtsError> {
        let device = voxpipe_engine::device::device_label(voice.device());
        let parent = tracing::Span::current();
        let span = tracing::info_span!(
            "model.inference",
            device = %device,
            batch.size = 1,
            sentence.index = index as i64,
            audio.seconds = Empty,
            rtf = Empty,
            error.type = Empty,
            otel.status_code = Empty,
        );
        let mut samples = 0usize;
        let result = span.in_scope(|| {
            voice.synthesize_streaming(ids, options, stop, &mut |audio, last| {
                samples += audio.len();
                let _outside = parent.enter();
                on_audio(audio, last, timings)
            })
        });
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                let e = TtsError::from(e);
                if !matches!(e, TtsError::Stopped) {
                    fail_span(&span, &e);
                }
                return Err(e);
            }
        };
        let seconds = samples as f64 / f64::from(voice.sample_rate());
        span.record("audio.seconds", seconds);
        if seconds > 0.0 {
            span.record("rtf", out.model_time.as_secs_f64() / seconds);
        }
        record_host(
            timings,
            "model",
            Some(format!("voice {}", voice.entry.name)),
            out.model_time,
        );
        Ok(())
    }
}

/// Sends `Started` (once, just before the first audio) and the audio.
struct Output<'e> {
    started: Option<StreamEvent>,
    /// The channel count of the first audio: a stream keeps it.
    channels: Option<u16>,
    emit: &'e mut dyn FnMut(StreamEvent) -> bool,
}

impl Output<'_> {
    fn send(&mut self, audio: Audio, timings: &Timings) -> Result<(), TtsError> {
        let expected = *self.channels.get_or_insert(audio.channels);
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
        }) = self.started.take()
        {
            let first = StreamEvent::Started {
                sample_rate,
                channels: expected,
                style,
                voice,
                sentences,
                timings: timings.clone(),
            };
            if !(self.emit)(first) {
                return Err(TtsError::Cancelled("the client went away".into()));
            }
        }
        if !(self.emit)(StreamEvent::Chunk(audio)) {
            return Err(TtsError::Cancelled("the client went away".into()));
        }
        Ok(())
    }
}

fn voice_audio(voice: &LoadedVoice, samples: Vec<f32>) -> Audio {
    Audio {
        sample_rate: voice.sample_rate(),
        channels: 1,
        samples,
    }
}

fn resample_timed(audio: Audio, rate: Option<u32>, timings: &mut Timings) -> Audio {
    match rate {
        Some(rate) if rate != audio.sample_rate => {
            let started = Instant::now();
            let out =
                tracing::info_span!("resample").in_scope(|| voxpipe_codec::resample(&audio, rate));
            record_host(timings, "resample", None, started.elapsed());
            out
        }
        _ => audio,
    }
}

/// The speaker id of `speaker` for `voice`. Piper voices with one speaker
/// take no speaker (or its only id); others take a name from their
/// `speaker_id_map` or a number below `num_speakers`.
fn speaker_id(voice: &LoadedVoice, speaker: &str) -> Result<u32, TtsError> {
    let config = &voice.entry.config;
    config
        .speaker_id(speaker)
        .ok_or_else(|| TtsError::UnknownSpeaker {
            name: speaker.to_string(),
            voice: voice.entry.name.clone(),
            available: config.speakers_hint(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, OnceLock};

    use crate::pipeline::Pipeline;
    use voxpipe_engine::device::Device;
    use voxpipe_types::StageKind;

    #[test]
    fn the_request_wins_over_the_style_over_the_pipeline() {
        let none = Style::default();
        let styled = Style {
            voice: Some("style-voice".into()),
            speaker: Some("style-speaker".into()),
            speed: Some(2.0),
            ..Style::default()
        };
        assert_eq!(choose_voice(Some("asked"), &styled, None, "joe"), "asked");
        assert_eq!(
            choose_voice(None, &styled, Some("routed"), "joe"),
            "style-voice"
        );
        assert_eq!(choose_voice(None, &none, Some("routed"), "joe"), "routed");
        assert_eq!(choose_voice(None, &none, None, "joe"), "joe");
        assert_eq!(
            choose_speaker(Some("asked"), &styled),
            SpeakerChoice::Request("asked")
        );
        assert_eq!(
            choose_speaker(None, &styled),
            SpeakerChoice::Style("style-speaker")
        );
        assert_eq!(choose_speaker(None, &none), SpeakerChoice::Default);
        // Speeds multiply, and the product stays within what the voice takes.
        assert_eq!(effective_speed(1.5, &styled), 3.0);
        assert_eq!(effective_speed(3.0, &styled), 4.0);
        assert_eq!(
            effective_speed(
                0.25,
                &Style {
                    speed: Some(0.5),
                    ..none.clone()
                }
            ),
            0.25
        );
        assert_eq!(effective_speed(0.8, &none), 0.8);
    }

    #[test]
    fn a_checkpoint_stops_on_cancel_first_then_on_the_deadline() {
        let cancel = AtomicBool::new(false);
        let cancelled = || cancel.load(Ordering::Relaxed);
        let mut cp = Checkpoint {
            deadline: Instant::now() + Duration::from_secs(60),
            timeout: Duration::from_secs(60),
            cancelled: &cancelled,
        };
        assert!(cp.check().is_ok());
        cp.deadline = Instant::now() - Duration::from_millis(1);
        assert_eq!(cp.check().unwrap_err().kind(), "timeout");
        cancel.store(true, Ordering::Relaxed);
        assert_eq!(cp.check().unwrap_err().kind(), "cancelled");
    }

    /// The real default voice and espeak-ng, with a pipeline that has only
    /// the model stage (no plugins).
    struct Fixture {
        voices: VoiceStore,
        phonemizer: Phonemizer,
        options: ServiceOptions,
        pipeline: Arc<Pipeline>,
    }

    fn fixture() -> &'static Fixture {
        static F: OnceLock<Fixture> = OnceLock::new();
        F.get_or_init(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../voices");
            Fixture {
                voices: VoiceStore::new(dir, Device::Cpu),
                phonemizer: Phonemizer::new().expect("espeak-ng"),
                options: ServiceOptions {
                    default_pipeline: "bare".into(),
                    max_text_chars: 5000,
                    request_timeout: Duration::from_secs(60),
                    max_call_phonemes: 400,
                    max_request_phonemes: 50_000,
                    max_sentence_seconds: 60.0,
                },
                pipeline: Arc::new(Pipeline {
                    name: "bare".into(),
                    description: None,
                    voice: "en_US-joe-medium".into(),
                    language: Some("en-US".into()),
                    source: "bare.toml".into(),
                    version: 1,
                    loaded_at: std::time::SystemTime::now(),
                    limits: Default::default(),
                    stages: vec![Arc::new(Stage {
                        index: 0,
                        name: "model".into(),
                        kind: StageKind::Model,
                        plugin: None,
                    })],
                    routes: Vec::new(),
                    on_unhonored: Default::default(),
                }),
            }
        })
    }

    fn job(text: &str) -> Job {
        Job {
            trace_id: "0".repeat(32),
            pipeline: fixture().pipeline.clone(),
            text: text.into(),
            voice: None,
            speaker: None,
            language: None,
            instruct: None,
            speed: 1.0,
            sample_rate: None,
            seed: 0,
            started: tokio::time::Instant::now(),
        }
    }

    /// Runs `job`; `stop_after` chunks, the listener goes away. Returns the
    /// result and the events' shapes: `S` for Started, chunk sample counts.
    fn run(
        job: &Job,
        streaming: bool,
        deadline: Duration,
        stop_after: usize,
    ) -> (Result<(), TtsError>, Vec<usize>, Timings) {
        let f = fixture();
        let runner = Runner {
            voices: &f.voices,
            phonemizer: &f.phonemizer,
            options: &f.options,
        };
        let never = || false;
        let checkpoint = Checkpoint {
            deadline: Instant::now() + deadline,
            timeout: deadline,
            cancelled: &never,
        };
        let mut events = Vec::new();
        let mut timings = Timings::default();
        let result = runner.run(job, &checkpoint, streaming, None, &mut timings, &mut |e| {
            match e {
                StreamEvent::Started { .. } => events.push(0),
                StreamEvent::Chunk(a) => events.push(a.samples.len()),
                _ => panic!("the run never sends Done/Failed itself"),
            }
            events.iter().skip(1).count() < stop_after
        });
        (result, events, timings)
    }

    #[test]
    fn whole_is_the_stream_collected_and_runs_stop_on_cancel_and_deadline() {
        let text = "One sentence. Another sentence here. And a third.";
        let (whole, events, timings) = run(&job(text), false, Duration::from_secs(60), 99);
        whole.unwrap();
        assert_eq!(events.len(), 2, "Started, then one chunk: {events:?}");
        assert!(timings.get("model").is_some() && timings.get("phonemize").is_some());
        let (streamed, chunks, _) = run(&job(text), true, Duration::from_secs(60), 99);
        streamed.unwrap();
        assert_eq!(chunks[0], 0);
        assert_eq!(
            chunks.len(),
            4,
            "Started, then a chunk per sentence: {chunks:?}"
        );
        // No audio stages: the stream's sentences are the whole utterance, sample for sample.
        assert_eq!(chunks[1..].iter().sum::<usize>(), events[1]);

        // The listener goes away after the first chunk: the run stops there
        // (inside the voice: the sentence it was on is not finished).
        let (r, chunks, timings) = run(&job(text), true, Duration::from_secs(60), 1);
        assert_eq!(r.unwrap_err().kind(), "cancelled");
        assert_eq!(chunks.len(), 2);
        assert!(timings.get("phonemize").is_some());

        // A deadline already passed: refused before the voice runs.
        let (r, events, timings) = run(&job(text), false, Duration::ZERO, 99);
        assert_eq!(r.unwrap_err().kind(), "timeout");
        assert!(events.is_empty());
        assert_eq!(timings.get("model"), None);
    }

    #[test]
    fn a_long_unpunctuated_sentence_is_spoken_in_pieces_and_bounded_per_request() {
        // About 600 phoneme ids in one sentence: over the 400-id cap.
        let text = "the people said that the water was warm and the house was little ".repeat(5);
        let (r, events, _) = run(&job(&text), true, Duration::from_secs(60), 99);
        r.unwrap();
        assert!(
            events.len() >= 3,
            "Started and at least two pieces: {events:?}"
        );
        let f = fixture();
        let runner = Runner {
            voices: &f.voices,
            phonemizer: &f.phonemizer,
            options: &ServiceOptions {
                max_request_phonemes: 100,
                ..f.options.clone()
            },
        };
        let never = || false;
        let checkpoint = Checkpoint {
            deadline: Instant::now() + Duration::from_secs(60),
            timeout: Duration::from_secs(60),
            cancelled: &never,
        };
        let err = runner
            .run(
                &job(&text),
                &checkpoint,
                false,
                None,
                &mut Timings::default(),
                &mut |_| true,
            )
            .unwrap_err();
        assert_eq!(err.kind(), "request_too_large");
        assert!(err.to_string().contains("max_request_phonemes"), "{err}");
    }

    #[test]
    fn unknown_voices_and_speakers_are_the_requests_fault_when_it_named_them() {
        let mut j = job("Hello.");
        j.voice = Some("nobody".into());
        let (r, _, _) = run(&j, false, Duration::from_secs(60), 99);
        assert_eq!(r.unwrap_err().kind(), "unknown_voice");
        let mut j = job("Hello.");
        j.speaker = Some("nobody".into());
        let (r, _, _) = run(&j, false, Duration::from_secs(60), 99);
        assert_eq!(r.unwrap_err().kind(), "unknown_speaker");
    }
}
