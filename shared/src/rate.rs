//! Rate limits and cost of language-model calls, shared by every Lambda instance: the limits and
//! prices read from configuration, the token-bucket arithmetic, the owner's daily budget, and
//! the types the [`crate::ports::RateBuckets`] port speaks. Pure code (no I/O, no clock of its
//! own): `store::rate` applies it to DynamoDB items with conditional writes, `memory::rate` to a
//! map under one lock.
//!
//! Each bucket holds at most one period's worth (`capacity`) and refills linearly at
//! `capacity / period`. Levels are kept in thousandths of a request or token, and a refill is
//! rounded down, so rounding can only admit less, never more. A level may go below zero when a
//! call used more tokens than it reserved (the overrun is charged); it then refills from there.
//!
//! Not here: the model call, its retries on `ThrottlingException`, and what the agent does with
//! an [`Admission::Wait`] (docs/agent.md § *Rate limits and cost*).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::store::StoreError;

/// Thousandths of a request or token per request or token (bucket levels are integers).
pub const MILLI: i64 = 1000;

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

/// The state of one bucket: both levels (thousandths) and when they were last refilled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    pub requests_milli: i64,
    pub tokens_milli: i64,
    pub refilled_at_ms: i64,
}

impl Levels {
    /// A bucket never used (or idle for a period): full.
    pub fn full(limits: BucketLimits, now_ms: i64) -> Levels {
        Levels {
            requests_milli: limits.requests as i64 * MILLI,
            tokens_milli: limits.tokens as i64 * MILLI,
            refilled_at_ms: now_ms,
        }
    }

    /// The levels at `now_ms`: refilled for the time since the last refill, rounded down, and
    /// capped at capacity. A clock behind the stored time refills nothing and moves nothing
    /// back (instances' clocks differ by milliseconds).
    pub fn refilled(self, limits: BucketLimits, period_ms: u64, now_ms: i64) -> Levels {
        let elapsed = i128::from((now_ms - self.refilled_at_ms).max(0));
        let add = |level: i64, capacity: u64| -> i64 {
            let cap = capacity as i64 * MILLI;
            if level >= cap {
                return cap;
            }
            let gained = elapsed * i128::from(capacity) * i128::from(MILLI) / i128::from(period_ms);
            (i128::from(level) + gained).min(i128::from(cap)) as i64
        };
        Levels {
            requests_milli: add(self.requests_milli, limits.requests),
            tokens_milli: add(self.tokens_milli, limits.tokens),
            refilled_at_ms: self.refilled_at_ms.max(now_ms),
        }
    }

    /// How long until one request and `tokens` fit (zero: they fit now).
    pub fn wait_for(&self, limits: BucketLimits, period_ms: u64, tokens: u64) -> Duration {
        let until = |level: i64, need: i64, capacity: u64| -> u64 {
            let deficit = i128::from(need) - i128::from(level);
            if deficit <= 0 {
                return 0;
            }
            let per_ms = i128::from(capacity) * i128::from(MILLI);
            let ms = (deficit * i128::from(period_ms) + per_ms - 1) / per_ms;
            u64::try_from(ms).unwrap_or(u64::MAX)
        };
        let ms = until(self.requests_milli, MILLI, limits.requests).max(until(
            self.tokens_milli,
            tokens as i64 * MILLI,
            limits.tokens,
        ));
        Duration::from_millis(ms)
    }

    /// One request and `tokens` taken.
    pub fn debited(self, tokens: u64) -> Levels {
        Levels {
            requests_milli: self.requests_milli - MILLI,
            tokens_milli: self.tokens_milli - tokens as i64 * MILLI,
            ..self
        }
    }

    /// `tokens` given back (positive, capped at capacity) or charged (negative, may go below
    /// zero).
    pub fn credited(self, limits: BucketLimits, tokens: i64) -> Levels {
        Levels {
            tokens_milli: self
                .tokens_milli
                .saturating_add(tokens.saturating_mul(MILLI))
                .min(limits.tokens as i64 * MILLI),
            ..self
        }
    }
}

/// Which bucket of a model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every owner's calls to the model.
    Global,
    /// One owner's calls to the model.
    Owner(String),
}

