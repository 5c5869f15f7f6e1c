//! The blocking body of one synthesis, shared by whole and streamed requests:
//! text stages → style stage → phonemize → the voice, sentence by sentence →
//! audio stages → resample. A whole request is the same run with one chunk:
//! its audio stages see the whole utterance ([`ChunkPosition::WHOLE`]); a
//! streamed one sends each sentence through them as it is made.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::field::Empty;
use voxpipe_engine::phonemize::Phonemizer;
use voxpipe_engine::synth::{LoadedVoice, SynthOptions};
use voxpipe_plugin::PluginError;
use voxpipe_types::{Audio, RequestContext, StageKind, Style, StyleOutcome};

use super::admission::Admitted;
use super::honored::{self, UnhonoredField};
use super::mixed::{Part, Speakers};
use super::observe::{fail_span, record_host, record_stage, record_unhonored};
use super::ssml::{Block, Settings};
use super::words::WordClock;
use super::{Job, ServiceOptions, StreamEvent, StyleReport, Timings, TtsError, VoiceStore};
use crate::pipeline::routes;
use crate::pipeline::{AudioChain, End, OnUnhonored, Stage, StageFailure};

/// A stream longer than this (bytes) is spoken in pieces of about this many
/// characters, a few sentences each (see `sentences::pieces`).
const STREAM_PIECE_CHARS: usize = 1000;

/// One step of a run: a piece of text to speak, or an SSML break's
/// silence in milliseconds.
enum Step<'a> {
    Speak(Speech<'a>),
    Silence(u32),
}

/// A piece of text to speak and, for an SSML request, what its block says.
struct Speech<'a> {
    text: String,
    settings: Option<&'a Settings>,
    /// A whole SSML block: its words as the document wrote them (what word
    /// timestamps report).
    written: Option<&'a str>,
    /// A whole SSML block with `say-as`: the text and hints for a first
    /// text stage that takes them.
    hinted: Option<&'a super::ssml::Hinted>,
}

impl<'a> Speech<'a> {
    /// Plain text (or a piece of a long SSML block, with its settings).
    fn plain(text: String, settings: Option<&'a Settings>) -> Step<'a> {
        Step::Speak(Speech {
            text,
            settings,
            written: None,
            hinted: None,
        })
    }
}

/// For a whole SSML response's memory: how many times its first speech
/// step's text all its speech is (in characters), and its breaks' seconds.
fn ssml_extent(steps: &[Step]) -> (f64, f64) {
    let (mut first, mut all, mut ms) = (None, 0usize, 0u64);
    for step in steps {
        match step {
            Step::Speak(Speech { text, .. }) => {
                let chars = text.chars().count().max(1);
                first.get_or_insert(chars);
                all += chars;
            }
            Step::Silence(m) => ms += u64::from(*m),
        }
    }
    (all as f64 / first.unwrap_or(1) as f64, ms as f64 / 1000.0)
}

/// Ends the chain's utterance and delivers what its stages still held.
fn end_utterance(
    chain: &mut AudioChain<'_>,
    voice: &LoadedVoice,
    timings: &mut Timings,
    deliver: &mut dyn FnMut(Audio, &mut Timings) -> Result<(), TtsError>,
) -> Result<(), TtsError> {
    for a in chain.push(voice_audio(voice, Vec::new()), End::ALL)? {
        deliver(a, timings)?;
    }
    Ok(())
}

/// What a run needs from the service.
pub(super) struct Runner<'a> {
    pub voices: &'a VoiceStore,
    pub phonemizer: &'a Phonemizer,
    pub options: &'a ServiceOptions,
}

/// Stops a run between steps: the client went away, or the deadline passed.
pub(super) struct Checkpoint<'a> {
    pub deadline: Cell<Instant>,
    pub timeout: Duration,
    pub cancelled: &'a dyn Fn() -> bool,
}

