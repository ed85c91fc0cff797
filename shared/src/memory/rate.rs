//! Rate buckets and daily usage in memory, with the semantics of the DynamoDB adapter
//! (`store::rate`): each reservation or settle is checked and applied under one lock, as
//! DynamoDB applies one transaction, and time is the test's ([`ManualClock`]). For unit tests of
//! the limiter's behaviour (refill, settle, budget) and of the agent's handling of `Wait`.
//!
//! Not here: concurrency against the real wire protocol (tests/rate_limit.rs, on the emulator).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::ports::{RateBuckets, UsageReader};
use crate::rate::{
    call_cost, check_budget, day_of, day_string, decide, precheck, settle_levels, unused_tokens,
    Admission, Clock, DayUsage, Decision, Levels, Limits, RateError, Reservation, Scope, Settled,
    TokenUsage,
};
use crate::store::StoreError;

/// A clock a test sets and advances (milliseconds since the Unix epoch).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(ms: i64) -> Arc<Self> {
        Arc::new(ManualClock(AtomicI64::new(ms)))
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Default)]
struct State {
    buckets: HashMap<(String, Scope), Levels>,
    /// By (owner, day): the usage and what is committed (spent + held).
    days: HashMap<(String, String), DayUsage>,
    settled: HashSet<String>,
}

/// [`RateBuckets`] and [`UsageReader`] in memory.
#[derive(Debug)]
pub struct MemoryRateBuckets {
    limits: Limits,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl MemoryRateBuckets {
    pub fn new(limits: Limits, clock: Arc<dyn Clock>) -> Self {
        MemoryRateBuckets {
            limits,
            clock,
            state: Mutex::new(State::default()),
        }
    }

    /// A bucket's stored levels (`None`: never used), for tests.
    pub fn levels(&self, model: &str, scope: &Scope) -> Option<Levels> {
        let state = self.state.lock().expect("rate state");
        state
            .buckets
            .get(&(model.to_string(), scope.clone()))
            .copied()
    }
}

#[async_trait]
impl RateBuckets for MemoryRateBuckets {
    async fn reserve(
        &self,
        model: &str,
        owner: &str,
        estimate: TokenUsage,
    ) -> Result<Admission, RateError> {
        let held = precheck(&self.limits, model, estimate)?;
        let now = self.clock.now_ms();
        let day = day_of(now);
        let day_key = (owner.to_string(), day_string(day));
        let g_key = (model.to_string(), Scope::Global);
        let o_key = (model.to_string(), Scope::Owner(owner.to_string()));
        let mut s = self.state.lock().expect("rate state");
        let usage = s.days.get(&day_key).cloned().unwrap_or_default();
        check_budget(&self.limits, &usage, held, day).map_err(RateError::BudgetExceeded)?;
        let (global, mine) = (
            s.buckets.get(&g_key).copied(),
            s.buckets.get(&o_key).copied(),
        );
        match decide(&self.limits, global, mine, estimate.total(), now) {
            Decision::Wait(retry_after) => Ok(Admission::Wait { retry_after }),
            Decision::Admit {
                global,
                owner: o,
                at_ms,
            } => {
                s.buckets.insert(g_key, global);
                s.buckets.insert(o_key, o);
                let entry = s.days.entry(day_key.clone()).or_default();
                entry.day = day_key.1.clone();
                entry.held_micro_usd += held;
                Ok(Admission::Admitted(Reservation {
                    id: uuid::Uuid::new_v4().to_string(),
                    model: model.to_string(),
                    owner: owner.to_string(),
                    tokens: estimate.total(),
                    day: day_key.1,
                    held_micro_usd: held,
                    admitted_at_ms: at_ms,
                }))
            }
        }
    }

