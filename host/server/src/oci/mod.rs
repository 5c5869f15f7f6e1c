//! Plugins from an OCI registry: `oci://HOST/NAMESPACE/NAME:TAG@sha256:…`.
//!
//! The artifact is the CNCF "Wasm OCI artifact" that `wkg` and Spin read and
//! write: an OCI image manifest with `artifactType: application/wasm`, a config
//! blob of type `application/vnd.wasm.config.v0+json` and exactly one layer of
//! type `application/wasm` holding the component. The manifest is fetched by
//! its digest and checked against it, then the layer is fetched and checked
//! against the digest the manifest names, so the bytes that load are the bytes
//! that were pinned. Verified manifests and layers are kept on disk in an OCI
//! image-layout-like folder (`blobs/sha256/<hex>`, `manifests/sha256/<hex>`) next
//! to the compiled-code cache; a restart loads from there without the network.
//!
//! Transport: HTTPS (the system's OpenSSL through reqwest's `native-tls`,
//! verified against the system's trust store — a private CA is added there or
//! named by `SSL_CERT_FILE`), except for loopback registries and the hosts the
//! operator lists in `[plugins] insecure_registries`, which are reached over
//! plain HTTP. Authentication as registries ask for it (`WWW-Authenticate`):
//! `Basic` with the credentials of the Docker config file (`auths`, as
//! `docker login` / `oras login` write it; `$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`), or `Bearer` — a token from the registry's token
//! service, fetched with those credentials or anonymously, as ghcr.io and
//! Docker Hub ask even for public pulls. The client is reqwest's blocking
//! client (already in the tree for OTLP): its calls run on the reload thread
//! or the CLI's, never on the async executor.

use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

mod auth;

/// The media types of the Wasm OCI artifact.
pub const WASM_LAYER: &str = "application/wasm";
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The longest manifest read (the distribution registry's own cap is 4 MiB).
const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// A parsed `oci://` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host` or `host:port`.
    pub registry: String,
    /// `namespace/name` (one or more `/`-separated lowercase components).
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 lowercase hex>`: the manifest's digest.
    pub digest: Option<String>,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Whether a pipeline's `plugin` value names an OCI artifact.
pub fn is_oci(reference: &str) -> bool {
    reference.starts_with("oci://")
}

fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn valid_component(c: &str) -> bool {
    // The distribution spec: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    !c.is_empty()
        && c.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
        && c.as_bytes()[0].is_ascii_alphanumeric()
        && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
}

fn valid_tag(t: &str) -> bool {
    // [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
    !t.is_empty()
        && t.len() <= 128
        && (t.as_bytes()[0].is_ascii_alphanumeric() || t.as_bytes()[0] == b'_')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Reference {
    /// Parse `oci://HOST[:PORT]/NS/NAME[:TAG][@sha256:HEX]` (the `oci://` prefix
    /// is optional here; pipelines need it to tell a reference from a path).
    pub fn parse(text: &str) -> Result<Reference, OciError> {
        let bad = |why: &str| OciError::BadReference {
            reference: text.to_string(),
            reason: why.to_string(),
        };
        let rest = text.strip_prefix("oci://").unwrap_or(text);
        let (rest, digest) = match rest.split_once('@') {
            Some((r, d)) => {
                if !valid_digest(d) {
                    return Err(bad(
                        "the digest must be sha256: followed by 64 lowercase hex digits",
                    ));
                }
                (r, Some(d.to_string()))
            }
            None => (rest, None),
        };
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("expected HOST/NAMESPACE/NAME"))?;
        if registry.is_empty()
            || !registry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'))
        {
            return Err(bad("the registry must be HOST or HOST:PORT"));
        }
        let (repository, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => {
                if !valid_tag(t) {
                    return Err(bad(
                        "a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with . or -",
                    ));
                }
                (r, Some(t.to_string()))
            }
            _ => (path, None),
        };
        if !repository.split('/').all(valid_component) {
            return Err(bad(
                "a repository name is lowercase letters, digits and . _ - between slashes",
            ));
        }
        if tag.is_none() && digest.is_none() {
            return Err(bad("name a tag, a digest (@sha256:…) or both"));
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// The last component of the repository: a stage's default name.
    pub fn name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }

    /// The host without its port.
    fn host(&self) -> &str {
        match self.registry.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => &self.registry,
        }
    }
}

