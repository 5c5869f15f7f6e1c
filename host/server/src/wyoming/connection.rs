//! One Wyoming connection. A reader task turns bytes into events (bounded,
//! [`super::event`]); this loop answers them and forwards the service's audio,
//! waiting on both at once, so a client that leaves is noticed at once and its
//! synthesis dropped, which cancels it at its next step exactly as an HTTP
//! hang-up does.
//!
//! - `describe` → `info`; `ping` → `pong`; unknown events are ignored.
//! - `synthesize` → `audio-start`, `audio-chunk`s as each sentence is made,
//!   `audio-stop` (or an `error` event). One service job: one admission, one
//!   deadline; answered from the audio cache when the same request was.
//! - `synthesize-start`, `synthesize-chunk`s, `synthesize-stop`: each sentence
//!   is a service job started as soon as it is complete; its audio comes as
//!   `audio-start` … `audio-stop` (as `wyoming-piper` does), and
//!   `synthesize-stopped` ends the stream. The compatibility `synthesize` a
//!   client sends inside a stream is ignored.
//! - A refusal or failure is an `error` event {text, code: the HTTP API's
//!   error type}; the connection stays usable unless the bytes can no longer
//!   be followed (oversized or unreadable lengths, a half-sent event).
//! - On shutdown (the stop signal) an idle connection is closed at once; one
//!   with a synthesis open finishes it (its last `audio-stop`, or
//!   `synthesize-stopped` for a stream whose text is complete) and is then
//!   closed, so a rolling restart loses no audio already asked for. The
//!   server waits for that up to `shutdown_grace_s`.

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, WriteHalf};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::audio::{self, Format};
use super::event::{read_event, write_event, Event, FrameError};
use super::listen::Frontend;
use super::observe::{synthesis_span, trace_id, Tally};
use super::request::{self, VoiceWish};
use crate::http::{job_key, CachedAudio};
use crate::telemetry::metrics;
use crate::tts::sentences::SentenceSplitter;
use crate::tts::{StreamEvent, TtsError};

/// Requests read while a synthesis runs wait here (then reading pauses).
const BACKLOG: usize = 8;
/// The cache key's "format": 16-bit PCM with a rate/channels prefix.
const CACHE_FORMAT: &str = "wyoming-pcm16";

/// Serves one connection until the client leaves or breaks the protocol.
pub async fn serve<S>(
    stream: S,
    peer: String,
    frontend: Arc<Frontend>,
    pipeline: Option<String>,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, writer) = tokio::io::split(stream);
    let (tx, events) = mpsc::channel(2);
    let limits = frontend.read_limits;
    let reader = tokio::spawn(async move {
        let mut rd = BufReader::new(rd);
        loop {
            let r = read_event(&mut rd, &limits).await;
            // An idle report is for the loop to judge (busy or not); the
            // bytes are still in step after it and after a malformed line.
            let go_on = match &r {
                Ok(_) => true,
                Err(e) => e.recoverable() || matches!(e, FrameError::Idle(_)),
            };
            if tx.send(r).await.is_err() || !go_on {
                break;
            }
        }
    });
    let mut c = Connection {
        frontend,
        pipeline,
        peer,
        writer,
        synth: None,
        backlog: VecDeque::new(),
    };
    let why = c.run(events, stop).await;
    tracing::debug!(peer = %c.peer, reason = %why, "wyoming connection closed");
    reader.abort();
    // Dropping the synthesis cancels it; the socket closes with the writer.
    c.synth = None;
    let _ = tokio::time::timeout(c.frontend.write_timeout, c.writer.shutdown()).await;
}

/// Why the connection ends (for the debug log).
type Close = String;

