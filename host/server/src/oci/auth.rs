//! Registry authentication, as the registry asks for it in its 401's
//! `WWW-Authenticate` (the Docker registry token protocol, which OCI
//! registries share): `Basic` — the user and password; `Bearer realm=…,
//! service=…, scope=…` — a token from `realm`, asked with the user and
//! password when there are some (else anonymously: public images on ghcr.io
//! and Docker Hub need a token too).
//!
//! Credentials come from the Docker config file, where `docker login`,
//! `oras login` and CI secrets put them: `$DOCKER_CONFIG/config.json`, else
//! `$HOME/.docker/config.json`, `auths.<registry>.auth` (base64 of
//! `user:password`) or `username` / `password`. Credential helpers
//! (`credsStore`, `credHelpers`) are not run: voxpipe does not execute
//! programs named by a config file.

use base64::Engine as _;
use serde::Deserialize;

use super::OciError;

/// A user and password for one registry.
#[derive(Clone, PartialEq)]
pub(super) struct Credentials {
    pub user: String,
    pub password: String,
}

// Never printed: a password must not reach a log line.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.user)
    }
}

/// The Docker config file's path.
fn config_path() -> Option<std::path::PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => Some(std::path::PathBuf::from(dir).join("config.json")),
        None => std::env::var_os("HOME")
            .map(|h| std::path::PathBuf::from(h).join(".docker/config.json")),
    }
}

/// `registry`'s credentials in the Docker config file, if any.
pub(super) fn credentials(registry: &str) -> Option<Credentials> {
    let text = std::fs::read(config_path()?).ok()?;
    credentials_in(&text, registry)
}

fn credentials_in(config: &[u8], registry: &str) -> Option<Credentials> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(default)]
        auths: std::collections::HashMap<String, Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        auth: Option<String>,
        username: Option<String>,
        password: Option<String>,
    }
    let config: Config = serde_json::from_slice(config).ok()?;
    // Keys are written as `host`, `host:port` or a URL (`https://host/v1/`).
    let entry = config.auths.iter().find_map(|(key, entry)| {
        let key = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let key = key.split('/').next().unwrap_or(key);
        (key == registry).then_some(entry)
    })?;
    if let Some(auth) = &entry.auth {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        return Some(Credentials {
            user: user.into(),
            password: password.into(),
        });
    }
    Some(Credentials {
        user: entry.username.clone()?,
        password: entry.password.clone()?,
    })
}

/// A challenge's scheme and parameters (`Bearer realm="…",service="…"`).
fn parse_challenge(header: &str) -> Option<(String, Vec<(String, String)>)> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Vec::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            after.split_once(',').map_or((after, ""), |(v, n)| (v, n))
        };
        params.push((key.trim().to_ascii_lowercase(), value.to_string()));
        rest = next.trim_start_matches([',', ' ']);
    }
    Some((scheme.to_ascii_lowercase(), params))
}

/// The `Authorization` value that answers `challenge`: the user and
/// password for `Basic`, a token from the realm for `Bearer`.
pub(super) fn answer(
    http: &reqwest::blocking::Client,
    registry: &str,
    challenge: &str,
    credentials: Option<&Credentials>,
) -> Result<String, OciError> {
    let refused = |reason: String| OciError::Unauthorized {
        registry: registry.to_string(),
        reason,
    };
    let Some((scheme, params)) = parse_challenge(challenge) else {
        return Err(refused(format!(
            "HTTP 401 with an unreadable challenge {challenge:?}"
        )));
    };
    let basic = |c: &Credentials| {
        let pair = format!("{}:{}", c.user, c.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    match scheme.as_str() {
        "basic" => match credentials {
            Some(c) => Ok(basic(c)),
            None => Err(refused(
                "it asks for a user and password and the Docker config file has none for it \
                 (`docker login` writes them)"
                    .into(),
            )),
        },
        "bearer" => {
            let param = |name: &str| {
                params
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            let Some(realm) = param("realm") else {
                return Err(refused("a Bearer challenge without a realm".into()));
            };
            if !(realm.starts_with("https://") || realm.starts_with("http://")) {
                return Err(refused(format!("a token realm that is not a URL: {realm}")));
            }
            let mut request = http.get(realm);
            let query: Vec<(&str, &str)> = ["service", "scope"]
                .into_iter()
                .filter_map(|k| param(k).map(|v| (k, v)))
                .collect();
            request = request.query(&query);
            if let Some(c) = credentials {
                request = request.header(reqwest::header::AUTHORIZATION, basic(c));
            }
            let response = request.send().map_err(|e| OciError::Unreachable {
                registry: registry.to_string(),
                reason: format!("its token service {realm}: {}", super::error_chain(&e)),
            })?;
            if !response.status().is_success() {
                return Err(refused(format!(
                    "its token service {realm} answered HTTP {}{}",
                    response.status().as_u16(),
                    if credentials.is_some() {
                        ""
                    } else {
                        " (no credentials for it in the Docker config file)"
                    }
                )));
            }
            #[derive(Deserialize)]
            struct Token {
                token: Option<String>,
                access_token: Option<String>,
            }
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(response, 64 << 10), &mut body)
                .map_err(|e| refused(format!("reading its token: {e}")))?;
            let token: Token = serde_json::from_slice(&body)
                .map_err(|e| refused(format!("its token service sent no token: {e}")))?;
            match token.token.or(token.access_token) {
                Some(t) if !t.is_empty() => Ok(format!("Bearer {t}")),
                _ => Err(refused("its token service sent an empty token".into())),
            }
        }
        other => Err(refused(format!(
            "it asks for `{other}` authentication; voxpipe answers Basic and Bearer"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull""#,
        )
        .unwrap();
        assert_eq!(scheme, "bearer");
        assert_eq!(
            params,
            [
                ("realm".to_string(), "https://ghcr.io/token".to_string()),
                ("service".to_string(), "ghcr.io".to_string()),
                ("scope".to_string(), "repository:a/b:pull".to_string()),
            ]
        );
        let (scheme, params) = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!((scheme.as_str(), params.len()), ("basic", 1));
    }

    #[test]
    fn credentials_come_from_the_docker_config() {
        let config = br#"{"auths": {
            "registry.example:5000": {"auth": "dXNlcjpwYTpzcw=="},
            "https://index.docker.io/v1/": {"username": "u2", "password": "p2"}
        }}"#;
        let c = credentials_in(config, "registry.example:5000").unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("user", "pa:ss"));
        let c = credentials_in(config, "index.docker.io").unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("u2", "p2"));
        assert!(credentials_in(config, "ghcr.io").is_none());
        assert!(!format!("{c:?}").contains("p2"));
    }

    #[test]
    fn a_basic_challenge_without_credentials_says_how_to_add_them() {
        let http = reqwest::blocking::Client::new();
        let e = answer(&http, "r:1", r#"Basic realm="x""#, None).unwrap_err();
        assert_eq!(e.kind(), "unauthorized");
        assert!(e.to_string().contains("docker login"), "{e}");
        let c = Credentials {
            user: "a".into(),
            password: "b".into(),
        };
        assert_eq!(
            answer(&http, "r:1", "Basic realm=\"x\"", Some(&c)).unwrap(),
            "Basic YTpi"
        );
    }
}
