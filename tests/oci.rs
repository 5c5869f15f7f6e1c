//! Plugins from an OCI registry (issue #19), against a real registry on
//! loopback: Debian's `docker-registry` (the CNCF distribution registry that
//! most private registries run), started by the test on a free port.
//!
//! - `voxpipe plugin push` stores the first-party plugins in the Wasm artifact
//!   layout (`wkg`'s: one `application/wasm` layer), byte for byte;
//! - `voxpipe serve` loads a pipeline whose every plugin is `oci://…@sha256:…`,
//!   synthesizes with it, and restarts from its cache with the registry down;
//! - refused, with file:line:column, while the last good version serves: an
//!   unreachable registry, a digest the registry does not have, a registry that
//!   answers with other bytes (manifest or layer), a layer that is not
//!   `application/wasm`, a pull cut short, a tag without a digest, an
//!   unreachable https registry;
//! - a registry behind TLS (a test CA) and a password (htpasswd), on this
//!   machine's own network address: push and pull with the Docker config
//!   file's credentials and `SSL_CERT_FILE`; refused with a wrong password, with
//!   none, and without the CA; a Bearer challenge answered with an anonymous
//!   token from the registry's token service (a test double of ghcr.io's, in
//!   front of the artifact the real registry stored), and refused when the
//!   token service refuses;
//! - the time to pull + verify + compile, cold and from the caches (printed).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http::{free_port, post_json, request};
use sha2::{Digest, Sha256};

