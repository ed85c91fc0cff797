//! Unit tests of the limiter's pure parts.

use std::time::Duration;

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
    let Decision::Admit { owner, global, .. } = decide(&limits, Some(global), Some(owner), 300, 0)
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
