//! Typed configuration, read once from `TESSERA_*` environment variables. Every function and
//! the local runtime read the same struct; nothing else differs between local and AWS.

use std::time::Duration;

/// Why the configuration could not be read. Names the variable so the fix is obvious.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name} has an invalid value {value:?}: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: &'static str,
    },
}

/// Everything a Tessera function needs to know about its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// AWS region (`AWS_REGION`, default `us-east-1`).
    pub region: String,
    /// Endpoint override for every AWS client (`TESSERA_AWS_ENDPOINT`), e.g. the local emulator.
    /// When set, S3 uses path-style addressing.
    pub endpoint: Option<String>,
    /// Bucket holding uploads and results (`TESSERA_BUCKET`).
    pub bucket: String,
    /// Jobs table (`TESSERA_JOBS_TABLE`).
    pub jobs_table: String,
    /// The language model's rate limits, prices and owners' daily budget (`crate::rate::Limits`).
    pub model_limits: crate::rate::Limits,
    /// Queue of chunk tasks (`TESSERA_CHUNK_QUEUE_URL`).
    pub chunk_queue_url: String,
    /// Byte-range size for chunk tasks (`TESSERA_CHUNK_SIZE`, default 128 MiB).
    pub chunk_size: u64,
    /// Largest declared upload accepted (`TESSERA_MAX_UPLOAD_BYTES`, default 50 GiB... S3's 5 TiB is the hard cap).
    pub max_upload_bytes: u64,
    /// Lifetime of presigned URLs (`TESSERA_PRESIGN_TTL_SECS`, default 900, at most 900).
    pub presign_ttl: Duration,
    /// Bytes the planner reads to sniff the dialect (`TESSERA_SNIFF_BYTES`, default 64 KiB).
    pub sniff_bytes: u64,
    /// Days a job record is kept after it is created (`TESSERA_JOB_TTL_DAYS`, default 30).
    pub job_ttl_days: u64,
    /// Declared sizes above this get a multipart upload (`TESSERA_MULTIPART_THRESHOLD`,
    /// default 100 MiB); at or below it, one presigned PUT unless the client asks for multipart.
    pub multipart_threshold: u64,
    /// Smallest part size handed out for multipart uploads (`TESSERA_PART_SIZE`, default 8 MiB,
    /// 5 MiB to 5 GiB). Larger files get larger parts so that no upload needs more than 10,000.
    pub part_size: u64,
    /// The WebSocket API's management endpoint (`TESSERA_WS_ENDPOINT`), where the status
    /// function posts pushes: `https://{api}.execute-api.{region}.amazonaws.com/{stage}` in AWS,
    /// the local runtime's `http://127.0.0.1:<port>/local` locally. `None`: pushes are not sent.
    pub ws_endpoint: Option<String>,
    /// Key of `token` masks in rule documents (`TESSERA_MASK_KEY_HEX`, hex, at least 16 bytes).
    /// `None`: a workflow with a token mask fails its jobs with `mask_key_missing`.
    pub mask_key: Option<Vec<u8>>,
    /// Largest output an export converts within the API request (`TESSERA_EXPORT_SYNC_MAX_BYTES`,
    /// default 64 MiB: API Gateway answers by 29 s). Larger conversions become export jobs.
    pub export_sync_max_bytes: u64,
    /// Byte-range size of an export job's range tasks (`TESSERA_EXPORT_RANGE_SIZE`, default
    /// 128 MiB, at least 1 byte).
    pub export_range_size: u64,
    /// Largest object a query reads within the API request (`TESSERA_QUERY_INLINE_MAX_BYTES`,
    /// default 64 MiB); a larger one becomes a query job.
    pub query_inline_max_bytes: u64,
    /// Byte-range size of a query job's range tasks (`TESSERA_QUERY_RANGE_SIZE`, default
    /// 128 MiB, at least 1 byte).
    pub query_range_size: u64,
    /// Groups a query may make before it fails `too_many_groups` (`TESSERA_QUERY_MAX_GROUPS`,
    /// default 1,000,000).
    pub query_max_groups: u64,
    /// The agent's task queue (`TESSERA_AGENT_QUEUE_URL`): conversation turns, and the
    /// continuations a query job sends when it ends. `None`: no agent deployed.
    pub agent_queue_url: Option<String>,
    /// Groups above which a query range's partial state is written in partitions by key hash
    /// and merged one partition at a time (`TESSERA_QUERY_SPILL_GROUPS`, default 100,000).
    pub query_spill_groups: u64,
    /// The agent's model: a Bedrock model id, inference profile id or ARN (`TESSERA_MODEL_ID`).
    /// `None`: no model configured (the agent suggests rules from the profile only).
    pub model_id: Option<String>,
    /// Endpoint of the Bedrock Runtime client (`TESSERA_BEDROCK_ENDPOINT`, `http(s)://...`), e.g.
    /// a local Converse server. `None`: Bedrock itself, even when `endpoint` is set.
    pub bedrock_endpoint: Option<String>,
    /// How long a job may sit in `finalizing` without a change before a worker takes its
    /// finalization over (`TESSERA_STALE_FINALIZING_SECS`, default 600, at least 1). It must
    /// outlast any live finalizer (the chunk function's 300 s timeout) and stay below the chunk
    /// queue's visibility timeout (1800 s), so the dead finalizer's own message, when it comes
    /// back, finds the job stale (docs/pipeline.md § *A finalizer that dies*). Tests that kill
    /// finalizers shorten both.
    pub stale_finalizing: Duration,
}

