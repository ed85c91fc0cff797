//! One test per suggestion kind on small files profiled by the engine, each checking that the
//! document is valid (`parse_document`, `compile`, `against_profile`) and holds on its file.

use std::sync::Arc;

use super::*;
use crate::chunk::ChunkOptions;
use crate::file::{process_bytes, ProcessOptions};
use crate::rules::{against_profile, parse_document, CompiledRules, ResolvedRefs};

fn profile_with(csv: &str, popts: ProfileOptions) -> ProfileReport {
    let opts = ProcessOptions {
        chunk_size: 1 << 20,
        workers: 1,
        profile_only: true,
        chunk: ChunkOptions {
            profile: popts,
            ..ChunkOptions::default()
        },
        ..ProcessOptions::default()
    };
    process_bytes(csv.as_bytes(), &opts)
        .unwrap()
        .profile
        .report()
}

/// Suggests for `csv`, checks validity and that no record of `csv` violates any rule.
fn suggest_for(csv: &str) -> Suggestion {
    let report = profile_with(csv, suggest_profile_options());
    let s = suggest(
        &report,
        &SuggestOptions::for_profile(&suggest_profile_options()),
    );
    let text = serde_json::to_string(&s.rules).unwrap();
    let doc = parse_document(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    assert_eq!(doc, s.rules);
    assert_eq!(against_profile(&doc, &report), vec![], "{text}");
    let columns: Vec<String> = report.columns.iter().map(|c| c.name.clone()).collect();
    let compiled = CompiledRules::compile(&doc, &columns, &ResolvedRefs::none(), None)
        .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let out = process_bytes(
        csv.as_bytes(),
        &ProcessOptions {
            chunk_size: 1 << 20,
            workers: 1,
            chunk: ChunkOptions {
                rules: Some(Arc::new(compiled)),
                ..ChunkOptions::default()
            },
            ..ProcessOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        out.summary.rule_rejected_rows, 0,
        "{:?}",
        out.summary.violations
    );
    assert_eq!(s.reasons.len(), s.rules.rules.len());
    for (i, (r, why)) in s.rules.rules.iter().zip(&s.reasons).enumerate() {
        assert_eq!(why.rule, i);
        assert_eq!(why.path, format!("/rules/{i}"));
        assert_eq!(r.id.as_deref(), Some(why.id.as_str()));
        assert_eq!(r.column.as_deref(), Some(why.column.as_str()));
        assert!(!why.why.is_empty());
    }
    s
}

fn checks<'a>(s: &'a Suggestion, column: &str) -> Vec<&'a Check> {
    s.rules
        .rules
        .iter()
        .filter(|r| r.column.as_deref() == Some(column))
        .map(|r| &r.check)
        .collect()
}

fn csv(header: &str, rows: impl Iterator<Item = String>) -> String {
    let mut s = format!("{header}\n");
    for r in rows {
        s.push_str(&r);
        s.push('\n');
    }
    s
}

#[test]
fn completeness_only_where_every_row_has_a_value() {
    let s = suggest_for(&csv(
        "a,b",
        (0..100).map(|i| format!("x{},{}", i % 3, if i % 10 == 0 { "" } else { "y" })),
    ));
    assert!(checks(&s, "a").contains(&&Check::NotNull));
    assert!(!checks(&s, "b").contains(&&Check::NotNull));
    let why = &s.reasons.iter().find(|r| r.column == "a").unwrap().why;
    assert_eq!(why, "`a` has a value in all 100 rows");
    assert_eq!(s.source, Source::Profile);
}

#[test]
fn types_follow_the_inferred_type() {
    let s = suggest_for(&csv(
        "i,d,b,day,ts,txt",
        (0..60).map(|i| {
            format!(
                "{i},{}.5,{},2026-01-{:02},2026-01-02T10:{:02}:00Z,w{i} x",
                i,
                i % 2 == 0,
                i % 28 + 1,
                i % 60
            )
        }),
    ));
    let ty = |c: &str| {
        checks(&s, c).into_iter().find_map(|k| match k {
            Check::Type(t) => Some(t.clone()),
            _ => None,
        })
    };
    assert_eq!(ty("i"), Some(TypeSpec::Integer));
    assert_eq!(ty("d"), Some(TypeSpec::Decimal));
    assert_eq!(ty("b"), Some(TypeSpec::Boolean));
    assert_eq!(ty("day"), Some(TypeSpec::Date(FormatSpec::default())));
    assert_eq!(ty("ts"), Some(TypeSpec::Timestamp(FormatSpec::default())));
    assert_eq!(ty("txt"), None);
}

