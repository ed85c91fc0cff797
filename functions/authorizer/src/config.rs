//! The authorizer's typed configuration, read once from `TESSERA_JWT_*` / `TESSERA_JWKS_*`
//! environment variables (the same habits as `tessera_shared::config`: a missing or invalid
//! variable is named in the error). Not here: the data-plane configuration of the other
//! functions, which the authorizer does not need.

use std::time::Duration;

pub use tessera_shared::config::ConfigError;

/// Default lifetime of a fetched key set (`TESSERA_JWKS_TTL_SECS`).
pub const DEFAULT_JWKS_TTL_SECS: u64 = 3600;
/// Default shortest interval between two fetches caused by an unknown `kid`
/// (`TESSERA_JWKS_MIN_REFRESH_SECS`).
pub const DEFAULT_JWKS_MIN_REFRESH_SECS: u64 = 30;
/// Default clock skew allowed on `exp` / `nbf` (`TESSERA_JWT_LEEWAY_SECS`), API Gateway's JWT
/// authorizer allows about the same.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

/// What a token must satisfy and where its keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// `iss` of accepted tokens, exactly as in the token (`TESSERA_JWT_ISSUER`); also where the
    /// OIDC discovery document is looked up when no JWKS URL is given.
    pub issuer: String,
    /// `aud` the token must contain (`TESSERA_JWT_AUDIENCE`); a token without `aud` passes if its
    /// `client_id` equals it (Cognito access tokens), as with API Gateway's JWT authorizer.
    pub audience: String,
    /// The issuer's key set (`TESSERA_JWKS_URL`). `None`: `jwks_uri` from
    /// `<issuer>/.well-known/openid-configuration`, fetched once per process.
    pub jwks_url: Option<String>,
    /// How long a fetched key set is used before it is fetched again (`TESSERA_JWKS_TTL_SECS`).
    pub jwks_ttl: Duration,
    /// A token with a `kid` the cached set lacks refetches the set, at most once per this
    /// interval (`TESSERA_JWKS_MIN_REFRESH_SECS`), so forged `kid`s cannot hammer the issuer.
    pub jwks_min_refresh: Duration,
    /// Clock skew allowed on `exp` and `nbf` (`TESSERA_JWT_LEEWAY_SECS`).
    pub leeway: Duration,
    /// Timeout of one HTTP request to the issuer (`TESSERA_JWKS_TIMEOUT_MS`, default 3000).
    pub http_timeout: Duration,
}

impl AuthorizerConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get` (testable without touching the environment).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let val = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let url = |name: &'static str, v: String| -> Result<String, ConfigError> {
            if v.starts_with("https://") || v.starts_with("http://") {
                Ok(v)
            } else {
                Err(ConfigError::Invalid {
                    name,
                    value: v,
                    why: "expected an http(s) URL",
                })
            }
        };
        let secs =
            |name: &'static str, default: u64| -> Result<Duration, ConfigError> {
                match val(name) {
                    None => Ok(Duration::from_secs(default)),
                    Some(v) => v.parse::<u64>().map(Duration::from_secs).map_err(|_| {
                        ConfigError::Invalid {
                            name,
                            value: v,
                            why: "expected a whole number of seconds",
                        }
                    }),
                }
            };
        let issuer = url(
            "TESSERA_JWT_ISSUER",
            val("TESSERA_JWT_ISSUER").ok_or(ConfigError::Missing("TESSERA_JWT_ISSUER"))?,
        )?;
        let timeout_ms = match val("TESSERA_JWKS_TIMEOUT_MS") {
            None => 3000,
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .ok_or(ConfigError::Invalid {
                    name: "TESSERA_JWKS_TIMEOUT_MS",
                    value: v,
                    why: "expected a whole number of milliseconds, at least 1",
                })?,
        };
        Ok(AuthorizerConfig {
            issuer,
            audience: val("TESSERA_JWT_AUDIENCE")
                .ok_or(ConfigError::Missing("TESSERA_JWT_AUDIENCE"))?,
            jwks_url: val("TESSERA_JWKS_URL")
                .map(|v| url("TESSERA_JWKS_URL", v))
                .transpose()?,
            jwks_ttl: secs("TESSERA_JWKS_TTL_SECS", DEFAULT_JWKS_TTL_SECS)?,
            jwks_min_refresh: secs(
                "TESSERA_JWKS_MIN_REFRESH_SECS",
                DEFAULT_JWKS_MIN_REFRESH_SECS,
            )?,
            leeway: secs("TESSERA_JWT_LEEWAY_SECS", DEFAULT_LEEWAY_SECS)?,
            http_timeout: Duration::from_millis(timeout_ms),
        })
    }

    /// Where the OIDC discovery document is: `<issuer>/.well-known/openid-configuration` (a
    /// trailing `/` of the issuer, as Auth0 writes it, is not doubled).
    pub fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<AuthorizerConfig, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AuthorizerConfig::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn required_variables_are_named() {
        assert_eq!(
            cfg(&[("TESSERA_JWT_AUDIENCE", "a")])
                .unwrap_err()
                .to_string(),
            "environment variable TESSERA_JWT_ISSUER is required but not set"
        );
        assert_eq!(
            cfg(&[("TESSERA_JWT_ISSUER", "https://id.example.com/")])
                .unwrap_err()
                .to_string(),
            "environment variable TESSERA_JWT_AUDIENCE is required but not set"
        );
    }

    #[test]
    fn defaults_overrides_and_discovery_url() {
        let c = cfg(&[
            ("TESSERA_JWT_ISSUER", "https://tenant.auth0.com/"),
            ("TESSERA_JWT_AUDIENCE", "tessera"),
        ])
        .unwrap();
        assert_eq!(c.jwks_url, None);
        assert_eq!(c.jwks_ttl, Duration::from_secs(DEFAULT_JWKS_TTL_SECS));
        assert_eq!(c.leeway, Duration::from_secs(60));
        assert_eq!(
            c.discovery_url(),
            "https://tenant.auth0.com/.well-known/openid-configuration"
        );
        let c = cfg(&[
            ("TESSERA_JWT_ISSUER", "https://id.example.com"),
            ("TESSERA_JWT_AUDIENCE", "tessera"),
            ("TESSERA_JWKS_URL", "https://id.example.com/keys"),
            ("TESSERA_JWKS_TTL_SECS", "60"),
            ("TESSERA_JWKS_MIN_REFRESH_SECS", "0"),
        ])
        .unwrap();
        assert_eq!(c.jwks_url.as_deref(), Some("https://id.example.com/keys"));
        assert_eq!(c.jwks_ttl, Duration::from_secs(60));
        assert_eq!(c.jwks_min_refresh, Duration::ZERO);
    }

    #[test]
    fn invalid_values_say_why() {
        let e = cfg(&[
            ("TESSERA_JWT_ISSUER", "id.example.com"),
            ("TESSERA_JWT_AUDIENCE", "a"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("TESSERA_JWT_ISSUER") && e.contains("http(s) URL"),
            "{e}"
        );
        let e = cfg(&[
            ("TESSERA_JWT_ISSUER", "https://id.example.com"),
            ("TESSERA_JWT_AUDIENCE", "a"),
            ("TESSERA_JWKS_TTL_SECS", "an hour"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("TESSERA_JWKS_TTL_SECS"), "{e}");
    }
}