/// A `docker-registry serve` on loopback, killed on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    fn start() -> Registry {
        let bin = ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("docker-registry not found: apt-get install docker-registry (.ci/setup does)");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{ level: warn }}\nstorage:\n  filesystem: {{ rootdirectory: {} }}\n  delete: {{ enabled: true }}\nhttp: {{ addr: 127.0.0.1:{port} }}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .unwrap();
        let mut registry = Registry {
            child,
            port,
            _dir: dir,
        };
        let started = Instant::now();
        while !request(port, "GET", "/v2/", &[], b"").is_ok_and(|r| r.status == 200) {
            if let Some(s) = registry.child.try_wait().unwrap() {
                panic!("docker-registry exited: {s:?}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "registry not up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// `voxpipe plugin push FILE HOST/voxpipe/NAME:TAG`: the pinned reference.
fn push(registry: &str, name: &str, tag: &str) -> String {
    let out = common::voxpipe()
        .args(["plugin", "push"])
        .arg(common::plugin(name))
        .arg(format!("{registry}/voxpipe/{name}:{tag}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "push {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pinned = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        pinned.starts_with(&format!("oci://{registry}/voxpipe/{name}:{tag}@sha256:")),
        "{pinned}"
    );
    pinned
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The default pipeline with every plugin replaced by `refs[name]`.
fn pipeline_text(refs: &[(&str, String)]) -> String {
    let mut text = std::fs::read_to_string(common::root().join("pipelines/default.toml")).unwrap();
    for (name, reference) in refs {
        let local = format!("plugin = \"{name}\"");
        assert!(text.contains(&local), "default.toml has no {local}");
        text = text.replace(&local, &format!("plugin = \"{reference}\""));
    }
    text
}

/// A `voxpipe serve` with its own cache folder (the OCI pulls land there).
struct Serve {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(pipelines: &Path, cache: &Path) -> Serve {
        let port = free_port();
        let log = pipelines.with_extension(format!("serve-{port}.log"));
        let child = common::voxpipe()
            .arg("--cache-dir")
            .arg(cache)
            .args(["serve", "--bind"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--pipelines")
            .arg(pipelines)
            .arg("--plugin-dir")
            .arg(common::plugins())
            .args(["--poll-ms", "200"])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap();
        let mut s = Serve { child, port, log };
        let started = Instant::now();
        while !request(port, "GET", "/readyz", &[], b"").is_ok_and(|r| r.status == 200) {
            if let Some(st) = s.child.try_wait().unwrap() {
                panic!("server exited {st:?}: {}", s.log_text());
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "not ready: {}",
                s.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
            + &std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default()
    }

    fn pipelines(&self) -> serde_json::Value {
        request(self.port, "GET", "/v1/pipelines", &[], b"")
            .unwrap()
            .json()
    }

    fn version(&self) -> u64 {
        self.pipelines()["pipelines"][0]["version"]
            .as_u64()
            .unwrap()
    }

    fn speaks(&self) {
        let r = post_json(
            self.port,
            "/v1/tts",
            &serde_json::json!({"text": "Dr. Smith paid $3.50.", "instruct": "speak slowly"}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.body.len() > 10_000 && r.body.starts_with(b"RIFF"));
    }

    /// Writes `text` as the pipeline and waits for its refusal; returns the
    /// error message, after checking the previous version still serves.
    fn refused(&self, file: &Path, text: &str) -> String {
        let before = self.version();
        let refused_before = self.pipelines()["reloads"]["refused"].as_u64().unwrap();
        // Written whole and renamed in, as an editor or the kubelet does: the
        // watcher never reads half a file.
        let tmp = file.with_file_name(".default.toml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, file).unwrap();
        let started = Instant::now();
        loop {
            let p = self.pipelines();
            if p["reloads"]["refused"].as_u64().unwrap() > refused_before {
                assert_eq!(self.version(), before, "a refused edit changed the version");
                let message = p["errors"][0]["message"].as_str().unwrap().to_string();
                self.speaks();
                return message;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "edit neither refused nor accepted: {p}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// What a misbehaving registry does with the real artifact's bytes.
#[derive(Clone, Copy)]
enum Lie {
    /// Serves a manifest that is not the one the digest names.
    OtherManifest,
    /// Serves the right manifest and a layer with one byte changed.
    TamperedLayer,
    /// Serves the right manifest and half the layer, then hangs up.
    CutLayer,
    /// Serves a manifest whose only layer is a tar layer.
    TarLayer,
    /// Honest, behind a Bearer challenge whose token service (`/token`, on
    /// the same port) hands anonymous tokens, as ghcr.io does for public
    /// images.
    Token,
    /// The same, but the token service refuses.
    TokenRefused,
}

/// The manifest a lying registry serves for `manifest`.
fn served_manifest(manifest: &[u8], lie: Lie) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    match lie {
        Lie::OtherManifest => v["annotations"] = serde_json::json!({"swapped": "yes"}),
        Lie::TarLayer => {
            v["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip".into()
        }
        _ => return manifest.to_vec(),
    }
    serde_json::to_vec(&v).unwrap()
}

/// A plain-HTTP registry that answers every manifest request with `manifest`
/// and every blob request with `layer`, after applying `lie`.
struct FakeRegistry {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl FakeRegistry {
    fn start(manifest: Vec<u8>, layer: Vec<u8>, lie: Lie) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut bearer = false;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    bearer |= h.to_ascii_lowercase().trim() == "authorization: bearer tok-123";
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                if matches!(lie, Lie::Token | Lie::TokenRefused) {
                    let token = r#"{"token":"tok-123"}"#;
                    let answer = if path.starts_with("/token?") {
                        if matches!(lie, Lie::TokenRefused) || !path.contains("service=fake") {
                            Some(("401 Unauthorized".to_string(), ""))
                        } else {
                            Some(("200 OK".to_string(), token))
                        }
                    } else if !bearer {
                        Some((
                            format!(
                                "401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake\",scope=\"repository:voxpipe/x:pull\""
                            ),
                            "",
                        ))
                    } else {
                        None
                    };
                    if let Some((status, body)) = answer {
                        let _ = write!(
                            conn,
                            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = conn.flush();
                        continue;
                    }
                }
                let (body, declared): (Vec<u8>, usize) = if path.contains("/manifests/") {
                    let m = served_manifest(&manifest, lie);
                    let n = m.len();
                    (m, n)
                } else {
                    match lie {
                        Lie::TamperedLayer => {
                            let mut l = layer.clone();
                            let i = l.len() / 2;
                            l[i] ^= 0x55;
                            (l, layer.len())
                        }
                        Lie::CutLayer => (layer[..layer.len() / 2].to_vec(), layer.len()),
                        _ => (layer.clone(), layer.len()),
                    }
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n"
                );
                let _ = conn.write_all(&body);
                let _ = conn.flush();
            }
        });
        FakeRegistry { port, stop }
    }
}

/// The real manifest and layer of `reference` (oci://HOST/REPO:TAG@DIGEST).
fn fetch_artifact(registry: &Registry, name: &str, digest: &str) -> (Vec<u8>, Vec<u8>) {
    let manifest = request(
        registry.port,
        "GET",
        &format!("/v2/voxpipe/{name}/manifests/{digest}"),
        &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
        b"",
    )
    .unwrap();
    assert_eq!(manifest.status, 200);
    let m = manifest.json();
    // The layout wkg writes and reads.
    assert_eq!(m["artifactType"], "application/wasm");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(m["layers"].as_array().unwrap().len(), 1);
    assert_eq!(m["layers"][0]["mediaType"], "application/wasm");
    assert_eq!(format!("sha256:{}", sha256_hex(&manifest.body)), digest);
    let layer_digest = m["layers"][0]["digest"].as_str().unwrap();
    let blob = request(
        registry.port,
        "GET",
        &format!("/v2/voxpipe/{name}/blobs/{layer_digest}"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(blob.status, 200);
    (manifest.body, blob.body)
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

const PLUGINS: [&str; 5] = [
    "en-normalize",
    "instruct-style",
    "pitch-shift",
    "trim-fade",
    "loudness",
];

#[test]
fn a_pipeline_of_pulled_plugins_serves_and_every_bad_pull_is_refused() {
    let registry = Registry::start();
    let host = registry.host();
    let refs: Vec<(&str, String)> = PLUGINS
        .iter()
        .map(|n| (*n, push(&host, n, "0.2.0")))
        .collect();

    // Pushed byte for byte, in the Wasm artifact layout.
    let digest_of = |r: &str| r.rsplit_once('@').unwrap().1.to_string();
    let (_, layer) = fetch_artifact(&registry, "en-normalize", &digest_of(&refs[0].1));
    assert_eq!(
        layer,
        std::fs::read(common::plugin("en-normalize")).unwrap()
    );

    // Serve a pipeline made only of pulled plugins, from an empty cache.
    let dir = tempfile::tempdir().unwrap();
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir_all(pipelines.join("tables")).unwrap();
    std::fs::copy(
        common::root().join("pipelines/tables/instruct-style.toml"),
        pipelines.join("tables/instruct-style.toml"),
    )
    .unwrap();
    let file = pipelines.join("default.toml");
    let good = pipeline_text(&refs);
    std::fs::write(&file, &good).unwrap();
    let cache = dir.path().join("cache");
    let server = Serve::start(&pipelines, &cache);
    server.speaks();
    let p = server.pipelines();
    let stages = p["pipelines"][0]["stages"].as_array().unwrap();
    for name in PLUGINS {
        let stage = stages
            .iter()
            .find(|s| s["plugin"]["name"] == name)
            .unwrap_or_else(|| panic!("no stage runs {name}: {p}"));
        let want = sha256_hex(&std::fs::read(common::plugin(name)).unwrap());
        assert_eq!(stage["plugin"]["sha256"], want, "{name}");
        let blob = cache.join("oci/blobs/sha256").join(&want);
        assert!(blob.is_file(), "{} not cached", blob.display());
    }
    assert_eq!(
        server
            .log_text()
            .matches("plugin pulled from an OCI registry")
            .count(),
        PLUGINS.len()
    );

    // Every kind of bad pull is refused with the file and line, and the last
    // good version keeps serving.
    let line_of =
        |text: &str, needle: &str| 1 + text[..text.find(needle).unwrap()].matches('\n').count();
    // The refusals name an artifact no load has cached (a cached digest
    // loads without the network, whatever registry the reference names):
    // text-replace, pushed but never pulled.
    let first = &refs[0].1;
    let d = digest_of(first);
    let fresh = digest_of(&push(&host, "text-replace", "0.2.0"));
    let (manifest, layer) = fetch_artifact(&registry, "text-replace", &fresh);
    let uncached = first.replace(&d, &fresh);
    let mut cases: Vec<(&str, String, Vec<String>)> = Vec::new();
    let dead = free_port();
    cases.push((
        "unreachable registry",
        uncached.replace(&host, &format!("127.0.0.1:{dead}")),
        vec![
            "(unreachable)".into(),
            format!("registry 127.0.0.1:{dead} unreachable"),
        ],
    ));
    let unknown = format!("sha256:{}", "0".repeat(64));
    cases.push((
        "a digest the registry does not have",
        first.replace(&d, &unknown),
        strings(&["(status)", "HTTP 404", "MANIFEST_UNKNOWN"]),
    ));
    cases.push((
        "another repository's digest",
        uncached.clone(),
        strings(&["(status)", "HTTP 404"]),
    ));
    cases.push((
        "a tag without a digest",
        first.split_once('@').unwrap().0.to_string(),
        strings(&["(tag_only)", "has no digest", "--dev"]),
    ));
    cases.push((
        "an https registry that cannot be reached",
        uncached.replace(&host, "registry.invalid"),
        strings(&["(unreachable)", "registry.invalid"]),
    ));
    let fakes: Vec<(Lie, &str, Vec<&str>)> = vec![
        (
            Lie::OtherManifest,
            "a registry serving another manifest",
            vec!["(digest_mismatch)", "the manifest of"],
        ),
        (
            Lie::TamperedLayer,
            "a registry serving a tampered layer",
            vec!["(digest_mismatch)", "the layer of"],
        ),
        (
            Lie::CutLayer,
            "a pull cut short",
            vec!["(truncated)", "ended after"],
        ),
        (
            Lie::TarLayer,
            "a layer that is not application/wasm",
            vec!["(not_wasm)", "tar+gzip"],
        ),
    ];
    let mut servers = Vec::new();
    for (lie, what, want) in fakes {
        let fake = FakeRegistry::start(manifest.clone(), layer.clone(), lie);
        let mut reference = uncached.replace(&host, &format!("127.0.0.1:{}", fake.port));
        if let Lie::TarLayer = lie {
            // Pinned to the manifest it serves: the digest matches, the layer
            // type does not.
            let served = format!("sha256:{}", sha256_hex(&served_manifest(&manifest, lie)));
            reference = reference.replace(&fresh, &served);
        }
        cases.push((what, reference, strings(&want)));
        servers.push(fake);
    }
    for (what, reference, want) in &cases {
        let text = good.replace(first, reference);
        let message = server.refused(&file, &text);
        let line = line_of(&text, reference);
        let at = format!("default.toml:{line}:10: stage 1 \"normalize\" (text): ");
        assert!(message.contains(&at), "{what}: no {at} in: {message}");
        for w in want {
            assert!(message.contains(w), "{what}: no `{w}` in: {message}");
        }
        println!(
            "refused ({what}): {}",
            message.rsplit_once("(text): ").unwrap().1
        );
    }
    // Nothing half-pulled was left where a later load would trust it.
    for entry in std::fs::read_dir(cache.join("oci/blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(
            sha256_hex(&std::fs::read(&path).unwrap()),
            name,
            "{}",
            path.display()
        );
    }
    drop(servers);

    // The registry goes away: a restart loads every plugin from the cache.
    drop(server);
    drop(registry);
    std::fs::write(&file, &good).unwrap();
    let again = Serve::start(&pipelines, &cache);
    again.speaks();
    let log = again.log_text();
    assert_eq!(
        log.matches("\"from_cache\":true").count(),
        PLUGINS.len(),
        "{log}"
    );
}

/// Times `voxpipe plugin pull` (pull + verify + load): a cold cache, then the
/// OCI and compiled-code caches. The figures are printed, not asserted.
#[test]
fn pull_verify_compile_cold_and_cached() {
    let registry = Registry::start();
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    println!("| plugin | bytes | cold: pull + verify | cold: compile | cached: read + verify | cached: load compiled |");
    println!("|---|---:|---:|---:|---:|---:|");
    for name in ["en-normalize", "instruct-style", "loudness"] {
        let pinned = push(&host, name, "t");
        let cache = dir.path().join(name);
        let pull = || -> serde_json::Value {
            let out = common::voxpipe()
                .arg("--cache-dir")
                .arg(&cache)
                .args(["plugin", "pull", "--json", &pinned])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).unwrap()
        };
        let cold = pull();
        let warm = pull();
        assert_eq!(cold["pull_from_cache"], false);
        assert_eq!(cold["compiled"], true);
        assert_eq!(warm["pull_from_cache"], true);
        assert_eq!(warm["compiled"], false);
        assert_eq!(cold["reference"], pinned.as_str());
        assert_eq!(cold["plugin"]["name"], name);
        let ms = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap();
        println!(
            "| {name} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
            cold["bytes"],
            ms(&cold, "pull_ms"),
            ms(&cold, "load_ms"),
            ms(&warm, "pull_ms"),
            ms(&warm, "load_ms"),
        );
    }
    // A tag alone resolves to the digest that was pushed (the CLI accepts it,
    // to print what to pin).
    let pinned = push(&host, "loudness", "moving");
    let out = common::voxpipe()
        .arg("--cache-dir")
        .arg(dir.path().join("tag"))
        .args(["plugin", "pull", pinned.split_once('@').unwrap().0])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&pinned));
    // The tag moves to another artifact: the pinned digest still loads the
    // artifact it named.
    let moved = push(&host, "trim-fade", "moving");
    assert_ne!(
        moved.rsplit_once('@').unwrap().1,
        pinned.rsplit_once('@').unwrap().1
    );
    let out = common::voxpipe()
        .arg("--cache-dir")
        .arg(dir.path().join("moved"))
        .args(["plugin", "pull", "--json", &pinned])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["plugin"]["name"], "loudness");

    // `pipeline check` refuses a tag alone, with the file and line, and
    // accepts it with --dev (resolved when the file loads).
    let tag_only = format!("oci://{host}/voxpipe/loudness:t");
    let text = std::fs::read_to_string(common::root().join("pipelines/default.toml"))
        .unwrap()
        .replace("plugin = \"loudness\"", &format!("plugin = \"{tag_only}\""));
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir_all(pipelines.join("tables")).unwrap();
    std::fs::copy(
        common::root().join("pipelines/tables/instruct-style.toml"),
        pipelines.join("tables/instruct-style.toml"),
    )
    .unwrap();
    std::fs::write(pipelines.join("default.toml"), &text).unwrap();
    let check = |dev: bool| {
        let mut cmd = common::voxpipe();
        cmd.args([
            "--cache-dir",
            "target/test-cache",
            "pipeline",
            "check",
            "--voices",
            "none",
        ])
        .arg("--plugin-dir")
        .arg(common::plugins())
        .arg(pipelines.join("default.toml"));
        if dev {
            cmd.arg("--dev");
        }
        cmd.output().unwrap()
    };
    let refused = check(false);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        err.contains("default.toml:") && err.contains("(tag_only)") && err.contains("--dev"),
        "{err}"
    );
    let accepted = check(true);
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    assert!(String::from_utf8_lossy(&accepted.stdout).contains("loudness"));
}

/// This machine's first non-loopback IPv4 address: a TLS registry is reached
/// over HTTPS only off loopback (loopback registries are plain HTTP).
fn own_address() -> String {
    let out = Command::new("hostname").arg("-I").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .expect("a non-loopback IPv4 address (`hostname -I`) for the TLS registry")
        .to_string()
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Docker config folder with `user:password` for `registry`.
fn docker_config(registry: &str, user: &str, password: &str) -> tempfile::TempDir {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        dir.path().join("config.json"),
        format!(r#"{{"auths": {{"{registry}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    dir
}

#[test]
fn a_registry_behind_tls_and_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ip = own_address();
    let port = free_port();
    let registry = format!("{ip}:{port}");
    // A test CA and a server certificate for the address (openssl's CLI).
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-days", "2", "-subj", "/CN=voxpipe test CA"])
            .args(ec)
            .arg("-keyout")
            .arg(d.join("ca.key"))
            .arg("-out")
            .arg(d.join("ca.pem")),
    );
    run_ok(
        Command::new("openssl")
            .args(["req", "-subj", &format!("/CN={ip}")])
            .args(ec)
            .arg("-keyout")
            .arg(d.join("server.key"))
            .arg("-out")
            .arg(d.join("server.csr")),
    );
    std::fs::write(
        d.join("ext"),
        format!("subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(d.join("server.csr"))
            .arg("-CA")
            .arg(d.join("ca.pem"))
            .arg("-CAkey")
            .arg(d.join("ca.key"))
            .arg("-extfile")
            .arg(d.join("ext"))
            .arg("-out")
            .arg(d.join("server.pem")),
    );
    // htpasswd with a bcrypt hash (glibc's libxcrypt through Python's crypt).
    let out = Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt; print(crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH)).replace('$2b$', '$2a$', 1))",
        ])
        .output()
        .unwrap();
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$2a$"), "no bcrypt: {hash}");
    std::fs::write(d.join("htpasswd"), format!("tester:{}\n", hash.trim())).unwrap();
    let bin = ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("docker-registry (.ci/setup installs it)");
    std::fs::write(
        d.join("config.yml"),
        format!(
            "version: 0.1\nlog: {{ level: warn }}\nstorage:\n  filesystem: {{ rootdirectory: {data} }}\n\
             http:\n  addr: {registry}\n  tls: {{ certificate: {dir}/server.pem, key: {dir}/server.key }}\n\
             auth:\n  htpasswd: {{ realm: voxpipe-test, path: {dir}/htpasswd }}\n",
            data = d.join("data").display(),
            dir = d.display(),
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("serve")
        .arg(d.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("log")).unwrap())
        .spawn()
        .unwrap();
    let mut running = Registry {
        child,
        port,
        _dir: tempfile::tempdir().unwrap(),
    };
    let started = Instant::now();
    while TcpStream::connect(&registry).is_err() {
        if let Some(s) = running.child.try_wait().unwrap() {
            panic!(
                "docker-registry exited: {s:?}\n{}",
                std::fs::read_to_string(d.join("log")).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "registry not up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let good = docker_config(&registry, "tester", "s3cret");
    let bad = docker_config(&registry, "tester", "wrong");
    let none = tempfile::tempdir().unwrap();
    let ca = d.join("ca.pem");
    let voxpipe = |config: &Path, ca: Option<&Path>, args: &[&str]| {
        let cache = tempfile::tempdir().unwrap();
        let mut cmd = common::voxpipe();
        cmd.args(args)
            .arg("--cache-dir")
            .arg(cache.path())
            .env("DOCKER_CONFIG", config)
            .env_remove("SSL_CERT_FILE");
        if let Some(ca) = ca {
            cmd.env("SSL_CERT_FILE", ca);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // Push (Basic auth over TLS), then pull it back, verified.
    let plugin = common::plugin("audio-gain");
    let target = format!("{registry}/voxpipe/audio-gain:1");
    let mut push = common::voxpipe();
    push.args(["plugin", "push"])
        .arg(&plugin)
        .arg(&target)
        .env("DOCKER_CONFIG", good.path())
        .env("SSL_CERT_FILE", &ca);
    let out = push.output().unwrap();
    assert!(
        out.status.success(),
        "push over TLS with a password: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(d.join("log")).unwrap_or_default()
    );
    let pinned = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        pinned.starts_with(&format!("oci://{target}@sha256:")),
        "{pinned}"
    );
    let (ok, stdout, stderr) = voxpipe(good.path(), Some(&ca), &["plugin", "pull", &pinned]);
    assert!(ok, "pull over TLS with a password: {stderr}");
    assert!(stdout.contains("sha256:"), "{stdout}");
    // Refused: a wrong password, no credentials, a CA the trust store lacks.
    let (ok, _, stderr) = voxpipe(bad.path(), Some(&ca), &["plugin", "pull", &pinned]);
    assert!(
        !ok && stderr.contains("refused access"),
        "wrong password: {stderr}"
    );
    assert!(
        stderr.contains("the credentials of the Docker config file"),
        "{stderr}"
    );
    let (ok, _, stderr) = voxpipe(none.path(), Some(&ca), &["plugin", "pull", &pinned]);
    assert!(
        !ok && stderr.contains("refused access"),
        "no credentials: {stderr}"
    );
    assert!(stderr.contains("docker login"), "{stderr}");
    eprintln!("wrong password / no credentials:\n{stderr}");
    let (ok, _, stderr) = voxpipe(good.path(), None, &["plugin", "pull", &pinned]);
    eprintln!("untrusted CA:\n{stderr}");
    assert!(
        !ok && stderr.contains("unreachable"),
        "untrusted CA: {stderr}"
    );
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");

    // Bearer: a registry that wants a token from its token service, handed
    // out anonymously (ghcr.io's way for public images), serving what the
    // TLS registry stored; then one whose token service refuses.
    let cache = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = {
        let out = common::voxpipe()
            .args(["plugin", "pull", &pinned, "--cache-dir"])
            .arg(cache.path())
            .env("DOCKER_CONFIG", good.path())
            .env("SSL_CERT_FILE", &ca)
            .output()
            .unwrap();
        (
            out.status.success(),
            (),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert!(ok, "{stderr}");
    let digest = pinned.rsplit_once("@sha256:").unwrap().1;
    let manifest = std::fs::read(cache.path().join("oci/manifests/sha256").join(digest)).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let layer_hex = m["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let layer = std::fs::read(cache.path().join("oci/blobs/sha256").join(layer_hex)).unwrap();
    for (lie, works) in [(Lie::Token, true), (Lie::TokenRefused, false)] {
        let fake = FakeRegistry::start(manifest.clone(), layer.clone(), lie);
        let reference = pinned.replace(&registry, &format!("127.0.0.1:{}", fake.port));
        let (ok, _, stderr) = voxpipe(none.path(), None, &["plugin", "pull", &reference]);
        if works {
            assert!(ok, "anonymous Bearer token: {stderr}");
        } else {
            eprintln!("token refused:\n{stderr}");
            assert!(!ok && stderr.contains("token service"), "{stderr}");
            assert!(stderr.contains("HTTP 401"), "{stderr}");
        }
    }
    drop(running);
}
