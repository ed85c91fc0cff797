//! The `derive: {sentiment: {engine: "lexicon"}}` step end to end: its two columns at the end
//! of the clean output equal `sentiment::Analyzer` on each row's source text at every chunk
//! size (through `process_bytes` and `process_file`), next to other rules; the score is of the
//! value before the column's transforms; its validation errors at their JSON paths.

use std::sync::Arc;

use serde_json::{json, Value};
use tessera_engine::chunk::ChunkOptions;
use tessera_engine::file::{process_bytes, process_file, ProcessOptions};
use tessera_engine::rules::{
    from_value, refuse_model_engine, CompiledRules, ResolvedRefs, RuleDocument, SentimentEngine,
    ValidationError, MODEL_ENGINE_UNAVAILABLE,
};
use tessera_engine::sentiment::{Analyzer, Label, ScoreText};

const REVIEWS: &[&str] = &[
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
    "  good  ",
    "Kind of sad, kind of happy",
    "Ünïcödé façade: a truly wonderful café",
    "no problems whatsoever",
    "I hate, hate, HATE it",
];

/// `(file, per data row (id, review, qty))`: reviews quoted when they need it, some quoted when
/// they do not, ids padded with spaces (trimmed by a transform), every fourth `qty` negative.
fn file(rows: usize) -> (Vec<u8>, Vec<(String, String, i64)>) {
    let mut out = String::from("id,review,qty\n");
    let mut want = Vec::new();
    for i in 0..rows {
        let review = REVIEWS[(i * 7) % REVIEWS.len()];
        let qty = if i % 4 == 3 { -(i as i64) } else { i as i64 };
        let field = if review.contains([',', '"', '\n']) || i.is_multiple_of(5) {
            format!("\"{}\"", review.replace('"', "\"\""))
        } else {
            review.to_string()
        };
        out.push_str(&format!(" {i} ,{field},{qty}\n"));
        want.push((i.to_string(), review.to_string(), qty));
    }
    (out.into_bytes(), want)
}

fn compile(doc: Value, header: &[&str]) -> Result<CompiledRules, Vec<ValidationError>> {
    let doc = from_value(&doc)?;
    let cols: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    CompiledRules::compile(&doc, &cols, &ResolvedRefs::none(), Some(b"k"))
}

fn opts(rules: &Arc<CompiledRules>, chunk_size: u64, workers: usize) -> ProcessOptions {
    ProcessOptions {
        chunk_size,
        workers,
        read_buffer_bytes: 7,
        chunk: ChunkOptions {
            rules: Some(rules.clone()),
            ..ChunkOptions::default()
        },
        ..ProcessOptions::default()
    }
}

