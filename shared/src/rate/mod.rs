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

mod backoff;
mod buckets;
mod budget;
mod prices;
#[cfg(test)]
mod tests;

pub use backoff::*;
pub use buckets::*;
pub use budget::*;
pub use prices::*;

use crate::store::StoreError;

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