impl Scope {
    /// This scope's limits.
    pub fn limits(&self, limits: &Limits) -> BucketLimits {
        match self {
            Scope::Global => limits.global,
            Scope::Owner(_) => limits.owner,
        }
    }
}

/// What [`decide`] makes of a reservation request against the two buckets' current levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Both buckets have room: their levels after the debit, both refilled to `at_ms`.
    Admit {
        global: Levels,
        owner: Levels,
        at_ms: i64,
    },
    /// One of them does not: how long until both do (nothing is written).
    Wait(Duration),
}

/// The admission decision for one request of `tokens`, given the stored levels of the global
/// and owner buckets (`None`: never used, full), at `now_ms` — or at the later of the two
/// buckets' refill times if one is ahead of it (written by an instance whose clock is ahead, or
/// by a caller that read the clock a moment later but wrote first): both buckets then move to
/// one time, and an admission's time is that of both.
pub fn decide(
    limits: &Limits,
    global: Option<Levels>,
    owner: Option<Levels>,
    tokens: u64,
    now_ms: i64,
) -> Decision {
    let at_ms = [global, owner]
        .iter()
        .flatten()
        .map(|l| l.refilled_at_ms)
        .fold(now_ms, i64::max);
    let current = |stored: Option<Levels>, l: BucketLimits| {
        stored.map_or(Levels::full(l, at_ms), |s| {
            s.refilled(l, limits.period_ms, at_ms)
        })
    };
    let g = current(global, limits.global);
    let o = current(owner, limits.owner);
    let wait = g
        .wait_for(limits.global, limits.period_ms, tokens)
        .max(o.wait_for(limits.owner, limits.period_ms, tokens));
    if wait.is_zero() {
        Decision::Admit {
            global: g.debited(tokens),
            owner: o.debited(tokens),
            at_ms,
        }
    } else {
        Decision::Wait(wait)
    }
}

/// A bucket's levels after a settle gives back (or charges) `tokens`, at `now_ms`.
pub fn settle_levels(
    limits: &Limits,
    scope: &Scope,
    stored: Option<Levels>,
    tokens: i64,
    now_ms: i64,
) -> Levels {
    let l = scope.limits(limits);
    stored
        .map_or(Levels::full(l, now_ms), |s| {
            s.refilled(l, limits.period_ms, now_ms)
        })
        .credited(l, tokens)
}

/// What a settle gives back to the buckets: the tokens reserved minus those used (negative: an
/// overrun, charged).
pub fn unused_tokens(reservation: &Reservation, used: TokenUsage) -> i64 {
    let reserved = i64::try_from(reservation.tokens).unwrap_or(i64::MAX);
    reserved.saturating_sub(i64::try_from(used.total()).unwrap_or(i64::MAX))
}

/// A UTC day (`2026-12-03`), the unit of usage and budget.
pub fn day_of(ms: i64) -> time::Date {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date()
}

/// `day` as `YYYY-MM-DD` (its key and its form in a [`Reservation`]).
pub fn day_string(day: time::Date) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    day.format(&fmt).unwrap_or_default()
}

/// `YYYY-MM-DD` as a day (`None` if it is not one).
pub fn parse_day(s: &str) -> Option<time::Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt).ok()
}

/// Today, UTC.
pub fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// When `day`'s budget resets: the next UTC midnight, RFC 3339.
pub fn resets_at(day: time::Date) -> String {
    let next = day.next_day().unwrap_or(day);
    format!("{}T00:00:00Z", day_string(next))
}

/// Admission to call the model, to be settled with the call's usage once it answered (or
/// failed: settle with what the response reported, zero if nothing was sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Unique per reservation: a settle applies once per id.
    pub id: String,
    pub model: String,
    pub owner: String,
    /// Tokens taken from both buckets (input estimate + `maxTokens`).
    pub tokens: u64,
    /// The UTC day whose budget holds it (`YYYY-MM-DD`); its usage is counted on that day.
    pub day: String,
    /// The most the call can cost (the estimated input and all of `maxTokens`), held against
    /// the budget until settled.
    pub held_micro_usd: u64,
    /// When it was admitted, on the limiter's clock (ms since the Unix epoch).
    pub admitted_at_ms: i64,
}

