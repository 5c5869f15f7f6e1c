mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    voxpipe_engine::memory::keep_freed_memory();
    match cli::Cli::parse().run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