#[test]
fn ranges_add_the_margin_and_round_outward() {
    let s = suggest_for(&csv(
        "amount,delta,day,at,n",
        (0..=100).map(|i| {
            format!(
                "{}.25,{},2026-01-{:02},2026-03-01T{:02}:30:00Z,{}",
                i * 10,
                i as i64 - 50,
                i % 31 + 1,
                i % 24,
                i % 7 + 3
            )
        }),
    ));
    let range = |c: &str| {
        checks(&s, c).into_iter().find_map(|k| match k {
            Check::Range(r) => Some((r.min.clone(), r.max.clone())),
            _ => None,
        })
    };
    // 0.25..1000.25: span 1000, margin 100 rounded to 10, kept at 0 or above.
    assert_eq!(
        range("amount"),
        Some((Some(Bound::Number(0.0)), Some(Bound::Number(1110.0))))
    );
    // -50..50: margin 10 on each side.
    assert_eq!(
        range("delta"),
        Some((Some(Bound::Number(-60.0)), Some(Bound::Number(60.0))))
    );
    // 30 days of span: 3 days of margin.
    assert_eq!(
        range("day"),
        Some((
            Some(Bound::Text("2025-12-29".into())),
            Some(Bound::Text("2026-02-03".into()))
        ))
    );
    // Within one day: one day of margin, whole days.
    assert_eq!(
        range("at"),
        Some((
            Some(Bound::Text("2026-02-28T00:00:00Z".into())),
            Some(Bound::Text("2026-03-03T00:00:00Z".into()))
        ))
    );
    // 3..9 integers: margin 0.6 -> step 1.
    assert_eq!(
        range("n"),
        Some((Some(Bound::Number(2.0)), Some(Bound::Number(10.0))))
    );
    let why = &s
        .reasons
        .iter()
        .find(|r| r.column == "amount" && r.kind == Kind::Range)
        .unwrap()
        .why;
    assert!(
        why.contains("0.25 to 1000.25") && why.contains("10%"),
        "{why}"
    );
}

#[test]
fn numeric_bounds_never_cut_into_the_data() {
    for (lo, hi, int) in [
        (0.1, 0.3, false),
        (-0.07, 0.07, false),
        (1e-9, 2e-9, false),
        (5.0, 5.0, true),
        (0.0, 0.0, true),
        (-3.3, -3.3, false),
        (123456.789, 123456.79, false),
        (1e15, 1e15 + 3.0, true),
    ] {
        let (a, b, step) = bounds::numeric(lo, hi, 0.1, int).unwrap();
        assert!(a <= lo && b >= hi && a < b, "{lo} {hi} -> {a} {b}");
        assert!(step > 0.0);
        if int {
            assert_eq!(a.fract(), 0.0);
            assert_eq!(b.fract(), 0.0);
        }
        if lo >= 0.0 {
            assert!(a >= 0.0);
        }
    }
}

#[test]
fn one_of_for_low_cardinality_text_only_when_every_value_is_counted() {
    let s = suggest_for(&csv(
        "status,city,name",
        (0..500).map(|i| {
            format!(
                "{},c{},n{}",
                ["open", "closed", "held"][i % 3],
                i % 60,
                i % 200
            )
        }),
    ));
    assert!(checks(&s, "status").contains(&&Check::OneOf(OneOfCheck {
        values: Some(vec!["closed".into(), "held".into(), "open".into()]),
        reference: None,
        ignore_case: false,
    })));
    // 60 cities: more than MAX_ONE_OF; 200 names: more than MAX_ONE_OF.
    for c in ["city", "name"] {
        assert!(
            !checks(&s, c).iter().any(|k| matches!(k, Check::OneOf(_))),
            "{c}"
        );
    }
    // A job's profile (top 10 values) cannot list a 12-value column in full.
    let text = csv("k", (0..240).map(|i| format!("k{}", i % 12)));
    let report = profile_with(&text, ProfileOptions::default());
    let s = suggest(&report, &SuggestOptions::default());
    assert!(!checks(&s, "k").iter().any(|k| matches!(k, Check::OneOf(_))));
    let report = profile_with(&text, suggest_profile_options());
    let s = suggest(
        &report,
        &SuggestOptions::for_profile(&suggest_profile_options()),
    );
    assert!(checks(&s, "k").iter().any(|k| matches!(k, Check::OneOf(_))));
}

