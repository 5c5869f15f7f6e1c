//! `voxpipe pipeline …`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use voxpipe::pipeline::{load_pipeline, LoadContext, Pipeline};

use super::{plugin_dirs, Cli};

#[derive(Subcommand)]
pub enum PipelineCommand {
    /// Validate pipeline files and print their resolved stages.
    ///
    /// Loads every plugin, type-checks it against its stage's world and has it
    /// check its config table. Problems are printed as FILE:LINE:COLUMN:
    /// STAGE: REASON, all of them, and the exit code is 1.
    Check {
        /// Pipeline files (TOML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Folder to search for `<plugin>.wasm` (repeatable) [default: $VOXPIPE_PLUGIN_DIRS, else target/plugins].
        #[arg(long = "plugin-dir", value_name = "DIR")]
        plugin_dirs: Vec<PathBuf>,
        /// Voices folder: the pipeline's voice and its routes' voices and
        /// speakers must be in it. `--voices none` skips that check.
        #[arg(long, value_name = "DIR", default_value = "voices")]
        voices: PathBuf,
        /// Print the resolved pipelines as JSON.
        #[arg(long)]
        json: bool,
        /// Accept `oci://` plugin references with a tag and no digest.
        #[arg(long)]
        dev: bool,
    },
}

impl PipelineCommand {
    pub fn run(&self, cli: &Cli) -> anyhow::Result<ExitCode> {
        match self {
            PipelineCommand::Check {
                files,
                plugin_dirs: dirs,
                voices,
                json,
                dev,
            } => {
                let runtime = cli.runtime()?;
                let dirs = plugin_dirs(dirs);
                let oci = cli.oci_options(&voxpipe::config::PluginsConfig::default(), *dev);
                let catalog = if voices.as_os_str() == "none" {
                    None
                } else {
                    let (entries, _) = voxpipe_engine::voice::scan(voices).map_err(|e| {
                        anyhow::anyhow!(
                            "{e} (pass --voices DIR, or --voices none to skip the voice checks)"
                        )
                    })?;
                    Some(entries)
                };
                let ctx = LoadContext {
                    runtime: &runtime,
                    plugin_dirs: &dirs,
                    voices: catalog.as_deref(),
                    oci: Some(&oci),
                };
                let mut ok = true;
                let mut out = Vec::new();
                for file in files {
                    let text = match std::fs::read_to_string(file) {
                        Ok(t) => t,
                        Err(e) => {
                            eprintln!("{}: cannot read: {e}", file.display());
                            ok = false;
                            continue;
                        }
                    };
                    match load_pipeline(file, &text, &ctx) {
                        Ok(p) if *json => out.push(describe_json(&p)),
                        Ok(p) => print_pipeline(&p),
                        Err(errors) => {
                            eprintln!("{errors}");
                            ok = false;
                        }
                    }
                }
                if *json {
                    println!("{}", serde_json::to_string_pretty(&out)?);
                }
                Ok(if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
        }
    }
}

fn print_pipeline(p: &Pipeline) {
    println!(
        "{}: pipeline \"{}\" — voice {}{}, {} stages",
        p.source.display(),
        p.name,
        p.voice,
        p.language
            .as_deref()
            .map(|l| format!(", language {l}"))
            .unwrap_or_default(),
        p.stages.len()
    );
    println!(
        "  {:>2}  {:<5}  {:<16}  {:<24}  {:<12}  {:>9}  {:>8}  {:>9}",
        "#", "kind", "name", "plugin", "sha256", "deadline", "memory", "output"
    );
    for s in &p.stages {
        match &s.plugin {
            None => println!(
                "  {:>2}  {:<5}  {:<16}  {:<24}",
                s.index + 1,
                s.kind.as_str(),
                s.name,
                "(native voice)"
            ),
            Some(ps) => {
                let id = &ps.plugin.id;
                let plugin = format!("{} {}", id.name, id.version);
                let applies: Vec<String> =
                    ps.plugin.applies.iter().map(|a| a.to_string()).collect();
                println!(
                    "  {:>2}  {:<5}  {:<16}  {:<24}  {:<12}  {:>6} ms  {:>4} MiB  {:>5} KiB",
                    s.index + 1,
                    s.kind.as_str(),
                    s.name,
                    plugin,
                    &id.sha256[..12],
                    ps.limits.deadline.as_millis(),
                    ps.limits.memory_bytes >> 20,
                    ps.limits.max_output_bytes >> 10,
                );
                if s.kind == voxpipe_types::StageKind::Audio {
                    let mut how = format!("      takes audio: {}", ps.plugin.mode.as_str());
                    if let Some(c) = ps.whole_capacity {
                        how.push_str(&format!(
                            " (WIT {}; measured to take at most {:.1} s{})",
                            ps.plugin.wit_version,
                            c.seconds,
                            c.limit
                                .map(|l| format!(", then its {l} limit"))
                                .unwrap_or_default()
                        ));
                    }
                    println!("{how}");
                }
                if !applies.is_empty() {
                    println!("      applies: {}", applies.join(", "));
                }
            }
        }
    }
    for r in &p.routes {
        println!("  {r}");
    }
    if !p.routes.is_empty() || p.on_unhonored != voxpipe::pipeline::OnUnhonored::Warn {
        println!("  unhonored style fields: {:?}", p.on_unhonored);
    }
}

fn describe_json(p: &Pipeline) -> serde_json::Value {
    serde_json::json!({
        "name": p.name,
        "file": p.source,
        "voice": p.voice,
        "language": p.language,
        "description": p.description,
        "stages": p.stages.iter().map(|s| {
            let plugin = s.plugin.as_ref().map(|ps| serde_json::json!({
                "name": ps.plugin.id.name,
                "version": ps.plugin.id.version,
                "sha256": ps.plugin.id.sha256,
                "file": ps.plugin.path,
                "audio_mode": (ps.plugin.kind == voxpipe_types::StageKind::Audio).then(|| ps.plugin.mode.as_str()),
                "whole_capacity_s": ps.whole_capacity.map(|c| c.seconds),
                "applies": ps.plugin.applies,
                "wit": ps.plugin.wit_version,
                "limits": ps.limits,
                "config": serde_json::from_str::<serde_json::Value>(ps.config.as_str()).unwrap_or_default(),
            }));
            serde_json::json!({"index": s.index, "kind": s.kind, "name": s.name, "plugin": plugin})
        }).collect::<Vec<_>>(),
        "routes": p.routes,
        "on_unhonored": p.on_unhonored,
    })
}