/// What runs for the current synthesis' next piece of audio.
enum Current {
    /// Waiting for a slot (admission); dropping it leaves the queue.
    Admitting(BoxFuture<'static, mpsc::Receiver<StreamEvent>>),
    Running(mpsc::Receiver<StreamEvent>),
}

/// The next event of `current` (admission first).
async fn next_output(current: &mut Current) -> Option<StreamEvent> {
    loop {
        match current {
            Current::Admitting(admit) => {
                let rx = admit.await;
                *current = Current::Running(rx);
            }
            Current::Running(rx) => return rx.recv().await,
        }
    }
}

/// One client synthesis: a whole `synthesize`, or a stream.
struct Synthesis {
    streaming: bool,
    wish: VoiceWish,
    splitter: SentenceSplitter,
    /// Characters received in this stream (the text limit covers them all).
    chars: usize,
    /// Texts waiting for their job (sentences of a stream).
    queue: VecDeque<String>,
    /// No more text will come (`synthesize`, or after `synthesize-stop`).
    input_done: bool,
    current: Option<Current>,
    /// An `audio-start` was sent without its `audio-stop`.
    audio_open: bool,
    timestamp_ms: u64,
    failed: bool,
    span: tracing::Span,
    trace_id: String,
    tally: Tally,
    /// A whole synthesis' audio being collected for the cache, and its key.
    cache: Option<([u8; 32], Vec<u8>)>,
}

struct Connection<W> {
    frontend: Arc<Frontend>,
    pipeline: Option<String>,
    peer: String,
    writer: W,
    synth: Option<Synthesis>,
    backlog: VecDeque<Event>,
}

enum Next {
    Event(Option<Result<Event, FrameError>>),
    Output(Option<StreamEvent>),
}

impl<S: AsyncWrite> Connection<WriteHalf<S>> {
    async fn run(
        &mut self,
        mut events: mpsc::Receiver<Result<Event, FrameError>>,
        mut stop: watch::Receiver<bool>,
    ) -> Close {
        loop {
            if let Err(why) = self.advance().await {
                return why;
            }
            // Shutting down: done once no synthesis is open (requests the
            // client queued behind it are not started).
            if *stop.borrow() && self.synth.is_none() {
                return "the server is shutting down".into();
            }
            let reading = self.backlog.len() < BACKLOG;
            let idle = self.synth.is_none();
            let current = self.synth.as_mut().and_then(|s| s.current.as_mut());
            let next = match current {
                Some(current) => tokio::select! {
                    ev = events.recv(), if reading => Next::Event(ev),
                    out = next_output(current) => Next::Output(out),
                },
                // A full backlog drains whenever no audio is being made
                // (see `advance`), so this waits for the client (or, idle,
                // for the stop signal).
                None => tokio::select! {
                    ev = events.recv() => Next::Event(ev),
                    _ = stop.wait_for(|s| *s), if idle => continue,
                },
            };
            let step = match next {
                Next::Event(None) => return "the client left".into(),
                Next::Event(Some(Ok(ev))) => self.on_event(ev, false).await,
                Next::Event(Some(Err(e))) => self.on_frame_error(e).await,
                Next::Output(out) => self.on_output(out).await,
            };
            if let Err(why) = step {
                return why;
            }
        }
    }

    async fn write(&mut self, event: &Event) -> Result<(), Close> {
        match tokio::time::timeout(
            self.frontend.write_timeout,
            write_event(&mut self.writer, event),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("writing: {e}")),
            Err(_) => Err("the client did not read for the event timeout".into()),
        }
    }

    async fn error_event(&mut self, code: &str, text: &str) -> Result<(), Close> {
        self.write(&Event::new("error", json!({ "text": text, "code": code })))
            .await
    }

    async fn on_frame_error(&mut self, e: FrameError) -> Result<(), Close> {
        match e {
            FrameError::Idle(_) if self.busy() => Ok(()),
            FrameError::Closed => Err("the client left".into()),
            e => {
                tracing::info!(peer = %self.peer, error = %e, code = e.code(), "wyoming: bad input");
                self.error_event(e.code(), &e.to_string()).await?;
                if e.recoverable() {
                    Ok(())
                } else {
                    Err(e.to_string())
                }
            }
        }
    }

