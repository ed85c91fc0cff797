//! The language model's shared rate limit and daily budget against the AWS emulator (real
//! DynamoDB transactions and conditions, as every Lambda instance would share them): 16
//! concurrent callers hammering one bucket are never admitted more than `capacity + rate x
//! elapsed` (the global bucket, an owner's bucket and the token bucket, each measured on its
//! own); concurrent callers against a budget that holds five calls get exactly five; a settle
//! gives back what a call did not use, charges an overrun, and applies once.
//!
//! The unit tests of the same semantics (refill, settle, budget, with a set clock) are in
//! `shared/src/memory/rate.rs` and `shared/src/rate.rs`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_e2e::stack_with;
use tessera_shared::ports::{RateBuckets, UsageReader};
use tessera_shared::rate::{
    day_of, Admission, BucketLimits, Clock, DayUsage, Limits, Prices, RateError, Reservation,
    Settled, SystemClock, TokenUsage,
};
use tessera_shared::store::rate::RateStore;

/// Any model at $1 per 1,000 input tokens and $2 per 1,000 output tokens: 1,000 and 2,000
/// micro-dollars per token.
const PRICES: &str = r#"{"*": {"input_per_1k": 1, "output_per_1k": 2}}"#;

/// Limits that never bind, for the buckets a scenario does not measure.
const ROOMY: BucketLimits = BucketLimits {
    requests: 1_000_000,
    tokens: 1_000_000_000,
};

/// How long each hammer runs.
const RUN: Duration = Duration::from_secs(8);

/// The period of the hammered buckets (`TESSERA_MODEL_LIMIT_PERIOD_MS`): short, so a run sees
/// the burst and a whole period of refill; long enough that the emulator, serving every
/// caller's reads and transactions one at a time (~60 ms a transaction), admits faster than
/// the bucket refills, so the bucket is what limits (at 20 per 2 s the emulator would be).
const PERIOD_MS: u64 = 8_000;

const CALLERS: usize = 16;

fn limits(period_ms: u64, global: BucketLimits, owner: BucketLimits, budget: u64) -> Limits {
    Limits {
        period_ms,
        global,
        owner,
        prices: Prices::parse(PRICES).expect("test prices"),
        daily_budget_micro_usd: budget,
    }
}

fn unique(what: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{n:x}")
}

fn est(input_tokens: u64, output_tokens: u64) -> TokenUsage {
    TokenUsage {
        input_tokens,
        output_tokens,
    }
}

async fn store(limits: Limits) -> (tessera_e2e::LocalStack, Arc<RateStore>) {
    let stack = stack_with(|o| o.no_pollers = true).await;
    let store = RateStore::new(
        stack.clients.dynamodb.clone(),
        &stack.config.jobs_table,
        limits,
    );
    (stack, Arc::new(store))
}

/// What a hammer measured.
struct Hammered {
    /// The limiter's admission times, per owner.
    admitted: BTreeMap<String, Vec<i64>>,
    waits: u64,
    /// From before the first call to after the last answer, on the limiter's clock.
    elapsed_ms: i64,
}

impl Hammered {
    fn all(&self) -> Vec<i64> {
        let mut all: Vec<i64> = self.admitted.values().flatten().copied().collect();
        all.sort_unstable();
        all
    }
}

