//! Wyoming events on the wire: a JSON header line (`type`, optional inline
//! `data`, `data_length`, `payload_length`), then `data_length` bytes of JSON
//! merged into `data`, then `payload_length` bytes of payload. Reading is
//! bounded because a listening port is an open door: the header line, the
//! data and the payload each have a byte limit checked before anything is
//! allocated or read, the wait for an event has the idle timeout, and an
//! event once begun must arrive whole within the event timeout.

use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The `version` written in every header: the protocol this server speaks
/// (the `wyoming` Python package's version it was checked against).
pub const PROTOCOL_VERSION: &str = "1.10.2";

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: String,
    pub data: Map<String, Value>,
    pub payload: Vec<u8>,
}

impl Event {
    pub fn new(kind: &str, data: Value) -> Event {
        Event {
            kind: kind.to_string(),
            data: match data {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            payload: Vec::new(),
        }
    }
}

/// The bounds of reading one event.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Most bytes of a header line, of `data_length` and of `payload_length`, each.
    pub max_bytes: usize,
    /// Longest wait for the first byte of the next event.
    pub idle: Duration,
    /// Longest an event may take to arrive once its first byte has.
    pub event: Duration,
}

/// Why no event was read. The connection cannot go on after any of these
/// except [`FrameError::Malformed`] (the bad line was consumed whole).
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection between events.
    #[error("the client closed the connection")]
    Closed,
    /// A header line, data or payload longer than the limit.
    #[error("{what} of {len} bytes is over this server's limit of {limit} bytes")]
    TooLarge {
        what: &'static str,
        len: u64,
        limit: usize,
    },
    /// The header line is not a JSON object with a string `type` (the line
    /// was read; the next event can follow).
    #[error("{0}")]
    Malformed(String),
    /// `data_length` / `payload_length` is not a byte count, or the data
    /// section is not a JSON object: the stream cannot be followed further.
    #[error("{0}")]
    BadLength(String),
    /// No event began within the idle timeout.
    #[error("no event for {} s; closing", .0.as_secs())]
    Idle(Duration),
    /// An event began but did not arrive whole in time (or the peer closed
    /// the connection in the middle of it).
    #[error("the event did not arrive whole within {} s", .0.as_secs_f64())]
    Incomplete(Duration),
    #[error("reading: {0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// The `code` of the `error` event telling the client (the HTTP API's types).
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::Malformed(_) | FrameError::BadLength(_) => "invalid_json",
            FrameError::TooLarge { .. } => "invalid_input",
            FrameError::Idle(_) | FrameError::Incomplete(_) => "timeout",
            FrameError::Closed | FrameError::Io(_) => "cancelled",
        }
    }

    /// Whether reading can go on with the next event.
    pub fn recoverable(&self) -> bool {
        matches!(self, FrameError::Malformed(_))
    }
}

/// Reads the next event. Blank lines between events are skipped.
pub async fn read_event<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limits: &ReadLimits,
) -> Result<Event, FrameError> {
    // Waiting for the next event: the idle timeout.
    let first = tokio::time::timeout(limits.idle, reader.fill_buf())
        .await
        .map_err(|_| FrameError::Idle(limits.idle))??;
    if first.is_empty() {
        return Err(FrameError::Closed);
    }
    // The event has begun: all of it within the event timeout.
    match tokio::time::timeout(limits.event, read_rest(reader, limits)).await {
        Ok(Err(FrameError::Closed)) | Err(_) => Err(FrameError::Incomplete(limits.event)),
        Ok(r) => r,
    }
}

async fn read_rest<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limits: &ReadLimits,
) -> Result<Event, FrameError> {
    let mut line = Vec::new();
    loop {
        line.clear();
        // One byte over the limit tells a full-length line from a longer one.
        let n = (&mut *reader)
            .take(limits.max_bytes as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if line.last() != Some(&b'\n') {
            if n > limits.max_bytes {
                return Err(FrameError::TooLarge {
                    what: "a header line",
                    len: n as u64,
                    limit: limits.max_bytes,
                });
            }
            return Err(FrameError::Closed);
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            break;
        }
    }
    let header: Map<String, Value> = match serde_json::from_slice(&line) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return Err(FrameError::Malformed(
                "the header is not a JSON object".into(),
            ))
        }
        Err(e) => {
            return Err(FrameError::Malformed(format!(
                "the header line is not JSON: {e}"
            )))
        }
    };
    let data_length = length(&header, "data_length", limits.max_bytes)?;
    let payload_length = length(&header, "payload_length", limits.max_bytes)?;
    let kind = match header.get("type") {
        Some(Value::String(t)) => t.clone(),
        _ => {
            // Consume what the header announced so the stream stays in step.
            skip(reader, data_length + payload_length).await?;
            return Err(FrameError::Malformed(
                "the header has no string `type`".into(),
            ));
        }
    };
    let mut data = match header.get("data") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    if data_length > 0 {
        let mut bytes = vec![0u8; data_length];
        reader.read_exact(&mut bytes).await.map_err(eof_closed)?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(more)) => data.extend(more),
            _ => {
                skip(reader, payload_length).await?;
                return Err(FrameError::Malformed(format!(
                    "the {data_length} data bytes of `{kind}` are not a JSON object"
                )));
            }
        }
    }
    let mut payload = vec![0u8; payload_length];
    reader.read_exact(&mut payload).await.map_err(eof_closed)?;
    Ok(Event {
        kind,
        data,
        payload,
    })
}