    /// Whether audio is being made or waits to be (an idle client is not idle then).
    fn busy(&self) -> bool {
        self.synth
            .as_ref()
            .is_some_and(|s| s.current.is_some() || !s.queue.is_empty())
    }

    /// Handles `ev`; `queued`: it comes from the backlog, in its turn.
    async fn on_event(&mut self, ev: Event, queued: bool) -> Result<(), Close> {
        let streaming = self
            .synth
            .as_ref()
            .map(|s| (s.streaming, s.input_done, s.failed));
        match ev.kind.as_str() {
            "describe" => {
                let f = &self.frontend;
                let name = self
                    .pipeline
                    .clone()
                    .unwrap_or_else(|| f.service.options.default_pipeline.clone());
                let pipeline = f.service.registry.get(&name);
                let catalog = f.service.voices.catalog();
                let info = super::info::info(&name, pipeline.as_deref(), &catalog);
                self.write(&info).await
            }
            "ping" => {
                let text = ev.data.get("text").cloned().unwrap_or_default();
                self.write(&Event::new("pong", json!({ "text": text })))
                    .await
            }
            // Requests wait their turn behind a running synthesis (and
            // behind requests already waiting, to keep their order).
            "synthesize" | "synthesize-start" | "synthesize-chunk" | "synthesize-stop"
                if !queued && !self.backlog.is_empty() =>
            {
                self.backlog.push_back(ev);
                Ok(())
            }
            // Sent inside a stream for servers that do not stream: ignored.
            "synthesize" if streaming.is_some_and(|(s, done, _)| s && !done) => Ok(()),
            "synthesize" | "synthesize-start" => match streaming {
                // A failed stream the client did not stop ends here.
                Some((true, false, true)) if ev.kind == "synthesize-start" => {
                    self.synth = None;
                    self.begin(ev).await
                }
                Some((true, false, _)) => {
                    self.error_event(
                        "invalid_input",
                        "a stream is open: send synthesize-stop before synthesize-start",
                    )
                    .await
                }
                Some(_) => {
                    self.backlog.push_back(ev);
                    Ok(())
                }
                None => self.begin(ev).await,
            },
            "synthesize-chunk" | "synthesize-stop" => match streaming {
                Some((true, false, true)) => {
                    if ev.kind == "synthesize-stop" {
                        self.synth = None;
                    }
                    Ok(())
                }
                Some((true, false, false)) => self.stream_input(ev).await,
                _ => {
                    let msg = format!("{} outside a stream: send synthesize-start first", ev.kind);
                    self.error_event("invalid_input", &msg).await
                }
            },
            other => {
                tracing::debug!(peer = %self.peer, event = other, "wyoming: event ignored");
                Ok(())
            }
        }
    }

    /// A new synthesis from `synthesize` or `synthesize-start`.
    async fn begin(&mut self, ev: Event) -> Result<(), Close> {
        let streaming = ev.kind == "synthesize-start";
        let span = synthesis_span(streaming);
        let trace_id = trace_id(&span);
        let tally = Tally::new(span.clone(), &self.peer);
        let mut s = Synthesis {
            streaming,
            wish: VoiceWish::default(),
            splitter: SentenceSplitter::default(),
            chars: 0,
            queue: VecDeque::new(),
            input_done: !streaming,
            current: None,
            audio_open: false,
            timestamp_ms: 0,
            failed: false,
            span,
            trace_id,
            tally,
            cache: None,
        };
        let parsed = request::voice_wish(&ev.data).and_then(|wish| {
            if streaming && wish.ssml {
                // Text pieces split markup anywhere; a document comes whole.
                return Err(TtsError::InvalidInput(
                    "SSML (`text_format` \"ssml\") is taken in a whole `synthesize`, not in a \
                     streamed synthesis"
                        .into(),
                ));
            }
            let text = if streaming {
                None
            } else {
                Some(request::text(&ev.data)?)
            };
            Ok((wish, text))
        });
        match parsed {
            Ok((wish, text)) => {
                s.wish = wish;
                s.queue.extend(text);
                self.synth = Some(s);
                Ok(())
            }
            Err(e) => {
                self.synth = Some(s);
                self.fail(e).await
            }
        }
    }