/// How pulls are done.
#[derive(Debug, Clone)]
pub struct OciOptions {
    /// Verified manifests and layers (`blobs/sha256/…`, `manifests/sha256/…`).
    pub cache_dir: PathBuf,
    /// Accept a reference with a tag and no digest (`voxpipe serve --dev`).
    pub allow_tags: bool,
    /// Registries (`host` or `host:port`) reached over plain HTTP besides
    /// loopback ones.
    pub insecure_registries: Vec<String>,
    /// Largest layer accepted (the plugin file size limit).
    pub max_blob_bytes: u64,
    /// Connect and whole-request timeout.
    pub timeout: Duration,
}

impl OciOptions {
    /// Pulls cached under `cache_dir` (the compiled-plugin cache's folder,
    /// when there is one: `<cache>/oci`).
    pub fn new(cache_dir: PathBuf, max_blob_bytes: u64) -> OciOptions {
        OciOptions {
            cache_dir,
            allow_tags: false,
            insecure_registries: Vec::new(),
            max_blob_bytes,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Why a pull or push failed. Every message names the reference or registry.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("bad OCI reference `{reference}`: {reason}")]
    BadReference { reference: String, reason: String },
    #[error("`{reference}` has no digest: pin it as {reference}@sha256:… (the digest `voxpipe plugin push` prints); a tag alone is accepted only by `voxpipe serve --dev`")]
    TagOnly { reference: String },
    #[error("registry {registry} unreachable: {reason}")]
    Unreachable { registry: String, reason: String },
    #[error("registry {registry} refused access: {reason}")]
    Unauthorized { registry: String, reason: String },
    #[error("{what} {url}: HTTP {status}{detail}")]
    Status {
        what: &'static str,
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{what} of {reference} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        what: &'static str,
        reference: String,
        expected: String,
        actual: String,
    },
    #[error("{reference} is not a Wasm artifact: {reason}")]
    NotWasm { reference: String, reason: String },
    #[error("{reference}: the layer is {size} bytes, over the plugin size limit of {limit} bytes")]
    TooLarge {
        reference: String,
        size: u64,
        limit: u64,
    },
    #[error("{what} of {reference} ended after {got} of {expected} bytes")]
    Truncated {
        what: &'static str,
        reference: String,
        got: u64,
        expected: u64,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl OciError {
    /// A stable name for the kind of failure.
    pub fn kind(&self) -> &'static str {
        match self {
            OciError::BadReference { .. } => "bad_reference",
            OciError::TagOnly { .. } => "tag_only",
            OciError::Unreachable { .. } => "unreachable",
            OciError::Unauthorized { .. } => "unauthorized",
            OciError::Status { .. } => "status",
            OciError::DigestMismatch { .. } => "digest_mismatch",
            OciError::NotWasm { .. } => "not_wasm",
            OciError::TooLarge { .. } => "too_large",
            OciError::Truncated { .. } => "truncated",
            OciError::Io { .. } => "io",
        }
    }
}

/// A pulled, verified component on disk.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The layer's file in the cache: load it like any plugin file.
    pub path: PathBuf,
    pub manifest_digest: String,
    pub layer_digest: String,
    pub size: u64,
    /// Nothing was fetched: the manifest and layer were in the cache.
    pub from_cache: bool,
    /// Time spent fetching and verifying (or reading and verifying the cache).
    pub elapsed: Duration,
}

/// What a push stored.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub reference: Reference,
    pub manifest_digest: String,
    pub layer_digest: String,
    pub size: u64,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// Runs `f` off any Tokio runtime: reqwest's blocking client must not be
/// used (or dropped) on a thread that is inside one.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(f).join().expect("OCI worker thread"))
    } else {
        f()
    }
}