/// The answer to a reservation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admitted(Reservation),
    /// No capacity now: try again after `retry_after` (the agent puts the message back on its
    /// queue with that delay rather than sleeping).
    Wait {
        retry_after: Duration,
    },
}

/// What a model call used, from its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl From<crate::model::Usage> for TokenUsage {
    /// A reply's usage (`ModelReply::usage`), to settle with.
    fn from(u: crate::model::Usage) -> Self {
        TokenUsage {
            input_tokens: u64::from(u.input_tokens),
            output_tokens: u64::from(u.output_tokens),
        }
    }
}

impl TokenUsage {
    /// Input and output together (what the token buckets count).
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// The answer to a settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Counted: the call's cost, and the tokens given back (negative: an overrun charged).
    Applied {
        cost_micro_usd: u64,
        returned_tokens: i64,
    },
    /// This reservation was settled before; nothing changed.
    AlreadySettled,
}

/// An owner's model usage on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DayUsage {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Settled calls.
    pub calls: u64,
    /// Estimated cost of the settled calls, micro-dollars.
    pub cost_micro_usd: u64,
    /// Held for admitted calls not yet settled, micro-dollars (their worst case).
    pub held_micro_usd: u64,
}

/// An owner's daily model budget would be exceeded by one more call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetExceeded {
    /// Spent today by settled calls.
    pub spent_micro_usd: u64,
    /// Held for calls admitted and not yet settled.
    pub held_micro_usd: u64,
    /// The most this call could cost.
    pub needed_micro_usd: u64,
    pub budget_micro_usd: u64,
    /// The next UTC midnight (RFC 3339).
    pub resets_at: String,
}

/// Whether one more call that may cost `needed` fits an owner's day: refused when what is spent,
/// what is held for calls in flight and `needed` together pass the budget.
pub fn check_budget(
    limits: &Limits,
    usage: &DayUsage,
    needed: u64,
    day: time::Date,
) -> Result<(), BudgetExceeded> {
    let committed = usage.cost_micro_usd.saturating_add(usage.held_micro_usd);
    if committed.saturating_add(needed) <= limits.daily_budget_micro_usd {
        Ok(())
    } else {
        Err(BudgetExceeded {
            spent_micro_usd: usage.cost_micro_usd,
            held_micro_usd: usage.held_micro_usd,
            needed_micro_usd: needed,
            budget_micro_usd: limits.daily_budget_micro_usd,
            resets_at: resets_at(day),
        })
    }
}

/// Why a reservation or settle was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RateError {
    #[error("daily model budget exceeded: {0:?}")]
    BudgetExceeded(BudgetExceeded),
    /// More tokens than a bucket holds: it could never be admitted.
    #[error("{tokens} tokens requested, more than the {capacity} a bucket holds")]
    TooLarge { tokens: u64, capacity: u64 },
    /// The model has no price (and the table has no `"*"`).
    #[error("model {model:?} has no price in TESSERA_MODEL_PRICES")]
    UnpricedModel { model: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RateError {
    /// The stable code callers see.
    pub fn code(&self) -> &'static str {
        match self {
            RateError::BudgetExceeded(_) => "budget_exceeded",
            RateError::TooLarge { .. } => "model_request_too_large",
            RateError::UnpricedModel { .. } => "model_unpriced",
            RateError::Store(StoreError::Busy { .. }) => "service_busy",
            RateError::Store(_) => "internal",
        }
    }

    /// What a caller is told: what happened and what to do, no internal detail (the model id of
    /// an unpriced model is configuration, not the caller's business; log the error itself).
    pub fn message(&self) -> String {
        match self {
            RateError::BudgetExceeded(b) => format!(
                "Today's model budget for this account is used up: {} of {} spent{}, and this \
                 request could cost up to {}. It resets at {}; try again then, or ask the \
                 operator for a larger daily budget.",
                format_usd(b.spent_micro_usd),
                format_usd(b.budget_micro_usd),
                if b.held_micro_usd > 0 {
                    format!(
                        ", {} held for answers in progress",
                        format_usd(b.held_micro_usd)
                    )
                } else {
                    String::new()
                },
                format_usd(b.needed_micro_usd),
                b.resets_at,
            ),
            RateError::TooLarge { tokens, capacity } => format!(
                "This request needs up to {tokens} model tokens, more than the {capacity} \
                 allowed per period; ask about fewer columns or a shorter text."
            ),
            RateError::UnpricedModel { .. } => {
                "The model is not available: it has no price configured. Report this to the \
                 operator."
                    .into()
            }
            RateError::Store(StoreError::Busy { .. }) => {
                "The service is busy. Try again in a few seconds.".into()
            }
            RateError::Store(_) => {
                "Something went wrong on our side. Try again; if it persists, report it.".into()
            }
        }
    }
}

