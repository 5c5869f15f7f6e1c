//! Compiling a plugin file to native code, with its cost bounded.
//!
//! Cranelift's time and memory grow with the size of the component (a 30 MB
//! component took 40 s and 2.2 GB), and neither can be interrupted or
//! capped inside the process. So the server compiles in a child process —
//! the same `voxpipe` binary, run as `voxpipe __compile-plugin` — with a
//! data-size limit (`RLIMIT_DATA`) and a wall-clock timeout after which it is
//! killed. The child writes the serialized artifact to its stdout; the parent
//! loads it with the engine whose configuration produced it.
//!
//! Library users (tests, benches) may compile in-process: the file size
//! limit still applies, time and memory are then not bounded.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wasmtime::component::Component;
use wasmtime::Engine;

use super::error::LoadError;

/// The hidden subcommand that runs a compile worker.
pub const WORKER_COMMAND: &str = "__compile-plugin";

/// How plugin files are compiled, and the bounds on it.
#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// Largest plugin file accepted, in bytes.
    pub max_file_bytes: usize,
    /// `Some(voxpipe binary)`: compile in a child process under `timeout` and
    /// `memory_bytes`. `None`: compile in this process (no time or memory bound).
    pub worker: Option<PathBuf>,
    /// Longest a compile may take.
    pub timeout: Duration,
    /// Most memory (data segment: heap and private mappings) a compile may use.
    pub memory_bytes: usize,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            max_file_bytes: 64 << 20,
            worker: None,
            timeout: Duration::from_secs(120),
            memory_bytes: 3 << 30,
        }
    }
}

/// How a file's component was made.
pub(crate) enum Compiled {
    /// Compiled here.
    Component(Component),
    /// Compiled by a worker: the artifact's bytes (the disk cache keeps them
    /// as they are).
    Serialized(Vec<u8>),
}

/// Turn a core module carrying a component type into a component.
pub fn wrap_core_module(bytes: &[u8]) -> Result<Vec<u8>, String> {
    wit_component::ComponentEncoder::default()
        .module(bytes)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| format!("{e:#}"))
}

/// Compile `bytes` (a component, or a core module when `from_core`).
pub(crate) fn compile(
    engine: &Engine,
    options: &CompileOptions,
    path: &Path,
    bytes: &[u8],
    from_core: bool,
) -> Result<Compiled, LoadError> {
    match &options.worker {
        None => {
            let wrapped;
            let component_bytes = if from_core {
                wrapped = wrap_core_module(bytes).map_err(|reason| LoadError::NotAComponent {
                    path: path.to_path_buf(),
                    reason,
                })?;
                &wrapped[..]
            } else {
                bytes
            };
            Component::new(engine, component_bytes)
                .map(Compiled::Component)
                .map_err(|e| LoadError::Invalid {
                    path: path.to_path_buf(),
                    reason: format!("{e:#}"),
                })
        }
        Some(exe) => in_worker(exe, options, path, bytes, from_core).map(Compiled::Serialized),
    }
}

/// What a worker's exit means.
const EXIT_INVALID: i32 = 3;
const EXIT_NOT_A_COMPONENT: i32 = 4;

fn in_worker(
    exe: &Path,
    options: &CompileOptions,
    path: &Path,
    bytes: &[u8],
    from_core: bool,
) -> Result<Vec<u8>, LoadError> {
    let started = Instant::now();
    let fail = |reason: String| LoadError::Compile {
        path: path.to_path_buf(),
        reason,
    };
    let mut cmd = Command::new(exe);
    cmd.arg(WORKER_COMMAND)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if from_core {
        cmd.arg("--core-module");
    }
    let limit = options.memory_bytes as libc::rlim_t;
    // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            let data = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_DATA, &data) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        fail(format!(
            "cannot start the compiler process {}: {e}",
            exe.display()
        ))
    })?;
    // Feed and drain the pipes on threads so that neither side can block the
    // other; the artifact is at most a few times the file's size.
    let mut stdin = child.stdin.take().expect("piped");
    let input = bytes.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let max_artifact = options.max_file_bytes.saturating_mul(16).max(64 << 20) as u64;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stdout).take(max_artifact + 1).read_to_end(&mut out);
        out
    });
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stderr).take(64 << 10).read_to_end(&mut out);
        out
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= options.timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("waiting for the compiler process: {e}")));
            }
        }
    };
    let _ = feeder.join();
    let artifact = reader.join().unwrap_or_default();
    let message = String::from_utf8_lossy(&errors.join().unwrap_or_default())
        .trim()
        .to_string();
    let Some(status) = status else {
        return Err(LoadError::CompileTimeout {
            path: path.to_path_buf(),
            limit: options.timeout,
        });
    };
    match status.code() {
        Some(0) if artifact.len() as u64 <= max_artifact => Ok(artifact),
        Some(0) => Err(fail(format!(
            "the compiled code is larger than {} MiB",
            max_artifact >> 20
        ))),
        Some(EXIT_INVALID) => Err(LoadError::Invalid {
            path: path.to_path_buf(),
            reason: super::sanitize::one_line(&message, 1024),
        }),
        Some(EXIT_NOT_A_COMPONENT) => Err(LoadError::NotAComponent {
            path: path.to_path_buf(),
            reason: super::sanitize::one_line(&message, 1024),
        }),
        _ if message.contains("memory allocation") || message.contains("out of memory") => {
            Err(LoadError::CompileMemory {
                path: path.to_path_buf(),
                limit: options.memory_bytes,
            })
        }
        _ => {
            use std::os::unix::process::ExitStatusExt;
            // An allocation refused under RLIMIT_DATA usually aborts the
            // process; treat any death by signal as running out of memory
            // when the message says nothing else.
            if status.signal().is_some() && message.is_empty() {
                return Err(LoadError::CompileMemory {
                    path: path.to_path_buf(),
                    limit: options.memory_bytes,
                });
            }
            Err(fail(format!(
                "the compiler process failed ({status}): {}",
                super::sanitize::one_line(&message, 1024)
            )))
        }
    }
}

/// The body of `voxpipe __compile-plugin [--core-module]`: a plugin file on
/// stdin, the compiled artifact on stdout. Returns the exit code.
pub fn worker_main(engine: &Engine, core_module: bool) -> i32 {
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        eprintln!("reading the plugin: {e}");
        return 1;
    }
    let wrapped;
    let component_bytes = if core_module {
        match wrap_core_module(&bytes) {
            Ok(w) => {
                wrapped = w;
                &wrapped[..]
            }
            Err(e) => {
                eprintln!("{e}");
                return EXIT_NOT_A_COMPONENT;
            }
        }
    } else {
        &bytes[..]
    };
    match engine.precompile_component(component_bytes) {
        Ok(artifact) => {
            let mut out = std::io::stdout().lock();
            if out.write_all(&artifact).and_then(|()| out.flush()).is_err() {
                return 1;
            }
            0
        }
        Err(e) => {
            eprintln!("{e:#}");
            EXIT_INVALID
        }
    }
}
