//! `voxpipe serve`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use voxpipe::config::ServerConfig;
use voxpipe::http::{router, AppState, AudioCache, Auth};
use voxpipe::pipeline::{watch, PipelineRegistry, RegistryOptions};
use voxpipe::telemetry::Telemetry;
use voxpipe::tts::{Admission, ServiceOptions, TtsService, VoiceStore};
use voxpipe_engine::device::{device_label, DeviceSpec};

use super::{plugin_dirs, Cli};

/// How long the server must be idle before freed synthesis memory is returned.
const IDLE_TRIM: Duration = Duration::from_secs(10);

#[derive(Args)]
#[command(
    after_help = "Every flag overrides the config file; without either, the server \
serves pipelines/default.toml with voices/en_US-joe-medium on 127.0.0.1:8080.\n\n\
Examples:\n  \
voxpipe serve\n  \
voxpipe serve --config examples/server.toml --bind 0.0.0.0:8080\n  \
curl -s localhost:8080/v1/tts -d '{\"text\":\"Hello!\"}' -o hello.wav\n  \
voxpipe serve --wyoming tcp://0.0.0.0:10200 --wyoming 'tcp://0.0.0.0:10201?pipeline=sichuanese'\n\n\
Telemetry (docs/observability.md): JSON log lines on stdout with trace ids; Prometheus \
metrics at /metrics; traces and logs over OTLP when an endpoint is set, e.g.\n  \
OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 OTEL_EXPORTER_OTLP_PROTOCOL=grpc voxpipe serve"
)]
pub struct ServeArgs {
    /// Server config file (TOML; see examples/server.toml and docs/server.md).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Option<SocketAddr>,
    /// Folder of pipeline files (*.toml), watched for edits [default: pipelines].
    #[arg(long, value_name = "DIR")]
    pipelines: Option<PathBuf>,
    /// Folder to search for `<plugin>.wasm`, watched for rebuilt plugins (repeatable) [default: $VOXPIPE_PLUGIN_DIRS, else target/plugins].
    #[arg(long = "plugin-dir", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    /// Folder of Piper voices [default: voices].
    #[arg(long, value_name = "DIR")]
    voices: Option<PathBuf>,
    /// The pipeline used when a request names none [default: default].
    #[arg(long, value_name = "NAME")]
    default_pipeline: Option<String>,
    /// Where the voice runs: cpu, cuda, cuda:N, auto [default: cpu].
    #[arg(long, env = "VOXPIPE_DEVICE")]
    device: Option<DeviceSpec>,
    /// Syntheses at once [default: one per two cores].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Requests that may wait for a slot before 503 [default: 16].
    #[arg(long)]
    queue: Option<usize>,
    /// Audio cache size in MiB, 0 = off [default: 64].
    #[arg(long, value_name = "MIB")]
    cache_mb: Option<usize>,
    /// Rescan interval for changes the OS does not report [default: 2000].
    #[arg(long, value_name = "MS")]
    poll_ms: Option<u64>,
    /// Also serve the Wyoming protocol (Home Assistant) at tcp://HOST:PORT or
    /// unix://PATH, with the default pipeline or `?pipeline=NAME`; repeatable,
    /// replaces the config's wyoming.listeners (docs/home-assistant.md).
    #[arg(long = "wyoming", value_name = "URI")]
    wyoming: Vec<voxpipe::wyoming::Listener>,
    /// Announce the Wyoming TCP listeners over zeroconf (`_wyoming._tcp`) as
    /// NAME, so Home Assistant discovers them [default: wyoming.zeroconf, off].
    #[arg(long = "wyoming-zeroconf", value_name = "NAME")]
    wyoming_zeroconf: Option<String>,
    /// Development: accept `oci://` plugin references with a tag and no
    /// digest (resolved when the pipeline loads). Never in production.
    #[arg(long)]
    dev: bool,
}