#[test]
fn e_mail_format_when_the_detector_matched_nearly_every_value() {
    let s = suggest_for(&csv(
        "email,mixed,intl",
        (0..300).map(|i| {
            format!(
                "user.{i}@mail{}.example.com,{},{}",
                i % 7,
                if i % 10 == 0 {
                    "not an address".to_string()
                } else {
                    format!("u{i}@x.org")
                },
                // The detector reads ASCII local parts only; the pattern takes these too.
                if i % 40 == 0 {
                    format!("chloé.{i}@example.fr")
                } else {
                    format!("chloe.{i}@example.fr")
                }
            )
        }),
    ));
    let email = Check::Matches(MatchesCheck {
        pattern: EMAIL_PATTERN.into(),
    });
    assert!(checks(&s, "email").contains(&&email));
    assert!(checks(&s, "intl").contains(&&email));
    let why = |c: &str| {
        s.reasons
            .iter()
            .find(|r| r.column == c && r.kind == Kind::Format)
            .unwrap()
            .why
            .clone()
    };
    assert!(why("email").contains("matched all 300"), "{}", why("email"));
    assert!(why("intl").contains("unverified"), "{}", why("intl"));
    // 10 % are not addresses: no format.
    assert!(!checks(&s, "mixed")
        .iter()
        .any(|k| matches!(k, Check::Matches(_))));
    let re = regex::Regex::new(EMAIL_PATTERN).unwrap();
    for bad in [
        "jane@",
        "@x.org",
        "jane#x.org",
        "jane@x",
        "jane@x..org",
        "a b@x.org",
        "jane@x.org.",
        "j@ne@x.org",
    ] {
        assert!(!re.is_match(bad), "{bad}");
    }
}

#[test]
fn an_unverified_e_mail_format_that_fails_its_file_is_pruned() {
    // 1 of 300 is not an address: over the 95 % share, so a candidate the dry run refutes.
    let text = csv(
        "email",
        (0..300).map(|i| {
            if i == 7 {
                "not an address".to_string()
            } else {
                format!("u{i}@x.org")
            }
        }),
    );
    let report = profile_with(&text, suggest_profile_options());
    let mut s = suggest(
        &report,
        &SuggestOptions::for_profile(&suggest_profile_options()),
    );
    let id = s
        .reasons
        .iter()
        .find(|r| r.kind == Kind::Format)
        .unwrap()
        .id
        .clone();
    let compiled =
        CompiledRules::compile(&s.rules, &["email".into()], &ResolvedRefs::none(), None).unwrap();
    let out = process_bytes(
        text.as_bytes(),
        &ProcessOptions {
            workers: 1,
            profile_only: true,
            chunk: ChunkOptions {
                rules: Some(Arc::new(compiled)),
                ..ChunkOptions::default()
            },
            ..ProcessOptions::default()
        },
    )
    .unwrap();
    assert_eq!(out.summary.violations[&id], 1);
    assert_eq!(s.prune(&out.summary.violations, 300), vec![id]);
    assert!(!s
        .rules
        .rules
        .iter()
        .any(|r| matches!(r.check, Check::Matches(_))));
}

#[test]
fn id_shape_and_length_for_id_like_text() {
    let s = suggest_for(&csv(
        "order,uuid,sku",
        (0..400).map(|i: u64| {
            let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            format!(
                "ORD-{i:06},{:08x}-{:04x}-4{:03x}-{:012x},{}",
                h >> 32,
                (h >> 16) & 0xffff,
                h & 0xfff,
                h & 0xffff_ffff_ffff,
                // No common shape, one length: a length check.
                if i.is_multiple_of(2) {
                    format!("A-{:03}", i % 1000)
                } else {
                    format!("A.{:03}", i % 1000)
                }
            )
        }),
    ));
    assert!(checks(&s, "order").contains(&&Check::Matches(MatchesCheck {
        pattern: "^[A-Z]{3}\\-[0-9]{6}$".into()
    })));
    assert!(checks(&s, "uuid").contains(&&Check::Matches(MatchesCheck {
        pattern: "^[0-9a-f]{8}\\-[0-9a-f]{4}\\-[0-9a-f]{4}\\-[0-9a-f]{12}$".into()
    })));
    assert!(checks(&s, "sku").contains(&&Check::Length(LengthCheck {
        min: Some(5),
        max: Some(5)
    })));
}