    async fn settle(
        &self,
        reservation: &Reservation,
        used: TokenUsage,
    ) -> Result<Settled, RateError> {
        let r = reservation;
        let cost = call_cost(&self.limits, &r.model, used)?;
        let returned = unused_tokens(r, used);
        let now = self.clock.now_ms();
        let mut s = self.state.lock().expect("rate state");
        if !s.settled.insert(r.id.clone()) {
            return Ok(Settled::AlreadySettled);
        }
        if returned != 0 {
            for scope in [Scope::Global, Scope::Owner(r.owner.clone())] {
                let key = (r.model.clone(), scope);
                let stored = s.buckets.get(&key).copied();
                let levels = settle_levels(&self.limits, &key.1, stored, returned, now);
                s.buckets.insert(key, levels);
            }
        }
        let day = s.days.entry((r.owner.clone(), r.day.clone())).or_default();
        day.day = r.day.clone();
        day.input_tokens += used.input_tokens;
        day.output_tokens += used.output_tokens;
        day.calls += 1;
        day.cost_micro_usd += cost;
        day.held_micro_usd = day.held_micro_usd.saturating_sub(r.held_micro_usd);
        Ok(Settled::Applied {
            cost_micro_usd: cost,
            returned_tokens: returned,
        })
    }
}

#[async_trait]
impl UsageReader for MemoryRateBuckets {
    async fn day_usage(&self, owner: &str, day: time::Date) -> Result<DayUsage, StoreError> {
        let day = day_string(day);
        let s = self.state.lock().expect("rate state");
        Ok(s.days
            .get(&(owner.to_string(), day.clone()))
            .cloned()
            .unwrap_or(DayUsage {
                day,
                ..DayUsage::default()
            }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::rate::{BucketLimits, Prices, MILLI};

    const MODEL: &str = "m";
    /// 2026-12-03T12:00:00Z.
    const NOON: i64 = 1_796_299_200_000;

    fn limits() -> Limits {
        Limits {
            period_ms: 2_000,
            global: BucketLimits {
                requests: 20,
                tokens: 10_000,
            },
            owner: BucketLimits {
                requests: 5,
                tokens: 1_000,
            },
            // $1 in, $2 out per 1,000 tokens: 1,000 micro-dollars in, 2,000 out per token.
            prices: Prices::parse(r#"{"m": {"input_per_1k": 1, "output_per_1k": 2}}"#).unwrap(),
            daily_budget_micro_usd: 100_000_000,
        }
    }

    fn est(input_tokens: u64, output_tokens: u64) -> TokenUsage {
        TokenUsage {
            input_tokens,
            output_tokens,
        }
    }

    async fn admitted(b: &MemoryRateBuckets, owner: &str, e: TokenUsage) -> Reservation {
        match b.reserve(MODEL, owner, e).await.unwrap() {
            Admission::Admitted(r) => r,
            other => panic!("expected admission, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_owner_gets_its_capacity_then_waits_for_the_refill() {
        let clock = ManualClock::at(NOON);
        let b = MemoryRateBuckets::new(limits(), clock.clone());
        for _ in 0..5 {
            admitted(&b, "alice", est(10, 10)).await;
        }
        // 5 requests per 2 s: the next one refills in 400 ms.
        assert_eq!(
            b.reserve(MODEL, "alice", est(10, 10)).await.unwrap(),
            Admission::Wait {
                retry_after: Duration::from_millis(400)
            }
        );
        // Another owner has its own bucket (the global one has 15 left).
        admitted(&b, "bob", est(10, 10)).await;
        clock.advance(399);
        assert!(matches!(
            b.reserve(MODEL, "alice", est(10, 10)).await.unwrap(),
            Admission::Wait { .. }
        ));
        clock.advance(1);
        admitted(&b, "alice", est(10, 10)).await;
        let g = b.levels(MODEL, &Scope::Global).unwrap();
        // 20, 7 admitted, 4 refilled in 400 ms (20 per 2 s).
        assert_eq!(g.requests_milli, 17 * MILLI);
    }

    #[tokio::test]
    async fn tokens_wait_and_settle_gives_back_what_was_not_used() {
        let clock = ManualClock::at(NOON);
        let b = MemoryRateBuckets::new(limits(), clock.clone());
        let r = admitted(&b, "alice", est(300, 500)).await;
        assert_eq!(r.tokens, 800);
        // 200 left for alice: 300 more wait 100 tokens at 0.5 per ms.
        assert_eq!(
            b.reserve(MODEL, "alice", est(100, 200)).await.unwrap(),
            Admission::Wait {
                retry_after: Duration::from_millis(200)
            }
        );
        // The call used 300 in and 100 out: 400 of 800 come back, and 300 fit at once.
        let settled = b.settle(&r, est(300, 100)).await.unwrap();
        assert_eq!(
            settled,
            Settled::Applied {
                cost_micro_usd: 300 * 1_000 + 100 * 2_000,
                returned_tokens: 400
            }
        );
        let o = b.levels(MODEL, &Scope::Owner("alice".into())).unwrap();
        assert_eq!(o.tokens_milli, 600 * MILLI);
        admitted(&b, "alice", est(100, 200)).await;
        // Settling twice changes nothing.
        assert_eq!(
            b.settle(&r, est(300, 100)).await.unwrap(),
            Settled::AlreadySettled
        );
        assert_eq!(
            b.levels(MODEL, &Scope::Owner("alice".into()))
                .unwrap()
                .tokens_milli,
            300 * MILLI
        );
    }

    #[tokio::test]
    async fn settle_caps_at_capacity_and_charges_an_overrun() {
        let clock = ManualClock::at(NOON);
        let b = MemoryRateBuckets::new(limits(), clock.clone());
        let r = admitted(&b, "alice", est(100, 500)).await;
        // A whole period later the bucket is full again: nothing returned goes above 1,000.
        clock.advance(2_000);
        b.settle(&r, est(50, 0)).await.unwrap();
        let o = b.levels(MODEL, &Scope::Owner("alice".into())).unwrap();
        assert_eq!(o.tokens_milli, 1_000 * MILLI);
        // An input estimate too low by 700: the overrun is owed and delays the next call.
        let r = admitted(&b, "alice", est(100, 500)).await;
        b.settle(&r, est(800, 500)).await.unwrap();
        let o = b.levels(MODEL, &Scope::Owner("alice".into())).unwrap();
        assert_eq!(o.tokens_milli, -300 * MILLI);
        assert_eq!(
            b.reserve(MODEL, "alice", est(100, 0)).await.unwrap(),
            Admission::Wait {
                retry_after: Duration::from_millis(800)
            }
        );
    }

    #[tokio::test]
    async fn the_budget_refuses_the_call_that_would_pass_it_and_resets_at_midnight() {
        let clock = ManualClock::at(NOON);
        let limits = Limits {
            daily_budget_micro_usd: 1_000_000,
            ..limits()
        };
        let b = MemoryRateBuckets::new(limits, clock.clone());
        // Each call may cost 100 * 1,000 + 200 * 2,000 = 500,000 of the 1,000,000 budget.
        let first = admitted(&b, "alice", est(100, 200)).await;
        let second = admitted(&b, "alice", est(100, 200)).await;
        let e = b.reserve(MODEL, "alice", est(100, 200)).await.unwrap_err();
        let RateError::BudgetExceeded(figures) = &e else {
            panic!("{e:?}");
        };
        assert_eq!(
            (figures.spent_micro_usd, figures.held_micro_usd),
            (0, 1_000_000)
        );
        assert_eq!(figures.resets_at, "2026-12-04T00:00:00Z");
        assert_eq!(e.code(), "budget_exceeded");
        // Settled cheaper than held: room for one more.
        b.settle(&first, est(100, 0)).await.unwrap();
        b.settle(&second, est(100, 0)).await.unwrap();
        let third = admitted(&b, "alice", est(100, 200)).await;
        b.settle(&third, est(100, 200)).await.unwrap();
        let usage = b.day_usage("alice", day_of(NOON)).await.unwrap();
        assert_eq!(
            usage,
            DayUsage {
                day: "2026-12-03".into(),
                input_tokens: 300,
                output_tokens: 200,
                calls: 3,
                cost_micro_usd: 700_000,
                held_micro_usd: 0,
            }
        );
        let e = b.reserve(MODEL, "alice", est(100, 200)).await.unwrap_err();
        assert!(
            matches!(&e, RateError::BudgetExceeded(f) if f.spent_micro_usd == 700_000),
            "{e:?}"
        );
        // Bob's budget is his own; alice's resets at the next UTC midnight.
        admitted(&b, "bob", est(100, 200)).await;
        clock.advance(12 * 3600 * 1000);
        admitted(&b, "alice", est(100, 200)).await;
    }

    #[tokio::test]
    async fn refusals_before_any_bucket() {
        let b = MemoryRateBuckets::new(limits(), ManualClock::at(NOON));
        let e = b.reserve(MODEL, "alice", est(900, 101)).await.unwrap_err();
        assert!(matches!(
            e,
            RateError::TooLarge {
                tokens: 1001,
                capacity: 1000
            }
        ));
        let e = b.reserve("other", "alice", est(1, 1)).await.unwrap_err();
        assert!(matches!(e, RateError::UnpricedModel { .. }));
        assert_eq!(b.levels(MODEL, &Scope::Global), None);
    }
}
