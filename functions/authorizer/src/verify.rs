//! What a token must be to open a WebSocket: a JWT signed with an asymmetric algorithm by one of
//! the issuer's keys (`kid`), `iss` equal to the configured issuer, `aud` containing the audience
//! (or, without `aud`, `client_id` equal to it), not expired, not before `nbf`, with a `sub`.
//!
//! The claims are checked twice: once unverified, before any key is fetched (a stranger's or a
//! stale token is refused without touching the issuer, and the reason is precise), and again by
//! `jsonwebtoken` after the signature verifies — the decision rests only on the second check.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::config::AuthorizerConfig;
use crate::jwks::{KeyCache, KeyError};

/// Why a token was refused. Logged (with the request id); never sent to the caller, who sees
/// only API Gateway's 403.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rejection {
    #[error("no token in the query string")]
    MissingToken,
    #[error("not a JWT: {0}")]
    Malformed(String),
    #[error("algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("issuer {0:?} is not the configured issuer")]
    WrongIssuer(String),
    #[error("the token is not for this audience")]
    WrongAudience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token has no sub")]
    MissingSubject,
    #[error("{0}")]
    UnknownKey(String),
    #[error("{0}")]
    KeysUnavailable(String),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Asymmetric algorithms only: an `HS*` token would be "verified" with a public key as the
/// HMAC secret (the classic algorithm-confusion attack).
const ACCEPTED: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    nbf: Option<u64>,
}

/// Verifies tokens against one issuer's keys.
pub struct Verifier {
    config: AuthorizerConfig,
    keys: KeyCache,
}

impl Verifier {
    pub fn new(config: AuthorizerConfig, keys: KeyCache) -> Self {
        Verifier { config, keys }
    }

    /// The key cache (fetch counts in tests and logs).
    pub fn keys(&self) -> &KeyCache {
        &self.keys
    }

    /// The verified `sub` of `token`, or why it is refused.
    pub async fn verify(&self, token: &str) -> Result<String, Rejection> {
        let cfg = &self.config;
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| Rejection::Malformed(e.to_string()))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(Rejection::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header
            .kid
            .clone()
            .ok_or_else(|| Rejection::Malformed("no kid in the header".into()))?;

        // Cheap checks first, on the unverified claims: nothing here is trusted yet.
        let claims: Claims = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|e| Rejection::Malformed(e.to_string()))?;
        let iss = claims.iss.clone().unwrap_or_default();
        if iss != cfg.issuer {
            return Err(Rejection::WrongIssuer(iss));
        }
        let has_aud = claims.aud.is_some();
        let aud_ok = match &claims.aud {
            Some(Audience::One(a)) => *a == cfg.audience,
            Some(Audience::Many(v)) => v.contains(&cfg.audience),
            None => claims.client_id.as_deref() == Some(cfg.audience.as_str()),
        };
        if !aud_ok {
            return Err(Rejection::WrongAudience);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let leeway = cfg.leeway.as_secs();
        match claims.exp {
            None => return Err(Rejection::Invalid("no exp".into())),
            Some(exp) if exp.saturating_add(leeway) < now => return Err(Rejection::Expired),
            Some(_) => {}
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(leeway))
        {
            return Err(Rejection::NotYetValid);
        }
        if claims.sub.as_deref().unwrap_or("").is_empty() {
            return Err(Rejection::MissingSubject);
        }

        let key = self.keys.key(&kid).await.map_err(|e| match e {
            KeyError::UnknownKid { .. } => Rejection::UnknownKey(e.to_string()),
            KeyError::Unavailable(_) => Rejection::KeysUnavailable(e.to_string()),
        })?;
        if key.alg.is_some_and(|a| a != header.alg) {
            return Err(Rejection::Algorithm(format!(
                "{:?} (the key is for {:?})",
                header.alg,
                key.alg.unwrap()
            )));
        }

        // The decision: signature, then every claim again, by the library.
        let mut v = Validation::new(header.alg);
        v.leeway = leeway;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_issuer(&[&cfg.issuer]);
        if has_aud {
            v.set_audience(&[&cfg.audience]);
            v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        } else {
            // Checked above on client_id; the signature below covers those same bytes.
            v.validate_aud = false;
            v.set_required_spec_claims(&["exp", "iss", "sub"]);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &v).map_err(|e| match e
            .kind()
        {
            ErrorKind::InvalidSignature => Rejection::BadSignature,
            ErrorKind::ExpiredSignature => Rejection::Expired,
            ErrorKind::ImmatureSignature => Rejection::NotYetValid,
            ErrorKind::InvalidAudience => Rejection::WrongAudience,
            ErrorKind::InvalidIssuer => Rejection::WrongIssuer(iss.clone()),
            _ => Rejection::Invalid(e.to_string()),
        })?;
        data.claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(Rejection::MissingSubject)
    }
}