fn records(clean: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::ReaderBuilder::new().from_reader(clean);
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|x| x.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

/// What the scorer says of `text`: the two derived fields.
/// The two derived cells of a row whose source text is `text`: both empty for an empty text
/// (not scored).
fn scored(a: &mut Analyzer, text: &str) -> [String; 2] {
    if text.is_empty() {
        return [String::new(), String::new()];
    }
    let c = a.polarity_scores_str(text).compound;
    [ScoreText::of(c).to_string(), Label::of(c).to_string()]
}

fn main_rules() -> Arc<CompiledRules> {
    Arc::new(
        compile(
            json!({"version": 1,
                "columns": {
                    "id": {"transforms": ["trim"]},
                    "review": {"derive": {"sentiment": {"engine": "lexicon"}}}
                },
                "rules": [{"column": "qty", "check": {"range": {"min": 0}}}]}),
            &["id", "review", "qty"],
        )
        .unwrap(),
    )
}

#[test]
fn derived_columns_equal_the_scorer_at_every_chunk_size() {
    let rules = main_rules();
    assert!(!rules.passthrough());
    let (data, want) = file(300);
    let whole = process_bytes(&data, &opts(&rules, 1 << 30, 1)).unwrap();
    let (header, rows) = records(&whole.clean);
    assert_eq!(
        header,
        [
            "id",
            "review",
            "qty",
            "review_sentiment",
            "review_sentiment_label"
        ]
    );
    assert_eq!(header, rules.output_columns());
    let kept: Vec<_> = want.iter().filter(|w| w.2 >= 0).collect();
    assert_eq!(rows.len(), kept.len());
    assert_eq!(whole.summary.rows as usize, kept.len());
    assert_eq!(
        whole.summary.rejected_rows as usize,
        want.len() - kept.len()
    );
    assert_eq!(
        whole.summary.rule_rejected_rows,
        whole.summary.rejected_rows
    );
    let mut a = Analyzer::new();
    let mut labels = std::collections::BTreeSet::new();
    for (row, w) in rows.iter().zip(&kept) {
        assert_eq!(row[0], w.0);
        assert_eq!(row[1], w.1);
        assert_eq!(row[3..], scored(&mut a, &w.1), "{:?}", w.1);
        labels.insert(row[4].clone());
    }
    assert_eq!(labels.len(), 3, "the file covers every label: {labels:?}");
    for cs in [1u64, 2, 3, 5, 8, 13, 64, 500, 4096] {
        for workers in [1, 2] {
            let out = process_bytes(&data, &opts(&rules, cs, workers)).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&out.clean),
                String::from_utf8_lossy(&whole.clean),
                "chunk size {cs}, {workers} workers"
            );
            assert_eq!(out.rejected, whole.rejected, "chunk size {cs}");
            assert_eq!(
                out.summary.rows + out.summary.rejected_rows,
                want.len() as u64
            );
        }
    }
}

