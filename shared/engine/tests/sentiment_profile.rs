//! The profile of a derived sentiment column (`profile.json` `derived`): label counts equal the
//! labels of the clean output, rows not scored are the empty texts, min/max/mean are exact,
//! quantiles are within the sketch's accuracy of the exact order statistics, and the whole
//! section is identical at every chunk size, with or without outputs written, and whatever
//! order chunk states are merged in.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;
use tessera_engine::chunk::ChunkOptions;
use tessera_engine::file::{process_bytes, ProcessOptions};
use tessera_engine::profile::{DerivedKind, ProfileOptions, ProfileState, SentimentColumn};
use tessera_engine::rules::{from_value, CompiledRules, ResolvedRefs};
use tessera_engine::sentiment::{Analyzer, Label, ScoreText};

const TEXTS: &[&str] = &[
    "I love this product, it is AMAZING!!!",
    "Terrible. Broke after two days :(",
    "It's ok, nothing special",
    "not bad at all",
    "The service was not good, but the food was great",
    "",
    "Meh.",
    "absolutely the WORST purchase I have ever made",
    "Great value 😀 would buy again",
    "horrible\nsupport, \"helpful\" they said",
    "  ",
    "Kind of sad, kind of happy",
    "a truly wonderful café",
    "no problems whatsoever",
    "I hate, hate, HATE it",
    "good",
    "bad",
];

/// `id,product,review,qty` rows; every 9th `qty` negative (rejected by a rule).
fn file(rows: usize, seed: u64) -> (Vec<u8>, Vec<(String, i64)>) {
    let mut out = String::from("id,product,review,qty\n");
    let mut want = Vec::new();
    let mut x = seed | 1;
    for i in 0..rows {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let review = TEXTS[(x % TEXTS.len() as u64) as usize];
        let qty = if i % 9 == 8 { -1 } else { (x % 50) as i64 };
        let field = if review.contains([',', '"', '\n']) || i % 4 == 0 {
            format!("\"{}\"", review.replace('"', "\"\""))
        } else {
            review.to_string()
        };
        out.push_str(&format!("{i},p{},{field},{qty}\n", x % 3));
        want.push((review.to_string(), qty));
    }
    (out.into_bytes(), want)
}

