//! The limits and prices read from configuration (`TESSERA_MODEL_*`,
//! `TESSERA_MODEL_PRICES`, `TESSERA_OWNER_DAILY_BUDGET_USD`) and dollar amounts as exact
//! micro-dollars. Not here: how the buckets use them (`buckets`).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::ConfigError;

/// Defaults of [`Limits`] (`TESSERA_MODEL_*`, `TESSERA_OWNER_DAILY_BUDGET_USD`): a few
/// requests a minute per owner. One rules request reserves about 10,000 tokens a call (the rule
/// language's schema and the profile are its input; `maxTokens` 2,048) for up to 3 calls, so
/// an owner's bucket holds a few of them a minute. Set the global ones to at most your account's Bedrock
/// quotas for the model (Service Quotas, "Amazon Bedrock"), which differ by model and region.
pub const DEFAULT_PERIOD_MS: u64 = 60_000;
pub const DEFAULT_GLOBAL_REQUESTS: u64 = 50;
pub const DEFAULT_GLOBAL_TOKENS: u64 = 400_000;
pub const DEFAULT_OWNER_REQUESTS: u64 = 10;
pub const DEFAULT_OWNER_TOKENS: u64 = 150_000;
pub const DEFAULT_DAILY_BUDGET_MICRO_USD: u64 = 5_000_000;

/// The default price table (`TESSERA_MODEL_PRICES`): Bedrock on-demand prices in USD per 1,000
/// tokens (us-east-1, as published when this was written: check the Bedrock pricing page).
pub const DEFAULT_MODEL_PRICES: &str = r#"{
  "anthropic.claude-3-haiku-20240307-v1:0": {"input_per_1k": 0.00025, "output_per_1k": 0.00125},
  "anthropic.claude-3-5-haiku-20241022-v1:0": {"input_per_1k": 0.0008, "output_per_1k": 0.004},
  "anthropic.claude-3-5-sonnet-20240620-v1:0": {"input_per_1k": 0.003, "output_per_1k": 0.015},
  "anthropic.claude-3-5-sonnet-20241022-v2:0": {"input_per_1k": 0.003, "output_per_1k": 0.015},
  "anthropic.claude-3-7-sonnet-20250219-v1:0": {"input_per_1k": 0.003, "output_per_1k": 0.015},
  "anthropic.claude-sonnet-4-20250514-v1:0": {"input_per_1k": 0.003, "output_per_1k": 0.015},
  "amazon.nova-micro-v1:0": {"input_per_1k": 0.000035, "output_per_1k": 0.00014},
  "amazon.nova-lite-v1:0": {"input_per_1k": 0.00006, "output_per_1k": 0.00024},
  "amazon.nova-pro-v1:0": {"input_per_1k": 0.0008, "output_per_1k": 0.0032}
}"#;

/// The largest limit or period accepted: thousandths of it, and products of them in `i128`,
/// stay far inside their integer types.
pub const MAX_LIMIT: u64 = 1_000_000_000_000;

/// The limits of one bucket: its capacity, which is also what it refills per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketLimits {
    pub requests: u64,
    pub tokens: u64,
}

/// A model's price in micro-dollars per 1,000 tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub input_micro_usd_per_1k: u64,
    pub output_micro_usd_per_1k: u64,
}

impl Price {
    /// What `input` and `output` tokens cost, in micro-dollars, rounded up (never under-charged).
    pub fn cost_micro_usd(&self, input: u64, output: u64) -> u64 {
        let nano = u128::from(input) * u128::from(self.input_micro_usd_per_1k)
            + u128::from(output) * u128::from(self.output_micro_usd_per_1k);
        u64::try_from(nano.div_ceil(1000)).unwrap_or(u64::MAX)
    }
}

/// Prices by model id. `"*"` prices any model not listed; without it an unlisted model cannot be
/// called ([`RateError::UnpricedModel`]), so a misconfiguration cannot spend without limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prices(BTreeMap<String, Price>);

/// Prefixes of Bedrock's cross-region inference profile ids (`us.anthropic...`): such a profile
/// is priced like the model it routes to.
const PROFILE_PREFIXES: [&str; 7] = ["us.", "eu.", "apac.", "us-gov.", "jp.", "au.", "global."];

impl Prices {
    /// The price of `model`: listed, or listed without an inference-profile prefix, or `"*"`.
    pub fn get(&self, model: &str) -> Option<Price> {
        let base = PROFILE_PREFIXES
            .iter()
            .find_map(|p| model.strip_prefix(p))
            .unwrap_or(model);
        self.0
            .get(model)
            .or_else(|| self.0.get(base))
            .or_else(|| self.0.get("*"))
            .copied()
    }

