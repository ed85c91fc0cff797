//! Every model call the agent makes goes through a [`Gate`]: capacity is reserved before the
//! call (the input estimate plus `max_tokens`, from the shared rate buckets and the owner's
//! daily budget: [`Admission`]) and settled with the usage the reply reports. A throttled or
//! refused call is not waited for here: the caller gets [`Capacity::Wait`] with a delay and
//! puts its work back on its queue (a Lambda never sleeps waiting for capacity).
//!
//! Not here: the buckets themselves (`store::rate`).

use std::time::Duration;

use async_trait::async_trait;

use crate::model::{ChatModel, ContentBlock, ConverseRequest, ModelError, ModelReply, Usage};

/// Why a call was not made, or failed.
#[derive(Debug)]
pub enum Capacity {
    /// No capacity now (the rate buckets, or the service throttled): try again after this.
    Wait(Duration),
    /// The owner's daily budget is spent (`budget_exceeded`): the message says the figures.
    Budget(String),
    /// The model failed in another way.
    Model(ModelError),
}

/// A reservation to settle after the call.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub reserved_tokens: u32,
    /// Whatever the admission needs to settle (opaque here).
    pub token: String,
}

/// Capacity for model calls, shared by every instance (the rate buckets and budgets).
#[async_trait]
pub trait Admission: Send + Sync {
    /// Reserves one request and `input + max_tokens` tokens for `owner`'s call to `model_id`.
    async fn reserve(
        &self,
        model_id: &str,
        owner: &str,
        input: u32,
        max_tokens: u32,
    ) -> Result<Ticket, Capacity>;
    /// Settles a reservation with what the call used (`None`: the call failed before usage);
    /// returns the call's estimated cost in millionths of a US dollar.
    async fn settle(&self, ticket: Ticket, usage: Option<&Usage>) -> u64;
}

/// [`Admission`] over the shared rate buckets and daily budgets (`store::rate`).
pub struct RateAdmission(pub std::sync::Arc<dyn crate::ports::RateBuckets>);

#[async_trait]
impl Admission for RateAdmission {
    async fn reserve(
        &self,
        model_id: &str,
        owner: &str,
        input: u32,
        max_tokens: u32,
    ) -> Result<Ticket, Capacity> {
        use crate::rate::{Admission as A, RateError, TokenUsage};
        let estimate = TokenUsage {
            input_tokens: input as u64,
            output_tokens: max_tokens as u64,
        };
        match self.0.reserve(model_id, owner, estimate).await {
            Ok(A::Admitted(r)) => Ok(Ticket {
                reserved_tokens: input + max_tokens,
                token: serde_json::to_string(&r).expect("a reservation is JSON"),
            }),
            Ok(A::Wait { retry_after }) => Err(Capacity::Wait(retry_after)),
            Err(e @ RateError::BudgetExceeded(_)) => Err(Capacity::Budget(e.message())),
            Err(RateError::Store(e)) => {
                tracing::warn!(error = %e, "rate buckets unavailable; the work is retried later");
                Err(Capacity::Wait(Duration::from_secs(5)))
            }
            Err(e) => {
                tracing::error!(code = e.code(), error = %e, "model call refused by the limiter");
                Err(Capacity::Model(ModelError::Other(e.message())))
            }
        }
    }

    async fn settle(&self, ticket: Ticket, usage: Option<&Usage>) -> u64 {
        let Ok(r) = serde_json::from_str::<crate::rate::Reservation>(&ticket.token) else {
            return 0;
        };
        let used = usage.copied().map(Into::into).unwrap_or_default();
        match self.0.settle(&r, used).await {
            Ok(crate::rate::Settled::Applied { cost_micro_usd, .. }) => cost_micro_usd,
            Ok(_) => 0,
            Err(e) => {
                // The reservation holds its worst case until the day ends: safe, not exact.
                tracing::warn!(error = %e, "could not settle a model reservation");
                0
            }
        }
    }
}

/// The input tokens of a request, estimated (4 bytes a token, rounded up, at least 1).
pub fn estimate_input_tokens(req: &ConverseRequest) -> u32 {
    let mut bytes = req.system.as_ref().map_or(0, String::len);
    for m in &req.messages {
        for b in &m.content {
            bytes += match b {
                ContentBlock::Text(t) => t.len(),
                ContentBlock::ToolUse(t) => t.name.len() + t.input.to_string().len(),
                ContentBlock::ToolResult(r) => {
                    serde_json::to_string(&r.content).map_or(0, |s| s.len())
                }
            };
        }
    }
    for t in &req.tools {
        bytes += t.name.len() + t.description.len() + t.input_schema.to_string().len();
    }
    (bytes.div_ceil(4) as u32).max(1)
}

/// Delay before work throttled `attempt` times (counting from 0) is tried again: exponential
/// from 2 s, capped at 5 minutes, with full jitter on the upper half.
pub fn backoff(attempt: u32) -> Duration {
    let base = 2u64.saturating_pow(attempt.min(8) + 1).min(300);
    let jitter = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_secs(base / 2 + jitter)
}

/// Model calls of one owner, through the shared capacity.
pub struct Gate<'a> {
    pub owner: &'a str,
    pub admission: Option<&'a dyn Admission>,
    /// Throttles already met by this piece of work (for the backoff).
    pub attempt: u32,
    /// Estimated cost of the calls made through this gate, in millionths of a US dollar.
    pub spent_micro_usd: std::sync::atomic::AtomicU64,
}

impl<'a> Gate<'a> {
    pub fn new(owner: &'a str, admission: Option<&'a dyn Admission>, attempt: u32) -> Self {
        Gate {
            owner,
            admission,
            attempt,
            spent_micro_usd: Default::default(),
        }
    }

    /// What the calls so far cost.
    pub fn spent(&self) -> u64 {
        self.spent_micro_usd
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Gate<'_> {
    /// Makes one call (see the module docs).
    pub async fn call(
        &self,
        model: &dyn ChatModel,
        req: ConverseRequest,
    ) -> Result<ModelReply, Capacity> {
        let model_id = req.model_id.clone();
        let input = estimate_input_tokens(&req);
        let ticket = match self.admission {
            Some(a) => Some(
                a.reserve(&model_id, self.owner, input, req.inference.max_tokens)
                    .await?,
            ),
            None => None,
        };
        let res = model.converse(req).await;
        if let (Some(a), Some(t)) = (self.admission, ticket) {
            let cost = a.settle(t, res.as_ref().ok().map(|r| &r.usage)).await;
            self.spent_micro_usd
                .fetch_add(cost, std::sync::atomic::Ordering::Relaxed);
        }
        match res {
            Ok(r) => Ok(r),
            Err(e) if e.retryable() => {
                tracing::info!(
                    code = e.code(),
                    "model throttled or busy; the work is retried later"
                );
                Err(Capacity::Wait(backoff(self.attempt)))
            }
            Err(e) => Err(Capacity::Model(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 0..20 {
            let d = backoff(attempt).as_secs();
            let base = 2u64.pow(attempt.min(8) + 1).min(300);
            assert!(d >= base / 2 && d <= base, "{attempt}: {d}");
        }
    }
}
