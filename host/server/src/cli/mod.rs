//! The `voxpipe` command line: argument definitions and dispatch.

mod pipeline;
mod plugin;
mod serve;
mod synth;
mod voices;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use voxpipe::config::PluginsConfig;
use voxpipe_plugin::{default_cache_dir, CompileOptions, PluginRuntime, RuntimeOptions};

#[derive(Parser)]
#[command(
    name = "voxpipe",
    version,
    about = "Text-to-speech server: a native neural voice chained with sandboxed Wasm plugins",
    long_about = "Text-to-speech server: a native neural voice chained with sandboxed \
WebAssembly stage plugins (text normalization, instruct-to-style mapping, audio \
post-processing) in the order a TOML pipeline file gives.\n\n\
Run the server (pipelines from ./pipelines, plugins from ./target/plugins):\n  \
voxpipe serve --bind 127.0.0.1:8080\n\n\
Typical plugin author loop:\n  \
voxpipe plugin build plugins            # build every plugin crate to a component\n  \
voxpipe plugin inspect target/plugins/text-replace.wasm\n  \
voxpipe plugin run target/plugins/text-replace.wasm --stage text --input 'Tom & Jerry' --config 'replace={\"&\"=\"and\"}'\n  \
voxpipe pipeline check pipelines/default.toml"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Folder of compiled plugins [default: $VOXPIPE_CACHE_DIR, else $XDG_CACHE_HOME/voxpipe, else ~/.cache/voxpipe].
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Do not read or write the compiled-plugin cache.
    #[arg(long, global = true)]
    no_cache: bool,
    /// A registry (HOST or HOST:PORT) reached over plain HTTP although it is
    /// not loopback (every other one is reached over HTTPS); adds to the config's
    /// `[plugins] insecure_registries`. Repeatable.
    #[arg(long = "insecure-registry", global = true, value_name = "HOST")]
    insecure_registries: Vec<String>,
    /// Log format [default: text on stderr; `serve`: json on stdout, or the config's telemetry.log_format]. The level comes from RUST_LOG (default: info).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: load the pipelines, watch them for edits, serve HTTP.
    Serve(serve::ServeArgs),
    /// Speak text with a voice into a WAV file (no pipeline stages).
    Synth(synth::SynthArgs),
    /// List the voices of a voices folder (language, quality, rate, speakers).
    Voices(voices::VoicesArgs),
    /// Validate pipeline files.
    #[command(subcommand)]
    Pipeline(pipeline::PipelineCommand),
    /// Build, inspect and run stage plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Internal: compile one plugin (stdin) to native code (stdout) under the
    /// limits the parent set; see host/plugin/src/compile.rs.
    #[command(name = "__compile-plugin", hide = true)]
    CompilePlugin {
        #[arg(long)]
        core_module: bool,
    },
}

impl Cli {
    fn runtime(&self) -> anyhow::Result<PluginRuntime> {
        self.runtime_with(&PluginsConfig::default())
    }

    /// The plugin runtime: compiles happen in a child process of this very
    /// binary, bounded by `plugins`' limits.
    fn runtime_with(&self, plugins: &PluginsConfig) -> anyhow::Result<PluginRuntime> {
        PluginRuntime::new(self.runtime_options(plugins)?)
    }

    fn runtime_options(&self, plugins: &PluginsConfig) -> anyhow::Result<RuntimeOptions> {
        let cache_dir = if self.no_cache {
            None
        } else {
            self.cache_dir.clone().or_else(default_cache_dir)
        };
        let exe = std::env::current_exe()
            .map_err(|e| anyhow::anyhow!("cannot find the voxpipe binary: {e}"))?;
        Ok(RuntimeOptions {
            cache_dir,
            cache_max_bytes: plugins.cache_max_mb << 20,
            compile: CompileOptions {
                max_file_bytes: (plugins.max_file_mb as usize) << 20,
                worker: Some(exe),
                timeout: std::time::Duration::from_secs_f64(plugins.compile_timeout_s),
                memory_bytes: (plugins.compile_memory_mb as usize) << 20,
            },
            ..RuntimeOptions::default()
        })
    }

    /// How `oci://` plugins are pulled: verified layers cached in `oci/`
    /// beside the compiled code (a temporary folder with `--no-cache`).
    pub(crate) fn oci_options(
        &self,
        plugins: &PluginsConfig,
        allow_tags: bool,
    ) -> voxpipe::oci::OciOptions {
        let base = if self.no_cache {
            None
        } else {
            self.cache_dir.clone().or_else(default_cache_dir)
        };
        let dir = base.map_or_else(
            || std::env::temp_dir().join("voxpipe-oci"),
            |b| b.join("oci"),
        );
        let mut options = voxpipe::oci::OciOptions::new(dir, plugins.max_file_mb << 20);
        options.allow_tags = allow_tags;
        options.insecure_registries = plugins.insecure_registries.clone();
        options
            .insecure_registries
            .extend(self.insecure_registries.iter().cloned());
        options
    }

    fn init_logging(&self) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        match self.log_format.unwrap_or(LogFormat::Text) {
            LogFormat::Text => builder.with_target(false).init(),
            LogFormat::Json => builder.json().init(),
        }
    }

    /// Run the command; the exit code is 0 on success, 1 on failure.
    pub fn run(self) -> anyhow::Result<std::process::ExitCode> {
        if let Command::CompilePlugin { core_module } = &self.command {
            // Same engine settings as the parent's runtime; nothing logged.
            let options = self.runtime_options(&PluginsConfig::default())?;
            let code = voxpipe_plugin::compile_worker(&options, *core_module);
            return Ok(std::process::ExitCode::from(code as u8));
        }
        // The server sets up its own telemetry (traces, metrics, logs on stdout).
        if !matches!(self.command, Command::Serve(_)) {
            self.init_logging();
        }
        match &self.command {
            Command::Serve(c) => c.run(&self),
            Command::Voices(c) => c.run(),
            Command::Synth(c) => c.run(),
            Command::Pipeline(c) => c.run(&self),
            Command::Plugin(c) => c.run(&self),
            Command::CompilePlugin { .. } => unreachable!("handled above"),
        }
    }
}

/// Plugin folders: the flag, else `$VOXPIPE_PLUGIN_DIRS` (colon-separated),
/// else `target/plugins` (where `voxpipe plugin build` writes).
pub fn plugin_dirs(flag: &[PathBuf]) -> Vec<PathBuf> {
    if !flag.is_empty() {
        return flag.to_vec();
    }
    if let Some(v) = std::env::var_os("VOXPIPE_PLUGIN_DIRS") {
        return std::env::split_paths(&v).collect();
    }
    vec![PathBuf::from("target/plugins")]
}