/// The checks before any bucket is read: the request fits both buckets' capacity and the model
/// has a price. Returns the call's worst-case cost (the estimated input and all of `maxTokens`).
pub fn precheck(limits: &Limits, model: &str, estimate: TokenUsage) -> Result<u64, RateError> {
    let (tokens, capacity) = (
        estimate.total(),
        limits.global.tokens.min(limits.owner.tokens),
    );
    if tokens > capacity {
        return Err(RateError::TooLarge { tokens, capacity });
    }
    call_cost(limits, model, estimate)
}

/// The cost of a settled call.
pub fn call_cost(limits: &Limits, model: &str, usage: TokenUsage) -> Result<u64, RateError> {
    let price = limits
        .prices
        .get(model)
        .ok_or_else(|| RateError::UnpricedModel {
            model: model.to_string(),
        })?;
    Ok(price.cost_micro_usd(usage.input_tokens, usage.output_tokens))
}

/// Milliseconds since the Unix epoch, as the limiter reads time. One trait so tests can set it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> i64;
}

/// The system clock (every instance's, synchronised by NTP: skew of a few ms admits at most
/// `rate x skew` more, a fraction of one request at the default rates).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
    }
}

/// A pause before retrying a conflicted write ("full jitter"): a random time up to
/// `round_trip << min(attempt, 6)` (the round trip at least 5 ms), at most 1 s. Scaled by the
/// round trip the caller just measured, so callers that collided spread over as many write
/// times as there are of them, whatever the store's latency.
pub fn backoff(attempt: u32, round_trip: Duration) -> Duration {
    let base = round_trip.max(Duration::from_millis(5));
    let ceiling = (base * (1u32 << attempt.min(6))).min(Duration::from_secs(1));
    let r = uuid::Uuid::new_v4().as_u128() % 1_000_000;
    ceiling.mul_f64(r as f64 / 1_000_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: BucketLimits = BucketLimits {
        requests: 20,
        tokens: 1000,
    };

    #[test]
    fn refill_is_linear_rounded_down_and_capped() {
        let empty = Levels {
            requests_milli: 0,
            tokens_milli: 0,
            refilled_at_ms: 1_000,
        };
        // 20 per 2,000 ms: one request per 100 ms, half a token per ms.
        let l = empty.refilled(B, 2_000, 1_150);
        assert_eq!((l.requests_milli, l.tokens_milli), (1_500, 75_000));
        assert_eq!(l.refilled_at_ms, 1_150);
        // 1 ms at 3 per 2,000 ms is 1.5 thousandths: rounded down to 1.
        let slow = BucketLimits {
            requests: 3,
            tokens: 3,
        };
        assert_eq!(empty.refilled(slow, 2_000, 1_001).requests_milli, 1);
        // Capped at capacity, however long the bucket was idle.
        let l = empty.refilled(B, 2_000, 1_000_000);
        assert_eq!((l.requests_milli, l.tokens_milli), (20_000, 1_000_000));
        // A clock behind the stored time refills nothing and does not move it back.
        let l = empty.refilled(B, 2_000, 900);
        assert_eq!(l, empty);
    }

    #[test]
    fn a_debt_refills_from_below_zero() {
        let owing = Levels {
            requests_milli: 0,
            tokens_milli: -500_000,
            refilled_at_ms: 0,
        };
        let l = owing.refilled(B, 2_000, 1_000);
        assert_eq!(l.tokens_milli, 0);
        assert_eq!(
            owing.wait_for(B, 2_000, 100),
            Duration::from_millis(1_200),
            "500 owed + 100 wanted at 0.5 per ms"
        );
    }

    #[test]
    fn decide_takes_from_both_or_waits_for_the_slower() {
        let limits = Limits {
            period_ms: 2_000,
            global: B,
            owner: BucketLimits {
                requests: 2,
                tokens: 1000,
            },
            ..Limits::defaults()
        };
        let Decision::Admit { global, owner, .. } = decide(&limits, None, None, 300, 0) else {
            panic!("a fresh bucket admits");
        };
        assert_eq!(
            (global.requests_milli, global.tokens_milli),
            (19_000, 700_000)
        );
        assert_eq!((owner.requests_milli, owner.tokens_milli), (1_000, 700_000));
        let Decision::Admit { owner, global, .. } =
            decide(&limits, Some(global), Some(owner), 300, 0)
        else {
            panic!("the second request fits");
        };
        // The owner holds 2 requests per 2 s: the third waits for one to refill (1 per s).
        assert_eq!(
            decide(&limits, Some(global), Some(owner), 300, 0),
            Decision::Wait(Duration::from_millis(1_000))
        );
        // Tokens: 400 left, 500 wanted: 100 more at 0.5 per ms is 200 ms (the owner's request
        // refills later, at 1,000 ms, so the wait is the longer of the two).
        assert_eq!(
            decide(&limits, Some(global), Some(owner), 500, 0),
            Decision::Wait(Duration::from_millis(1_000))
        );
        assert!(matches!(
            decide(&limits, Some(global), Some(owner), 300, 1_000),
            Decision::Admit { .. }
        ));
    }

    #[test]
    fn a_bucket_ahead_of_the_clock_moves_both_to_its_time() {
        let limits = Limits {
            period_ms: 2_000,
            global: B,
            owner: B,
            ..Limits::defaults()
        };
        let empty = |at| Levels {
            requests_milli: 0,
            tokens_milli: 0,
            refilled_at_ms: at,
        };
        // The owner's bucket was written at 1,000 by a clock ahead of ours (900): both refill
        // to 1,000, the global one from 800 (2 requests), the owner's by nothing.
        assert_eq!(
            decide(&limits, Some(empty(800)), Some(empty(1_000)), 0, 900),
            Decision::Wait(Duration::from_millis(100))
        );
        let Decision::Admit {
            global,
            owner,
            at_ms,
        } = decide(&limits, Some(empty(800)), Some(empty(900)), 0, 1_000)
        else {
            panic!("one request refilled in each");
        };
        assert_eq!(at_ms, 1_000);
        assert_eq!(
            (global.refilled_at_ms, owner.refilled_at_ms),
            (1_000, 1_000)
        );
        assert_eq!((global.requests_milli, owner.requests_milli), (1_000, 0));
    }

    #[test]
    fn settle_returns_up_to_capacity_and_charges_an_overrun() {
        let limits = Limits {
            period_ms: 2_000,
            global: B,
            ..Limits::defaults()
        };
        let after = Levels {
            requests_milli: 19_000,
            tokens_milli: 100_000,
            refilled_at_ms: 0,
        };
        let l = settle_levels(&limits, &Scope::Global, Some(after), 600, 0);
        assert_eq!(l.tokens_milli, 700_000);
        let l = settle_levels(&limits, &Scope::Global, Some(after), 950, 0);
        assert_eq!(l.tokens_milli, 1_000_000, "capped at capacity");
        let l = settle_levels(&limits, &Scope::Global, Some(after), -300, 0);
        assert_eq!(l.tokens_milli, -200_000, "an overrun is owed");
        // Refilled first: 400 ms later 200 more tokens had come back before the 600.
        let l = settle_levels(&limits, &Scope::Global, Some(after), 600, 400);
        assert_eq!(l.tokens_milli, 900_000);
    }

    #[test]
    fn usd_parses_exactly_and_prints_back() {
        assert_eq!(parse_usd("5"), Some(5_000_000));
        assert_eq!(parse_usd("0.25"), Some(250_000));
        assert_eq!(parse_usd("0.000035"), Some(35));
        assert_eq!(parse_usd("0.0000001"), None);
        assert_eq!(parse_usd("1e-5"), None);
        assert_eq!(parse_usd("-1"), None);
        assert_eq!(parse_usd(".5"), None);
        assert_eq!(format_usd(5_000_000), "$5.00");
        assert_eq!(format_usd(4_981_234), "$4.981234");
        assert_eq!(format_usd(35), "$0.000035");
        assert_eq!(format_usd(1_500_000), "$1.50");
    }

    #[test]
    fn prices_parse_round_up_and_fall_back() {
        let p = Prices::parse(DEFAULT_MODEL_PRICES).unwrap();
        let sonnet = p.get("anthropic.claude-3-5-sonnet-20240620-v1:0").unwrap();
        assert_eq!(sonnet.input_micro_usd_per_1k, 3_000);
        assert_eq!(sonnet.output_micro_usd_per_1k, 15_000);
        // 1,234 in + 567 out = $0.003702 + $0.008505.
        assert_eq!(sonnet.cost_micro_usd(1_234, 567), 12_207);
        // 10 in + 1 out of Nova Micro = 0.35 + 0.14 micro-dollars: rounded up to 1.
        let micro = p.get("amazon.nova-micro-v1:0").unwrap();
        assert_eq!(micro.cost_micro_usd(10, 1), 1);
        assert_eq!(micro.cost_micro_usd(0, 0), 0);
        assert_eq!(sonnet.cost_micro_usd(1_000, 1_000), 18_000);
        // A cross-region inference profile is priced as its model.
        assert_eq!(
            p.get("us.anthropic.claude-3-5-sonnet-20240620-v1:0"),
            Some(sonnet)
        );
        assert_eq!(p.get("scripted-model"), None);
        let any = Prices::parse(r#"{"*": {"input_per_1k": 1, "output_per_1k": 2}}"#).unwrap();
        assert_eq!(
            any.get("scripted-model").unwrap().output_micro_usd_per_1k,
            2_000_000
        );
        for bad in [
            r#"{"m": {"input_per_1k": 1e-7, "output_per_1k": 1}}"#,
            r#"{"m": {"input_per_1k": -1, "output_per_1k": 1}}"#,
            r#"{"m": {"input": 1, "output": 1}}"#,
            "[]",
        ] {
            assert!(Prices::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_read_their_variables_and_name_the_bad_one() {
        let l = Limits::defaults();
        assert_eq!(l.period_ms, 60_000);
        assert_eq!(
            l.global,
            BucketLimits {
                requests: 50,
                tokens: 400_000
            }
        );
        assert_eq!(
            l.owner,
            BucketLimits {
                requests: 10,
                tokens: 150_000
            }
        );
        assert_eq!(l.daily_budget_micro_usd, 5_000_000);
        let l = Limits::from_lookup(|k| match k {
            "TESSERA_MODEL_LIMIT_PERIOD_MS" => Some("2000".into()),
            "TESSERA_MODEL_GLOBAL_REQUESTS" => Some("20".into()),
            "TESSERA_OWNER_DAILY_BUDGET_USD" => Some("0.5".into()),
            "TESSERA_MODEL_PRICES" => {
                Some(r#"{"m": {"input_per_1k": 0.001, "output_per_1k": 0.002}}"#.into())
            }
            _ => None,
        })
        .unwrap();
        assert_eq!((l.period_ms, l.global.requests), (2_000, 20));
        assert_eq!(l.daily_budget_micro_usd, 500_000);
        assert!(l.prices.get("m").is_some() && l.prices.get("amazon.nova-lite-v1:0").is_none());
        for (name, value) in [
            ("TESSERA_MODEL_OWNER_TOKENS", "0"),
            ("TESSERA_MODEL_GLOBAL_REQUESTS", "ten"),
            ("TESSERA_OWNER_DAILY_BUDGET_USD", "$5"),
            ("TESSERA_MODEL_PRICES", "{\"m\": 3}"),
        ] {
            let e = Limits::from_lookup(|k| (k == name).then(|| value.to_string()))
                .unwrap_err()
                .to_string();
            assert!(e.contains(name), "{e}");
        }
    }

    #[test]
    fn budget_counts_spent_held_and_the_next_call() {
        let limits = Limits {
            daily_budget_micro_usd: 1_000,
            ..Limits::defaults()
        };
        let day = time::macros::date!(2026 - 12 - 31);
        let mut usage = DayUsage {
            cost_micro_usd: 600,
            held_micro_usd: 300,
            ..DayUsage::default()
        };
        assert!(check_budget(&limits, &usage, 100, day).is_ok());
        let e = check_budget(&limits, &usage, 101, day).unwrap_err();
        assert_eq!(
            e,
            BudgetExceeded {
                spent_micro_usd: 600,
                held_micro_usd: 300,
                needed_micro_usd: 101,
                budget_micro_usd: 1_000,
                resets_at: "2027-01-01T00:00:00Z".into(),
            }
        );
        let err = RateError::BudgetExceeded(e);
        assert_eq!(err.code(), "budget_exceeded");
        let m = err.message();
        assert!(
            m.contains("$0.0006 of $0.001") && m.contains("2027-01-01T00:00:00Z"),
            "{m}"
        );
        usage.held_micro_usd = 0;
        assert!(check_budget(&limits, &usage, 400, day).is_ok());
    }

    #[test]
    fn precheck_refuses_what_can_never_fit_and_unpriced_models() {
        let limits = Limits::defaults();
        let model = "anthropic.claude-3-5-haiku-20241022-v1:0";
        let estimate = |input_tokens, output_tokens| TokenUsage {
            input_tokens,
            output_tokens,
        };
        // 1,000 in at $0.0008 + 1,000 out at $0.004 per 1,000.
        assert_eq!(
            precheck(&limits, model, estimate(1_000, 1_000)).unwrap(),
            4_800
        );
        let e = precheck(&limits, model, estimate(140_001, 10_000)).unwrap_err();
        assert!(matches!(
            e,
            RateError::TooLarge {
                tokens: 150_001,
                capacity: 150_000
            }
        ));
        assert_eq!(e.code(), "model_request_too_large");
        let e = precheck(&limits, "scripted", estimate(10, 10)).unwrap_err();
        assert_eq!(e.code(), "model_unpriced");
        assert!(!e.message().contains("scripted"), "{}", e.message());
    }

    #[test]
    fn a_replys_usage_settles_as_token_usage() {
        let u = crate::model::Usage {
            input_tokens: 1_200,
            output_tokens: 340,
            total_tokens: 1_540,
        };
        assert_eq!(
            TokenUsage::from(u),
            TokenUsage {
                input_tokens: 1_200,
                output_tokens: 340
            }
        );
        assert_eq!(TokenUsage::from(u).total(), 1_540);
    }

    #[test]
    fn days_and_resets() {
        // 2026-12-03T23:59:59.999Z and one millisecond later.
        let ms = 1_796_342_399_999;
        assert_eq!(day_string(day_of(ms)), "2026-12-03");
        assert_eq!(day_string(day_of(ms + 1)), "2026-12-04");
        assert_eq!(resets_at(day_of(ms)), "2026-12-04T00:00:00Z");
        assert_eq!(parse_day("2026-12-03"), Some(day_of(ms)));
        assert_eq!(parse_day("2026-13-03"), None);
        assert_eq!(parse_day("yesterday"), None);
    }

    #[test]
    fn backoff_stays_under_its_ceiling_and_spreads() {
        let rtt = Duration::from_millis(20);
        for attempt in 0..12 {
            let ceiling = (20u64 << attempt.min(6)).min(1_000);
            let pauses: Vec<u128> = (0..200)
                .map(|_| backoff(attempt, rtt).as_millis())
                .collect();
            assert!(
                pauses.iter().all(|&p| p <= u128::from(ceiling)),
                "{attempt}"
            );
            let mean = pauses.iter().sum::<u128>() as f64 / 200.0;
            assert!(
                (ceiling as f64 * 0.3..ceiling as f64 * 0.7).contains(&mean),
                "{attempt}: mean {mean} of ceiling {ceiling}"
            );
        }
        assert!(backoff(0, Duration::ZERO) <= Duration::from_millis(5));
    }
}