#[test]
fn process_file_writes_the_derived_columns() {
    let rules = main_rules();
    let (data, _) = file(120);
    let dir = std::env::temp_dir().join(format!("tessera-derive-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.csv");
    std::fs::write(&input, &data).unwrap();
    let whole = process_bytes(&data, &opts(&rules, 1 << 30, 1)).unwrap();
    for cs in [1u64, 37, 1 << 30] {
        let mut o = opts(&rules, cs, 2);
        o.out_dir = dir.join(format!("out-{cs}"));
        let s = process_file(&input, &o).unwrap();
        let clean = std::fs::read(o.out_dir.join("clean.csv")).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&clean),
            String::from_utf8_lossy(&whole.clean),
            "chunk size {cs}"
        );
        assert_eq!(s.rows + s.rejected_rows, 120);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The score is of the source value: a redacted, renamed or dropped column still gets the score
/// of its text, and the derived columns keep the source column's name.
#[test]
fn the_score_is_of_the_value_before_transforms() {
    let (data, want) = file(60);
    let mut a = Analyzer::new();
    let cases = [
        (
            json!({"transforms": [{"mask": {"redact": {}}}], "rename": "text"}),
            vec!["id", "text", "qty", "_violations"],
        ),
        (
            json!({"transforms": ["trim", {"case": "upper"}]}),
            vec!["id", "review", "qty", "_violations"],
        ),
        (json!({"drop": true}), vec!["id", "qty", "_violations"]),
    ];
    for (mut spec, head) in cases {
        spec["derive"] = json!({"sentiment": {"engine": "lexicon"}});
        let rules = Arc::new(
            compile(
                json!({"version": 1, "columns": {"review": spec.clone()},
                    "rules": [{"column": "qty", "check": {"range": {"min": 0}},
                               "on_violation": "flag"}]}),
                &["id", "review", "qty"],
            )
            .unwrap(),
        );
        let out = process_bytes(&data, &opts(&rules, 11, 2)).unwrap();
        let (header, rows) = records(&out.clean);
        let mut head: Vec<String> = head.iter().map(|s| s.to_string()).collect();
        head.extend(["review_sentiment".into(), "review_sentiment_label".into()]);
        assert_eq!(header, head, "{spec}");
        assert_eq!(rows.len(), want.len());
        let n = header.len();
        for (row, w) in rows.iter().zip(&want) {
            assert_eq!(row[n - 2..], scored(&mut a, &w.1), "{spec} {:?}", w.1);
            let flagged = if w.2 < 0 { "qty_range" } else { "" };
            assert_eq!(row[n - 3], flagged, "{spec}");
            if header[1] == "text" && !w.1.is_empty() {
                assert_eq!(row[1], "[REDACTED]");
            }
        }
    }
}

fn errors(doc: Value, header: &[&str]) -> Vec<(String, String)> {
    compile(doc, header)
        .expect_err("the document is invalid")
        .into_iter()
        .map(|e| (e.path, e.message))
        .collect()
}

fn derive_doc(column: &str, derive: Value) -> Value {
    json!({"version": 1, "columns": {column: {"derive": derive}}})
}

#[test]
fn model_engine_is_a_step_whose_callers_decide_if_it_runs() {
    let model = json!({"sentiment": {"engine": "model", "max_cost_usd": 1.5}});
    let doc: RuleDocument = from_value(&derive_doc("review", model)).unwrap();
    // Accepted by the document and by `compile`; where no model is configured the caller
    // refuses it at its path, with the stable message.
    let c = CompiledRules::compile(&doc, &["review".into()], &ResolvedRefs::none(), None).unwrap();
    assert_eq!(c.model_steps(), ["review"]);
    assert_eq!(
        c.output_columns(),
        ["review", "review_sentiment", "review_sentiment_label"]
    );
    let e = refuse_model_engine(&doc, MODEL_ENGINE_UNAVAILABLE);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].path, "/columns/review/derive/sentiment/engine");
    assert!(MODEL_ENGINE_UNAVAILABLE.contains("TESSERA_MODEL_ID"));
    assert!(refuse_model_engine(
        &from_value(&derive_doc(
            "review",
            json!({"sentiment": {"engine": "lexicon"}})
        ))
        .unwrap(),
        "x"
    )
    .is_empty());
    // `sample` belongs to the model engine and is at least 1.
    let e = errors(
        derive_doc(
            "review",
            json!({"sentiment": {"engine": "lexicon", "sample": 5}}),
        ),
        &["review"],
    );
    assert_eq!(e[0].0, "/columns/review/derive/sentiment/sample");
    let e = errors(
        derive_doc(
            "review",
            json!({"sentiment": {"engine": "model", "sample": 0}}),
        ),
        &["review"],
    );
    assert_eq!(e[0].0, "/columns/review/derive/sentiment/sample");
    // A model step needs its cost limit, above 0; a lexicon step has none.
    let ok = derive_doc(
        "review",
        json!({"sentiment": {"engine": "model", "sample": 10, "max_cost_usd": 0.25}}),
    );
    assert!(compile(ok, &["review"]).is_ok());
    let e = errors(
        derive_doc(
            "review",
            json!({"sentiment": {"engine": "model", "sample": 10}}),
        ),
        &["review"],
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, "/columns/review/derive/sentiment/max_cost_usd");
    assert_eq!(e[0].1, tessera_engine::rules::MAX_COST_REQUIRED);
    for (engine, cost) in [
        ("model", json!(0)),
        ("model", json!(-1)),
        ("lexicon", json!(1)),
    ] {
        let e = errors(
            derive_doc(
                "review",
                json!({"sentiment": {"engine": engine, "max_cost_usd": cost}}),
            ),
            &["review"],
        );
        assert_eq!(
            e[0].0, "/columns/review/derive/sentiment/max_cost_usd",
            "{e:?}"
        );
    }
    let _ = SentimentEngine::Model;
}

