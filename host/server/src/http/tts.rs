//! `POST /v1/tts`, voxpipe's own synthesis API, and the delivery code both
//! synthesis endpoints share: whole responses (cached), chunked audio streams
//! and server-sent events.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine as _;
use serde::Deserialize;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::auth::Access;
use super::cache::{self, CachedAudio};
use super::error::ApiError;
use super::reply::Exchange;
use super::AppState;
use crate::telemetry::metrics::{self, Outcome, RequestLabels};
use crate::tts::{StreamEvent, StyleReport, SynthesisRequest, Timings, TtsError};
use voxpipe_codec::{self as encode, AudioFormat, StreamEncoder};

/// The JSON body of `POST /v1/tts`. Unknown fields are refused, so a typo
/// does not silently fall back to a default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TtsBody {
    text: String,
    pipeline: Option<String>,
    voice: Option<String>,
    speaker: Option<String>,
    language: Option<String>,
    instruct: Option<String>,
    speed: Option<f32>,
    format: Option<String>,
    sample_rate: Option<u32>,
    seed: Option<u64>,
    #[serde(default)]
    stream: bool,
}

/// How the audio travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// One body once everything is done (cached).
    Whole,
    /// Chunked transfer, one piece per sentence as the voice produces it.
    Stream,
    /// Server-sent events `speech.audio.delta` / `speech.audio.done` (OpenAI).
    Sse,
}

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::InvalidJson(format!("invalid JSON body: {e}")))
}

pub(super) fn parse_format(
    name: Option<&str>,
    default: AudioFormat,
) -> Result<AudioFormat, ApiError> {
    match name {
        None | Some("") => Ok(default),
        Some(f) => f
            .parse::<AudioFormat>()
            .map_err(|e| ApiError::UnsupportedFormat(e.to_string())),
    }
}

pub async fn synthesize(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ex = Exchange::synthesis(&headers);
    let parsed = state
        .auth
        .check(&headers, Access::Api)
        .and_then(|()| parse_json::<TtsBody>(&body))
        .and_then(|b| Ok((parse_format(b.format.as_deref(), AudioFormat::Wav)?, b)));
    let (format, b) = match parsed {
        Ok(v) => v,
        Err(e) => return ex.error(e, &Timings::default()),
    };
    let request = SynthesisRequest {
        text: b.text,
        pipeline: b.pipeline,
        voice: b.voice,
        speaker: b.speaker,
        language: b.language,
        instruct: b.instruct,
        speed: b.speed,
        sample_rate: b.sample_rate,
        seed: b.seed,
    };
    let delivery = if b.stream {
        Delivery::Stream
    } else {
        Delivery::Whole
    };
    deliver(&state, ex, request, format, delivery).await
}

/// Runs a request and answers it the way `delivery` says.
pub(super) async fn deliver(
    state: &AppState,
    mut ex: Exchange,
    request: SynthesisRequest,
    format: AudioFormat,
    delivery: Delivery,
) -> Response {
    let service = &state.service;
    let job = match service.prepare(request, ex.trace.trace_id.clone()) {
        Ok(j) => j,
        Err(e) => return ex.error(e, &Timings::default()),
    };
    ex.synthesis = Some(RequestLabels {
        model: job
            .voice
            .clone()
            .unwrap_or_else(|| job.pipeline.voice.clone()),
        language: job
            .pipeline
            .language
            .clone()
            .unwrap_or_else(|| "unknown".into()),
        ..RequestLabels::default()
    });
    if delivery == Delivery::Whole {
        return whole(state, ex, job, format).await;
    }
    if !format.streamable() {
        let e = ApiError::UnsupportedFormat(format!(
            "`{}` cannot be streamed; stream wav, pcm, mp3 or opus, or ask for the whole file",
            format.as_str()
        ));
        return ex.error(e, &Timings::default());
    }
    let mut rx = service.stream(job).await;
    let (rate, channels, style, timings) = match rx.recv().await {
        Some(StreamEvent::Started {
            sample_rate,
            channels,
            style,
            timings,
            ..
        }) => (sample_rate, channels, style, timings),
        Some(StreamEvent::Failed(e, t)) => return ex.error(e, &t),
        _ => {
            return ex.error(
                TtsError::Internal("the synthesis ended early".into()),
                &Timings::default(),
            )
        }
    };
    // The format is the pipeline's doing (an audio stage's rate or channel
    // count the codec cannot carry), not the client's.
    let encoder = match StreamEncoder::new(format, rate, channels) {
        Ok(e) => e,
        Err(e) => return ex.error(encode_failure(format, e), &timings),
    };
    let content_type = if delivery == Delivery::Sse {
        "text/event-stream"
    } else {
        format.content_type()
    };
    let trace_id = ex.trace.trace_id.clone();
    let tally = Tally {
        labels: ex.synthesis.clone().unwrap_or_default(),
        started: ex.started,
        first_audio: false,
        counted: false,
    };
    let body = Body::from_stream(chunks(rx, encoder, delivery, trace_id, tally));
    let mut response = ex.audio(body, content_type, &timings, &style);
    super::reply::set(response.headers_mut(), "x-accel-buffering", "no");
    response
}