impl Checkpoint<'_> {
    pub fn check(&self) -> Result<(), TtsError> {
        if (self.cancelled)() {
            return Err(TtsError::Cancelled("the client went away".into()));
        }
        if Instant::now() > self.deadline.get() {
            return Err(TtsError::Timeout(self.timeout));
        }
        Ok(())
    }

    /// A stream delivered audio: its deadline is now `timeout` from here at
    /// the earliest. A long stream is bounded by its progress (no stall
    /// longer than the timeout), not by its total length.
    pub fn moved_on(&self) {
        let next = Instant::now() + self.timeout;
        if next > self.deadline.get() {
            self.deadline.set(next);
        }
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
        mut memory: Option<&mut Admitted>,
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
        // A long streamed text goes a few sentences at a time: each piece
        // through the text stages, the phonemizer and the voice as the stream
        // reaches it, so the work in hand (and the memory) does not grow with
        // the text. A whole response, or a short text, is one piece.
        // An SSML request is its lowered blocks: each speech block is one
        // piece and one utterance for the audio stages, with its own prosody
        // and voice; a break is exact silence between them (ssml.rs).
        let steps: Vec<Step> = match &job.ssml {
            // A long block of a streamed document goes a few sentences at a
            // time too (each piece its own utterance, with the block's settings).
            Some(blocks) => blocks
                .iter()
                .flat_map(|b| match b {
                    Block::Speech { text, settings, .. }
                        if streaming && text.len() > STREAM_PIECE_CHARS =>
                    {
                        super::sentences::pieces(text, STREAM_PIECE_CHARS)
                            .into_iter()
                            .map(|t| Speech::plain(t, Some(settings)))
                            .collect::<Vec<_>>()
                    }
                    Block::Speech {
                        text,
                        settings,
                        written,
                        hinted,
                    } => vec![Step::Speak(Speech {
                        text: text.clone(),
                        settings: Some(settings),
                        written: Some(written),
                        hinted: hinted.as_ref(),
                    })],
                    Block::Silence { ms } => vec![Step::Silence(*ms)],
                })
                .collect(),
            None if streaming && job.text.len() > STREAM_PIECE_CHARS => {
                super::sentences::pieces(&job.text, STREAM_PIECE_CHARS)
                    .into_iter()
                    .map(|t| Speech::plain(t, None))
                    .collect()
            }
            None => vec![Speech::plain(job.text.clone(), None)],
        };
        let ssml = job.ssml.is_some();
        // Each piece's text for the text stages: an SSML block with `say-as`
        // goes as written, with hints, to a first text stage that takes them.
        let takes_say_as = pipeline.takes_say_as();
        let mut pieces = steps.iter().filter_map(|s| match s {
            Step::Speak(Speech {
                hinted: Some(h), ..
            }) if takes_say_as => Some((h.text.clone(), serde_json::to_value(&h.say_as).ok())),
            Step::Speak(Speech { text, .. }) => Some((text.clone(), None)),
            Step::Silence(_) => None,
        });
        // Word timestamps, when asked: each piece's text as given, against
        // what the voice read and when (words.rs).
        let originals: Vec<&str> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Speak(s) => Some(s.written.unwrap_or(&s.text)),
                Step::Silence(_) => None,
            })
            .collect();
        let words = RefCell::new(job.timestamps.then(WordClock::new));
        let with_words = |f: &mut dyn FnMut(&mut WordClock)| {
            if let Some(w) = words.borrow_mut().as_mut() {
                f(w)
            }
        };
        let piece_count = steps
            .iter()
            .filter(|s| matches!(s, Step::Speak(..)))
            .count();
        // Text stages run before the style stage: they never see a style.
        let text_ctx = ctx.clone();
        let mut observe = |stage: &Stage, d: Duration| record_stage(timings, stage, d);
        let (first, hints) = pieces.next().unwrap_or_default();
        let first_text = pipeline.run_text_hinted(&text_ctx, first, hints, &mut observe)?;
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
        if !unhonored.is_empty() {
            record_unhonored(&pipeline.name, &unhonored);
        }
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
        // Each SSML speech block's context: the style with its prosody's
        // pitch and volume added (the audio stages that apply them see it).
        let piece_ctxs: Vec<RequestContext> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Speak(Speech {
                    settings: Some(settings),
                    ..
                }) => {
                    let mut c = ctx.clone();
                    let st = c.style.get_or_insert_with(Style::default);
                    let prosody = settings.prosody;
                    if prosody.pitch != 0.0 {
                        st.pitch = Some(st.pitch.unwrap_or(0.0) + prosody.pitch);
                    }
                    if prosody.volume != 0.0 {
                        st.volume = Some(st.volume.unwrap_or(0.0) + prosody.volume);
                    }
                    Some(c)
                }
                _ => None,
            })
            .collect();
        // A listener who plays the audio as it comes hears a sentence's start
        // after the decoder's first window, where no audio stage holds the
        // sentence back anyway.
        let paced = streaming && job.streamed && pipeline.audio_per_window();
        // Runs of another script go to the voice the routes give their
        // language (mixed.rs); one part, the main voice, otherwise.
        let synth_options = |part: &Part, speed: f32| -> Result<SynthOptions, TtsError> {
            let main = Arc::ptr_eq(&part.voice, &voice);
            let speaker = match (&part.route_speaker, main) {
                (_, true) => speaker,
                (Some(name), false) => speaker_id(&part.voice, name)?,
                (None, false) => 0,
            };
            Ok(SynthOptions {
                noise_scale: style.noise_scale,
                length_scale: Some(part.voice.entry.config.inference.length_scale / speed),
                noise_w: style.noise_w,
                speaker,
                seed: job.seed,
                max_phonemes: Some(self.options.max_call_phonemes),
                max_seconds: Some(self.options.max_sentence_seconds),
                decoder_chunks: paced.then(|| part.voice.paced_decoder_chunks()),
            })
        };
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
        // A 0.1/0.2 stage that takes whole utterances bounds how long one can
        // be (blocks.rs): a text certainly too long is refused before any
        // audio is made; the exact check is each sentence's durations, before
        // its decoder runs (`max_seconds` below).
        let whole_limit = pipeline
            .plugin_stages(StageKind::Audio)
            .filter_map(|(stage, p)| p.whole_capacity.map(|c| (stage.clone(), c)))
            .min_by(|a, b| a.1.seconds.total_cmp(&b.1.seconds));

        // What the response announces: the asked rate, else the voice's; the
        // channels of the first audio out of the audio stages.
        let rate = job.sample_rate.unwrap_or(voice.sample_rate());
        // A stream keeps one rate whatever the stages did; a whole response
        // keeps the stages' rate unless the client asked for one.
        let target_rate = if streaming {
            Some(rate)
        } else {
            job.sample_rate
        };
        // How many model calls the response makes (announced with the first
        // audio; 0 for a long stream, which phonemizes as it goes).
        let announced = Cell::new(0usize);
        let out = RefCell::new(Output {
            sentences: &announced,
            started: Some(StreamEvent::Started {
                sample_rate: rate,
                channels: 1,
                style: report,
                voice: voice_name,
                sentences: 0,
                timings: Timings::default(),
            }),
            channels: None,
            emit,
            words: Vec::new(),
            gone: false,
        });
        // The voice's audio goes through the audio stages as it is made, in
        // bounded blocks (pipeline/blocks.rs). A stream sends what comes out
        // at once; a whole response collects it and sends it at the end.
        let first_ctx = piece_ctxs.first().unwrap_or(&ctx);
        let mut chain = AudioChain::new(pipeline, first_ctx, voice.sample_rate(), streaming);
        let mut whole: Option<Audio> = None;
        // SSML breaks not yet sent: they go out with the next audio, in its
        // format (or at the end in the last one's), so they are exact.
        let silence_ms = Cell::new(0u32);
        let last_format = Cell::new((voice.sample_rate(), 1u16));
        let mut deliver = |mut audio: Audio, timings: &mut Timings| -> Result<(), TtsError> {
            let ms = silence_ms.replace(0);
            if ms > 0 {
                let frames = (u64::from(ms) * u64::from(audio.sample_rate) / 1000) as usize;
                let mut samples = vec![0.0; frames * usize::from(audio.channels.max(1))];
                samples.extend_from_slice(&audio.samples);
                audio.samples = samples;
            }
            if !audio.samples.is_empty() {
                last_format.set((audio.sample_rate, audio.channels));
            }
            with_words(&mut |w| w.output(&audio.samples, audio.channels, audio.sample_rate));
            if streaming {
                let audio = resample_timed(audio, target_rate, timings);
                out.borrow_mut().send(audio, timings)?;
                checkpoint.moved_on();
                return Ok(());
            }
            match &mut whole {
                None => whole = Some(audio),
                Some(w) if (w.sample_rate, w.channels) == (audio.sample_rate, audio.channels) => {
                    w.samples.extend_from_slice(&audio.samples)
                }
                // The chain keeps one format per utterance: never reached.
                Some(_) => {
                    return Err(TtsError::Encode(
                        "the audio stages changed format within the response".into(),
                    ))
                }
            }
            Ok(())
        };
        // Seconds of the voice's audio in the current utterance of a whole
        // stage (the response; in a stream, the sentence).
        let mut made_seconds = 0.0f64;
        let mut stream_ended = false;
        let mut total_sentences = 0usize;
        let mut first_text = Some(first_text);
        // Speech steps so far (the index of the piece at hand).
        let mut spoken = 0usize;
        let mut times: Vec<(Arc<Stage>, Duration)> = Vec::new();
        for step in &steps {
            let settings = match step {
                Step::Silence(ms) => {
                    // The speech before it is a finished utterance.
                    if !stream_ended {
                        end_utterance(&mut chain, &voice, timings, &mut deliver)?;
                        stream_ended = true;
                    }
                    with_words(&mut |w| w.end());
                    silence_ms.set(silence_ms.get() + ms);
                    continue;
                }
                Step::Speak(s) => s.settings,
            };
            let n = spoken;
            spoken += 1;
            if ssml && n > 0 {
                // A new SSML block is a new utterance, with its own context.
                if !stream_ended {
                    end_utterance(&mut chain, &voice, timings, &mut deliver)?;
                }
                with_words(&mut |w| w.end());
                times.extend(chain.stage_times().map(|(s, d)| (s.clone(), d)));
                chain = AudioChain::new(pipeline, &piece_ctxs[n], voice.sample_rate(), streaming);
                made_seconds = 0.0;
            }
            stream_ended = false;
            let last_piece = n + 1 == piece_count;
            let text = match first_text.take() {
                Some(t) => t,
                None => {
                    checkpoint.check()?;
                    let mut observe = |stage: &Stage, d: Duration| record_stage(timings, stage, d);
                    let (piece, hints) = pieces.next().unwrap_or_default();
                    pipeline.run_text_hinted(&text_ctx, piece, hints, &mut observe)?
                }
            };
            // Runs of another script go to the voice the routes give their
            // language (mixed.rs); one part, the main voice, otherwise.
            let speakers = Speakers::new(
                &voice,
                job.language.as_deref().or(pipeline.language.as_deref()),
                &pipeline.routes,
                &pipeline.voice,
                self.voices,
            );
            let parts = match settings {
                Some(s) if s.voice.is_some() || s.lang.is_some() => {
                    vec![self.ssml_part(text.clone(), s, &speakers)?]
                }
                _ => speakers.parts(&text),
            };
            let piece_speed = settings.map_or(speed, |s| (speed * s.prosody.rate).clamp(0.25, 4.0));
            let options = parts
                .iter()
                .map(|p| synth_options(p, piece_speed))
                .collect::<Result<Vec<_>, _>>()?;
            // A stream's first audio waits for the first model call: it is kept
            // short when audio goes out sentence by sentence, and for a listener
            // playing as it comes (its first decoder window still waits for the
            // text encoder and the flow over the whole call: about 100 ms for
            // 400 ids here, against 25 ms for 120).
            let first_call = if n == 0 && streaming && (paced || !pipeline.audio_per_window()) {
                voxpipe_engine::synth::DEFAULT_FIRST_CALL_PHONEMES
            } else {
                self.options.max_call_phonemes
            };
            let sentences = match self.phonemize(&parts, first_call, &stop, timings) {
                Ok(s) => s,
                // A later piece with nothing to say (punctuation only) is
                // skipped; a request with nothing to say at all fails.
                Err(voxpipe_engine::synth::EngineError::NothingToSay) if n > 0 => continue,
                Err(e) => return Err(why_stopped(e.into())),
            };
            total_sentences += sentences.len();
            with_words(&mut |w| {
                w.piece(originals.get(n).copied().unwrap_or(""), &text);
                if !streaming {
                    w.begin();
                }
            });
            if n == 0 {
                if piece_count == 1 {
                    announced.set(sentences.len());
                }
                // The size is known now: bounded work per request, and the
                // memory admitted for it (a text stage may have made the
                // text longer). A long stream's pieces are each bounded.
                let ids: usize = sentences.iter().map(|(_, ids)| ids.len()).sum();
                if ids > self.options.max_request_phonemes {
                    return Err(TtsError::RequestTooLarge(format!(
                        "the text makes {ids} phoneme ids; this server synthesizes at most {} per \
                         request ([limits] max_request_phonemes)",
                        self.options.max_request_phonemes
                    )));
                }
                if let Some(admitted) = memory.take() {
                    // An SSML document is phonemized block by block: the
                    // first block's ids, scaled to all its text, and the
                    // silence of its breaks.
                    let (ids, silence) = if ssml && !streaming {
                        let (scale, silence) = ssml_extent(&steps);
                        ((ids as f64 * scale).ceil() as usize, silence)
                    } else {
                        (ids, 0.0)
                    };
                    let mib = super::estimate::from_ids(ids, speed, streaming, rate)
                        .saturating_add(super::estimate::silence(silence, rate));
                    admitted.grow_to(mib, &|| checkpoint.check())?;
                }
                if let (Some((stage, capacity)), false) = (&whole_limit, streaming) {
                    // Certainly too long from the ids alone; else the
                    // durations tell exactly (the encoder and duration
                    // predictor of every sentence, a few per cent of the
                    // work), still before any audio is made.
                    let low = ids as f64 * super::estimate::LOW_SECONDS_PER_ID / f64::from(speed);
                    let seconds = if low > capacity.seconds {
                        low
                    } else {
                        let mut seconds = 0.0;
                        for (p, ids) in &sentences {
                            seconds += parts[*p]
                                .voice
                                .predict_seconds(ids, &options[*p], &stop)
                                .map_err(|e| why_stopped(e.into()))?;
                        }
                        seconds
                    };
                    if seconds > capacity.seconds {
                        return Err(TtsError::RequestTooLarge(format!(
                            "the text makes {seconds:.0} s of audio; {}",
                            capacity.describe(stage)
                        )));
                    }
                }
            }
            let count = sentences.len();
            // Where the voice changes (a run of another language), the last
            // few ms of one voice are crossfaded into the first of the next.
            let mut held: Vec<f32> = Vec::new();
            for (i, (p, ids)) in sentences.iter().enumerate() {
                checkpoint.check()?;
                let part_voice = &parts[*p].voice;
                let switch_after = sentences
                    .get(i + 1)
                    .is_some_and(|(next, _)| !Arc::ptr_eq(&parts[*next].voice, part_voice));
                let mut first_audio = true;
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
                let mut sentence_options = options[*p];
                let mut bounded_by_whole = false;
                if let Some((_, capacity)) = &whole_limit {
                    if streaming {
                        made_seconds = 0.0;
                    }
                    let left = (capacity.seconds - made_seconds).max(0.0) as f32;
                    let max = sentence_options.max_seconds.unwrap_or(f32::MAX);
                    if left < max {
                        sentence_options.max_seconds = Some(left);
                        bounded_by_whole = true;
                    }
                }
                // An SSML block ends its utterance; otherwise the last piece.
                let last_sentence = (ssml || last_piece) && i + 1 == count;
                let mut failed = None;
                let mut on_audio = |samples: &[f32], last_audio: bool, timings: &mut Timings| {
                    let mut samples = convert(samples);
                    if std::mem::take(&mut first_audio) {
                        super::mixed::crossfade(&mut samples, std::mem::take(&mut held));
                    }
                    if switch_after && last_audio {
                        let keep = super::mixed::crossfade_len(voice.sample_rate());
                        held = samples.split_off(samples.len().saturating_sub(keep));
                    }
                    with_words(&mut |w| w.input(&samples, voice.sample_rate()));
                    made_seconds += samples.len() as f64 / f64::from(voice.sample_rate());
                    let end = End {
                        sentence: last_audio,
                        stream: last_audio && last_sentence,
                    };
                    stream_ended |= end.stream;
                    let pushed = chain
                        .push(voice_audio(&voice, samples), end)
                        .map_err(TtsError::from)
                        .and_then(|outs| outs.into_iter().try_for_each(|a| deliver(a, timings)));
                    match pushed {
                        Ok(()) => true,
                        Err(e) => {
                            failed = Some(e);
                            false
                        }
                    }
                };
                // In a stream, each model call is an utterance of the word
                // clock (its audio comes out sentence by sentence).
                with_words(&mut |w| {
                    if streaming {
                        w.begin();
                    }
                    w.call_starts();
                });
                let result = self.sentence(
                    part_voice,
                    total_sentences - count + i,
                    ids,
                    &sentence_options,
                    &stop,
                    timings,
                    &mut on_audio,
                );
                if let Some(e) = failed {
                    return Err(e);
                }
                match result.map_err(why_stopped) {
                    Err(TtsError::SentenceTooLong(_)) if bounded_by_whole => {
                        let (stage, capacity) = whole_limit.as_ref().expect("bounded_by_whole");
                        return Err(TtsError::RequestTooLarge(format!(
                            "the audio would be longer than {:.1} s; {}",
                            capacity.seconds,
                            capacity.describe(stage)
                        )));
                    }
                    Ok(durations) => with_words(&mut |w| {
                        w.call_words(part_voice.spoken_words(ids, &durations));
                        if streaming {
                            w.end();
                            let timed = w.take(i + 1 == count);
                            out.borrow_mut().words(timed);
                        }
                    }),
                    Err(e) => return Err(e),
                }
                out.borrow().check()?;
            }
        }
        // The last piece had nothing to say: the stages still hear the end.
        if !stream_ended {
            end_utterance(&mut chain, &voice, timings, &mut deliver)?;
        }
        with_words(&mut |w| w.end());
        // A document that ends with a break: its silence, in the last format.
        if silence_ms.get() > 0 {
            let (rate, channels) = last_format.get();
            deliver(
                Audio {
                    sample_rate: rate,
                    channels,
                    samples: Vec::new(),
                },
                timings,
            )?;
        }
        times.extend(chain.stage_times().map(|(s, d)| (s.clone(), d)));
        for (stage, d) in &times {
            record_stage(timings, stage, *d);
        }
        tracing::Span::current().record("tts.sentences", total_sentences as i64);
        if !streaming {
            checkpoint.check()?;
            let audio = whole.unwrap_or_else(|| voice_audio(&voice, Vec::new()));
            let audio = resample_timed(audio, target_rate, timings);
            out.borrow_mut().send(audio, timings)?;
        }
        if let Some(w) = words.borrow_mut().as_mut() {
            let mut out = out.borrow_mut();
            out.words(w.finish());
            out.check()?;
        }
        Ok(())
    }

    /// The voice of an SSML block that names one (`voice`) or a language
    /// (`lang`): the named voice; else the voice that speaks the language
    /// (the main voice, or the one the routes give it); else the main voice.
    fn ssml_part(
        &self,
        text: String,
        settings: &Settings,
        speakers: &Speakers<'_>,
    ) -> Result<Part, TtsError> {
        let (voice, route_speaker) = match (&settings.voice, &settings.lang) {
            (Some(name), _) => (self.voices.get(name)?, None),
            (None, lang) => speakers
                .voice_for(lang.as_deref().unwrap_or(""))
                .unwrap_or_else(|| (speakers.main().clone(), None)),
        };
        Ok(Part {
            voice,
            text,
            route_speaker,
        })
    }

    /// Phonemizes one piece's parts, in a `phonemize` span: (part, ids) per
    /// model call, in order. The first call is at most `first_call` ids.
    fn phonemize(
        &self,
        parts: &[Part],
        first_call: usize,
        stop: &dyn Fn() -> bool,
        timings: &mut Timings,
    ) -> Result<Vec<(usize, Vec<i64>)>, voxpipe_engine::synth::EngineError> {
        let started = Instant::now();
        let span = tracing::info_span!("phonemize", tts.sentences = Empty, tts.phonemes = Empty);
        let mut sentences: Vec<(usize, Vec<i64>)> = Vec::new();
        span.in_scope(|| {
            for (p, part) in parts.iter().enumerate() {
                let first = if sentences.is_empty() {
                    first_call
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
                    stop,
                );
                let ids = match ids {
                    Ok(ids) => ids,
                    // A part with nothing to say (punctuation only) is skipped;
                    // the piece has nothing to say only if every part is empty.
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
        })?;
        span.record("tts.sentences", sentences.len() as i64);
        span.record(
            "tts.phonemes",
            sentences.iter().map(|(_, ids)| ids.len()).sum::<usize>() as i64,
        );
        drop(span);
        record_host(timings, "phonemize", None, started.elapsed());
        Ok(sentences)
    }

    /// The style fields nothing applies (see `honored.rs`), and what the
    /// text itself asks that nothing honors.
    fn account(
        &self,
        job: &Job,
        style: &Style,
        voice: &Arc<LoadedVoice>,
        voice_name: &str,
        routed: Option<&(&crate::pipeline::Route, routes::Matched)>,
    ) -> Vec<UnhonoredField> {
        let pipeline = &job.pipeline;
        let audio: Vec<&voxpipe_types::Applies> = pipeline
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
        let mut fields = honored::unhonored(style, &applied);
        let mut add = |more: Vec<UnhonoredField>| {
            for f in more {
                if !fields.contains(&f) {
                    fields.push(f);
                }
            }
        };
        // The text's own asks: runs in a language no voice here speaks
        // (mixed.rs), and in SSML each block's `lang` likewise and its
        // prosody, held to the same rules as a style's pitch and volume.
        let default_language = job.language.as_deref().or(pipeline.language.as_deref());
        let speakers = |language: Option<&str>| {
            Speakers::new(
                voice,
                language,
                &pipeline.routes,
                &pipeline.voice,
                self.voices,
            )
        };
        let language_fields = |languages: Vec<String>| {
            languages
                .into_iter()
                .map(|value| UnhonoredField {
                    field: voxpipe_types::StyleField::Language,
                    value,
                })
                .collect::<Vec<_>>()
        };
        let Some(blocks) = &job.ssml else {
            add(language_fields(
                speakers(default_language).unserved(&job.text),
            ));
            return fields;
        };
        for (text, settings) in blocks.iter().filter_map(|b| match b {
            Block::Speech { text, settings, .. } => Some((text, settings)),
            Block::Silence { .. } => None,
        }) {
            // A block spoken by a named voice speaks what that voice speaks.
            if settings.voice.is_none() {
                let speakers = speakers(settings.lang.as_deref().or(default_language));
                let mut languages = speakers.unserved(text);
                // `lang` names the block's language even in the main script.
                if let Some(lang) = settings.lang.as_deref() {
                    let lang = super::mixed::primary(lang);
                    if speakers.voice_for(&lang).is_none() && !languages.contains(&lang) {
                        languages.push(lang);
                    }
                }
                add(language_fields(languages));
            }
            let prosody = settings.prosody;
            let asked = Style {
                pitch: (prosody.pitch != 0.0).then_some(prosody.pitch),
                volume: (prosody.volume != 0.0).then_some(prosody.volume),
                ..Style::default()
            };
            add(honored::unhonored(&asked, &applied));
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
    ) -> Result<Vec<u32>, TtsError> {
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
        Ok(out.durations)
    }
}

/// Sends `Started` (once, just before the first audio) and the audio.
struct Output<'e> {
    started: Option<StreamEvent>,
    /// The `sentences` that `Started` announces, known once phonemized.
    sentences: &'e Cell<usize>,
    /// The channel count of the first audio: a stream keeps it.
    channels: Option<u16>,
    emit: &'e mut dyn FnMut(StreamEvent) -> bool,
    /// Word timings not yet sent: they wait for `Started`; a receiver gone
    /// while they were sent is found by `check`.
    words: Vec<super::WordTiming>,
    gone: bool,
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
            ..
        }) = self.started.take()
        {
            let first = StreamEvent::Started {
                sample_rate,
                channels: expected,
                style,
                voice,
                sentences: self.sentences.get(),
                timings: timings.clone(),
            };
            if !(self.emit)(first) {
                return Err(TtsError::Cancelled("the client went away".into()));
            }
        }
        if !(self.emit)(StreamEvent::Chunk(audio)) {
            return Err(TtsError::Cancelled("the client went away".into()));
        }
        self.flush_words();
        Ok(())
    }

    /// Word timings, sent once `Started` is out.
    fn words(&mut self, words: Vec<super::WordTiming>) {
        self.words.extend(words);
        if self.started.is_none() {
            self.flush_words();
        }
    }

    fn flush_words(&mut self) {
        if !self.words.is_empty()
            && !(self.emit)(StreamEvent::Words(std::mem::take(&mut self.words)))
        {
            self.gone = true;
        }
    }

    /// Whether the receiver is still there.
    fn check(&self) -> Result<(), TtsError> {
        if self.gone {
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
        let cp = Checkpoint {
            deadline: Cell::new(Instant::now() + Duration::from_secs(60)),
            timeout: Duration::from_secs(60),
            cancelled: &cancelled,
        };
        assert!(cp.check().is_ok());
        cp.deadline.set(Instant::now() - Duration::from_millis(1));
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
                    max_stream_chars: 100_000,
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
            ssml: None,
            timestamps: false,
            streamed: false,
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
            deadline: Cell::new(Instant::now() + deadline),
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
    fn a_listener_playing_as_it_comes_gets_a_short_sentences_first_window_early() {
        let text = "The weather today is sunny and warm with a light breeze.";
        let (r, kept, _) = run(&job(text), true, Duration::from_secs(60), 99);
        r.unwrap();
        assert_eq!(kept.len(), 2, "one sentence, decoded whole: {kept:?}");
        let mut played = job(text);
        played.streamed = true;
        let (r, paced, _) = run(&played, true, Duration::from_secs(60), 99);
        r.unwrap();
        let first = voxpipe_engine::synth::PACED_FIRST_FRAMES;
        assert_eq!(
            paced[1],
            first * 256,
            "the first window of joe (hop 256): {paced:?}"
        );
        assert!(paced.len() >= 3, "{paced:?}");
        assert_eq!(paced[1..].iter().sum::<usize>(), kept[1]);
        // Whole responses are never windowed for it.
        let (r, whole, _) = run(&played, false, Duration::from_secs(60), 99);
        r.unwrap();
        assert_eq!(whole.len(), 2, "{whole:?}");
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
            deadline: Cell::new(Instant::now() + Duration::from_secs(60)),
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
