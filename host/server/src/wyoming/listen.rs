//! The Wyoming listeners: each binds one address (TCP or a Unix socket) and
//! serves one pipeline, so a dialect pipeline on its own port is a Home
//! Assistant integration of its own. Open connections are capped across all
//! listeners; one over the cap gets an `error` event (`overloaded`) and is
//! closed at once, before anything of it is read.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::event::{write_event, Event, ReadLimits};
use super::{Address, Listener, WyomingConfig};
use crate::http::AudioCache;
use crate::tts::TtsService;

/// What every connection shares.
pub struct Frontend {
    pub service: Arc<TtsService>,
    /// The server's audio cache (whole syntheses, keyed like HTTP's).
    pub cache: Arc<AudioCache>,
    pub read_limits: ReadLimits,
    /// Longest a write may wait for a client that does not read.
    pub write_timeout: Duration,
    pub samples_per_chunk: usize,
    connections: Arc<Semaphore>,
    max_connections: usize,
}

impl Frontend {
    pub fn new(
        config: &WyomingConfig,
        service: Arc<TtsService>,
        cache: Arc<AudioCache>,
    ) -> Frontend {
        Frontend {
            service,
            cache,
            read_limits: ReadLimits {
                max_bytes: config.max_event_kib << 10,
                idle: config.idle_timeout(),
                event: config.event_timeout(),
            },
            write_timeout: config.event_timeout(),
            samples_per_chunk: config.samples_per_chunk,
            connections: Arc::new(Semaphore::new(config.max_connections)),
            max_connections: config.max_connections,
        }
    }

    /// Returns once every connection has closed. After the stop signal an
    /// idle connection closes at once and a busy one when its synthesis has
    /// sent its last audio (see `connection.rs`), so this is the drain the
    /// server waits for on shutdown (bounded by `shutdown_grace_s`).
    pub async fn drained(&self) {
        while self.connections.available_permits() < self.max_connections {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Binds every listener (an error names the one that failed), then serves
/// them until `stop` turns true. With `zeroconf`, the TCP listeners are
/// announced under that name; the returned announcer withdraws them.
pub async fn start(
    listeners: &[Listener],
    frontend: Arc<Frontend>,
    stop: watch::Receiver<bool>,
    zeroconf: Option<&str>,
) -> anyhow::Result<Option<super::zeroconf::Announcer>> {
    let mut bound = Vec::new();
    for l in listeners {
        let socket = bind(&l.address)
            .await
            .with_context(|| format!("binding the Wyoming listener {}", l.address))?;
        let pipeline = l
            .pipeline
            .clone()
            .unwrap_or_else(|| frontend.service.options.default_pipeline.clone());
        if frontend.service.registry.get(&pipeline).is_none() {
            tracing::warn!(%pipeline, "a Wyoming listener's pipeline is not loaded (yet); its requests fail until it is");
        }
        tracing::info!(addr = %socket.local(), %pipeline, "wyoming listening");
        bound.push((socket, l.pipeline.clone(), pipeline));
    }
    let announcer = match zeroconf {
        None => None,
        Some(name) => {
            let tcp: Vec<super::zeroconf::Announced> = bound
                .iter()
                .filter_map(|(socket, _, pipeline)| match socket {
                    Socket::Tcp(l) => Some(super::zeroconf::Announced {
                        addr: l.local_addr().ok()?,
                        pipeline: pipeline.clone(),
                    }),
                    Socket::Unix(..) => None,
                })
                .collect();
            Some(super::zeroconf::announce(name, &tcp)?)
        }
    };
    for (socket, pipeline, _) in bound {
        tokio::spawn(accept_loop(
            socket,
            pipeline,
            frontend.clone(),
            stop.clone(),
        ));
    }
    Ok(announcer)
}

enum Socket {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

impl Socket {
    fn local(&self) -> String {
        match self {
            Socket::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "tcp://?".into(), |a| format!("tcp://{a}")),
            Socket::Unix(_, p) => format!("unix://{}", p.display()),
        }
    }
}

async fn bind(address: &Address) -> anyhow::Result<Socket> {
    Ok(match address {
        Address::Tcp(a) => Socket::Tcp(tokio::net::TcpListener::bind(a).await?),
        Address::Unix(path) => {
            // A socket file left by an earlier run is replaced; any other file is not.
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                use std::os::unix::fs::FileTypeExt;
                anyhow::ensure!(
                    meta.file_type().is_socket(),
                    "{} exists and is not a socket",
                    path.display()
                );
                std::fs::remove_file(path)?;
            }
            Socket::Unix(tokio::net::UnixListener::bind(path)?, path.clone())
        }
    })
}

async fn accept_loop(
    socket: Socket,
    pipeline: Option<String>,
    frontend: Arc<Frontend>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            a = accept(&socket) => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "wyoming accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let permit = frontend.connections.clone().try_acquire_owned();
        let frontend = frontend.clone();
        let pipeline = pipeline.clone();
        match (stream, permit) {
            (Stream::Tcp(s), Ok(p)) => {
                let _ = s.set_nodelay(true);
                tokio::spawn(serve(s, peer, frontend, pipeline, p, stop.clone()));
            }
            (Stream::Unix(s), Ok(p)) => {
                tokio::spawn(serve(s, peer, frontend, pipeline, p, stop.clone()));
            }
            (Stream::Tcp(s), Err(_)) => {
                tokio::spawn(refuse(s, peer, frontend));
            }
            (Stream::Unix(s), Err(_)) => {
                tokio::spawn(refuse(s, peer, frontend));
            }
        }
    }
    if let Socket::Unix(_, path) = &socket {
        let _ = std::fs::remove_file(path);
    }
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(socket: &Socket) -> std::io::Result<(Stream, String)> {
    match socket {
        Socket::Tcp(l) => {
            let (s, peer) = l.accept().await?;
            Ok((Stream::Tcp(s), peer.to_string()))
        }
        Socket::Unix(l, path) => {
            let (s, _) = l.accept().await?;
            Ok((Stream::Unix(s), format!("unix:{}", path.display())))
        }
    }
}

async fn serve<S>(
    stream: S,
    peer: String,
    frontend: Arc<Frontend>,
    pipeline: Option<String>,
    _permit: OwnedSemaphorePermit,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    tracing::debug!(%peer, "wyoming connection");
    super::connection::serve(stream, peer, frontend, pipeline, stop).await;
}

/// A connection over the cap: told why, then closed.
async fn refuse<S: AsyncWrite + Unpin>(mut stream: S, peer: String, frontend: Arc<Frontend>) {
    tracing::warn!(%peer, "wyoming connection refused: too many open connections");
    let e = Event::new(
        "error",
        json!({
            "text": "the server has too many open Wyoming connections; retry later",
            "code": "overloaded",
        }),
    );
    let _ = tokio::time::timeout(frontend.write_timeout, async {
        let _ = write_event(&mut stream, &e).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