/// A chunk with a `model` step holds its clean rows back, hands out each row's source text and
/// offset, and writes them with the grades it is given; rejected rows are written as usual;
/// without a grader the step writes `not_graded`.
#[test]
fn model_rows_are_handed_out_and_filled_in_order() {
    use tessera_engine::chunk::ChunkProcessor;
    use tessera_engine::grading::Grade;
    use tessera_engine::split::ChunkTask;
    let doc = from_value(&json!({"version": 1,
        "columns": {"review": {"derive": {"sentiment": {"engine": "model", "max_cost_usd": 1}}},
                    "id": {"transforms": [{"mask": {"token": {"encoding": "hex", "length": 16}}}]}},
        "rules": [{"column": "qty", "check": {"range": {"min": 0}}}]}))
    .unwrap();
    let header: Vec<String> = ["id", "qty", "review"].map(String::from).to_vec();
    let rules = Arc::new(
        CompiledRules::compile(&doc, &header, &ResolvedRefs::none(), Some(&[7u8; 32])).unwrap(),
    );
    let data = "a,1,good\nb,-1,bad\nc,2,\"x, \"\"y\"\"\"\nd,3,\n";
    let task = ChunkTask {
        index: 0,
        start: 0,
        end: data.len() as u64,
        start_in_quotes: Some(false),
    };
    let dialect = tessera_engine::dialect::Dialect::default();
    let run = |grade: bool| {
        let opts = ChunkOptions {
            rules: Some(rules.clone()),
            grade_model_rows: grade,
            ..Default::default()
        };
        let mut p = ChunkProcessor::new(&task, &dialect, &header, &opts);
        let (mut clean, mut rej) = (Vec::new(), Vec::new());
        for b in data.as_bytes() {
            p.feed(std::slice::from_ref(b), &mut clean, &mut rej)
                .unwrap();
        }
        p.end_input().unwrap();
        let texts: Vec<(u64, String)> = p
            .model_rows()
            .iter()
            .map(|r| (r.offset, r.text.clone()))
            .collect();
        if grade {
            assert!(clean.is_empty(), "held back until graded");
            let grades: Vec<Grade> = (0..texts.len())
                .map(|i| Grade::Scored(i as f64 / 10.0, Label::Positive))
                .collect();
            p.fill_model_rows(&grades, &mut clean).unwrap();
        }
        let result = p.finish(&mut clean, &mut rej).unwrap();
        (texts, String::from_utf8(clean).unwrap(), rej, result)
    };
    let (texts, clean, rej, result) = run(true);
    // An empty text is not handed out: empty score and label, like the lexicon's.
    assert_eq!(texts, [(0, "good".into()), (18, "x, \"y\"".into())]);
    let rows: Vec<&str> = clean.lines().collect();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].ends_with(",1,good,0.0000,positive"), "{clean}");
    assert!(
        rows[1].ends_with(",2,\"x, \"\"y\"\"\",0.1000,positive"),
        "{clean}"
    );
    assert!(rows[2].ends_with(",3,,,"), "{clean}");
    assert_eq!(String::from_utf8(rej).unwrap().lines().count(), 1);
    // The profile's derived section has the model's labels (0.0 answered `positive` is
    // counted positive), the empty text not scored; `scored_rows` counts graded rows.
    assert_eq!(result.scored_rows, 2);
    let report = result.profile.report();
    let d = &report.derived["review_sentiment"];
    assert_eq!((d.engine.as_str(), d.scored, d.not_scored), ("model", 2, 1));
    assert_eq!(d.labels.positive, 2);
    let (texts, clean, _, result) = run(false);
    assert!(texts.is_empty());
    let rows: Vec<&str> = clean.lines().collect();
    assert!(
        rows[..2].iter().all(|l| l.ends_with(",not_graded")),
        "{clean}"
    );
    assert!(rows[2].ends_with(",3,,,"), "{clean}");
    assert_eq!(result.scored_rows, 0);
}