/// A length field: absent is 0; anything but a whole number ≤ `limit` ends
/// the connection (what follows cannot be found without it).
fn length(
    header: &Map<String, Value>,
    key: &'static str,
    limit: usize,
) -> Result<usize, FrameError> {
    match header.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => {
            let n = v
                .as_u64()
                .ok_or_else(|| FrameError::BadLength(format!("`{key}` {v} is not a byte count")))?;
            if n > limit as u64 {
                return Err(FrameError::TooLarge {
                    what: key,
                    len: n,
                    limit,
                });
            }
            Ok(n as usize)
        }
    }
}

/// Reads and drops `n` bytes (already checked against the limit).
async fn skip<R: AsyncBufRead + Unpin>(reader: &mut R, n: usize) -> Result<(), FrameError> {
    let copied =
        tokio::io::copy(&mut (&mut *reader).take(n as u64), &mut tokio::io::sink()).await?;
    if copied < n as u64 {
        return Err(FrameError::Closed);
    }
    Ok(())
}

fn eof_closed(e: std::io::Error) -> FrameError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        FrameError::Closed
    } else {
        FrameError::Io(e)
    }
}

/// Writes one event as the `wyoming` package does: `data` goes after the
/// header line with its `data_length`, so the header stays short.
pub async fn write_event<W: AsyncWrite + Unpin>(
    writer: &mut W,
    event: &Event,
) -> std::io::Result<()> {
    let mut header = Map::new();
    header.insert("type".into(), Value::String(event.kind.clone()));
    header.insert("version".into(), Value::String(PROTOCOL_VERSION.into()));
    let data = if event.data.is_empty() {
        Vec::new()
    } else {
        serde_json::to_vec(&event.data).map_err(std::io::Error::other)?
    };
    if !data.is_empty() {
        header.insert("data_length".into(), data.len().into());
    }
    if !event.payload.is_empty() {
        header.insert("payload_length".into(), event.payload.len().into());
    }
    let mut out = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
    out.push(b'\n');
    out.extend_from_slice(&data);
    out.extend_from_slice(&event.payload);
    writer.write_all(&out).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> ReadLimits {
        ReadLimits {
            max_bytes: 128,
            idle: Duration::from_secs(5),
            event: Duration::from_secs(5),
        }
    }

    async fn read_all(bytes: &[u8]) -> Vec<Result<Event, String>> {
        let mut r = tokio::io::BufReader::new(bytes);
        let mut out = Vec::new();
        loop {
            match read_event(&mut r, &limits()).await {
                Ok(e) => out.push(Ok(e)),
                Err(FrameError::Closed) => return out,
                Err(e) => {
                    let go_on = e.recoverable();
                    out.push(Err(format!("{}: {e}", e.code())));
                    if !go_on {
                        return out;
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn writes_what_it_reads() {
        let mut e = Event::new("synthesize", json!({"text": "Hi. 你好"}));
        e.payload = vec![1, 2, 3];
        let mut wire = Vec::new();
        write_event(&mut wire, &e).await.unwrap();
        let header =
            String::from_utf8_lossy(&wire[..wire.iter().position(|&b| b == b'\n').unwrap()])
                .into_owned();
        assert!(header.contains("\"data_length\""), "{header}");
        assert!(header.contains("\"payload_length\":3"), "{header}");
        assert_eq!(read_all(&wire).await, vec![Ok(e)]);
    }

    #[tokio::test]
    async fn inline_data_and_data_section_merge() {
        let wire = b"{\"type\":\"synthesize\",\"data\":{\"text\":\"a\",\"x\":1},\"data_length\":12}\n{\"text\":\"b\"}\n";
        let got = read_all(wire).await;
        let e = got[0].as_ref().unwrap();
        assert_eq!(e.data["text"], "b");
        assert_eq!(e.data["x"], 1);
    }

    #[tokio::test]
    async fn malformed_lines_are_skipped_and_lengths_are_bounded() {
        let got = read_all(b"not json\n\n{\"type\":\"ping\"}\n{\"data\":{}}\n").await;
        assert!(
            got[0].as_ref().unwrap_err().starts_with("invalid_json"),
            "{got:?}"
        );
        assert_eq!(got[1].as_ref().unwrap().kind, "ping");
        assert!(
            got[2].as_ref().unwrap_err().contains("no string `type`"),
            "{got:?}"
        );
        // Too long: refused before reading (or allocating) the bytes.
        for (wire, what) in [
            (
                b"{\"type\":\"x\",\"data_length\":129}\n".as_slice(),
                "data_length of 129",
            ),
            (
                b"{\"type\":\"x\",\"payload_length\":99999999999}\n".as_slice(),
                "payload_length of 99999999999",
            ),
            (&[b'x'; 200][..], "a header line of 129"),
        ] {
            let got = read_all(wire).await;
            let e = got[0].as_ref().unwrap_err();
            assert!(e.starts_with("invalid_input") && e.contains(what), "{e}");
        }
        for bad in [
            b"{\"type\":\"x\",\"data_length\":-1}\n".as_slice(),
            b"{\"type\":\"x\",\"payload_length\":\"7\"}\n",
        ] {
            let got = read_all(bad).await;
            assert!(
                got[0].as_ref().unwrap_err().contains("not a byte count"),
                "{got:?}"
            );
        }
        // Cut off in the middle of an event.
        let got = read_all(b"{\"type\":\"x\",\"payload_length\":10}\nabc").await;
        assert!(
            got[0].as_ref().unwrap_err().starts_with("timeout"),
            "{got:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_and_half_sent_events_time_out() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut r = tokio::io::BufReader::new(server);
        let e = read_event(&mut r, &limits()).await.unwrap_err();
        assert!(matches!(e, FrameError::Idle(_)), "{e}");
        client.write_all(b"{\"type\":\"pi").await.unwrap();
        let e = read_event(&mut r, &limits()).await.unwrap_err();
        assert!(matches!(e, FrameError::Incomplete(_)), "{e}");
    }
}
