//! The local stand-in for API Gateway's JWT authorizer: HS256 tokens signed with a key kept in
//! `$TESSERA_HOME/jwt.key` (created with random bytes when missing), issuer `tessera-local`,
//! audience `tessera`, `exp` required. `tessera token` mints with the same key.
//!
//! Not here: how the gateway answers without a token (see [`crate::gateway`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Issuer of local tokens.
pub const ISSUER: &str = "tessera-local";
/// Audience of local tokens.
pub const AUDIENCE: &str = "tessera";
/// Bytes of a freshly generated key.
const KEY_BYTES: usize = 32;

/// The signing key could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("could not read or create the token key {path}: {source}. Check that TESSERA_HOME ({dir}) is writable")]
    Io {
        path: String,
        dir: String,
        source: std::io::Error,
    },
    #[error("the token key {path} is empty; delete it and a new one is created")]
    Empty { path: String },
}

/// The claims of a local token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
}

/// The HS256 key and its validation rules.
#[derive(Clone)]
pub struct JwtKey {
    secret: Vec<u8>,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKey(..)")
    }
}

/// `$TESSERA_HOME`, default `.tessera` in the working directory.
pub fn tessera_home() -> PathBuf {
    std::env::var_os("TESSERA_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".tessera"))
}

impl JwtKey {
    /// A random key held only in memory (tests).
    pub fn random() -> Self {
        let mut secret = vec![0u8; KEY_BYTES];
        rand::thread_rng().fill_bytes(&mut secret);
        JwtKey { secret }
    }

    /// Loads `<home>/jwt.key`, creating it (mode 0600) with random bytes when missing.
    pub fn load_or_create(home: &Path) -> Result<Self, KeyError> {
        let path = home.join("jwt.key");
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            dir: home.display().to_string(),
            source,
        };
        match std::fs::read(&path) {
            Ok(secret) if secret.is_empty() => Err(KeyError::Empty {
                path: path.display().to_string(),
            }),
            Ok(secret) => Ok(JwtKey { secret }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(home).map_err(io)?;
                let key = Self::random();
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                match opts.open(&path) {
                    Ok(mut f) => {
                        std::io::Write::write_all(&mut f, &key.secret).map_err(io)?;
                        Ok(key)
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(home)
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Mints a token for `sub`, valid for `ttl`.
    pub fn mint(&self, sub: &str, ttl: std::time::Duration) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: sub.into(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            exp: now + ttl.as_secs(),
            iat: now,
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.secret),
        )
        .expect("HS256 signing with an in-memory key cannot fail")
    }

    /// Verifies a token (signature, algorithm, `iss`, `aud`, `exp`, non-empty `sub`) and returns
    /// its claims as API Gateway passes them on: every value as a string.
    pub fn verify(
        &self,
        token: &str,
    ) -> Result<HashMap<String, String>, jsonwebtoken::errors::Error> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[AUDIENCE]);
        v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        v.leeway = 5;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &DecodingKey::from_secret(&self.secret),
            &v,
        )?;
        let mut out = HashMap::new();
        for (k, val) in data.claims {
            let s = match val {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            out.insert(k, s);
        }
        if out.get("sub").is_none_or(|s| s.is_empty()) {
            return Err(jsonwebtoken::errors::ErrorKind::MissingRequiredClaim("sub".into()).into());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn minted_tokens_verify_and_others_do_not() {
        let k = JwtKey::random();
        let t = k.mint("alice", Duration::from_secs(60));
        let claims = k.verify(&t).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["iss"], ISSUER);
        assert!(claims["exp"].parse::<u64>().is_ok());
        assert!(
            JwtKey::random().verify(&t).is_err(),
            "another key must not verify"
        );
        assert!(k.verify("not.a.token").is_err());
    }

    #[test]
    fn expired_tokens_are_rejected() {
        let k = JwtKey::random();
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: "a".into(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            exp: now - 600,
            iat: now - 700,
        };
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&k.secret),
        )
        .unwrap();
        assert!(k.verify(&t).is_err());
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("tessera-key-{}", uuid::Uuid::new_v4()));
        let a = JwtKey::load_or_create(&dir).unwrap();
        let b = JwtKey::load_or_create(&dir).unwrap();
        assert_eq!(a.secret, b.secret);
        assert_eq!(a.secret.len(), KEY_BYTES);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