/// `CALLERS` tasks, caller `i` as `owners[i % owners.len()]`, each reserving `estimate` again
/// and again for [`RUN`]: after `Wait` it pauses as long as it was told (so every waiting
/// caller comes back at the moment the bucket refills, and they race for it) and asks again.
async fn hammer(
    store: &Arc<RateStore>,
    model: &str,
    owners: &[String],
    estimate: TokenUsage,
) -> Hammered {
    // One hammer at a time in this binary: the emulator serves DynamoDB requests one at a time,
    // and two hammers at once would each measure half an emulator.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let start_ms = SystemClock.now_ms();
    let until = Instant::now() + RUN;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CALLERS {
        let (store, model) = (store.clone(), model.to_string());
        let owner = owners[i % owners.len()].clone();
        tasks.spawn(async move {
            let (mut admitted, mut waits) = (Vec::new(), 0u64);
            while Instant::now() < until {
                match store.reserve(&model, &owner, estimate).await {
                    Ok(Admission::Admitted(r)) => admitted.push(r.admitted_at_ms),
                    Ok(Admission::Wait { retry_after }) => {
                        waits += 1;
                        tokio::time::sleep(retry_after.min(Duration::from_secs(1))).await;
                    }
                    Err(e) => panic!("caller {i} ({owner}): {e:?}"),
                }
            }
            (owner, admitted, waits)
        });
    }
    let mut out = Hammered {
        admitted: BTreeMap::new(),
        waits: 0,
        elapsed_ms: 0,
    };
    while let Some(r) = tasks.join_next().await {
        let (owner, admitted, waits) = r.expect("caller task");
        out.admitted.entry(owner).or_default().extend(admitted);
        out.waits += waits;
    }
    out.elapsed_ms = SystemClock.now_ms() - start_ms;
    for times in out.admitted.values_mut() {
        times.sort_unstable();
    }
    out
}

/// The most a bucket of `capacity` per `period_ms` may give in `span_ms` (full at the start):
/// capacity + rate x span, rounded down.
fn allowed(capacity: u64, period_ms: u64, span_ms: i64) -> u64 {
    capacity + span_ms as u64 * capacity / period_ms
}

/// A window of admissions and what the bucket allowed in it.
#[derive(Debug)]
struct Window {
    given: u64,
    allowed: u64,
    span_ms: i64,
}

/// Among every window between two admissions (`times` sorted, `weight` each), the one that
/// comes closest to (or goes furthest past) its bound.
fn tightest(times: &[i64], weight: u64, capacity: u64, period_ms: u64) -> Window {
    let mut worst = Window {
        given: 0,
        allowed: capacity,
        span_ms: 0,
    };
    for i in 0..times.len() {
        for j in i..times.len() {
            let w = Window {
                given: (j - i + 1) as u64 * weight,
                allowed: allowed(capacity, period_ms, times[j] - times[i]),
                span_ms: times[j] - times[i],
            };
            if w.given as i64 - w.allowed as i64 > worst.given as i64 - worst.allowed as i64 {
                worst = w;
            }
        }
    }
    worst
}

