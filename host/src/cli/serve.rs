//! `voxpipe serve`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use voxpipe::http::{router, AppState};
use voxpipe::pipeline::{watch, PipelineRegistry, RegistryOptions};

use super::{plugin_dirs, Cli};

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    bind: SocketAddr,
    /// Folder of pipeline files (*.toml), watched for edits.
    #[arg(long, default_value = "pipelines", value_name = "DIR")]
    pipelines: PathBuf,
    /// Folder to search for `<plugin>.wasm`, watched for rebuilt plugins (repeatable) [default: $VOXPIPE_PLUGIN_DIRS, else target/plugins].
    #[arg(long = "plugin-dir", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    /// The pipeline used when a request names none.
    #[arg(long, default_value = "default", value_name = "NAME")]
    default_pipeline: String,
    /// Rescan interval for changes the OS does not report.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    poll_ms: u64,
}

impl ServeArgs {
    pub fn run(&self, cli: &Cli) -> anyhow::Result<ExitCode> {
        let runtime = Arc::new(cli.runtime()?);
        let registry = Arc::new(PipelineRegistry::new(
            runtime,
            RegistryOptions {
                pipeline_dir: self.pipelines.clone(),
                plugin_dirs: plugin_dirs(&self.plugin_dirs),
            },
        ));
        let report = registry.rescan();
        tracing::info!(
            loaded = report.loaded.len(),
            refused = report.refused.len(),
            dir = %self.pipelines.display(),
            "pipelines loaded"
        );
        let _watcher = watch(registry.clone(), Duration::from_millis(self.poll_ms))?;
        let app = router(AppState {
            registry,
            default_pipeline: self.default_pipeline.clone(),
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind(self.bind)
                .await
                .with_context(|| format!("binding {}", self.bind))?;
            tracing::info!(addr = %listener.local_addr()?, "voxpipe listening");
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await?;
            tracing::info!("voxpipe stopped");
            anyhow::Ok(())
        })?;
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