/// The whole file, from the cache when the same request was answered before.
async fn whole(
    state: &AppState,
    ex: Exchange,
    job: crate::tts::Job,
    format: AudioFormat,
) -> Response {
    let service = &state.service;
    let key = cache::job_key(&job, format.as_str());
    let cached = state.cache.get(&key);
    if state.cache.enabled() {
        metrics::cache(cached.is_some());
    }
    if let Some(hit) = cached {
        // The stages did not run for this request: only the lookup did.
        ex.count(Outcome::Cached);
        let mut timings = Timings::default();
        timings.add("cache", Some("hit".into()), ex.elapsed());
        let style = StyleReport {
            mapped: hit.style_mapped.clone(),
            unmapped: hit.style_unmapped.clone(),
            unhonored: hit.style_unhonored.clone(),
        };
        let mut r = ex.audio(Body::from(hit.body), hit.content_type, &timings, &style);
        super::reply::set(r.headers_mut(), "x-cache", "hit");
        return r;
    }
    let synthesis = match service.synthesize(job).await {
        Ok(s) => s,
        Err((e, t)) => return ex.error(e, &t),
    };
    let mut timings = synthesis.timings;
    let started = Instant::now();
    let span = encode_span(format);
    let bytes = match span.in_scope(|| encode::encode(&synthesis.audio, format)) {
        Ok(b) => Bytes::from(b),
        Err(e) => return ex.error(encode_failure(format, e), &timings),
    };
    span.record("audio.bytes", bytes.len() as i64);
    drop(span);
    timings.add(
        "encode",
        Some(format!("encode {}", format.as_str())),
        started.elapsed(),
    );
    metrics::stage("encode", "host", started.elapsed());
    if let Some(labels) = &ex.synthesis {
        metrics::first_audio(labels, ex.elapsed());
    }
    ex.count(Outcome::Synthesized {
        elapsed: ex.elapsed(),
        audio_seconds: synthesis.audio.seconds(),
    });
    if state.cache.enabled() {
        state.cache.put(
            key,
            CachedAudio {
                body: bytes.clone(),
                content_type: format.content_type(),
                style_mapped: synthesis.style.mapped.clone(),
                style_unmapped: synthesis.style.unmapped.clone(),
                style_unhonored: synthesis.style.unhonored.clone(),
            },
        );
    }
    let mut r = ex.audio(
        Body::from(bytes),
        format.content_type(),
        &timings,
        &synthesis.style,
    );
    if state.cache.enabled() {
        super::reply::set(r.headers_mut(), "x-cache", "miss");
    }
    r
}

/// The body of a streamed response. A failure after the first byte can no
/// longer change the status: the chunked body is cut off (an SSE stream gets
/// an `error` event first), which clients see as an incomplete response.
fn chunks(
    rx: mpsc::Receiver<StreamEvent>,
    encoder: StreamEncoder,
    delivery: Delivery,
    trace_id: String,
    tally: Tally,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let st = St {
        rx,
        encoder,
        header_sent: false,
        finished: false,
        audio_seconds: 0.0,
        delivery,
        trace_id,
        tally,
    };
    // The body is polled after the handler returned: each step runs in the
    // request's server span, which stays open until the last byte.
    let span = tracing::Span::current();
    futures_util::stream::unfold(st, move |st| next_chunk(st).instrument(span.clone()))
}

/// The request-level metrics of a streamed response, counted once: at the
/// end, on a failure, or (dropped unfinished) as a client that went away.
struct Tally {
    labels: RequestLabels,
    started: std::time::Instant,
    first_audio: bool,
    counted: bool,
}

impl Tally {
    fn first_audio(&mut self) {
        if !self.first_audio {
            self.first_audio = true;
            metrics::first_audio(&self.labels, self.started.elapsed());
        }
    }