struct Client {
    http: reqwest::blocking::Client,
    /// `SCHEME://REGISTRY/v2/REPOSITORY`.
    base: String,
    /// `SCHEME://REGISTRY`.
    origin: String,
    registry: String,
    /// This registry's user and password from the Docker config file.
    credentials: Option<auth::Credentials>,
    /// The `Authorization` value a challenge earned (sent from then on).
    authorization: std::sync::Mutex<Option<String>>,
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Client {
    fn new(reference: &Reference, options: &OciOptions) -> Result<Client, OciError> {
        let plain = is_loopback(reference.host())
            || options
                .insecure_registries
                .iter()
                .any(|r| r == &reference.registry || r == reference.host());
        let scheme = if plain { "http" } else { "https" };
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            .timeout(options.timeout)
            .user_agent(concat!("voxpipe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OciError::Unreachable {
                registry: reference.registry.clone(),
                reason: e.to_string(),
            })?;
        Ok(Client {
            http,
            base: format!(
                "{scheme}://{}/v2/{}",
                reference.registry, reference.repository
            ),
            origin: format!("{scheme}://{}", reference.registry),
            registry: reference.registry.clone(),
            credentials: auth::credentials(&reference.registry),
            authorization: std::sync::Mutex::new(None),
        })
    }

    /// Sends `request` with the authorization earned so far; on a 401, earns
    /// one as the registry's challenge says (once) and sends it again.
    fn send(
        &self,
        what: &'static str,
        request: reqwest::blocking::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::blocking::Response, OciError> {
        let unreachable = |e: reqwest::Error| OciError::Unreachable {
            registry: self.registry.clone(),
            reason: error_chain(&e),
        };
        let retry = request.try_clone();
        let mut response = self.authorized(request).send().map_err(unreachable)?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            let challenge = response
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let header = auth::answer(
                &self.http,
                &self.registry,
                &challenge,
                self.credentials.as_ref(),
            )?;
            let Some(retry) = retry else {
                return Err(OciError::Unauthorized {
                    registry: self.registry.clone(),
                    reason: "the request cannot be repeated with credentials".into(),
                });
            };
            *self.authorization.lock().unwrap_or_else(|e| e.into_inner()) = Some(header);
            response = self.authorized(retry).send().map_err(unreachable)?;
        }
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(OciError::Unauthorized {
                registry: self.registry.clone(),
                reason: format!(
                    "HTTP {} with {}{}",
                    status.as_u16(),
                    if self.credentials.is_some() {
                        "the credentials of the Docker config file"
                    } else {
                        "no credentials (none for this registry in the Docker config file)"
                    },
                    registry_error(response)
                ),
            });
        }
        if !status.is_success() {
            return Err(OciError::Status {
                what,
                url: url.to_string(),
                status: status.as_u16(),
                detail: registry_error(response),
            });
        }
        Ok(response)
    }

    /// GET a body of at most `limit` bytes.
    fn get(
        &self,
        what: &'static str,
        reference: &Reference,
        url: &str,
        accept: Option<&str>,
        limit: u64,
    ) -> Result<Vec<u8>, OciError> {
        let mut request = self.http.get(url);
        if let Some(a) = accept {
            request = request.header(reqwest::header::ACCEPT, a);
        }
        let response = self.send(what, request, url)?;
        let declared = response.content_length();
        if let Some(size) = declared.filter(|s| *s > limit) {
            return Err(OciError::TooLarge {
                reference: reference.to_string(),
                size,
                limit,
            });
        }
        let mut bytes = Vec::new();
        // On an error, read_to_end keeps what it read: a transfer cut short
        // says how far it got.
        if let Err(e) = response.take(limit + 1).read_to_end(&mut bytes) {
            return Err(match declared {
                Some(expected) => OciError::Truncated {
                    what,
                    reference: reference.to_string(),
                    got: bytes.len() as u64,
                    expected,
                },
                None => OciError::Unreachable {
                    registry: self.registry.clone(),
                    reason: format!("reading the {what}: {e}"),
                },
            });
        }
        if bytes.len() as u64 > limit {
            return Err(OciError::TooLarge {
                reference: reference.to_string(),
                size: bytes.len() as u64,
                limit,
            });
        }
        if let Some(expected) = declared.filter(|d| *d != bytes.len() as u64) {
            return Err(OciError::Truncated {
                what,
                reference: reference.to_string(),
                got: bytes.len() as u64,
                expected,
            });
        }
        Ok(bytes)
    }
}

