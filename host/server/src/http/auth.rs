//! Optional bearer API keys: one set for synthesis (and the voice list), one
//! for admin endpoints (pipelines). An empty set leaves those endpoints open.
//! Keys are compared as sha256 digests so the comparison time does not depend
//! on how much of a guess matched.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// Which keys open which endpoints.
#[derive(Debug, Default)]
pub struct Auth {
    api: Vec<[u8; 32]>,
    admin: Vec<[u8; 32]>,
}

/// What an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Synthesis and voices: an API key (or an admin key).
    Api,
    /// Pipelines: an admin key.
    Admin,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl Auth {
    pub fn new(api_keys: &[String], admin_keys: &[String]) -> Auth {
        let set = |keys: &[String]| {
            keys.iter()
                .map(|k| k.trim())
                .filter(|k| !k.is_empty())
                .map(digest)
                .collect()
        };
        Auth {
            api: set(api_keys),
            admin: set(admin_keys),
        }
    }

    /// Whether any keys are configured for `access`.
    pub fn required(&self, access: Access) -> bool {
        match access {
            Access::Api => !self.api.is_empty(),
            Access::Admin => !self.admin.is_empty(),
        }
    }

    /// Checks the `Authorization: Bearer …` header.
    pub fn check(&self, headers: &HeaderMap, access: Access) -> Result<(), ApiError> {
        if !self.required(access) {
            return Ok(());
        }
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|k| digest(k.trim()));
        let Some(presented) = presented else {
            return Err(ApiError::Unauthorized(
                "this endpoint needs `Authorization: Bearer <key>`".into(),
            ));
        };
        let ok = match access {
            Access::Api => self.api.contains(&presented) || self.admin.contains(&presented),
            Access::Admin => self.admin.contains(&presented),
        };
        if ok {
            Ok(())
        } else {
            Err(ApiError::Unauthorized(
                "the API key is not valid here".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(k: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", format!("Bearer {k}").parse().unwrap());
        h
    }

    #[test]
    fn keys_open_their_endpoints_only() {
        let open = Auth::new(&[], &[]);
        assert!(open.check(&HeaderMap::new(), Access::Api).is_ok());
        let auth = Auth::new(&["user-key".into()], &["admin-key".into()]);
        assert!(auth.check(&HeaderMap::new(), Access::Api).is_err());
        assert!(auth.check(&bearer("user-key"), Access::Api).is_ok());
        assert!(auth.check(&bearer("admin-key"), Access::Api).is_ok());
        assert!(auth.check(&bearer("user-key"), Access::Admin).is_err());
        assert!(auth.check(&bearer("admin-key"), Access::Admin).is_ok());
        assert!(auth.check(&bearer("wrong"), Access::Api).is_err());
    }
}
