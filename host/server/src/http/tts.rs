//! `POST /v1/tts`, voxpipe's own synthesis API, and the delivery code both
//! synthesis endpoints share: whole responses (cached), chunked audio streams
//! and server-sent events.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine as _;
use serde::Deserialize;
use tokio::sync::mpsc;
use tracing::Instrument;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
use utoipa::ToSchema;

use super::auth::Access;
use super::cache::{self, CachedAudio};
use super::error::{ApiError, SynthesisErrors};
use super::reply::Exchange;
use super::AppState;
use crate::telemetry::metrics::{self, Outcome, RequestLabels};
use crate::tts::{
    webvtt, InputFormat, StreamEvent, StyleReport, SynthesisRequest, Timings, TtsError, WordTiming,
};
use voxpipe_codec::{self as encode, AudioFormat, StreamEncoder};

// The OpenAPI document's `TtsRequest` is this type; the limits it publishes
// are the ones `tts::request` checks (`http::openapi`'s test compares them).
/// The JSON body of `POST /v1/tts`. Unknown fields are refused
/// (`400 invalid_json`), so a typo does not silently fall back to a default.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TtsRequest, examples(json!({"text": "Hello there. This is voxpipe.", "instruct": "speak slowly and softly"})))]
pub(super) struct TtsBody {
    /// The text to speak: not empty or whitespace-only (`422 invalid_input`), at most
    /// `max_text_chars` characters (`413 text_too_long`; this server's limit is `maxLength`).
    /// Control characters other than tab and line breaks are removed; NUL is refused (`422`).
    #[schema(min_length = 1)]
    text: String,
    /// A pipeline name (`GET /v1/pipelines`); absent or `""`: the server's default.
    /// Unknown: `404 unknown_pipeline`.
    pipeline: Option<String>,
    /// A voice of the voices folder (`GET /v1/voices`); absent or `""`: the style stage's,
    /// else the pipeline's. Unknown: `404 unknown_voice`.
    voice: Option<String>,
    /// A speaker name of the voice, or a number below its speaker count; else
    /// `404 unknown_speaker`. Absent or `""`: the style's, else speaker 0.
    speaker: Option<String>,
    /// A language tag for the stages (default: the pipeline's).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,35}$")]
    language: Option<String>,
    /// A free-text style instruction for the pipeline's style stage ("speak slowly");
    /// NUL is refused (`422`).
    instruct: Option<String>,
    /// Speaking rate; above 1 is faster. Multiplied by the style's, then clamped.
    #[schema(minimum = 0.25, maximum = 4.0)]
    speed: Option<f32>,
    #[schema(schema_with = format_schema)]
    format: Option<String>,
    /// Resample the output to this rate, in Hz (default: the voice's).
    #[schema(minimum = 8000, maximum = 192000)]
    sample_rate: Option<u32>,
    #[schema(schema_with = seed_schema)]
    seed: Option<u64>,
    /// `true`: chunked audio as the voice makes it (not cached).
    #[serde(default)]
    #[schema(default = false)]
    stream: bool,
    /// How `text` is read: `text` (the default) or `ssml`, the SSML subset of
    /// docs/ssml.md (malformed: `400 invalid_ssml`; outside the subset:
    /// `422 ssml_unsupported`). `max_text_chars` counts the document's characters.
    #[schema(schema_with = input_format_schema)]
    input_format: Option<String>,
    /// `true`: say when each word is heard (docs/api.md, "Word timestamps"). A whole
    /// response is then JSON (`TimestampedAudio`: the audio in base64, `words`, WebVTT
    /// captions); with `stream: true`, server-sent events (`speech.audio.delta`,
    /// `speech.words` after the audio that holds them, `speech.audio.done`).
    #[serde(default)]
    #[schema(default = false)]
    timestamps: bool,
}