/// Asserts that the bucket never gave more than its bound, over the whole run and in every
/// window, and that it was the limit (callers were told to wait), then prints the figures.
fn check(
    what: &str,
    callers: usize,
    times: &[i64],
    weight: u64,
    capacity: u64,
    period_ms: u64,
    h: &Hammered,
) {
    let given = times.len() as u64 * weight;
    let bound = allowed(capacity, period_ms, h.elapsed_ms);
    let w = tightest(times, weight, capacity, period_ms);
    println!(
        "{what}: {callers} callers, {} ms: admitted {given}, allowed {bound} ({capacity} + \
         {capacity} per {period_ms} ms x {} ms); tightest window: {} in {} ms, allowed {}; \
         {} waits (all callers)",
        h.elapsed_ms, h.elapsed_ms, w.given, w.span_ms, w.allowed, h.waits
    );
    assert!(
        given <= bound,
        "{what}: over-admitted over the run: {given} > {bound}"
    );
    assert!(
        w.given <= w.allowed,
        "{what}: over-admitted in a window: {w:?}"
    );
    assert!(
        given >= capacity,
        "{what}: the full bucket ({capacity}) was not all admitted in {} ms: {given}",
        h.elapsed_ms
    );
    assert!(
        h.waits > 0,
        "{what}: nobody waited: the limit never bound, the test shows nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_callers_never_pass_the_global_request_rate() {
    // 20 requests per PERIOD for the model; every caller its own owner, unlimited.
    let (_stack, store) = store(limits(
        PERIOD_MS,
        BucketLimits {
            requests: 20,
            tokens: ROOMY.tokens,
        },
        ROOMY,
        u64::MAX / 2,
    ))
    .await;
    let owners: Vec<String> = (0..CALLERS).map(|i| format!("owner-{i}")).collect();
    let h = hammer(&store, &unique("global"), &owners, est(10, 10)).await;
    check("global requests", CALLERS, &h.all(), 1, 20, PERIOD_MS, &h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_callers_never_pass_an_owners_request_rate() {
    // 10 requests per PERIOD per owner, two owners of 8 callers each; the model unlimited.
    let (_stack, store) = store(limits(
        PERIOD_MS,
        ROOMY,
        BucketLimits {
            requests: 10,
            tokens: ROOMY.tokens,
        },
        u64::MAX / 2,
    ))
    .await;
    let owners = vec!["alice".to_string(), "bob".to_string()];
    let h = hammer(&store, &unique("owner"), &owners, est(10, 10)).await;
    assert_eq!(h.admitted.len(), 2, "both owners admitted");
    for (owner, times) in &h.admitted {
        check(
            &format!("owner {owner} requests"),
            CALLERS / 2,
            times,
            1,
            10,
            PERIOD_MS,
            &h,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_callers_never_pass_the_token_rate() {
    // 2,000 tokens per PERIOD for the model, 100 per call (50 input + 50 maxTokens): 20 calls'
    // worth. Requests unlimited.
    let (_stack, store) = store(limits(
        PERIOD_MS,
        BucketLimits {
            requests: ROOMY.requests,
            tokens: 2_000,
        },
        ROOMY,
        u64::MAX / 2,
    ))
    .await;
    let owners: Vec<String> = (0..4).map(|i| format!("owner-{i}")).collect();
    let h = hammer(&store, &unique("tokens"), &owners, est(50, 50)).await;
    check(
        "global tokens",
        CALLERS,
        &h.all(),
        100,
        2_000,
        PERIOD_MS,
        &h,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_get_exactly_the_calls_the_budget_holds() {
    // A call of 2 input + 2 output tokens may cost 2 x 1,000 + 2 x 2,000 = 6,000 micro-dollars;
    // a budget of 30,000 holds five, whoever asks first. Each caller asks for its own model, so
    // no bucket is shared and only the day's budget condition stands between them (callers of
    // one model would be serialised by the buckets' versions already).
    let (_stack, store) = store(limits(60_000, ROOMY, ROOMY, 30_000)).await;
    let model = unique("budget");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CALLERS {
        let (store, model) = (store.clone(), format!("{model}-{i}"));
        tasks.spawn(async move { store.reserve(&model, "carol", est(2, 2)).await });
    }
    let (mut admitted, mut refused) = (Vec::new(), 0);
    while let Some(r) = tasks.join_next().await {
        match r.expect("caller task") {
            Ok(Admission::Admitted(r)) => admitted.push(r),
            Err(RateError::BudgetExceeded(b)) => {
                assert_eq!(b.budget_micro_usd, 30_000);
                assert_eq!(b.needed_micro_usd, 6_000);
                assert!(
                    b.spent_micro_usd + b.held_micro_usd + 6_000 > 30_000,
                    "{b:?}"
                );
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    println!(
        "budget: {CALLERS} concurrent callers, budget for 5: {} admitted, {refused} refused",
        admitted.len()
    );
    assert_eq!((admitted.len(), refused), (5, CALLERS - 5));

    // Two settled far cheaper than held (1 input token: 1,000 each): room for one more call
    // (2,000 spent + 3 x 6,000 held + 6,000 = 26,000), not two (32,000).
    store.settle(&admitted[0], est(1, 0)).await.unwrap();
    store.settle(&admitted[1], est(1, 0)).await.unwrap();
    let sixth = match store.reserve(&model, "carol", est(2, 2)).await.unwrap() {
        Admission::Admitted(r) => r,
        other => panic!("{other:?}"),
    };
    let e = store.reserve(&model, "carol", est(2, 2)).await.unwrap_err();
    let RateError::BudgetExceeded(b) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        (b.spent_micro_usd, b.held_micro_usd, b.budget_micro_usd),
        (2_000, 4 * 6_000, 30_000)
    );
    let tomorrow = day_of(SystemClock.now_ms()).next_day().unwrap();
    assert_eq!(b.resets_at, format!("{tomorrow}T00:00:00Z"));
    assert_eq!(e.code(), "budget_exceeded");
    assert!(e.message().contains("$0.002 of $0.03"), "{}", e.message());

    for r in admitted[2..].iter().chain([&sixth]) {
        store.settle(r, est(2, 2)).await.unwrap();
    }
    let usage = store
        .day_usage("carol", day_of(SystemClock.now_ms()))
        .await
        .unwrap();
    assert_eq!(
        usage,
        DayUsage {
            day: tomorrow.previous_day().unwrap().to_string(),
            input_tokens: 1 + 1 + 4 * 2,
            output_tokens: 4 * 2,
            calls: 6,
            cost_micro_usd: 2_000 + 4 * 6_000,
            held_micro_usd: 0,
        }
    );
    // Another owner's budget is untouched.
    assert!(matches!(
        store.reserve(&model, "dave", est(2, 2)).await.unwrap(),
        Admission::Admitted(_)
    ));
}

/// A clock the test moves.
#[derive(Debug)]
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_gives_back_unused_tokens_charges_an_overrun_and_applies_once() {
    // An owner holds 1,000 tokens per 2 s (0.5 per ms); the time is the test's.
    let clock = Arc::new(TestClock(AtomicI64::new(SystemClock.now_ms())));
    let (_stack, store) = store(limits(
        2_000,
        ROOMY,
        BucketLimits {
            requests: 100,
            tokens: 1_000,
        },
        u64::MAX / 2,
    ))
    .await;
    let store = Arc::new((*store).clone().with_clock(clock.clone()));
    let model = unique("settle");
    let reserve = |e: TokenUsage| {
        let (store, model) = (store.clone(), model.clone());
        async move { store.reserve(&model, "erin", e).await.unwrap() }
    };
    let admitted = |a: Admission| -> Reservation {
        match a {
            Admission::Admitted(r) => r,
            other => panic!("expected admission, got {other:?}"),
        }
    };

    let first = admitted(reserve(est(300, 500)).await);
    // 200 left: 300 more wait for 100 tokens, 200 ms.
    assert_eq!(
        reserve(est(100, 200)).await,
        Admission::Wait {
            retry_after: Duration::from_millis(200)
        }
    );
    // The call used 300 + 100: 400 come back, and the 300 fit at once.
    assert_eq!(
        store.settle(&first, est(300, 100)).await.unwrap(),
        Settled::Applied {
            cost_micro_usd: 300 * 1_000 + 100 * 2_000,
            returned_tokens: 400
        }
    );
    let second = admitted(reserve(est(100, 200)).await);
    // Settling again gives nothing back twice: 300 are left, not 700.
    assert_eq!(
        store.settle(&first, est(300, 100)).await.unwrap(),
        Settled::AlreadySettled
    );
    admitted(reserve(est(100, 200)).await);
    assert_eq!(
        reserve(est(1, 0)).await,
        Admission::Wait {
            retry_after: Duration::from_millis(2)
        }
    );
    // A whole period later the bucket is full: what comes back stops at capacity.
    clock.0.fetch_add(2_000, Ordering::SeqCst);
    store.settle(&second, est(0, 0)).await.unwrap();
    admitted(reserve(est(500, 500)).await);
    assert_eq!(
        reserve(est(1, 0)).await,
        Admission::Wait {
            retry_after: Duration::from_millis(2)
        }
    );
    // An input estimate 1,300 too low: 900 left - 1,300 = 400 owed, and the next call waits
    // for 400 + 100 tokens at 0.5 per ms.
    clock.0.fetch_add(2_000, Ordering::SeqCst);
    let low = admitted(reserve(est(100, 0)).await);
    assert_eq!(
        store.settle(&low, est(1_400, 0)).await.unwrap(),
        Settled::Applied {
            cost_micro_usd: 1_400_000,
            returned_tokens: -1_300
        }
    );
    assert_eq!(
        reserve(est(100, 0)).await,
        Admission::Wait {
            retry_after: Duration::from_millis(1_000)
        }
    );
}