impl Client {
    /// `request` with the `Authorization` earned by an earlier challenge.
    fn authorized(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        match self
            .authorization
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            Some(value) => request.header(reqwest::header::AUTHORIZATION, value),
            None => request,
        }
    }
}

/// reqwest's error with its causes ("connection refused" is in a source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let message = s.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = s.source();
    }
    text
}

/// The registry's own error (`{"errors":[{"code","message"}]}`), as a suffix.
fn registry_error(response: reqwest::blocking::Response) -> String {
    let mut body = Vec::new();
    let _ = response.take(4096).read_to_end(&mut body);
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Errors>(&body) {
        Ok(e) if !e.errors.is_empty() => {
            let items: Vec<String> = e
                .errors
                .iter()
                .map(|i| format!("{} ({})", i.code, i.message))
                .collect();
            format!(": {}", items.join(", "))
        }
        _ => String::new(),
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OciError> {
    let io = |source| OciError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

fn blob_path(cache: &Path, digest: &str) -> PathBuf {
    cache.join("blobs/sha256").join(hex_of(digest))
}

fn manifest_path(cache: &Path, digest: &str) -> PathBuf {
    cache.join("manifests/sha256").join(hex_of(digest))
}

/// The one `application/wasm` layer of a manifest, checked.
fn wasm_layer<'m>(
    manifest: &'m Manifest,
    reference: &Reference,
    limit: u64,
) -> Result<&'m Descriptor, OciError> {
    let not_wasm = |reason: String| OciError::NotWasm {
        reference: reference.to_string(),
        reason,
    };
    if manifest.schema_version != 2 {
        return Err(not_wasm(format!(
            "manifest schemaVersion {}, expected 2",
            manifest.schema_version
        )));
    }
    if let Some(m) = manifest
        .media_type
        .as_deref()
        .filter(|m| *m != OCI_MANIFEST && *m != DOCKER_MANIFEST)
    {
        return Err(not_wasm(format!(
            "manifest media type {m} (an index or another kind)"
        )));
    }
    let wasm: Vec<&Descriptor> = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == WASM_LAYER)
        .collect();
    let layer = match wasm.as_slice() {
        [one] if manifest.layers.len() == 1 => *one,
        _ => {
            let types: Vec<&str> = manifest
                .layers
                .iter()
                .map(|l| l.media_type.as_str())
                .collect();
            return Err(not_wasm(format!(
                "expected exactly one layer of type {WASM_LAYER}, found [{}] (artifactType {}, config {})",
                types.join(", "),
                manifest.artifact_type.as_deref().unwrap_or("none"),
                manifest.config.media_type
            )));
        }
    };
    if !valid_digest(&layer.digest) {
        return Err(not_wasm(format!(
            "layer digest `{}` is not sha256",
            layer.digest
        )));
    }
    if layer.size > limit {
        return Err(OciError::TooLarge {
            reference: reference.to_string(),
            size: layer.size,
            limit,
        });
    }
    Ok(layer)
}