/// Marks given to model rows are counted per chunk (`model_error_rows`, `not_graded_rows`,
/// `not_sampled_rows`), not scored in the profile; rows left waiting at `finish` are
/// `not_graded`.
#[test]
fn model_marks_are_counted() {
    use tessera_engine::chunk::ChunkProcessor;
    use tessera_engine::grading::Grade;
    use tessera_engine::split::ChunkTask;
    let doc = from_value(&json!({"version": 1,
        "columns": {"review": {"derive": {"sentiment": {"engine": "model", "max_cost_usd": 1}}}}}))
    .unwrap();
    let header: Vec<String> = ["id", "review"].map(String::from).to_vec();
    let rules =
        Arc::new(CompiledRules::compile(&doc, &header, &ResolvedRefs::none(), None).unwrap());
    let data = "1,a\n2,b\n3,c\n4,d\n5,e\n";
    let task = ChunkTask {
        index: 0,
        start: 0,
        end: data.len() as u64,
        start_in_quotes: Some(false),
    };
    let opts = ChunkOptions {
        rules: Some(rules),
        grade_model_rows: true,
        ..Default::default()
    };
    let mut p = ChunkProcessor::new(&task, &Default::default(), &header, &opts);
    let (mut clean, mut rej) = (Vec::new(), Vec::new());
    p.feed(&data.as_bytes()[..12], &mut clean, &mut rej)
        .unwrap();
    assert_eq!(p.model_rows().len(), 3);
    let grades = [
        Grade::Scored(-0.5, Label::Negative),
        Grade::ModelError,
        Grade::NotSampled,
    ];
    p.fill_model_rows(&grades, &mut clean).unwrap();
    p.feed(&data.as_bytes()[12..], &mut clean, &mut rej)
        .unwrap();
    let r = p.finish(&mut clean, &mut rej).unwrap();
    let clean = String::from_utf8(clean).unwrap();
    assert_eq!(
        clean,
        "1,a,-0.5000,negative\n2,b,,model_error\n3,c,,not_sampled\n4,d,,not_graded\n5,e,,not_graded\n"
    );
    assert_eq!(r.rows, 5);
    assert_eq!(
        (
            r.scored_rows,
            r.model_error_rows,
            r.not_sampled_rows,
            r.not_graded_rows
        ),
        (1, 1, 1, 2)
    );
    let report = r.profile.report();
    let d = &report.derived["review_sentiment"];
    assert_eq!((d.scored, d.not_scored, d.labels.negative), (1, 4, 1));
}

#[test]
fn validation_errors_at_their_paths() {
    let lexicon = json!({"sentiment": {"engine": "lexicon"}});
    let paths = |doc, header: &[&str]| -> Vec<String> {
        errors(doc, header).into_iter().map(|e| e.0).collect()
    };
    // Unknown column, with the usual hint.
    let e = errors(derive_doc("revew", lexicon.clone()), &["id", "review"]);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].0, "/columns/revew");
    assert!(e[0].1.starts_with("unknown column `revew`"), "{}", e[0].1);
    // Structure: unknown engine, unknown key, missing step, not an object.
    let h = &["review"];
    let bad = json!({"sentiment": {"engine": "vader"}});
    assert_eq!(
        paths(derive_doc("review", bad), h),
        ["/columns/review/derive/sentiment"]
    );
    let extra = json!({"sentiment": {"engine": "lexicon"}, "topic": {}});
    assert_eq!(
        paths(derive_doc("review", extra), h),
        ["/columns/review/derive/topic"]
    );
    assert_eq!(
        paths(derive_doc("review", json!({})), h),
        ["/columns/review/derive/sentiment"]
    );
    assert_eq!(
        paths(derive_doc("review", json!("lexicon")), h),
        ["/columns/review/derive"]
    );
    // A derived name taken by a header column kept in the clean output.
    let h = &["review", "review_sentiment_label"];
    let e = errors(derive_doc("review", lexicon.clone()), h);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, "/columns/review/derive/sentiment");
    assert!(e[0].1.contains("`review_sentiment_label`"), "{}", e[0].1);
    // ... or by a rename; a dropped or renamed header column frees its name.
    let doc = json!({"version": 1, "columns": {
        "review": {"derive": lexicon.clone()}, "other": {"rename": "review_sentiment"}}});
    assert_eq!(
        paths(doc, &["review", "other"]),
        ["/columns/review/derive/sentiment"]
    );
    for spec in [json!({"drop": true}), json!({"rename": "old_label"})] {
        let doc = json!({"version": 1, "columns": {
            "review": {"derive": lexicon.clone()}, "review_sentiment_label": spec}});
        let c = compile(doc, h).unwrap();
        assert_eq!(
            c.output_columns().last().map(String::as_str),
            Some("review_sentiment_label")
        );
    }
}

