//! The Wyoming protocol front end: what Home Assistant speaks to local speech
//! servers (newline-delimited JSON events over TCP or a Unix socket, as the
//! `wyoming` Python package defines them). It is a second front end over the
//! same synthesis service as the HTTP API ([`crate::tts::TtsService`]):
//! admission, deadlines, voices, hot-reloaded pipelines, the audio cache,
//! metrics (label `frontend="wyoming"`) and traces are shared; nothing here
//! synthesizes.
//!
//! - [`event`]: reading and writing events, bounded in bytes and time;
//! - [`listen`]: the listeners (one pipeline each) and the connection cap;
//! - [`connection`]: one connection's events: describe, ping, synthesize and
//!   the streaming `synthesize-start` / `-chunk` / `-stop`;
//! - [`request`]: a `synthesize` event's fields → a [`crate::tts::SynthesisRequest`];
//! - [`info`]: the `info` event (program, voices, languages, speakers);
//! - [`audio`]: audio → 16-bit `audio-chunk` events of bounded size;
//! - [`observe`]: one trace and one request count per synthesis.
//!
//! docs/home-assistant.md is the user's guide; docs/server.md lists the
//! `[wyoming]` config keys.

mod audio;
mod connection;
pub mod event;
mod info;
pub mod listen;
mod observe;
mod request;
pub mod zeroconf;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

pub use listen::{start, Frontend};

/// `[wyoming]` of the server config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WyomingConfig {
    /// Listeners as `tcp://HOST:PORT` or `unix://PATH`, each optionally
    /// `?pipeline=NAME` (default: the server's default pipeline).
    pub listeners: Vec<String>,
    /// Open connections across all listeners; more are refused at once.
    pub max_connections: usize,
    /// Seconds a connection may wait between events before it is closed.
    pub idle_timeout_s: f64,
    /// Seconds an event may take to arrive once begun, and a write to be taken.
    pub event_timeout_s: f64,
    /// KiB of a header line, of an event's data and of its payload, each.
    pub max_event_kib: usize,
    /// Samples per `audio-chunk` event.
    pub samples_per_chunk: usize,
    /// Announce the TCP listeners over zeroconf (`_wyoming._tcp`) under this
    /// name, for Home Assistant's discovery; unset: no announcement.
    pub zeroconf: Option<String>,
}

impl Default for WyomingConfig {
    fn default() -> Self {
        WyomingConfig {
            listeners: Vec::new(),
            max_connections: 128,
            idle_timeout_s: 60.0,
            event_timeout_s: 10.0,
            max_event_kib: 64,
            samples_per_chunk: 1024,
            zeroconf: None,
        }
    }
}

impl WyomingConfig {
    /// Checks every key; `max_text_chars` is the server's text limit, which
    /// an event's data must be able to carry.
    pub fn validate(&self, max_text_chars: usize) -> anyhow::Result<()> {
        for l in &self.listeners {
            l.parse::<Listener>()
                .map_err(|e| anyhow::anyhow!("wyoming.listeners: {e}"))?;
        }
        anyhow::ensure!(
            (1..=65_536).contains(&self.max_connections),
            "wyoming.max_connections must be 1..=65536"
        );
        for (key, v) in [
            ("idle_timeout_s", self.idle_timeout_s),
            ("event_timeout_s", self.event_timeout_s),
        ] {
            anyhow::ensure!(v.is_finite() && v > 0.0, "wyoming.{key} must be > 0");
        }
        // UTF-8 text is at most 4 bytes a character, plus the event's other fields.
        let need = (max_text_chars * 4 + 4096).div_ceil(1024);
        anyhow::ensure!(
            (need..=65_536).contains(&self.max_event_kib),
            "wyoming.max_event_kib must be {need}..=65536 (4 bytes per character of \
             limits.max_text_chars, plus 4 KiB)"
        );
        anyhow::ensure!(
            (64..=65_536).contains(&self.samples_per_chunk),
            "wyoming.samples_per_chunk must be 64..=65536"
        );
        if let Some(name) = &self.zeroconf {
            // A DNS-SD instance name: one label of at most 63 bytes; the
            // pipeline may be appended, so keep room.
            anyhow::ensure!(
                !name.is_empty()
                    && name.len() <= 40
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "wyoming.zeroconf must be 1-40 letters, digits, `-` or `_`"
            );
        }
        Ok(())
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.idle_timeout_s)
    }

    pub fn event_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.event_timeout_s)
    }
}