impl ServeArgs {
    /// The config file (or defaults) with the flags and environment applied.
    fn config(&self) -> anyhow::Result<ServerConfig> {
        let mut c = match &self.config {
            Some(path) => ServerConfig::read(path)?,
            None => ServerConfig::default(),
        };
        if let Some(v) = self.bind {
            c.bind = v;
        }
        if let Some(v) = &self.pipelines {
            c.pipelines = v.clone();
        }
        if !self.plugin_dirs.is_empty() || c.plugin_dirs.is_empty() {
            c.plugin_dirs = plugin_dirs(&self.plugin_dirs);
        }
        if let Some(v) = &self.voices {
            c.voices = v.clone();
        }
        if let Some(v) = &self.default_pipeline {
            c.default_pipeline = v.clone();
        }
        if let Some(v) = self.device {
            c.device = v.to_string();
        }
        if let Some(v) = self.concurrency {
            c.limits.concurrency = v;
        }
        if let Some(v) = self.queue {
            c.limits.queue = v;
        }
        if let Some(v) = self.cache_mb {
            c.cache.max_mb = v;
        }
        if let Some(v) = self.poll_ms {
            c.poll_ms = v;
        }
        if !self.wyoming.is_empty() {
            c.wyoming.listeners = self.wyoming.iter().map(ToString::to_string).collect();
        }
        if let Some(name) = &self.wyoming_zeroconf {
            c.wyoming.zeroconf = Some(name.clone());
        }
        for (var, keys) in [
            ("VOXPIPE_API_KEYS", &mut c.auth.api_keys),
            ("VOXPIPE_ADMIN_KEYS", &mut c.auth.admin_keys),
        ] {
            if let Ok(v) = std::env::var(var) {
                keys.extend(
                    v.split(',')
                        .map(|k| k.trim().to_string())
                        .filter(|k| !k.is_empty()),
                );
            }
        }
        c.validate()?;
        Ok(c)
    }