/// A whole response with word timestamps (`timestamps: true`).
#[derive(Debug, serde::Serialize, ToSchema)]
pub(super) struct TimestampedAudio {
    /// Base64 of the audio file, in `format`.
    audio: String,
    /// The audio format's name, e.g. `wav`.
    format: &'static str,
    /// Its media type, e.g. `audio/wav`.
    content_type: &'static str,
    sample_rate: u32,
    channels: u16,
    audio_seconds: f64,
    /// Every word of the request, in order, with when it is heard.
    #[schema(value_type = Vec<WordTimingSchema>)]
    words: Vec<WordTiming>,
    /// The same words as WebVTT captions, a cue per phrase.
    vtt: String,
}

/// One word of the request: its text as written (punctuation attached), and
/// when it is heard, in seconds from the start of the audio. (The document's
/// description of `tts::WordTiming`, which is what is serialized: the
/// synthesis service stays free of OpenAPI.)
#[derive(ToSchema)]
#[schema(as = WordTiming)]
#[allow(dead_code)]
pub(super) struct WordTimingSchema {
    text: String,
    start: f64,
    end: f64,
}

/// `input_format`: `text` or `ssml` (absent, `""` or null: `text`).
pub(super) fn input_format_schema() -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(["text", "ssml", "", "null"].map(|v| match v {
            "null" => serde_json::Value::Null,
            v => v.into(),
        })))
        .description(Some(
            "How the text is read: `text` (default) or `ssml` (the subset of docs/ssml.md). \
             Malformed SSML: `400 invalid_ssml`; outside the subset: `422 ssml_unsupported`.",
        ))
        .build()
}

/// `seed`: any u64 (utoipa would publish it as `int64`, whose top half the
/// server accepts too).
fn seed_schema() -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .format(Some(utoipa::openapi::SchemaFormat::Custom("uint64".into())))
        .minimum(Some(0))
        .maximum(Some(u64::MAX as usize))
        .description(Some(
            "Seed of the voice's noise (default 0): the same request gives the same audio.",
        ))
        .build()
}

/// `format`: the names this server can encode, `""` (the default) or null.
fn format_schema() -> utoipa::openapi::Object {
    formats(AudioFormat::Wav)
}

/// The schema of a `format` / `response_format` field whose default is
/// `default`: the names this server can encode, `""` (the default) or null.
pub(super) fn formats(default: AudioFormat) -> utoipa::openapi::Object {
    let mut names: Vec<serde_json::Value> = AudioFormat::ALL
        .into_iter()
        .filter(|f| f.encodable())
        .map(|f| f.as_str().into())
        .collect();
    names.push("".into());
    names.push(serde_json::Value::Null);
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(names))
        .description(Some(format!(
            "The audio format (case-insensitive; absent or `\"\"`: `{}`). `aac` and other names: \
             `400 unsupported_format`; `flac` cannot be streamed.",
            default.as_str()
        )))
        .build()
}

/// The `200` of a synthesis endpoint: audio in every format this server
/// encodes, the JSON of a timestamped response, and server-sent events,
/// with its headers.
pub(super) fn audio_responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    let mut response = ResponseBuilder::new().description(
        "The audio: a whole file, or (streamed) a chunked body as the voice makes it; the \
         Content-Type is the format's. With `timestamps`, a whole response is JSON \
         (`TimestampedAudio`) and a stream is server-sent events.",
    );
    for f in AudioFormat::ALL.into_iter().filter(|f| f.encodable()) {
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type(f.content_type())
            .description(Some(format!(
                "`{}`{}",
                f.as_str(),
                if f.streamable() {
                    ""
                } else {
                    " (whole files only)"
                }
            )));
        response = response.content(
            f.content_type(),
            ContentBuilder::new().schema(Some(schema)).build(),
        );
    }
    // Events before JSON: generated clients (openapi-python-client) parse a
    // 200 by the first media type they know, and a client that asked for
    // audio must not have it parsed as JSON (text is harmless).
    response = response
        .content(
            "text/event-stream",
            ContentBuilder::new().schema(Some(sse_schema())).build(),
        )
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name(
                    "TimestampedAudio",
                )))
                .build(),
        );
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let header = |description: &str| {
        HeaderBuilder::new()
            .schema(Some(string()))
            .description(Some(description))
            .build()
    };
    let response = super::error::trace_headers(response)
        .header("X-Style-Mapped", header("The style stage's label, when it understood the instruction."))
        .header("X-Style-Unmapped", header("Why the instruction was not applied."))
        .header("X-Style-Unhonored", header("Style fields nothing in the pipeline applies, e.g. `dialect=sichuanese;emotion=happy`."))
        .header(
            "X-Cache",
            HeaderBuilder::new()
                .schema(Some(string().enum_values(Some(["hit", "miss"]))))
                .description(Some("Whole files, when the response cache is on."))
                .build(),
        )
        .header("Cache-Control", header("`no-store`."))
        .header("X-Accel-Buffering", header("`no` on streams."));
    BTreeMap::from([("200".to_string(), RefOr::T(response.build()))])
}