/// Where a listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp(a) => write!(f, "tcp://{a}"),
            Address::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// One listener: an address and the pipeline its connections speak with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub address: Address,
    /// `None`: the server's default pipeline.
    pub pipeline: Option<String>,
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.address)?;
        match &self.pipeline {
            Some(p) => write!(f, "?pipeline={p}"),
            None => Ok(()),
        }
    }
}

impl FromStr for Listener {
    type Err = String;

    /// `tcp://HOST:PORT[?pipeline=NAME]` or `unix://PATH[?pipeline=NAME]`.
    fn from_str(s: &str) -> Result<Listener, String> {
        let (uri, query) = match s.split_once('?') {
            Some((u, q)) => (u, Some(q)),
            None => (s, None),
        };
        let pipeline = match query {
            None => None,
            Some(q) => match q.strip_prefix("pipeline=") {
                Some(name) if !name.is_empty() && !name.contains(['&', '=', '/']) => {
                    Some(name.to_string())
                }
                _ => {
                    return Err(format!(
                        "{s:?}: the only option is ?pipeline=NAME (a pipeline's name)"
                    ))
                }
            },
        };
        let address = if let Some(hostport) = uri.strip_prefix("tcp://") {
            let addr = hostport
                .to_socket_addrs()
                .map_err(|e| format!("{s:?}: not HOST:PORT ({e})"))?
                .next()
                .ok_or_else(|| format!("{s:?}: {hostport} resolves to no address"))?;
            Address::Tcp(addr)
        } else if let Some(path) = uri.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(format!("{s:?}: unix:// needs a socket path"));
            }
            Address::Unix(PathBuf::from(path))
        } else {
            return Err(format!(
                "{s:?} is not tcp://HOST:PORT or unix://PATH (optionally ?pipeline=NAME)"
            ));
        };
        Ok(Listener { address, pipeline })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_parse_with_their_pipeline() {
        let l: Listener = "tcp://127.0.0.1:10200".parse().unwrap();
        assert_eq!(l.address, Address::Tcp("127.0.0.1:10200".parse().unwrap()));
        assert_eq!(l.pipeline, None);
        let l: Listener = "unix:///run/voxpipe.sock?pipeline=sichuanese"
            .parse()
            .unwrap();
        assert_eq!(l.address, Address::Unix("/run/voxpipe.sock".into()));
        assert_eq!(l.pipeline.as_deref(), Some("sichuanese"));
        assert_eq!(l.to_string().parse::<Listener>().unwrap(), l);
        for bad in [
            "127.0.0.1:10200",
            "tcp://127.0.0.1",
            "unix://",
            "tcp://127.0.0.1:1?voice=x",
            "tcp://127.0.0.1:1?pipeline=",
            "http://127.0.0.1:1",
        ] {
            assert!(bad.parse::<Listener>().is_err(), "{bad}");
        }
    }

    #[test]
    fn config_bounds() {
        let c = WyomingConfig::default();
        c.validate(5000).unwrap();
        let e = WyomingConfig {
            max_event_kib: 8,
            ..c.clone()
        }
        .validate(5000)
        .unwrap_err()
        .to_string();
        assert!(e.contains("max_event_kib must be 24..="), "{e}");
        let e = WyomingConfig {
            listeners: vec!["tcp:/x".into()],
            ..c
        }
        .validate(5000)
        .unwrap_err()
        .to_string();
        assert!(e.contains("wyoming.listeners"), "{e}");
    }
}
