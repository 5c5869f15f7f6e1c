//! `voxpipe plugin …`

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Subcommand;

use voxpipe::plugin_build::{build_workspace, Route};
use voxpipe_plugin::{LoadedPlugin, PluginError, PluginLimits, StageConfig};
use voxpipe_types::{RequestContext, StageKind};

use super::Cli;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StageArg {
    Text,
    Style,
    Audio,
}

impl StageArg {
    fn kind(self) -> StageKind {
        match self {
            StageArg::Text => StageKind::Text,
            StageArg::Style => StageKind::Style,
            StageArg::Audio => StageKind::Audio,
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum RouteArg {
    /// wasm32-wasip2 if the rustup target is installed, else offline.
    Auto,
    /// `cargo build --target wasm32-wasip2`.
    Wasip2,
    /// Debian's rustc-web with -Zbuild-std for wasm32-unknown-unknown.
    Offline,
}

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Build every plugin crate of a Cargo workspace to a Wasm component.
    ///
    /// Writes <out>/<package-name>.wasm per cdylib crate. Uses the standard
    /// wasm32-wasip2 target where rustup has it, else the offline route
    /// (Debian packages rustc-web, rust-web-src and lld). See docs/plugins.md.
    Build {
        /// Workspace folders [default: plugins].
        workspaces: Vec<PathBuf>,
        /// Where the components go.
        #[arg(long, default_value = "target/plugins", value_name = "DIR")]
        out: PathBuf,
        /// Cargo target folder for the Wasm build.
        #[arg(long, default_value = "target/wasm", value_name = "DIR")]
        target_dir: PathBuf,
        #[arg(long, value_enum, default_value_t = RouteArg::Auto)]
        route: RouteArg,
    },
    /// Push a plugin file to an OCI registry as a Wasm artifact (the layout
    /// `wkg` uses: one `application/wasm` layer) and print the reference to
    /// pin in pipelines, with its digest.
    #[command(after_help = "Example:\n  \
voxpipe plugin push target/plugins/en-normalize.wasm 127.0.0.1:5000/voxpipe/en-normalize:0.2.0\n  \
# prints oci://127.0.0.1:5000/voxpipe/en-normalize:0.2.0@sha256:…\n\n\
HTTPS, verified against the system's trust store (or SSL_CERT_FILE), except loopback \
registries and hosts given with --insecure-registry (plain HTTP). Credentials as `docker login` \
writes them: $DOCKER_CONFIG/config.json, else ~/.docker/config.json.")]
    Push {
        /// The component (.wasm).
        file: PathBuf,
        /// HOST[:PORT]/NAMESPACE/NAME:TAG (`oci://` optional).
        reference: String,
    },
    /// Pull a plugin from an OCI registry into the cache, verify its digest,
    /// and load it (compile, or the compiled-code cache) to check it is a
    /// plugin; prints its path, digest and the time of each step.
    ///
    /// A reference with a tag and no digest is resolved and its digest
    /// printed, to pin in pipelines (which need the digest).
    Pull {
        /// HOST[:PORT]/NAMESPACE/NAME[:TAG][@sha256:…] (`oci://` optional).
        reference: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what a plugin file is: world, name, version, sha256, imports.
    Inspect {
        /// A component, or a core module with a component type.
        wasm: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run one plugin standalone, as a pipeline stage would.
    ///
    /// text: prints the transformed text. style: prints the outcome as JSON.
    /// audio: reads a WAV file and writes the processed WAV to --output.
    #[command(after_help = "Examples:\n  \
voxpipe plugin run text-replace.wasm --stage text --input 'Tom & Jerry' --config 'replace={\"&\"=\"and\"}'\n  \
voxpipe plugin run style-table.wasm --stage style --input '用四川话说' --config-file rules.toml\n  \
voxpipe plugin run audio-gain.wasm --stage audio --input in.wav --output out.wav --config gain_db=-6")]
    Run {
        wasm: PathBuf,
        /// The stage kind to run it as (must match the plugin's world).
        #[arg(long, value_enum)]
        stage: StageArg,
        /// Text or instruction (`@FILE` reads a file, `-` reads stdin); for audio, a WAV file.
        #[arg(long)]
        input: String,
        /// Config entry KEY=VALUE; VALUE is TOML (`3`, `true`, `"x"`, `[1,2]`,
        /// `{a="b"}`) or else a plain string. Dotted keys nest. Repeatable.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// A TOML file whose table is the config (entries from --config override it).
        #[arg(long, value_name = "FILE")]
        config_file: Option<PathBuf>,
        /// Output WAV file (audio stages).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Call deadline.
        #[arg(long, default_value_t = 5000)]
        deadline_ms: u64,
        /// Memory limit.
        #[arg(long, default_value_t = 128)]
        memory_mb: usize,
        /// Output limit.
        #[arg(long, default_value_t = 32768)]
        max_output_kb: usize,
        /// Request language passed in the context.
        #[arg(long, default_value = "en-US")]
        language: String,
    },
}

impl PluginCommand {
    pub fn run(&self, cli: &Cli) -> anyhow::Result<ExitCode> {
        match self {
            PluginCommand::Build {
                workspaces,
                out,
                target_dir,
                route,
            } => {
                let route = match route {
                    RouteArg::Auto => Route::detect()?,
                    RouteArg::Wasip2 => Route::Wasip2,
                    RouteArg::Offline => Route::Offline,
                };
                let workspaces = if workspaces.is_empty() {
                    vec![PathBuf::from("plugins")]
                } else {
                    workspaces.clone()
                };
                let target_dir = std::path::absolute(target_dir)?;
                for ws in &workspaces {
                    eprintln!("building {} ({route:?} route)…", ws.display());
                    for built in build_workspace(ws, out, &target_dir, route)? {
                        println!("{}", built.path.display());
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            PluginCommand::Push { file, reference } => {
                let reference = voxpipe::oci::Reference::parse(reference)?;
                let options = cli.oci_options(&voxpipe::config::PluginsConfig::default(), false);
                let pushed = voxpipe::oci::push(file, &reference, &options)?;
                eprintln!(
                    "pushed {} ({} bytes, layer {})",
                    file.display(),
                    pushed.size,
                    pushed.layer_digest
                );
                let mut pinned = pushed.reference.clone();
                pinned.digest = Some(pushed.manifest_digest);
                println!("{pinned}");
                Ok(ExitCode::SUCCESS)
            }
            PluginCommand::Pull { reference, json } => {
                let reference = voxpipe::oci::Reference::parse(reference)?;
                let options = cli.oci_options(&voxpipe::config::PluginsConfig::default(), true);
                let pulled = voxpipe::oci::pull(&reference, &options)?;
                let runtime = cli.runtime()?;
                let compiles = || runtime.stats().compiles.load(Ordering::Relaxed);
                let before = compiles();
                let started = Instant::now();
                let plugin = runtime.load(&pulled.path)?;
                let load = started.elapsed();
                let compiled = compiles() > before;
                let mut pinned = reference.clone();
                pinned.digest = Some(pulled.manifest_digest.clone());
                if *json {
                    let out = serde_json::json!({
                        "reference": pinned.to_string(),
                        "path": pulled.path,
                        "manifest_digest": pulled.manifest_digest,
                        "layer_digest": pulled.layer_digest,
                        "bytes": pulled.size,
                        "pull_from_cache": pulled.from_cache,
                        "pull_ms": pulled.elapsed.as_secs_f64() * 1e3,
                        "compiled": compiled,
                        "load_ms": load.as_secs_f64() * 1e3,
                        "plugin": {"name": plugin.id.name, "version": plugin.id.version, "kind": plugin.kind.to_string()},
                    });
                    println!("{}", serde_json::to_string_pretty(&out)?);
                } else {
                    eprintln!(
                        "{} {} bytes in {:.1} ms ({}); digest verified; {} in {:.1} ms: {} {} ({})",
                        if pulled.from_cache { "read" } else { "pulled" },
                        pulled.size,
                        pulled.elapsed.as_secs_f64() * 1e3,
                        if pulled.from_cache {
                            "OCI cache"
                        } else {
                            "registry"
                        },
                        if compiled {
                            "compiled"
                        } else {
                            "loaded compiled code"
                        },
                        load.as_secs_f64() * 1e3,
                        plugin.id.name,
                        plugin.id.version,
                        plugin.kind,
                    );
                    println!("{pinned}");
                    println!("{}", pulled.path.display());
                }
                Ok(ExitCode::SUCCESS)
            }
            PluginCommand::Inspect { wasm, json } => {
                let runtime = cli.runtime()?;
                let p = runtime.load(wasm)?;
                if *json {
                    println!("{}", serde_json::to_string_pretty(&inspect_json(&p))?);
                } else {
                    print_inspect(&p);
                }
                Ok(ExitCode::SUCCESS)
            }
            PluginCommand::Run {
                wasm,
                stage,
                input,
                config,
                config_file,
                output,
                deadline_ms,
                memory_mb,
                max_output_kb,
                language,
            } => {
                let runtime = cli.runtime()?;
                let started = Instant::now();
                let plugin = runtime.load(wasm)?;
                let load = started.elapsed();
                if plugin.kind != stage.kind() {
                    bail!(
                        "{} implements the {} world; run it with --stage {}",
                        wasm.display(),
                        plugin.kind.world().unwrap_or("?"),
                        plugin.kind
                    );
                }
                let config = build_config(config_file.as_deref(), config)?;
                let limits = PluginLimits {
                    memory_bytes: memory_mb << 20,
                    deadline: Duration::from_millis(*deadline_ms),
                    max_output_bytes: max_output_kb << 10,
                    ..PluginLimits::default()
                };
                if let Err(e) = plugin.check_config(&limits, &config) {
                    match e {
                        PluginError::InvalidConfig(_) => {
                            bail!("the plugin refused the config: {e}")
                        }
                        other => bail!("the plugin failed in check-config: {other}"),
                    }
                }
                let ctx = RequestContext {
                    request_id: "cli".to_string(),
                    language: language.clone(),
                    voice: String::new(),
                    pipeline: "cli".to_string(),
                    style: None,
                };
                let call_started = Instant::now();
                match stage {
                    StageArg::Text => {
                        let text = read_input(input)?;
                        let out = plugin.call_text(&limits, &ctx, &config, &text)?;
                        println!("{out}");
                    }
                    StageArg::Style => {
                        let text = read_input(input)?;
                        let out = plugin.call_style(&limits, &ctx, &config, &text)?;
                        println!("{}", serde_json::to_string_pretty(&out)?);
                    }
                    StageArg::Audio => {
                        let Some(output) = output else {
                            bail!("audio stages need --output FILE.wav");
                        };
                        let audio = voxpipe_codec::wav::read(Path::new(input))?;
                        // Driven block by block, one or two passes, as a
                        // pipeline stage is (any WIT version).
                        let out = voxpipe::pipeline::blocks::run_alone(
                            plugin.clone(),
                            &limits,
                            &config,
                            &ctx,
                            audio,
                        )?;
                        voxpipe_codec::wav::write(output, &out)?;
                        eprintln!("wrote {} ({:.2} s)", output.display(), out.seconds());
                    }
                }
                eprintln!(
                    "{} {}: call {:.2} ms (load {:.1} ms{})",
                    plugin.id.name,
                    plugin.id.version,
                    call_started.elapsed().as_secs_f64() * 1e3,
                    load.as_secs_f64() * 1e3,
                    if plugin.origin.from_disk_cache {
                        ", from cache"
                    } else {
                        ""
                    }
                );
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn read_input(input: &str) -> anyhow::Result<String> {
    if input == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return Ok(s);
    }
    if let Some(file) = input.strip_prefix('@') {
        return std::fs::read_to_string(file).with_context(|| format!("reading {file}"));
    }
    Ok(input.to_string())
}

/// The config table from `--config-file` and `--config KEY=VALUE` entries.
fn build_config(file: Option<&Path>, entries: &[String]) -> anyhow::Result<StageConfig> {
    let mut table = match file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("reading {}", f.display()))?
            .parse::<toml::Table>()
            .with_context(|| format!("parsing {}", f.display()))?,
        None => toml::Table::new(),
    };
    for entry in entries {
        let Some((key, value)) = entry.split_once('=') else {
            bail!("--config {entry}: expected KEY=VALUE");
        };
        let value = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        let mut parts: Vec<&str> = key.trim().split('.').collect();
        let last = parts.pop().unwrap_or_default();
        let mut t = &mut table;
        for part in parts {
            let slot = t
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            t = slot
                .as_table_mut()
                .with_context(|| format!("--config {entry}: `{part}` is not a table"))?;
        }
        t.insert(last.to_string(), value);
    }
    Ok(StageConfig::from_toml(&table))
}

fn print_inspect(p: &LoadedPlugin) {
    let world = p.kind.world().unwrap_or("?");
    println!("file         {}", p.path.display());
    println!("sha256       {}", p.id.sha256);
    println!("world        voxpipe:stages/{world}@{}", p.wit_version);
    println!("name         {}", p.id.name);
    println!("version      {}", p.id.version);
    println!("kind         {}", p.kind);
    if p.kind == StageKind::Audio {
        println!("takes audio  {}", p.mode.as_str());
        let applies = p.declared_applies();
        println!(
            "applies      {}",
            if applies.is_empty() {
                if p.wit_version == "0.1.0" {
                    "nothing (built against 0.1.0, which cannot declare it)".to_string()
                } else {
                    "nothing".to_string()
                }
            } else {
                applies.join(", ")
            }
        );
    } else if p.say_as {
        println!("applies      say-as (reads SSML say-as hints, docs/ssml.md)");
    }
    println!("description  {}", p.description);
    println!("imports      {}", p.imports.join(", "));
    println!("exports      {}", p.exports.join(", "));
    println!(
        "form         {}",
        if p.origin.from_core_module {
            "core module with a component type (wrapped by the host)"
        } else {
            "component"
        }
    );
    println!(
        "loaded in    {:.1} ms{}",
        p.load_time.as_secs_f64() * 1e3,
        if p.origin.from_disk_cache {
            " (compiled code from the cache)"
        } else {
            " (compiled now)"
        }
    );
}

fn inspect_json(p: &LoadedPlugin) -> serde_json::Value {
    serde_json::json!({
        "file": p.path,
        "sha256": p.id.sha256,
        "world": format!("voxpipe:stages/{}@{}", p.kind.world().unwrap_or("?"), p.wit_version),
        "wit": p.wit_version,
        "applies": p.declared_applies(),
        "name": p.id.name,
        "version": p.id.version,
        "kind": p.kind,
        "audio_mode": (p.kind == StageKind::Audio).then(|| p.mode.as_str()),
        "description": p.description,
        "imports": p.imports,
        "exports": p.exports,
        "origin": p.origin,
        "load_ms": p.load_time.as_secs_f64() * 1e3,
    })
}