/// An SSE response: text on the wire (what generated clients read), whose
/// events (what SSE-aware tools such as schemathesis check) each have a JSON
/// object as `data`: `speech.audio.delta` per piece, then `speech.audio.done`,
/// or `error` when the synthesis fails after the first event.
fn sse_schema() -> utoipa::openapi::schema::AnyOfBuilder {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let kind = |name: &str| string().enum_values(Some([name]));
    let delta = ObjectBuilder::new()
        .property("type", kind("speech.audio.delta"))
        .property(
            "audio",
            string().description(Some("Base64 of the next bytes of the format.")),
        )
        .required("type")
        .required("audio");
    let usage = ObjectBuilder::new()
        .property(
            "input_tokens",
            ObjectBuilder::new().schema_type(Type::Integer),
        )
        .property(
            "output_tokens",
            ObjectBuilder::new().schema_type(Type::Integer),
        )
        .property(
            "total_tokens",
            ObjectBuilder::new().schema_type(Type::Integer),
        );
    let done = ObjectBuilder::new()
        .property("type", kind("speech.audio.done"))
        .property("usage", usage)
        .property(
            "audio_seconds",
            ObjectBuilder::new().schema_type(Type::Number),
        )
        .required("type");
    let words = ObjectBuilder::new()
        .property("type", kind("speech.words"))
        .property(
            "words",
            utoipa::openapi::schema::ArrayBuilder::new()
                .items(utoipa::openapi::Ref::from_schema_name("WordTiming")),
        )
        .required("type")
        .required("words");
    let error = ObjectBuilder::new()
        .property("type", kind("error"))
        .property(
            "error",
            utoipa::openapi::Ref::from_schema_name("ErrorDetail"),
        )
        .required("type")
        .required("error");
    let data = string()
        .content_media_type("application/json")
        .content_schema(Some(
            utoipa::openapi::schema::OneOfBuilder::new()
                .item(delta)
                .item(words)
                .item(done)
                .item(error),
        ))
        .description(Some(
            "A JSON object: `speech.audio.delta` events (with `timestamps`, each sentence's \
             `speech.words` after its audio), then `speech.audio.done`; an `error` event ends \
             a stream that fails after its first event.",
        ));
    let event = ObjectBuilder::new()
        .description(Some("One event, `data: <json>` (no `event:` line)."))
        .property("data", data)
        .property("event", string())
        .required("data");
    utoipa::openapi::schema::AnyOfBuilder::new()
        .description(Some(
            "Server-sent events: the body as text, or parsed, one event.",
        ))
        .item(string())
        .item(event)
}

/// The `200` of `POST /v1/tts`.
pub(super) struct TtsAudio;

impl utoipa::IntoResponses for TtsAudio {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        audio_responses()
    }
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