#[test]
fn documents_without_derive_are_unchanged() {
    let c = compile(json!({"version": 1, "rules": []}), &["id", "review"]).unwrap();
    assert!(c.passthrough());
    assert_eq!(c.output_columns(), ["id", "review"]);
    // `null` is an absent step (the schema's optional field).
    let c = compile(
        json!({"version": 1, "columns": {"review": {"derive": null}}}),
        &["id", "review"],
    )
    .unwrap();
    assert!(c.passthrough());
    // Two derive steps: two pairs, in the order of the column names.
    let lexicon = json!({"sentiment": {"engine": "lexicon"}});
    let c = compile(
        json!({"version": 1, "columns": {"title": {"derive": lexicon}, "body": {"derive": lexicon}}}),
        &["title", "body"],
    )
    .unwrap();
    assert_eq!(
        c.output_columns(),
        [
            "title",
            "body",
            "body_sentiment",
            "body_sentiment_label",
            "title_sentiment",
            "title_sentiment_label"
        ]
    );
    let out = process_bytes(
        b"title,body\nGreat!,awful\n",
        &opts(&Arc::new(c), 1 << 20, 1),
    )
    .unwrap();
    let mut a = Analyzer::new();
    let [bs, bl] = scored(&mut a, "awful");
    let [ts, tl] = scored(&mut a, "Great!");
    assert_eq!(
        String::from_utf8(out.clean).unwrap(),
        format!(
            "title,body,body_sentiment,body_sentiment_label,title_sentiment,title_sentiment_label\n\
             Great!,awful,{bs},{bl},{ts},{tl}\n"
        )
    );
    assert_eq!(bl, "negative");
    assert_eq!(tl, "positive");
}

/// CPU seconds (user + system) of this process so far.
fn cpu_seconds() -> f64 {
    // SAFETY: `getrusage` fills the zeroed struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// The cost of the step on a ~100 MB file, with and without it (same reject rule). Run with
/// `cargo test --release -p tessera-engine --test rules_derive -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: ~100 MB in the temp directory, seconds of CPU"]
fn measure_100_mb() {
    let dir = std::env::temp_dir().join(format!("tessera-derive-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("reviews.csv");
    let mut data = String::from("id,product,review,qty\n");
    let mut i = 0usize;
    while data.len() < 100 << 20 {
        let r = REVIEWS[(i * 7 + i / 15) % REVIEWS.len()];
        let extra = ["", " Really.", " Would not recommend", " 5 stars"][i % 4];
        let review = format!("{r}{extra}").replace(['"', '\n'], " ");
        let q = if i.is_multiple_of(50) {
            -1
        } else {
            (i % 9) as i64
        };
        data.push_str(&format!("{i},p{},\"{review}\",{q}\n", i % 997));
        i += 1;
    }
    std::fs::write(&input, &data).unwrap();
    let base = json!({"version": 1, "rules": [{"column": "qty", "check": {"range": {"min": 0}}}]});
    let mut with = base.clone();
    with["columns"] = json!({"review": {"derive": {"sentiment": {"engine": "lexicon"}}}});
    let header = ["id", "product", "review", "qty"];
    for (name, doc) in [("without derive", base), ("with derive", with)] {
        let rules = Arc::new(compile(doc, &header).unwrap());
        let mut o = opts(&rules, 16 << 20, 2);
        o.read_buffer_bytes = 1 << 20;
        o.out_dir = dir.join("out");
        let (c0, w0) = (cpu_seconds(), std::time::Instant::now());
        let s = process_file(&input, &o).unwrap();
        let (cpu, wall) = (cpu_seconds() - c0, w0.elapsed().as_secs_f64());
        println!(
            "{name}: {} MB, {} rows ({} rejected): CPU {cpu:.2} s ({:.0} MB/CPU-s), wall {wall:.2} s",
            data.len() >> 20,
            s.rows,
            s.rejected_rows,
            data.len() as f64 / 1e6 / cpu
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
