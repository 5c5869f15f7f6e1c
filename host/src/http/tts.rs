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

use super::auth::Access;
use super::reply::Exchange;
use super::AppState;
use crate::encode::{self, AudioFormat, StreamEncoder};
use crate::tts::cache::CachedAudio;
use crate::tts::{StreamEvent, StyleReport, SynthesisRequest, Timings, TtsError};

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

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, TtsError> {
    serde_json::from_slice(body)
        .map_err(|e| TtsError::InvalidJson(format!("invalid JSON body: {e}")))
}

pub(super) fn parse_format(
    name: Option<&str>,
    default: AudioFormat,
) -> Result<AudioFormat, TtsError> {
    match name {
        None | Some("") => Ok(default),
        Some(f) => f
            .parse::<AudioFormat>()
            .map_err(|e| TtsError::UnsupportedFormat(e.to_string())),
    }
}

pub async fn synthesize(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ex = Exchange::new(&headers);
    let parsed = state
        .auth
        .check(&headers, Access::Api)
        .and_then(|()| parse_json::<TtsBody>(&body))
        .and_then(|b| Ok((parse_format(b.format.as_deref(), AudioFormat::Wav)?, b)));
    let (format, b) = match parsed {
        Ok(v) => v,
        Err(e) => return ex.error(&e, &Timings::default()),
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
    ex: Exchange,
    request: SynthesisRequest,
    format: AudioFormat,
    delivery: Delivery,
) -> Response {
    let service = &state.service;
    let job = match service.prepare(request, ex.trace.trace_id.clone()) {
        Ok(j) => j,
        Err(e) => return ex.error(&e, &Timings::default()),
    };
    if delivery == Delivery::Whole {
        return whole(state, ex, job, format).await;
    }
    if !format.streamable() {
        let e = TtsError::UnsupportedFormat(format!(
            "`{}` cannot be streamed; stream wav, pcm, mp3 or opus, or ask for the whole file",
            format.as_str()
        ));
        return ex.error(&e, &Timings::default());
    }
    let mut rx = service.stream(job).await;
    let (rate, style, timings) = match rx.recv().await {
        Some(StreamEvent::Started {
            sample_rate,
            style,
            timings,
            ..
        }) => (sample_rate, style, timings),
        Some(StreamEvent::Failed(e, t)) => return ex.error(&e, &t),
        _ => {
            return ex.error(
                &TtsError::Internal("the synthesis ended early".into()),
                &Timings::default(),
            )
        }
    };
    let encoder = match StreamEncoder::new(format, rate, 1) {
        Ok(e) => e,
        Err(e) => return ex.error(&TtsError::UnsupportedFormat(e.to_string()), &timings),
    };
    let content_type = if delivery == Delivery::Sse {
        "text/event-stream"
    } else {
        format.content_type()
    };
    let trace_id = ex.trace.trace_id.clone();
    let body = Body::from_stream(chunks(rx, encoder, delivery, trace_id));
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
    let key = service.cache_key(&job, format.as_str());
    if let Some(hit) = service.cache.get(&key) {
        // The stages did not run for this request: only the lookup did.
        let mut timings = Timings::default();
        timings.add("cache", Some("hit".into()), ex.elapsed());
        let style = StyleReport {
            mapped: hit.style_mapped.clone(),
            unmapped: hit.style_unmapped.clone(),
        };
        let mut r = ex.audio(Body::from(hit.body), hit.content_type, &timings, &style);
        super::reply::set(r.headers_mut(), "x-cache", "hit");
        return r;
    }
    let synthesis = match service.synthesize(job).await {
        Ok(s) => s,
        Err((e, t)) => return ex.error(&e, &t),
    };
    let mut timings = synthesis.timings;
    let started = Instant::now();
    let bytes = match encode::encode(&synthesis.audio, format) {
        Ok(b) => Bytes::from(b),
        Err(e) => return ex.error(&TtsError::UnsupportedFormat(e.to_string()), &timings),
    };
    timings.add(
        "encode",
        Some(format!("encode {}", format.as_str())),
        started.elapsed(),
    );
    if service.cache.enabled() {
        service.cache.put(
            key,
            CachedAudio {
                body: bytes.clone(),
                content_type: format.content_type(),
                style_mapped: synthesis.style.mapped.clone(),
                style_unmapped: synthesis.style.unmapped.clone(),
            },
        );
    }
    let mut r = ex.audio(
        Body::from(bytes),
        format.content_type(),
        &timings,
        &synthesis.style,
    );
    if service.cache.enabled() {
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
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    struct St {
        rx: mpsc::Receiver<StreamEvent>,
        encoder: StreamEncoder,
        header_sent: bool,
        finished: bool,
        audio_seconds: f64,
        delivery: Delivery,
        trace_id: String,
    }
    let st = St {
        rx,
        encoder,
        header_sent: false,
        finished: false,
        audio_seconds: 0.0,
        delivery,
        trace_id,
    };
    futures_util::stream::unfold(st, |mut st| async move {
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
                    match st.encoder.push(&audio.samples) {
                        Ok(b) => bytes.extend(b),
                        Err(e) => return Some((Err(std::io::Error::other(e.to_string())), st)),
                    }
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
                    tracing::warn!(error.type = e.kind(), error = %e, trace_id = %st.trace_id, "streamed synthesis failed after the first audio");
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
    })
}

fn sse_event(value: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}
