//! Token-bucket arithmetic: refill, admission decisions and settling, in thousandths of a
//! request or token (see the module above for the rounding rule). Pure: the caller brings the
//! clock and the stored levels.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BucketLimits, Limits};

/// Thousandths of a request or token per request or token (bucket levels are integers).
pub const MILLI: i64 = 1000;

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