/// Defaults, also used by the local runtime and tests as a base.
/// See [`Config::stale_finalizing`].
pub const DEFAULT_STALE_FINALIZING_SECS: u64 = 600;
pub const DEFAULT_CHUNK_SIZE: u64 = 128 * 1024 * 1024;
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 50 * 1024 * 1024 * 1024;
pub const MAX_PRESIGN_TTL_SECS: u64 = 900;
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 100 * 1024 * 1024;
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;
/// Largest output converted within an export request (see [`Config::export_sync_max_bytes`]).
/// API Gateway answers by 29 s; the converter measured ~37 MiB/s per core locally
/// (docs/rules.md § *Exports*), and the api function's 512 MB is ~0.29 vCPU, ~11 MiB/s: 64 MiB
/// is ~6 s there. Larger exports become export jobs, so a low limit costs little.
pub const DEFAULT_EXPORT_SYNC_MAX_BYTES: u64 = 64 << 20;
/// Byte range of one export range task: the chunk size's default, for the same reasons.
pub const DEFAULT_EXPORT_RANGE_SIZE: u64 = 128 * 1024 * 1024;
/// S3's part size limits: every part but the last is at least 5 MiB, none above 5 GiB.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get` (testable without touching the environment).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let req = |name: &'static str| {
            get(name)
                .filter(|v| !v.is_empty())
                .ok_or(ConfigError::Missing(name))
        };
        let num = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(name).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v.trim().parse::<u64>().map_err(|_| ConfigError::Invalid {
                    name,
                    value: v.clone(),
                    why: "expected a whole number",
                }),
            }
        };
        let chunk_size = num("TESSERA_CHUNK_SIZE", DEFAULT_CHUNK_SIZE)?;
        if chunk_size == 0 {
            return Err(ConfigError::Invalid {
                name: "TESSERA_CHUNK_SIZE",
                value: "0".into(),
                why: "must be at least 1 byte",
            });
        }
        let ttl = num("TESSERA_PRESIGN_TTL_SECS", MAX_PRESIGN_TTL_SECS)?;
        if ttl == 0 || ttl > MAX_PRESIGN_TTL_SECS {
            return Err(ConfigError::Invalid {
                name: "TESSERA_PRESIGN_TTL_SECS",
                value: ttl.to_string(),
                why: "must be between 1 and 900 seconds",
            });
        }
        let part_size = num("TESSERA_PART_SIZE", DEFAULT_PART_SIZE)?;
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size) {
            return Err(ConfigError::Invalid {
                name: "TESSERA_PART_SIZE",
                value: part_size.to_string(),
                why: "must be between 5 MiB (5242880) and 5 GiB (5368709120), S3's part limits",
            });
        }
        let export_range_size = num("TESSERA_EXPORT_RANGE_SIZE", DEFAULT_EXPORT_RANGE_SIZE)?;
        if export_range_size == 0 {
            return Err(ConfigError::Invalid {
                name: "TESSERA_EXPORT_RANGE_SIZE",
                value: "0".into(),
                why: "must be at least 1 byte",
            });
        }
        let query_range_size = num("TESSERA_QUERY_RANGE_SIZE", DEFAULT_EXPORT_RANGE_SIZE)?;
        if query_range_size == 0 {
            return Err(ConfigError::Invalid {
                name: "TESSERA_QUERY_RANGE_SIZE",
                value: "0".into(),
                why: "must be at least 1 byte",
            });
        }
        let bedrock_endpoint = get("TESSERA_BEDROCK_ENDPOINT").filter(|v| !v.trim().is_empty());
        if let Some(v) = bedrock_endpoint
            .as_ref()
            .filter(|v| !(v.starts_with("http://") || v.starts_with("https://")))
        {
            return Err(ConfigError::Invalid {
                name: "TESSERA_BEDROCK_ENDPOINT",
                value: v.clone(),
                why: "expected a URL starting with http:// or https://",
            });
        }
        let model_id = get("TESSERA_MODEL_ID").filter(|v| !v.trim().is_empty());
        if let Some(v) = model_id
            .as_ref()
            .filter(|v| v.contains(char::is_whitespace))
        {
            return Err(ConfigError::Invalid {
                name: "TESSERA_MODEL_ID",
                value: v.clone(),
                why: "expected a model id, inference profile id or ARN (no spaces)",
            });
        }
        Ok(Config {
            agent_queue_url: get("TESSERA_AGENT_QUEUE_URL").filter(|v| !v.is_empty()),
            query_inline_max_bytes: num(
                "TESSERA_QUERY_INLINE_MAX_BYTES",
                DEFAULT_EXPORT_SYNC_MAX_BYTES,
            )?,
            query_range_size,
            query_max_groups: num("TESSERA_QUERY_MAX_GROUPS", 1_000_000)?.max(1),
            query_spill_groups: num("TESSERA_QUERY_SPILL_GROUPS", 100_000)?.max(1),
            model_id,
            bedrock_endpoint,
            stale_finalizing: Duration::from_secs(
                num(
                    "TESSERA_STALE_FINALIZING_SECS",
                    DEFAULT_STALE_FINALIZING_SECS,
                )?
                .max(1),
            ),
            export_sync_max_bytes: num(
                "TESSERA_EXPORT_SYNC_MAX_BYTES",
                DEFAULT_EXPORT_SYNC_MAX_BYTES,
            )?,
            export_range_size,
            region: get("AWS_REGION")
                .or_else(|| get("AWS_DEFAULT_REGION"))
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "us-east-1".into()),
            endpoint: get("TESSERA_AWS_ENDPOINT").filter(|v| !v.is_empty()),
            bucket: req("TESSERA_BUCKET")?,
            jobs_table: req("TESSERA_JOBS_TABLE")?,
            model_limits: crate::rate::Limits::from_lookup(&get)?,
            chunk_queue_url: req("TESSERA_CHUNK_QUEUE_URL")?,
            chunk_size,
            max_upload_bytes: num("TESSERA_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES)?,
            presign_ttl: Duration::from_secs(ttl),
            sniff_bytes: num("TESSERA_SNIFF_BYTES", 64 * 1024)?.max(1024),
            job_ttl_days: num("TESSERA_JOB_TTL_DAYS", 30)?,
            multipart_threshold: num("TESSERA_MULTIPART_THRESHOLD", DEFAULT_MULTIPART_THRESHOLD)?,
            part_size,
            ws_endpoint: get("TESSERA_WS_ENDPOINT").filter(|v| !v.is_empty()),
            mask_key: match get("TESSERA_MASK_KEY_HEX").filter(|v| !v.trim().is_empty()) {
                None => None,
                Some(v) => Some(decode_hex(v.trim()).ok_or(ConfigError::Invalid {
                    name: "TESSERA_MASK_KEY_HEX",
                    value: "<hidden>".into(),
                    why: "expected an even number of hex digits, at least 32 (16 bytes)",
                })?),
            },
        })
    }
}