/// The verified layer from the cache, if both files are there and intact.
fn from_cache(
    reference: &Reference,
    digest: &str,
    options: &OciOptions,
) -> Option<(String, PathBuf, u64)> {
    let manifest = std::fs::read(manifest_path(&options.cache_dir, digest)).ok()?;
    if sha256_digest(&manifest) != digest {
        return None;
    }
    let parsed: Manifest = serde_json::from_slice(&manifest).ok()?;
    let layer = wasm_layer(&parsed, reference, options.max_blob_bytes).ok()?;
    let path = blob_path(&options.cache_dir, &layer.digest);
    let bytes = std::fs::read(&path).ok()?;
    (bytes.len() as u64 == layer.size && sha256_digest(&bytes) == layer.digest)
        .then(|| (layer.digest.clone(), path, layer.size))
}

/// Pull the component `reference` names (verified, cached). A reference
/// without a digest is refused unless `options.allow_tags`; with one, the
/// tag is only a label and the digest decides what loads.
pub fn pull(reference: &Reference, options: &OciOptions) -> Result<Pulled, OciError> {
    off_runtime(|| pull_here(reference, options))
}

fn pull_here(reference: &Reference, options: &OciOptions) -> Result<Pulled, OciError> {
    let started = Instant::now();
    if reference.digest.is_none() && !options.allow_tags {
        return Err(OciError::TagOnly {
            reference: reference.to_string(),
        });
    }
    if let Some(digest) = &reference.digest {
        if let Some((layer_digest, path, size)) = from_cache(reference, digest, options) {
            return Ok(Pulled {
                path,
                manifest_digest: digest.clone(),
                layer_digest,
                size,
                from_cache: true,
                elapsed: started.elapsed(),
            });
        }
    }
    let client = Client::new(reference, options)?;
    let by = reference
        .digest
        .clone()
        .or_else(|| reference.tag.clone())
        .expect("a parsed reference has a tag or a digest");
    let url = format!("{}/manifests/{by}", client.base);
    let accept = format!("{OCI_MANIFEST}, {DOCKER_MANIFEST}");
    let manifest = client.get(
        "manifest",
        reference,
        &url,
        Some(&accept),
        MAX_MANIFEST_BYTES,
    )?;
    let actual = sha256_digest(&manifest);
    let digest = match &reference.digest {
        Some(expected) if *expected != actual => {
            return Err(OciError::DigestMismatch {
                what: "the manifest",
                reference: reference.to_string(),
                expected: expected.clone(),
                actual,
            })
        }
        _ => actual,
    };
    let parsed: Manifest = serde_json::from_slice(&manifest).map_err(|e| OciError::NotWasm {
        reference: reference.to_string(),
        reason: format!("the manifest is not an OCI image manifest: {e}"),
    })?;
    let layer = wasm_layer(&parsed, reference, options.max_blob_bytes)?;
    let path = blob_path(&options.cache_dir, &layer.digest);
    let cached = std::fs::read(&path)
        .ok()
        .filter(|b| b.len() as u64 == layer.size && sha256_digest(b) == layer.digest);
    let from_cache = cached.is_some();
    if cached.is_none() {
        let url = format!("{}/blobs/{}", client.base, layer.digest);
        let bytes = client.get("layer", reference, &url, None, options.max_blob_bytes)?;
        if bytes.len() as u64 != layer.size {
            return Err(OciError::Truncated {
                what: "the layer",
                reference: reference.to_string(),
                got: bytes.len() as u64,
                expected: layer.size,
            });
        }
        let actual = sha256_digest(&bytes);
        if actual != layer.digest {
            return Err(OciError::DigestMismatch {
                what: "the layer",
                reference: reference.to_string(),
                expected: layer.digest.clone(),
                actual,
            });
        }
        write_atomic(&path, &bytes)?;
    }
    write_atomic(&manifest_path(&options.cache_dir, &digest), &manifest)?;
    Ok(Pulled {
        path,
        manifest_digest: digest,
        layer_digest: layer.digest.clone(),
        size: layer.size,
        from_cache: from_cache && reference.digest.is_some(),
        elapsed: started.elapsed(),
    })
}