    /// `synthesize-chunk` or `synthesize-stop` of the open stream.
    async fn stream_input(&mut self, ev: Event) -> Result<(), Close> {
        // A streamed text is spoken sentence by sentence: a stream's limit.
        let limit = self.frontend.service.options.max_stream_chars;
        let Some(s) = self.synth.as_mut() else {
            return Ok(());
        };
        if ev.kind == "synthesize-stop" {
            s.input_done = true;
            s.queue.extend(s.splitter.finish().filter(|t| speakable(t)));
            return Ok(());
        }
        let piece = match request::text(&ev.data) {
            Ok(t) => t,
            Err(e) => return self.fail(e).await,
        };
        s.chars += piece.chars().count();
        if s.chars > limit {
            let e = TtsError::TextTooLong {
                chars: s.chars,
                limit,
                streamed: true,
            };
            return self.fail(e).await;
        }
        let sentences = s.splitter.push(&piece);
        s.queue
            .extend(sentences.into_iter().filter(|t| speakable(t)));
        Ok(())
    }

    /// Reports `e` for the current synthesis and stops it. A failed stream
    /// stays until the client stops it (its chunks are dropped meanwhile).
    async fn fail(&mut self, e: TtsError) -> Result<(), Close> {
        let Some(s) = self.synth.as_mut() else {
            return Ok(());
        };
        s.failed = true;
        s.queue.clear();
        s.current = None;
        s.tally.failed(&e);
        if !s.streaming || s.input_done {
            self.synth = None;
        }
        self.error_event(e.kind(), &e.to_string()).await
    }

    /// Starts the next job, finishes a synthesis that is done, or takes the
    /// next waiting event; returns when there is something to wait for.
    async fn advance(&mut self) -> Result<(), Close> {
        loop {
            // Waiting events are taken when nothing is synthesizing, or when a
            // stream waits for its text (its chunks may be among them).
            let takes_input = self
                .synth
                .as_ref()
                .is_none_or(|s| s.streaming && !s.input_done);
            if takes_input {
                if let Some(ev) = self.backlog.pop_front() {
                    self.on_event(ev, true).await?;
                    continue;
                }
            }
            let Some(s) = self.synth.as_mut() else {
                return Ok(());
            };
            if s.current.is_some() || s.failed {
                return Ok(());
            }
            if let Some(text) = s.queue.pop_front() {
                match self.start_job(text) {
                    Ok(None) => {}
                    Ok(Some(cached)) => self.send_cached(cached).await?,
                    Err(e) => self.fail(e).await?,
                }
                continue;
            }
            if !s.input_done {
                return Ok(());
            }
            let end = if s.streaming {
                Event::new("synthesize-stopped", json!({}))
            } else {
                audio::stop()
            };
            if s.streaming || s.audio_open {
                self.write(&end).await?;
            }
            if let Some(mut s) = self.synth.take() {
                s.tally.succeeded(false);
                if let Some((key, body)) = s.cache.take() {
                    self.frontend.cache.put(key, cached_audio(body));
                }
            }
        }
    }