    pub fn run(&self, cli: &Cli) -> anyhow::Result<ExitCode> {
        let config = self.config()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        // The gRPC exporter is built inside the runtime it will use.
        let telemetry = {
            let _in_runtime = rt.enter();
            let format = cli
                .log_format
                .map_or(config.telemetry.log_format.as_str(), |f| f.as_str());
            Telemetry::init(&config.telemetry, format)?
        };
        let metrics = voxpipe::telemetry::metrics::install()?;
        let describe = |t: &Option<voxpipe::telemetry::otlp::Target>| {
            t.as_ref().map_or("off".to_string(), |t| {
                format!("{} {}", t.protocol.as_str(), t.endpoint)
            })
        };
        tracing::info!(
            traces = %describe(&telemetry.exporters.traces),
            logs = %describe(&telemetry.exporters.logs),
            "telemetry ready; metrics at /metrics"
        );
        let runtime = Arc::new(cli.runtime_with(&config.plugins)?);
        let registry = Arc::new(PipelineRegistry::new(
            runtime,
            RegistryOptions {
                pipeline_dir: config.pipelines.clone(),
                plugin_dirs: config.plugin_dirs.clone(),
                voices_dir: Some(config.voices.clone()),
                oci: Some(cli.oci_options(&config.plugins, self.dev)),
            },
        ));
        let report = registry.rescan();
        tracing::info!(
            loaded = report.loaded.len(),
            refused = report.refused.len(),
            dir = %config.pipelines.display(),
            "pipelines loaded"
        );
        let _watcher = watch(registry.clone(), Duration::from_millis(config.poll_ms))?;

        let device = config.device.parse::<DeviceSpec>()?.open()?;
        // Memory freed by syntheses stays with the allocator for reuse (see
        // voxpipe_engine::memory); it goes back to the kernel once the server is idle.
        voxpipe_engine::memory::IdleTrim::start(IDLE_TRIM)?;
        let voices = VoiceStore::new(config.voices.clone(), device);
        let limits = &config.limits;
        let admission = Admission::new(
            limits.effective_concurrency(),
            limits.queue,
            limits.memory_mb,
        );
        let service = Arc::new(TtsService::new(
            registry.clone(),
            voices,
            admission,
            ServiceOptions {
                default_pipeline: config.default_pipeline.clone(),
                max_text_chars: limits.max_text_chars,
                max_stream_chars: limits.max_stream_chars,
                request_timeout: Duration::from_secs_f64(limits.request_timeout_s),
                max_call_phonemes: limits.max_call_phonemes,
                max_request_phonemes: limits.max_request_phonemes,
                max_sentence_seconds: limits.max_sentence_seconds,
            },
        )?);
        // The default pipeline's voice is loaded before listening, so the first
        // request does not pay for it; without it the server still starts (and
        // /readyz says why it is not ready).
        match registry.get(&config.default_pipeline) {
            Some(p) => {
                if let Err(e) = service.voices.get(&p.voice) {
                    tracing::error!(voice = %p.voice, error = %e, "cannot load the default pipeline's voice (run .ci/setup to fetch it)");
                }
            }
            None => {
                tracing::warn!(pipeline = %config.default_pipeline, "the default pipeline is not loaded")
            }
        }
        tracing::info!(
            device = %device_label(service.voices.device()),
            concurrency = service.admission.concurrency(),
            queue = service.admission.queue_capacity(),
            cache_mb = config.cache.max_mb,
            api_keys = config.auth.api_keys.len(),
            admin_keys = config.auth.admin_keys.len(),
            "synthesis ready"
        );
        let shutting_down = Arc::new(AtomicBool::new(false));
        let cache = Arc::new(AudioCache::new(config.cache.max_mb << 20));
        let wyoming = Arc::new(voxpipe::wyoming::Frontend::new(
            &config.wyoming,
            service.clone(),
            cache.clone(),
        ));
        let app = router(AppState {
            metrics: Some(metrics),
            instance: voxpipe::telemetry::metrics::instance_name(&config.telemetry),
            registry,
            default_pipeline: config.default_pipeline.clone(),
            service,
            cache,
            auth: Arc::new(Auth::new(&config.auth.api_keys, &config.auth.admin_keys)),
            shutting_down: shutting_down.clone(),
        });
        let grace = Duration::from_secs_f64(config.limits.shutdown_grace_s);
        let drain_delay = Duration::from_secs_f64(config.limits.drain_delay_s);
        let served = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind(config.bind)
                .await
                .with_context(|| format!("binding {}", config.bind))?;
            tracing::info!(addr = %listener.local_addr()?, "voxpipe listening");
            let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
            let listeners = config
                .wyoming
                .listeners
                .iter()
                .map(|l| l.parse().map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let announcer = voxpipe::wyoming::start(
                &listeners,
                wyoming.clone(),
                stop_rx.clone(),
                config.wyoming.zeroconf.as_deref(),
            )
            .await?;
            let server = axum::serve(listener, app).with_graceful_shutdown(async move {
                shutdown_signal().await;
                shutting_down.store(true, Ordering::Relaxed);
                // Still listening, but not ready: a balancer checking
                // /readyz takes this replica out before it stops accepting.
                if !drain_delay.is_zero() {
                    tracing::info!(drain_delay_s = drain_delay.as_secs_f64(), "not ready; still accepting until the drain delay ends");
                    tokio::time::sleep(drain_delay).await;
                }
                let _ = stop_tx.send(true);
            });
            // Withdrawn as soon as the server stops taking new connections.
            let mut stopped = stop_rx.clone();
            let withdraw = tokio::spawn(async move {
                let _ = stopped.wait_for(|s| *s).await;
                if let Some(a) = announcer {
                    let _ = tokio::task::spawn_blocking(move || a.stop()).await;
                }
            });
            // In-flight requests get `grace` to finish; then the process exits anyway.
            let expire = async move {
                let _ = stop_rx.wait_for(|stopped| *stopped).await;
                tokio::time::sleep(grace).await;
            };
            // HTTP's in-flight requests, then the Wyoming connections'.
            let drain = async move {
                server.await?;
                wyoming.drained().await;
                anyhow::Ok(())
            };
            tokio::select! {
                r = drain => r?,
                _ = expire => tracing::warn!(grace_s = grace.as_secs_f64(), "in-flight requests did not finish within the grace period"),
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), withdraw).await;
            tracing::info!("voxpipe stopped");
            anyhow::Ok(())
        });
        // Export the last spans while the runtime that carries them still runs.
        telemetry.shutdown();
        served?;
        Ok(ExitCode::SUCCESS)
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