/// Hex to bytes; `None` unless it is an even number (>= 32) of hex digits.
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() & 1 == 1 || s.len() < 32 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    const BASE: [(&str, &str); 3] = [
        ("TESSERA_BUCKET", "b"),
        ("TESSERA_JOBS_TABLE", "t"),
        ("TESSERA_CHUNK_QUEUE_URL", "http://q"),
    ];

    #[test]
    fn missing_variable_is_named() {
        let err = cfg(&BASE[..2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable TESSERA_CHUNK_QUEUE_URL is required but not set"
        );
    }

    #[test]
    fn defaults_and_overrides() {
        let c = cfg(&BASE).unwrap();
        assert_eq!(c.chunk_size, DEFAULT_CHUNK_SIZE);
        assert_eq!(c.presign_ttl.as_secs(), 900);
        assert_eq!(c.endpoint, None);
        let mut v = BASE.to_vec();
        v.push(("TESSERA_CHUNK_SIZE", "65536"));
        v.push(("TESSERA_AWS_ENDPOINT", "http://127.0.0.1:4566"));
        let c = cfg(&v).unwrap();
        assert_eq!(c.chunk_size, 65536);
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:4566"));
    }

    #[test]
    fn invalid_numbers_are_rejected_with_the_reason() {
        let mut v = BASE.to_vec();
        v.push(("TESSERA_PRESIGN_TTL_SECS", "3600"));
        assert!(cfg(&v)
            .unwrap_err()
            .to_string()
            .contains("between 1 and 900"));
        let mut v = BASE.to_vec();
        v.push(("TESSERA_CHUNK_SIZE", "abc"));
        assert!(cfg(&v).unwrap_err().to_string().contains("whole number"));
        let mut v = BASE.to_vec();
        v.push(("TESSERA_PART_SIZE", "1048576"));
        let e = cfg(&v).unwrap_err().to_string();
        assert!(
            e.contains("TESSERA_PART_SIZE") && e.contains("5 MiB"),
            "{e}"
        );
    }

    #[test]
    fn multipart_defaults() {
        let c = cfg(&BASE).unwrap();
        assert_eq!(c.multipart_threshold, 100 * 1024 * 1024);
        assert_eq!(c.part_size, 8 * 1024 * 1024);
    }

    #[test]
    fn export_defaults_and_overrides() {
        let c = cfg(&BASE).unwrap();
        assert_eq!(c.export_sync_max_bytes, 64 << 20);
        assert_eq!(c.export_range_size, 128 << 20);
        let mut v = BASE.to_vec();
        v.push(("TESSERA_EXPORT_SYNC_MAX_BYTES", "4096"));
        v.push(("TESSERA_EXPORT_RANGE_SIZE", "1000"));
        let c = cfg(&v).unwrap();
        assert_eq!((c.export_sync_max_bytes, c.export_range_size), (4096, 1000));
        let mut v = BASE.to_vec();
        v.push(("TESSERA_EXPORT_RANGE_SIZE", "0"));
        assert!(cfg(&v)
            .unwrap_err()
            .to_string()
            .contains("TESSERA_EXPORT_RANGE_SIZE"));
    }

    #[test]
    fn model_settings() {
        let c = cfg(&BASE).unwrap();
        assert_eq!((c.model_id, c.bedrock_endpoint), (None, None));
        let mut v = BASE.to_vec();
        v.push((
            "TESSERA_MODEL_ID",
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        ));
        v.push(("TESSERA_BEDROCK_ENDPOINT", "http://127.0.0.1:4010"));
        let c = cfg(&v).unwrap();
        assert_eq!(
            c.model_id.as_deref(),
            Some("us.anthropic.claude-3-5-haiku-20241022-v1:0")
        );
        assert_eq!(c.bedrock_endpoint.as_deref(), Some("http://127.0.0.1:4010"));
        for (name, bad) in [
            ("TESSERA_BEDROCK_ENDPOINT", "127.0.0.1:4010"),
            ("TESSERA_MODEL_ID", "claude haiku"),
        ] {
            let mut v = BASE.to_vec();
            v.push((name, bad));
            let e = cfg(&v).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
    }
}