    /// Prepares the job for `text` and starts it (`Ok(None)`), or finds its
    /// audio in the cache (`Ok(Some(body))`, whole syntheses only).
    fn start_job(&mut self, text: String) -> Result<Option<bytes::Bytes>, TtsError> {
        let f = self.frontend.clone();
        let Some(s) = self.synth.as_mut() else {
            return Ok(None);
        };
        let req = request::synthesis_request(&f.service, self.pipeline.as_deref(), text, &s.wish)?;
        let job = f.service.prepare(req, s.trace_id.clone(), s.streaming)?;
        s.tally.label(&job);
        if !s.streaming && f.cache.enabled() {
            let key = job_key(&job, CACHE_FORMAT);
            let hit = f.cache.get(&key);
            metrics::cache(hit.is_some());
            if let Some(hit) = hit {
                return Ok(Some(hit.body));
            }
            s.cache = Some((key, Vec::new()));
        }
        let service = f.service.clone();
        let admit = async move { service.stream(job).await }.instrument(s.span.clone());
        s.current = Some(Current::Admitting(Box::pin(admit)));
        Ok(None)
    }

    /// A whole synthesis answered from the cache.
    async fn send_cached(&mut self, body: bytes::Bytes) -> Result<(), Close> {
        let Some((format, pcm)) = split_cached(&body) else {
            return Ok(());
        };
        let mut events = vec![audio::start(format)];
        let mut ts = 0;
        events.extend(audio::chunks(
            pcm,
            format,
            self.frontend.samples_per_chunk,
            &mut ts,
        ));
        events.push(audio::stop());
        for e in &events {
            self.write(e).await?;
        }
        if let Some(mut s) = self.synth.take() {
            s.tally.first_audio();
            s.tally.succeeded(true);
        }
        Ok(())
    }

    async fn on_output(&mut self, out: Option<StreamEvent>) -> Result<(), Close> {
        let per_chunk = self.frontend.samples_per_chunk;
        let Some(s) = self.synth.as_mut() else {
            return Ok(());
        };
        match out {
            Some(StreamEvent::Started {
                sample_rate,
                channels,
                ..
            }) => {
                if !s.audio_open {
                    s.audio_open = true;
                    let start = audio::start(Format {
                        rate: sample_rate,
                        channels,
                    });
                    self.write(&start).await?;
                }
                Ok(())
            }
            Some(StreamEvent::Chunk(a)) => {
                let format = Format {
                    rate: a.sample_rate,
                    channels: a.channels,
                };
                let pcm = audio::pcm16(&a.samples);
                s.tally.audio_seconds += a.seconds();
                s.tally.first_audio();
                if let Some((_, body)) = s.cache.as_mut() {
                    if body.is_empty() {
                        body.extend_from_slice(&format.rate.to_le_bytes());
                        body.extend_from_slice(&format.channels.to_le_bytes());
                    }
                    body.extend_from_slice(&pcm);
                }
                let events = audio::chunks(&pcm, format, per_chunk, &mut s.timestamp_ms);
                for e in &events {
                    self.write(e).await?;
                }
                Ok(())
            }
            Some(StreamEvent::Done(_)) => {
                s.current = None;
                if s.streaming {
                    s.audio_open = false;
                    self.write(&audio::stop()).await?;
                }
                Ok(())
            }
            // Wyoming has no event for word timings (never asked here).
            Some(StreamEvent::Words(_)) => Ok(()),
            Some(StreamEvent::Failed(e, _)) => self.fail(e).await,
            None => {
                self.fail(TtsError::Internal("the synthesis ended early".into()))
                    .await
            }
        }
    }
}

/// Whether a sentence has anything to say (a stream's "🙂" or "..." has not,
/// and must not end the stream with an error).
fn speakable(text: &str) -> bool {
    text.chars().any(char::is_alphanumeric)
}

fn cached_audio(body: Vec<u8>) -> CachedAudio {
    CachedAudio {
        body: body.into(),
        content_type: "audio/L16",
        style_mapped: None,
        style_unmapped: None,
        style_unhonored: None,
    }
}

/// The format prefix and the PCM of a cached body.
fn split_cached(body: &[u8]) -> Option<(Format, &[u8])> {
    let rate = u32::from_le_bytes(body.get(0..4)?.try_into().ok()?);
    let channels = u16::from_le_bytes(body.get(4..6)?.try_into().ok()?);
    Some((Format { rate, channels }, &body[6..]))
}