/// Push a component file as a Wasm OCI artifact under `reference`'s tag.
/// Returns the manifest digest to pin in pipelines.
pub fn push(file: &Path, reference: &Reference, options: &OciOptions) -> Result<Pushed, OciError> {
    off_runtime(|| push_here(file, reference, options))
}

fn push_here(file: &Path, reference: &Reference, options: &OciOptions) -> Result<Pushed, OciError> {
    let Some(tag) = &reference.tag else {
        return Err(OciError::BadReference {
            reference: reference.to_string(),
            reason: "a push needs a tag (HOST/NS/NAME:TAG); its digest is what it prints".into(),
        });
    };
    if reference.digest.is_some() {
        return Err(OciError::BadReference {
            reference: reference.to_string(),
            reason: "a push names a tag, not a digest (the digest is the result)".into(),
        });
    }
    let bytes = std::fs::read(file).map_err(|source| OciError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    if bytes.len() as u64 > options.max_blob_bytes {
        return Err(OciError::TooLarge {
            reference: reference.to_string(),
            size: bytes.len() as u64,
            limit: options.max_blob_bytes,
        });
    }
    if !wasmparser::Parser::is_component(&bytes) && !wasmparser::Parser::is_core_wasm(&bytes) {
        return Err(OciError::NotWasm {
            reference: file.display().to_string(),
            reason: "the file is not a WebAssembly component or module".into(),
        });
    }
    let client = Client::new(reference, options)?;
    let layer_digest = sha256_digest(&bytes);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest],
    }))
    .expect("JSON");
    let config_digest = sha256_digest(&config);
    upload_blob(&client, &config, &config_digest)?;
    upload_blob(&client, &bytes, &layer_digest)?;
    let title = file
        .file_name()
        .map_or("plugin.wasm".into(), |n| n.to_string_lossy().into_owned());
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": WASM_LAYER,
        "config": {"mediaType": WASM_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [{
            "mediaType": WASM_LAYER,
            "digest": layer_digest,
            "size": bytes.len(),
            "annotations": {"org.opencontainers.image.title": title},
        }],
    }))
    .expect("JSON");
    let manifest_digest = sha256_digest(&manifest);
    let url = format!("{}/manifests/{tag}", client.base);
    let response = client.send(
        "manifest upload",
        client
            .http
            .put(&url)
            .header(reqwest::header::CONTENT_TYPE, OCI_MANIFEST)
            .body(manifest),
        &url,
    )?;
    if let Some(said) = response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
    {
        if said != manifest_digest {
            return Err(OciError::DigestMismatch {
                what: "the stored manifest",
                reference: reference.to_string(),
                expected: manifest_digest,
                actual: said.to_string(),
            });
        }
    }
    Ok(Pushed {
        reference: reference.clone(),
        manifest_digest,
        layer_digest,
        size: bytes.len() as u64,
    })
}