    fn count(&mut self, outcome: Outcome<'_>) {
        if !self.counted {
            self.counted = true;
            metrics::request_finished(&self.labels, outcome);
        }
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        self.count(Outcome::Cancelled);
    }
}

fn encode_span(format: AudioFormat) -> tracing::Span {
    tracing::info_span!(
        "audio.encode",
        audio.format = format.as_str(),
        audio.bytes = tracing::field::Empty
    )
}

/// The state of a streamed body between chunks.
struct St {
    rx: mpsc::Receiver<StreamEvent>,
    encoder: StreamEncoder,
    header_sent: bool,
    finished: bool,
    audio_seconds: f64,
    delivery: Delivery,
    trace_id: String,
    tally: Tally,
}

/// The next piece of a streamed body (`None`: the body is complete).
async fn next_chunk(mut st: St) -> Option<(Result<Bytes, std::io::Error>, St)> {
    if st.finished {
        return None;
    }
    let frame = |st: &St, bytes: Vec<u8>| -> Bytes {
        match st.delivery {
            Delivery::Sse => sse_event(&serde_json::json!({
                "type": "speech.audio.delta",
                "audio": base64::engine::general_purpose::STANDARD.encode(&bytes),
            })),
            _ => Bytes::from(bytes),
        }
    };
    loop {
        match st.rx.recv().await {
            Some(StreamEvent::Chunk(audio)) => {
                let mut bytes = if st.header_sent {
                    Vec::new()
                } else {
                    st.header_sent = true;
                    st.encoder.header()
                };
                st.audio_seconds += audio.seconds();
                let span = encode_span(st.encoder.format());
                let started = std::time::Instant::now();
                match span.in_scope(|| st.encoder.push(&audio.samples)) {
                    Ok(b) => bytes.extend(b),
                    Err(e) => return Some((Err(std::io::Error::other(e.to_string())), st)),
                }
                span.record("audio.bytes", bytes.len() as i64);
                metrics::stage("encode", "host", started.elapsed());
                st.tally.first_audio();
                if bytes.is_empty() {
                    continue;
                }
                let out = frame(&st, bytes);
                return Some((Ok(out), st));
            }
            Some(StreamEvent::Done(_)) | None => {
                st.finished = true;
                let mut bytes = if st.header_sent {
                    Vec::new()
                } else {
                    st.encoder.header()
                };
                match st.encoder.finish() {
                    Ok(b) => bytes.extend(b),
                    Err(e) => return Some((Err(std::io::Error::other(e.to_string())), st)),
                }
                let mut out = if bytes.is_empty() {
                    Vec::new()
                } else {
                    frame(&st, bytes).to_vec()
                };
                st.tally.first_audio();
                st.tally.count(Outcome::Synthesized {
                    elapsed: st.tally.started.elapsed(),
                    audio_seconds: st.audio_seconds,
                });
                if st.delivery == Delivery::Sse {
                    out.extend_from_slice(&sse_event(&serde_json::json!({
                        "type": "speech.audio.done",
                        "usage": { "input_tokens": 0, "output_tokens": 0, "total_tokens": 0 },
                        "audio_seconds": st.audio_seconds,
                    })));
                }
                return Some((Ok(Bytes::from(out)), st));
            }
            Some(StreamEvent::Failed(e, _)) => {
                st.finished = true;
                tracing::warn!(error.type = e.kind(), error = %e, "streamed synthesis failed after the first audio");
                st.tally.count(match &e {
                    TtsError::Cancelled(_) => Outcome::Cancelled,
                    e => Outcome::Failed(e.kind()),
                });
                if st.delivery == Delivery::Sse {
                    let ev = sse_event(&serde_json::json!({
                        "type": "error",
                        "error": { "type": e.kind(), "message": e.to_string(), "trace_id": st.trace_id },
                    }));
                    return Some((Ok(ev), st));
                }
                return Some((Err(std::io::Error::other(e.to_string())), st));
            }
            Some(StreamEvent::Started { .. }) => continue,
        }
    }
}

/// An encoder's refusal: a format voxpipe cannot encode at all is the
/// client's choice (400); any other refusal comes from the audio the
/// pipeline made (its rate or channel count), not from the client (500).
fn encode_failure(format: AudioFormat, e: encode::EncodeError) -> ApiError {
    match format {
        AudioFormat::Aac => ApiError::UnsupportedFormat(e.to_string()),
        _ => TtsError::Encode(e.to_string()).into(),
    }
}

fn sse_event(value: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}