    /// The table of `TESSERA_MODEL_PRICES`' JSON form: `{"<model id>": {"input_per_1k": <USD>,
    /// "output_per_1k": <USD>}, ...}`, prices in whole micro-dollars per 1,000 tokens at most.
    pub fn parse(json: &str) -> Result<Prices, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Entry {
            input_per_1k: serde_json::Number,
            output_per_1k: serde_json::Number,
        }
        let raw: BTreeMap<String, Entry> =
            serde_json::from_str(json).map_err(|e| format!("not a price table: {e}"))?;
        let usd = |model: &str, what: &str, n: &serde_json::Number| {
            parse_usd(&n.to_string()).ok_or_else(|| {
                format!("{model}.{what} = {n}: expected US dollars, at most 6 decimals")
            })
        };
        raw.iter()
            .map(|(model, e)| {
                Ok((
                    model.clone(),
                    Price {
                        input_micro_usd_per_1k: usd(model, "input_per_1k", &e.input_per_1k)?,
                        output_micro_usd_per_1k: usd(model, "output_per_1k", &e.output_per_1k)?,
                    },
                ))
            })
            .collect::<Result<_, String>>()
            .map(Prices)
    }
}

/// Everything the limiter is configured with (read by `Config::from_lookup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The refill period (`TESSERA_MODEL_LIMIT_PERIOD_MS`, default 60,000: per minute).
    pub period_ms: u64,
    /// Per model, shared by all owners (`TESSERA_MODEL_GLOBAL_REQUESTS`, default 50;
    /// `TESSERA_MODEL_GLOBAL_TOKENS`, default 400,000).
    pub global: BucketLimits,
    /// Per model and owner (`TESSERA_MODEL_OWNER_REQUESTS`, default 10;
    /// `TESSERA_MODEL_OWNER_TOKENS`, default 150,000).
    pub owner: BucketLimits,
    /// Prices (`TESSERA_MODEL_PRICES`, JSON, default [`DEFAULT_MODEL_PRICES`]; replaces the
    /// whole default table when set).
    pub prices: Prices,
    /// What an owner may spend per UTC day (`TESSERA_OWNER_DAILY_BUDGET_USD`, decimal US
    /// dollars, default 5; 0 allows no call).
    pub daily_budget_micro_usd: u64,
}

impl Limits {
    /// Reads the limits through `get` (the `TESSERA_*` variables above, each with a default).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Limits, ConfigError> {
        let get = |name: &'static str| get(name).filter(|v| !v.trim().is_empty());
        let positive = |name: &'static str, default: u64| match get(name) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(ConfigError::Invalid {
                    name,
                    value: v,
                    why: "expected a whole number from 1 to 1000000000000",
                }),
            },
        };
        let prices = match get("TESSERA_MODEL_PRICES") {
            None => Prices::parse(DEFAULT_MODEL_PRICES).expect("the default price table parses"),
            Some(v) => Prices::parse(&v).map_err(|_| {
                ConfigError::Invalid {
                    name: "TESSERA_MODEL_PRICES",
                    value: v,
                    why: "expected JSON {\"<model id>\": {\"input_per_1k\": <USD>, \"output_per_1k\": <USD>}} with at most 6 decimals",
                }
            })?,
        };
        let daily_budget_micro_usd = match get("TESSERA_OWNER_DAILY_BUDGET_USD") {
            None => DEFAULT_DAILY_BUDGET_MICRO_USD,
            Some(v) => parse_usd(v.trim()).ok_or(ConfigError::Invalid {
                name: "TESSERA_OWNER_DAILY_BUDGET_USD",
                value: v,
                why: "expected US dollars such as 5 or 0.25, at most 6 decimals",
            })?,
        };
        Ok(Limits {
            period_ms: positive("TESSERA_MODEL_LIMIT_PERIOD_MS", DEFAULT_PERIOD_MS)?,
            global: BucketLimits {
                requests: positive("TESSERA_MODEL_GLOBAL_REQUESTS", DEFAULT_GLOBAL_REQUESTS)?,
                tokens: positive("TESSERA_MODEL_GLOBAL_TOKENS", DEFAULT_GLOBAL_TOKENS)?,
            },
            owner: BucketLimits {
                requests: positive("TESSERA_MODEL_OWNER_REQUESTS", DEFAULT_OWNER_REQUESTS)?,
                tokens: positive("TESSERA_MODEL_OWNER_TOKENS", DEFAULT_OWNER_TOKENS)?,
            },
            prices,
            daily_budget_micro_usd,
        })
    }

    /// The limits with every default (tests start from these).
    pub fn defaults() -> Limits {
        Limits::from_lookup(|_| None).expect("the defaults are valid")
    }
}

/// Decimal US dollars (`5`, `0.25`, `0.000035`) as micro-dollars, exactly; `None` if it is not
/// such a number.
pub fn parse_usd(s: &str) -> Option<u64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 6 {
        return None;
    }
    let frac: u64 = format!("{frac:0<6}").parse().ok()?;
    whole
        .parse::<u64>()
        .ok()?
        .checked_mul(1_000_000)?
        .checked_add(frac)
}

/// Micro-dollars as `$1.50` or `$0.000035` (for messages).
pub fn format_usd(micro: u64) -> String {
    let frac = format!("{:06}", micro % 1_000_000);
    let frac = frac.trim_end_matches('0');
    format!("${}.{frac:0<2}", micro / 1_000_000)
}