#[test]
fn shapes_widen_digit_runs_to_the_column_lengths() {
    let vals: Vec<String> = (100..120).map(|i| format!("C-{i}")).collect();
    let refs: Vec<&str> = vals.iter().map(String::as_str).collect();
    // The sample saw 5 characters; the column has 3 to 7.
    assert_eq!(
        shape::infer(&refs, 3, 7).as_deref(),
        Some("^[A-Z]{1}\\-[0-9]{1,5}$")
    );
    let mixed = [
        "A-1", "B_2", "C-3", "D-4", "E-5", "F-6", "G-7", "H-8", "I-9", "J-0",
    ];
    assert_eq!(shape::infer(&mixed, 3, 3), None);
    assert_eq!(shape::infer(&mixed[..5], 3, 3), None, "too few values");
}

#[test]
fn unique_for_id_like_columns() {
    let s = suggest_for(&csv(
        "id,code,qty,note",
        (0..2000).map(|i| format!("{},K{:05},{},free text {}", i + 1, i * 7, i % 9, i)),
    ));
    assert!(checks(&s, "id").contains(&&Check::Unique));
    assert!(checks(&s, "code").contains(&&Check::Unique));
    assert!(!checks(&s, "qty").contains(&&Check::Unique));
    // Free text is not ID-like even when every value differs.
    assert!(!checks(&s, "note").contains(&&Check::Unique));
    // An ID gets a lower bound only: IDs grow.
    let id_range = checks(&s, "id")
        .into_iter()
        .find_map(|k| match k {
            Check::Range(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(id_range.min, Some(Bound::Number(0.0)));
    assert_eq!(id_range.max, None);
    // 2,000 values: beyond the exact distinct limit, so an estimate the reason calls one.
    let why = &s
        .reasons
        .iter()
        .find(|r| r.column == "id" && r.kind == Kind::Unique)
        .unwrap()
        .why;
    assert!(why.contains("estimate"), "{why}");
    // A repeated value seen among the heavy hitters rules it out.
    let s = suggest_for(&csv(
        "id",
        (0..2000).map(|i| format!("{}", if i % 100 == 0 { 1 } else { i + 1 })),
    ));
    assert!(!checks(&s, "id").contains(&&Check::Unique));
}

#[test]
fn nulls_that_may_be_tokens_keep_value_checks_off() {
    let text = csv(
        "n,m",
        (0..100).map(|i| {
            format!(
                "{},{}",
                if i % 10 == 0 {
                    "NA".into()
                } else {
                    i.to_string()
                },
                i
            )
        }),
    );
    // A job's profile counts `NA` as null: checks on `n` would reject those rows.
    let s = suggest(
        &profile_with(&text, ProfileOptions::default()),
        &SuggestOptions::default(),
    );
    assert!(checks(&s, "n").is_empty());
    assert!(s
        .notes
        .iter()
        .any(|n| n.column == "n" && n.why.contains("null tokens")));
    assert!(checks(&s, "m").contains(&&Check::Type(TypeSpec::Integer)));
    // Profiled for suggestions, `NA` is a value: `n` is text, and no rule rejects a row.
    let s = suggest_for(&text);
    assert!(!checks(&s, "n").contains(&&Check::Type(TypeSpec::Integer)));
}

#[test]
fn prune_drops_violated_rules_and_renumbers() {
    let mut s = suggest_for(&csv("a,b", (0..50).map(|i| format!("{i},{}", i % 2))));
    let n = s.rules.rules.len();
    let victim = s.reasons[0].id.clone();
    let dropped = s.prune(&BTreeMap::from([(victim.clone(), 3)]), 50);
    assert_eq!(dropped, vec![victim.clone()]);
    assert_eq!(s.rules.rules.len(), n - 1);
    assert_eq!(s.reasons[0].path, "/rules/0");
    assert!(s
        .notes
        .iter()
        .any(|x| x.id.as_deref() == Some(victim.as_str())
            && x.why.starts_with("dropped: 3 of the 50")));
}

#[test]
fn same_profile_same_suggestion_and_json_shape() {
    let text = csv("id,s", (0..100).map(|i| format!("{i},{}", i % 4)));
    let a = suggest_for(&text);
    let b = suggest_for(&text);
    assert_eq!(a, b);
    let v = serde_json::to_value(&a).unwrap();
    assert_eq!(v["source"], "profile");
    assert_eq!(v["rules"]["version"], 1);
    assert_eq!(v["reasons"][0]["path"], "/rules/0");
    assert_eq!(v["reasons"][0]["kind"], "completeness");
}