fn rules() -> Arc<CompiledRules> {
    let doc = from_value(&json!({"version": 1,
        "columns": {"review": {"derive": {"sentiment": {"engine": "lexicon"}}}},
        "rules": [{"column": "qty", "check": {"range": {"min": 0}}}]}))
    .unwrap();
    let cols: Vec<String> = ["id", "product", "review", "qty"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    Arc::new(CompiledRules::compile(&doc, &cols, &ResolvedRefs::none(), None).unwrap())
}

fn opts(rules: &Arc<CompiledRules>, chunk_size: u64, profile_only: bool) -> ProcessOptions {
    ProcessOptions {
        chunk_size,
        workers: 2,
        read_buffer_bytes: 13,
        profile_only,
        chunk: ChunkOptions {
            rules: Some(rules.clone()),
            ..ChunkOptions::default()
        },
        ..ProcessOptions::default()
    }
}

#[test]
fn derived_section_matches_the_clean_output_at_every_chunk_size() {
    let rules = rules();
    let (data, want) = file(2000, 7);
    let whole = process_bytes(&data, &opts(&rules, 1 << 30, false)).unwrap();
    let report = whole.profile.report();
    assert_eq!(report.derived.len(), 1, "{:?}", report.derived);
    let d = &report.derived["review_sentiment"];
    assert_eq!(d.kind, DerivedKind::Sentiment);
    assert_eq!(
        (
            d.source.as_str(),
            d.engine.as_str(),
            d.label_column.as_str()
        ),
        ("review", "lexicon", "review_sentiment_label")
    );

    // What the clean output says, row by row.
    let mut r = csv::Reader::from_reader(whole.clean.as_slice());
    let (mut counts, mut empty, mut scores) = ([0u64; 3], 0u64, Vec::new());
    for rec in r.records() {
        let rec = rec.unwrap();
        match &rec[5] {
            "positive" => counts[0] += 1,
            "negative" => counts[1] += 1,
            "neutral" => counts[2] += 1,
            "" => {
                assert_eq!(&rec[4], "", "an empty label has an empty score");
                assert_eq!(&rec[2], "", "only empty texts are not scored");
                empty += 1;
                continue;
            }
            other => panic!("label {other:?}"),
        }
        scores.push(rec[4].parse::<f64>().unwrap());
    }
    assert_eq!(
        [d.labels.positive, d.labels.negative, d.labels.neutral],
        counts
    );
    assert_eq!(d.not_scored, empty);
    assert_eq!(d.rows, whole.summary.rows);
    assert_eq!(d.scored + d.not_scored, d.rows);
    assert_eq!(whole.summary.rows + whole.summary.rejected_rows, 2000);
    assert!(
        counts.iter().all(|&n| n > 0) && empty > 0,
        "{counts:?} {empty}"
    );

    // ... and what the scorer says of the source texts of the clean rows.
    let mut a = Analyzer::new();
    let from_source: Vec<f64> = want
        .iter()
        .filter(|w| w.1 >= 0 && !w.0.is_empty())
        .map(|w| a.compound(w.0.as_bytes()))
        .collect();
    assert_eq!(scores.len(), from_source.len());
    for (s, c) in scores.iter().zip(&from_source) {
        assert_eq!(
            format!("{s:.4}"),
            ScoreText::of(*c).to_string().replace("-0.0000", "0.0000")
        );
    }
    let sum_e4: i64 = scores.iter().map(|s| (s * 1e4).round() as i64).sum();
    assert_eq!(d.mean, Some(sum_e4 as f64 / scores.len() as f64 / 1e4));
    let mut sorted = scores.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(d.min, sorted.first().copied());
    assert_eq!(d.max, sorted.last().copied());
    let q = d.quantiles.unwrap();
    for (p, got) in [
        (0.1, q.p10),
        (0.25, q.p25),
        (0.5, q.p50),
        (0.75, q.p75),
        (0.9, q.p90),
    ] {
        let exact = sorted[(p * (sorted.len() - 1) as f64) as usize];
        assert!(
            (got - exact).abs() <= 0.01 * exact.abs() + 1e-12,
            "p{p}: {got} vs exact {exact}"
        );
    }

    for cs in [7u64, 64, 333, 4096, 1 << 30] {
        for profile_only in [false, true] {
            let out = process_bytes(&data, &opts(&rules, cs, profile_only)).unwrap();
            assert!(out.summary.chunks > 1 || cs == 1 << 30);
            let r = out.profile.report();
            assert_eq!(
                r.derived, report.derived,
                "chunk size {cs}, profile only {profile_only}"
            );
            let scored: u64 = out.chunks.iter().map(|c| c.scored_rows).sum();
            assert_eq!(scored, d.scored, "chunk size {cs}");
        }
    }
}

#[test]
fn a_state_without_derived_columns_reads_and_merges() {
    let opts = ProfileOptions::default();
    let plain = ProfileState::new(vec!["a".into()], &opts);
    let bytes = plain.to_bytes();
    assert!(
        !String::from_utf8_lossy(&bytes).contains("derived"),
        "nothing is written without derived columns"
    );
    let json = serde_json::to_value(plain.report()).unwrap();
    assert!(json.get("derived").is_none(), "{json}");
    let mut with = ProfileState::new(vec!["a".into()], &opts);
    let k = with.add_sentiment(column());
    with.observe_sentiment(k, Some(0.5));
    with.observe_sentiment(k, None);
    // Merging either way round keeps the column.
    let mut a = ProfileState::from_bytes(&bytes).unwrap();
    a.merge(&with);
    let mut b = with.clone();
    b.merge(&ProfileState::from_bytes(&bytes).unwrap());
    assert_eq!(a.report().derived, b.report().derived);
    let d = &a.report().derived["t_sentiment"];
    assert_eq!((d.scored, d.not_scored, d.labels.positive), (1, 1, 1));
    assert_eq!(d.mean, Some(0.5));
    // Non-finite scores (a model's garbage) are not scored.
    let mut c = with.clone();
    c.observe_sentiment(k, Some(f64::NAN));
    assert_eq!(c.report().derived["t_sentiment"].not_scored, 2);
    assert_eq!(c.sentiment_scored(), 1);
}

fn column() -> SentimentColumn {
    SentimentColumn {
        source: "t".into(),
        score_column: "t_sentiment".into(),
        label_column: "t_sentiment_label".into(),
        engine: "lexicon".into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Scores cut into random pieces and merged in shuffled order through the wire form give
    /// the report of one sequential pass, exactly (quantiles included: the sketch's bins add).
    #[test]
    fn merge_of_pieces_equals_whole(
        scores in proptest::collection::vec(
            prop_oneof![
                1 => Just(None),
                1 => Just(Some(0.0)),
                8 => (-10_000i32..=10_000).prop_map(|k| Some(f64::from(k) / 1e4)),
            ],
            0..600,
        ),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        seed in any::<u64>(),
    ) {
        let opts = ProfileOptions::default();
        let state = || {
            let mut s = ProfileState::new(vec!["t".into()], &opts);
            s.add_sentiment(column());
            s
        };
        let mut whole = state();
        for &x in &scores {
            whole.observe_sentiment(0, x);
        }
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(scores.len() + 1)).collect();
        at.extend([0, scores.len()]);
        at.sort_unstable();
        let mut pieces: Vec<Vec<u8>> = at
            .windows(2)
            .map(|w| {
                let mut s = state();
                for &x in &scores[w[0]..w[1]] {
                    s.observe_sentiment(0, x);
                }
                s.to_bytes()
            })
            .collect();
        let mut r = seed | 1;
        for i in (1..pieces.len()).rev() {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            pieces.swap(i, (r % (i as u64 + 1)) as usize);
        }
        let mut merged = ProfileState::new(vec!["t".into()], &opts);
        for p in &pieces {
            merged.merge(&ProfileState::from_bytes(p).unwrap());
        }
        let (w, m) = (whole.report(), merged.report());
        prop_assert_eq!(&w.derived, &m.derived);
        let d = &w.derived["t_sentiment"];
        let scored: Vec<f64> = scores.iter().flatten().copied().collect();
        prop_assert_eq!(d.scored, scored.len() as u64);
        prop_assert_eq!(d.not_scored, (scores.len() - scored.len()) as u64);
        let pos = scored.iter().filter(|&&s| Label::of(s) == Label::Positive).count() as u64;
        let neg = scored.iter().filter(|&&s| Label::of(s) == Label::Negative).count() as u64;
        prop_assert_eq!((d.labels.positive, d.labels.negative), (pos, neg));
        if let Some(q) = d.quantiles {
            let mut sorted = scored.clone();
            sorted.sort_by(f64::total_cmp);
            let exact = sorted[(0.5 * (sorted.len() - 1) as f64) as usize];
            prop_assert!((q.p50 - exact).abs() <= 0.01 * exact.abs() + 1e-12, "{} {}", q.p50, exact);
        } else {
            prop_assert!(scored.is_empty());
        }
    }
}
