//! The issuer's signing keys, fetched over HTTP and cached in the process: a key set is used for
//! `jwks_ttl`, and a token whose `kid` the cached set lacks (the issuer rotated its keys) refetches
//! it at once — at most once per `jwks_min_refresh`, so made-up `kid`s cannot turn the authorizer
//! into a load generator against the issuer. When a refetch fails the previous keys stay in use.
//!
//! Not here: what a token must claim (see [`crate::verify`]).

use std::collections::HashMap;
use std::time::Instant;

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::config::AuthorizerConfig;

/// Why no key could be produced for a `kid`.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The issuer's key set (after a refetch, if one was allowed) has no such key.
    #[error("no signing key with kid {kid:?} in the issuer's key set")]
    UnknownKid { kid: String },
    /// The key set could not be fetched and nothing is cached.
    #[error("the issuer's key set is unavailable: {0}")]
    Unavailable(String),
}

/// One usable public key.
#[derive(Clone)]
pub struct Key {
    pub decoding: DecodingKey,
    /// The JWK's `alg`, when the issuer pins one.
    pub alg: Option<Algorithm>,
}

struct Cached {
    keys: HashMap<String, Key>,
    fetched_at: Instant,
}

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    /// When the key set was last requested (success or not): the refetch throttle.
    last_attempt: Option<Instant>,
    /// `jwks_uri` from the discovery document, once known.
    jwks_uri: Option<String>,
}

/// The process-wide key cache. One lock: concurrent misses wait for one fetch instead of each
/// making their own (a Lambda instance serves one request at a time anyway).
pub struct KeyCache {
    http: reqwest::Client,
    config: AuthorizerConfig,
    state: Mutex<State>,
    fetches: std::sync::atomic::AtomicU64,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl KeyCache {
    /// A cache that fetches with `http` (built once per process, reused across invocations).
    pub fn new(http: reqwest::Client, config: AuthorizerConfig) -> Self {
        KeyCache {
            http,
            state: Mutex::new(State {
                jwks_uri: config.jwks_url.clone(),
                ..State::default()
            }),
            config,
            fetches: Default::default(),
        }
    }

    /// Key sets fetched so far by this cache (logs and tests).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The key named `kid`, from the cache or a (re)fetch of the issuer's key set.
    pub async fn key(&self, kid: &str) -> Result<Key, KeyError> {
        let mut st = self.state.lock().await;
        let now = Instant::now();
        let fresh = st
            .cached
            .as_ref()
            .is_some_and(|c| now.duration_since(c.fetched_at) < self.config.jwks_ttl);
        if fresh {
            if let Some(k) = st.cached.as_ref().and_then(|c| c.keys.get(kid)) {
                return Ok(k.clone());
            }
        }
        // Stale (or never fetched): always refetch. Fresh but the kid is unknown: refetch unless
        // one was attempted within the throttle interval.
        let throttled = fresh
            && st
                .last_attempt
                .is_some_and(|t| now.duration_since(t) < self.config.jwks_min_refresh);
        if !throttled {
            st.last_attempt = Some(now);
            match self.fetch(&mut st).await {
                Ok(keys) => {
                    tracing::info!(keys = keys.len(), "fetched the issuer's key set");
                    st.cached = Some(Cached {
                        keys,
                        fetched_at: Instant::now(),
                    });
                }
                Err(e) if st.cached.is_some() => {
                    // Keep serving the keys we have; a rotated-away key fails below as unknown.
                    tracing::warn!(error = %e, "refetching the issuer's key set failed; using the cached keys");
                }
                Err(e) => return Err(KeyError::Unavailable(e)),
            }
        }
        st.cached
            .as_ref()
            .and_then(|c| c.keys.get(kid))
            .cloned()
            .ok_or_else(|| KeyError::UnknownKid {
                kid: kid.to_string(),
            })
    }

    async fn fetch(&self, st: &mut State) -> Result<HashMap<String, Key>, String> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let uri = match &st.jwks_uri {
            Some(u) => u.clone(),
            None => {
                let d: Discovery = self.get_json(&self.config.discovery_url()).await?;
                // OIDC Discovery §4.3: the document's issuer must be the one it was fetched for.
                if d.issuer != self.config.issuer {
                    return Err(format!(
                        "discovery document names issuer {:?}, expected {:?}",
                        d.issuer, self.config.issuer
                    ));
                }
                st.jwks_uri = Some(d.jwks_uri.clone());
                d.jwks_uri
            }
        };
        let set: JwkSet = self.get_json(&uri).await?;
        Ok(usable_keys(&set))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let resp = self
            .http
            .get(url)
            .timeout(self.config.http_timeout)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", resp.status()));
        }
        resp.json::<T>()
            .await
            .map_err(|e| format!("GET {url}: not the expected JSON: {e}"))
    }
}

/// The signing keys of `set` by `kid`: keys without a `kid`, meant for encryption
/// (`use: enc`), with an unknown `alg` or that do not parse are left out.
pub fn usable_keys(set: &JwkSet) -> HashMap<String, Key> {
    set.keys
        .iter()
        .filter_map(|jwk: &Jwk| {
            let kid = jwk.common.key_id.clone()?;
            if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
                return None;
            }
            let alg = match jwk.common.key_algorithm {
                Some(a) => Some(Algorithm::try_from(a).ok()?),
                None => None,
            };
            let decoding = DecodingKey::from_jwk(jwk)
                .map_err(|e| tracing::warn!(kid, error = %e, "skipping an unusable JWK"))
                .ok()?;
            Some((kid, Key { decoding, alg }))
        })
        .collect()
}