/// `POST /v1/tts`.
#[utoipa::path(
    post,
    path = "/v1/tts",
    operation_id = "tts",
    tag = "synthesis",
    summary = "Speak a text: audio, whole or streamed",
    description = "Runs the pipeline (text stages, style stage, the voice, audio stages) and answers \
        with the audio in the asked format. Whole files are cached; `stream: true` sends the audio \
        as the voice makes it. Checks, in order: key, JSON, format name, text, speed, sample rate, \
        language, pipeline, voice, streamable format, admission, stages, speaker.",
    request_body(content = TtsBody, content_type = "application/json"),
    responses(TtsAudio, SynthesisErrors),
    security((), ("api_key" = []))
)]
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
        .and_then(|b| {
            let format = parse_format(b.format.as_deref(), AudioFormat::Wav)?;
            let input = InputFormat::parse(b.input_format.as_deref().unwrap_or(""))?;
            Ok((format, input, b))
        });
    let (format, input_format, b) = match parsed {
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
        input_format,
        timestamps: b.timestamps,
    };
    // Words travel beside the audio only in events.
    let delivery = match (b.stream, b.timestamps) {
        (true, true) => Delivery::Sse,
        (true, false) => Delivery::Stream,
        (false, _) => Delivery::Whole,
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
    let streamed = !matches!(delivery, Delivery::Whole);
    let job = match service.prepare(request, ex.trace.trace_id.clone(), streamed) {
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
    let key = if job.timestamps {
        cache::job_key(&job, &format!("{}+timestamps", format.as_str()))
    } else {
        cache::job_key(&job, format.as_str())
    };
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
    let mut synthesis = match service.synthesize(job).await {
        Ok(s) => s,
        Err((e, t)) => return ex.error(e, &t),
    };
    let mut timings = std::mem::take(&mut synthesis.timings);
    let started = Instant::now();
    let span = encode_span(format);
    let bytes = match span.in_scope(|| encode::encode(&synthesis.audio, format)) {
        Ok(b) => Bytes::from(b),
        Err(e) => return ex.error(encode_failure(format, e), &timings),
    };
    span.record("audio.bytes", bytes.len() as i64);
    drop(span);
    let (bytes, content_type) = if !synthesis.timestamps {
        (bytes, format.content_type())
    } else {
        (
            timestamped_body(&synthesis, format, &bytes),
            "application/json",
        )
    };
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
                content_type,
                style_mapped: synthesis.style.mapped.clone(),
                style_unmapped: synthesis.style.unmapped.clone(),
                style_unhonored: synthesis.style.unhonored.clone(),
            },
        );
    }
    let mut r = ex.audio(Body::from(bytes), content_type, &timings, &synthesis.style);
    if state.cache.enabled() {
        super::reply::set(r.headers_mut(), "x-cache", "miss");
    }
    r
}

/// The JSON body of a whole response with word timestamps.
fn timestamped_body(synthesis: &crate::tts::Synthesis, format: AudioFormat, audio: &[u8]) -> Bytes {
    let body = TimestampedAudio {
        audio: base64::engine::general_purpose::STANDARD.encode(audio),
        format: format.as_str(),
        content_type: format.content_type(),
        sample_rate: synthesis.audio.sample_rate,
        channels: synthesis.audio.channels,
        audio_seconds: synthesis.audio.seconds(),
        vtt: webvtt(&synthesis.words),
        words: synthesis.words.clone(),
    };
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
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
                // The response's status went out with the first audio: the
                // reason lives here, in the synthesis span, and (SSE) in an
                // `error` event; a raw stream is cut without its last chunk.
                tracing::warn!(trace_id = %st.trace_id, error.type = e.kind(), error = %e, "streamed synthesis failed after the first audio");
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
            Some(StreamEvent::Words(words)) => {
                if st.delivery != Delivery::Sse || words.is_empty() {
                    continue;
                }
                let ev = sse_event(&serde_json::json!({
                    "type": "speech.words",
                    "words": words,
                }));
                return Some((Ok(ev), st));
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