/// Monolithic upload: POST for a session, PUT the bytes with the digest.
fn upload_blob(client: &Client, bytes: &[u8], digest: &str) -> Result<(), OciError> {
    let head = format!("{}/blobs/{digest}", client.base);
    if client
        .send("blob check", client.http.head(&head), &head)
        .is_ok()
    {
        return Ok(());
    }
    let url = format!("{}/blobs/uploads/", client.base);
    let response = client.send("blob upload", client.http.post(&url), &url)?;
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| OciError::Status {
            what: "blob upload",
            url: url.clone(),
            status: response.status().as_u16(),
            detail: ": no Location header".into(),
        })?;
    let mut put = if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else {
        format!("{}{location}", client.origin)
    };
    put.push(if put.contains('?') { '&' } else { '?' });
    put.push_str("digest=");
    put.push_str(digest);
    client.send(
        "blob upload",
        client
            .http
            .put(&put)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes.to_vec()),
        &put,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_parse_and_print() {
        let r = Reference::parse(&format!(
            "oci://127.0.0.1:5000/voxpipe/en-normalize:1.0@{D}"
        ))
        .unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "voxpipe/en-normalize");
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.name(), "en-normalize");
        assert_eq!(r.host(), "127.0.0.1");
        assert_eq!(
            r.to_string(),
            format!("oci://127.0.0.1:5000/voxpipe/en-normalize:1.0@{D}")
        );
        let r = Reference::parse(&format!("registry.local/a/b/c@{D}")).unwrap();
        assert_eq!((r.repository.as_str(), r.tag.as_deref()), ("a/b/c", None));
        let r = Reference::parse("localhost:5000/x:latest").unwrap();
        assert_eq!(r.digest, None);
    }

    #[test]
    fn bad_references_say_why() {
        for (text, why) in [
            ("oci://host", "HOST/NAMESPACE/NAME"),
            ("oci://host/ns/name", "tag, a digest"),
            ("oci://host/NS/name:1", "lowercase"),
            ("oci://host/ns/name@sha256:abc", "64 lowercase hex"),
            ("oci://host/ns/name@md5:0123", "sha256:"),
            ("oci://host/ns/name:-x", "a tag is"),
            ("oci://ho st/ns/name:1", "HOST or HOST:PORT"),
        ] {
            let e = Reference::parse(text).unwrap_err();
            assert_eq!(e.kind(), "bad_reference");
            assert!(e.to_string().contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn tag_only_is_refused_outside_dev_before_any_network() {
        let dir = tempfile::tempdir().unwrap();
        let r = Reference::parse("oci://127.0.0.1:9/ns/p:1").unwrap();
        let opts = OciOptions::new(dir.path().to_path_buf(), 1 << 20);
        let e = pull(&r, &opts).unwrap_err();
        assert_eq!(e.kind(), "tag_only", "{e}");
        assert!(e.to_string().contains("--dev"), "{e}");
    }

    #[test]
    fn registries_are_reached_over_https_unless_loopback_or_listed() {
        let dir = tempfile::tempdir().unwrap();
        let r = Reference::parse(&format!("oci://ghcr.io/ns/p:1@{D}")).unwrap();
        let mut opts = OciOptions::new(dir.path().to_path_buf(), 1 << 20);
        assert!(Client::new(&r, &opts)
            .unwrap()
            .base
            .starts_with("https://ghcr.io/v2/ns/p"));
        opts.insecure_registries = vec!["ghcr.io".into()];
        assert!(Client::new(&r, &opts)
            .unwrap()
            .base
            .starts_with("http://ghcr.io/"));
        let local = Reference::parse(&format!("oci://127.0.0.1:5000/ns/p@{D}")).unwrap();
        assert_eq!(
            Client::new(&local, &opts).unwrap().origin,
            "http://127.0.0.1:5000"
        );
        assert!(is_loopback("localhost") && is_loopback("127.0.0.5") && is_loopback("[::1]"));
        assert!(!is_loopback("10.0.0.1"));
    }

    #[test]
    fn only_one_wasm_layer_is_accepted() {
        let r = Reference::parse(&format!("oci://localhost/ns/p@{D}")).unwrap();
        let m = |layers: &str| -> Manifest {
            serde_json::from_str(&format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{WASM_CONFIG}","digest":"{D}","size":2}},"layers":[{layers}]}}"#
            ))
            .unwrap()
        };
        let wasm = format!(r#"{{"mediaType":"application/wasm","digest":"{D}","size":10}}"#);
        let tar = format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{D}","size":10}}"#
        );
        assert!(wasm_layer(&m(&wasm), &r, 100).is_ok());
        let e = wasm_layer(&m(&tar), &r, 100).err().unwrap();
        assert_eq!(e.kind(), "not_wasm");
        assert!(e.to_string().contains("tar+gzip"), "{e}");
        let e = wasm_layer(&m(&format!("{wasm},{wasm}")), &r, 100)
            .err()
            .unwrap();
        assert_eq!(e.kind(), "not_wasm");
        let e = wasm_layer(&m(&wasm), &r, 5).err().unwrap();
        assert_eq!(e.kind(), "too_large");
    }
}
