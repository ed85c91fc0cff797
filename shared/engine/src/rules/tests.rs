//! Rules: checks, transforms, masks, validation paths, the committed schema, and end-to-end
//! runs through `process_bytes`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::chunk::ChunkOptions;
use crate::file::{process_bytes, ProcessOptions};

fn cols(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn compile(
    doc: serde_json::Value,
    columns: &[&str],
) -> Result<CompiledRules, Vec<ValidationError>> {
    let d = from_value(&doc)?;
    CompiledRules::compile(&d, &cols(columns), &ResolvedRefs::none(), Some(b"test key"))
}

/// Runs `data` with rules at several chunk sizes (all must agree) and returns
/// (clean, rejected, violations).
fn run(data: &str, doc: serde_json::Value) -> (String, String, BTreeMap<String, u64>) {
    let d = from_value(&doc).unwrap();
    let header: Vec<String> = data
        .lines()
        .next()
        .unwrap()
        .split(',')
        .map(String::from)
        .collect();
    let rules = Arc::new(
        CompiledRules::compile(&d, &header, &ResolvedRefs::none(), Some(b"test key")).unwrap(),
    );
    let mut first: Option<(String, String, BTreeMap<String, u64>)> = None;
    for cs in [1, 3, 7, 64, 1 << 20] {
        let opts = ProcessOptions {
            chunk_size: cs,
            workers: 1,
            read_buffer_bytes: 5,
            chunk: ChunkOptions {
                rules: Some(rules.clone()),
                ..ChunkOptions::default()
            },
            ..ProcessOptions::default()
        };
        let out = process_bytes(data.as_bytes(), &opts).unwrap();
        let got = (
            String::from_utf8(out.clean).unwrap(),
            String::from_utf8(out.rejected).unwrap(),
            out.summary.violations,
        );
        match &first {
            None => first = Some(got),
            Some(f) => assert_eq!(f, &got, "chunk size {cs}"),
        }
    }
    first.unwrap()
}

#[test]
fn checks_reject_with_rule_ids_and_details() {
    let data = "id,amount,day,code,cat,start,end\n\
                1,10.5,2024-01-31,ABC,a,2024-01-01,2024-02-01\n\
                ,x,2024-02-30,abc,z,2024-03-01,2024-02-01\n\
                3,1000,2024-02-29,ABCD,b,,2024-01-01\n";
    let doc = json!({
        "version": 1,
        "columns": {"start": {"type": {"date": {}}}, "end": {"type": {"date": {}}}},
        "rules": [
            {"column": "id", "check": "not_null"},
            {"column": "amount", "check": {"type": "decimal"}},
            {"id": "amount_range", "column": "amount", "check": {"range": {"min": 0, "max": 1000, "max_inclusive": false}}},
            {"column": "day", "check": {"type": {"date": {"format": "%Y-%m-%d"}}}},
            {"column": "code", "check": {"matches": {"pattern": "^[A-Z]{3}$"}}},
            {"column": "code", "check": {"length": {"max": 3}}},
            {"column": "cat", "check": {"one_of": {"values": ["a", "b"]}}},
            {"check": {"compare": {"left": "end", "op": ">=", "right": "start"}}}
        ]
    });
    let (clean, rej, v) = run(data, doc);
    assert_eq!(
        clean,
        "id,amount,day,code,cat,start,end\n1,10.5,2024-01-31,ABC,a,2024-01-01,2024-02-01\n"
    );
    let lines: Vec<&str> = rej.lines().collect();
    assert_eq!(lines[0], "source_byte_offset,source_line,reason,raw,detail");
    assert_eq!(lines[1], "79,3,rule:id_not_null,\",x,2024-02-30,abc,z,2024-03-01,2024-02-01\",\"`id` is empty (also violated: amount_type, amount_range, day_type, code_matches, cat_one_of, end_start_compare)\"");
    assert!(
        lines[2].starts_with("121,4,rule:amount_range,"),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].contains("`amount`: \"\"1000\"\" is outside [0, 1000)"),
        "{}",
        lines[2]
    );
    let expect: BTreeMap<String, u64> = [
        ("id_not_null", 1),
        ("amount_type", 1),
        ("amount_range", 2),
        ("day_type", 1),
        ("code_matches", 2),
        ("code_length", 1),
        ("cat_one_of", 1),
        ("end_start_compare", 1),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    assert_eq!(v, expect);
}

#[test]
fn flag_keeps_rows_and_adds_violations_column() {
    let data = "a,b\n1,x\n,y\n3,\n";
    let doc = json!({"version": 1, "on_violation": "flag", "rules": [
        {"column": "a", "check": "not_null"},
        {"column": "b", "check": "not_null", "id": "b_present"}
    ]});
    let (clean, rej, v) = run(data, doc);
    assert_eq!(
        clean,
        "a,b,_violations\n1,x,\n,y,a_not_null\n3,,b_present\n"
    );
    assert_eq!(rej, "source_byte_offset,source_line,reason,raw,detail\n");
    assert_eq!(v["a_not_null"], 1);
}

#[test]
fn transforms_masks_drop_and_rename() {
    let data = "name,email,card,day,amount,secret,code\n\
                \"  Zoë  \",jane.doe@example.com,4111111111111111,05/03/2021,+007.50,s3cr3t,ab-12\n\
                bob,,,,,x,\n";
    let doc = json!({"version": 1, "columns": {
        "name": {"transforms": ["trim", {"case": "upper"}], "rename": "NAME"},
        "email": {"transforms": [{"mask": "partial"}]},
        "card": {"transforms": [{"mask": "partial"}]},
        "day": {"transforms": [{"normalize": {"date": {"format": "%d/%m/%Y"}}}]},
        "amount": {"transforms": [{"normalize": "decimal"}, {"default": "0"}]},
        "secret": {"transforms": [{"mask": {"token": {"length": 12}}}]},
        "code": {"transforms": [{"replace": {"pattern": "-(\\d+)", "with": "#$1"}}, {"mask": {"redact": {}}}], "drop": false}
    }});
    let (clean, _, _) = run(data, doc.clone());
    let tok = |v: &str| {
        let mut t = mask::Tokenizer::new(b"test key", TokenEncoding::Hex, 12);
        let mut s = String::new();
        t.token(v, &mut s);
        s
    };
    assert_eq!(
        clean,
        format!(
            "NAME,email,card,day,amount,secret,code\n\
             ZOË,j***@example.com,************1111,2021-03-05,7.5,{},[REDACTED]\n\
             BOB,,,,0,{},\n",
            tok("s3cr3t"),
            tok("x")
        )
    );
    let mut d2 = doc;
    d2["columns"]["code"]["drop"] = json!(true);
    let c = compile(
        d2,
        &["name", "email", "card", "day", "amount", "secret", "code"],
    )
    .unwrap();
    assert_eq!(
        c.output_columns(),
        cols(&["NAME", "email", "card", "day", "amount", "secret"])
    );
}

/// The chunk processor copies untransformed fields of unquoted records straight from the
/// source bytes; that must equal encoding every field (`write_clean` on the parsed record),
/// with quoted and unquoted records, drops, adjacent and separated untransformed runs, and
/// transform chains that borrow (`trim`, `default`) or copy.
#[test]
fn raw_copy_of_untouched_fields_equals_encoding() {
    let header = ["a", "b", "c", "d", "e", "f"];
    let rows: Vec<Vec<&str>> = vec![
        vec!["1", " x ", "p", "q", "", "z"],
        vec!["2", "y, w", "p\"q", "r", " t ", ""],
        vec!["", "", "", "", "", ""],
        vec!["33", "  ", "long value here", "s", "u", "v"],
        vec!["4", "k", "l\nm", "n", "o", "9"],
    ];
    let enc = |f: &str| {
        let mut o = Vec::new();
        crate::chunk::write_field(&mut o, f.as_bytes());
        String::from_utf8(o).unwrap()
    };
    let mut data = header.join(",") + "\n";
    for r in &rows {
        data += &r.iter().map(|f| enc(f)).collect::<Vec<_>>().join(",");
        data += "\n";
    }
    let docs = [
        json!({"version": 1, "columns": {
            "b": {"transforms": ["trim", {"default": "-"}, {"case": "upper"}, "trim"]},
            "e": {"transforms": [{"default": "none"}], "rename": "E"},
            "d": {"drop": true}
        }, "rules": [{"column": "f", "check": "not_null", "on_violation": "flag"}]}),
        json!({"version": 1, "columns": {
            "a": {"transforms": [{"mask": "partial"}]},
            "f": {"transforms": ["trim"]}
        }}),
        json!({"version": 1, "columns": {
            "c": {"transforms": [{"replace": {"pattern": "e", "with": ","}}]},
            "a": {"drop": true}, "f": {"drop": true}
        }}),
        // Transforms whose output may need quotes although the input did not, and ones whose
        // output never does (written without the quoting scan in unquoted records).
        json!({"version": 1, "columns": {
            "a": {"transforms": [{"mask": {"token": {"length": 12}}}]},
            "b": {"transforms": [{"mask": {"redact": {"with": "x,y"}}}]},
            "c": {"transforms": [{"case": "upper"}, "trim"]},
            "d": {"transforms": [{"default": "a\"b"}]},
            "e": {"transforms": [{"default": "plain"}, {"mask": "partial"}]},
            "f": {"transforms": [{"normalize": "integer"}]}
        }}),
        json!({"version": 1, "columns": {
            "b": {"transforms": [{"mask": {"redact": {}}}], "rename": "B"},
            "e": {"transforms": [{"default": "x\ny"}]},
            "f": {"transforms": [{"mask": {"token": {"length": 7, "encoding": "hex"}}}]}
        }, "rules": [{"column": "a", "check": "not_null", "on_violation": "flag"}]}),
    ];
    for doc in docs {
        let c = Arc::new(compile(doc.clone(), &header).unwrap());
        let mut runner = RuleRunner::new(c.clone());
        let mut want = c.output_columns().join(",") + "\n";
        for r in &rows {
            let text: String = r.concat();
            let mut ends = Vec::new();
            let mut n = 0;
            for f in r {
                n += f.len();
                ends.push(n);
            }
            let rec = crate::record::Record::new(&text, &ends);
            assert_eq!(runner.check(&rec, 0), Verdict::Keep);
            let mut o = Vec::new();
            runner.write_clean(&rec, &mut o);
            want += std::str::from_utf8(&o).unwrap();
            want += "\n";
        }
        let (clean, _, _) = run(&data, doc);
        assert_eq!(clean, want);
    }
}

/// A unique column's tokens are computed two at a time and written late (`token_bytes` with
/// `defer`): the outputs must equal one HMAC per value, at any chunk size.
#[test]
fn tokens_of_unique_values_equal_hmacs() {
    use base64::Engine as _;
    let mut data = String::from("id,name\n");
    let mut want = String::from("id,name\n");
    for i in 0..20_000u32 {
        let name = if i % 10 == 0 { "\"a, b\"" } else { "ab" };
        data += &format!("{i},{name}\n");
        let d = mask::hmac_sha256(b"test key", i.to_string().as_bytes());
        let t = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d);
        want += &format!("{},{name}\n", &t[..16]);
    }
    let doc = json!({"version": 1, "columns": {
        "id": {"transforms": [{"mask": {"token": {"length": 16, "encoding": "base64url"}}}]}
    }});
    let d = from_value(&doc).unwrap();
    let rules = Arc::new(
        CompiledRules::compile(
            &d,
            &cols(&["id", "name"]),
            &ResolvedRefs::none(),
            Some(b"test key"),
        )
        .unwrap(),
    );
    for cs in [1 << 20, 40_000, 9_999] {
        let opts = ProcessOptions {
            chunk_size: cs,
            workers: 2,
            read_buffer_bytes: 777,
            chunk: ChunkOptions {
                rules: Some(rules.clone()),
                ..ChunkOptions::default()
            },
            ..ProcessOptions::default()
        };
        let out = process_bytes(data.as_bytes(), &opts).unwrap();
        assert_eq!(
            String::from_utf8(out.clean).unwrap(),
            want,
            "chunk size {cs}"
        );
    }
}

#[test]
fn unique_is_exact_across_chunks() {
    let data = "id,v\n1,a\n2,b\n1,c\n3,d\n1,e\n2,f\n,g\n,h\n";
    let doc = json!({"version": 1, "rules": [{"column": "id", "check": "unique"}]});
    // `run` checks every chunk size from 1 byte up gives the same outputs.
    let (clean, rej, v) = run(data, doc);
    assert_eq!(
        clean, "id,v\n1,a\n2,b\n3,d\n,g\n,h\n",
        "the repeats move out"
    );
    assert_eq!(v["id_unique"], 3);
    let lines: Vec<&str> = rej.lines().skip(1).collect();
    assert_eq!(lines.len(), 3, "{rej}");
    // Source lines 4, 6 and 7 (1-based, header = line 1) repeat ids 1, 1 and 2.
    for (l, line) in lines.iter().zip([4, 6, 7]) {
        assert!(l.contains(&format!(",{line},rule:id_unique,")), "{l}");
        assert!(l.contains("repeats an earlier record"), "{l}");
    }
    // Flagged instead: every record stays, the repeats carry the rule id.
    let doc = json!({"version": 1, "rules": [{"column": "id", "check": "unique", "on_violation": "flag"}]});
    let (clean, rej, _) = run(data, doc);
    assert_eq!(
        clean.lines().filter(|l| l.ends_with(",id_unique")).count(),
        3,
        "{clean}"
    );
    assert_eq!(rej.lines().count(), 1);
}

#[test]
fn thresholds() {
    let doc = from_value(&json!({"version": 1, "rules": [
        {"column": "a", "check": "not_null", "on_violation": {"fail": {"max_count": 2}}},
        {"column": "b", "check": "not_null", "on_violation": {"fail": {"max_percent": 10.0}}},
        {"column": "c", "check": "not_null", "on_violation": {"fail": {}}},
        {"column": "d", "check": "not_null"}
    ]}))
    .unwrap();
    let counts = |a: u64, b: u64, c: u64| -> BTreeMap<String, u64> {
        [
            ("a_not_null", a),
            ("b_not_null", b),
            ("c_not_null", c),
            ("d_not_null", 99),
        ]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect()
    };
    assert_eq!(doc.threshold_exceeded(100, &counts(2, 10, 0)), None);
    assert_eq!(
        doc.threshold_exceeded(100, &counts(3, 0, 0))
            .unwrap()
            .rule_id,
        "a_not_null"
    );
    assert_eq!(
        doc.threshold_exceeded(100, &counts(0, 11, 0))
            .unwrap()
            .rule_id,
        "b_not_null"
    );
    let e = doc.threshold_exceeded(100, &counts(0, 0, 1)).unwrap();
    assert_eq!(e.rule_id, "c_not_null");
    assert!(e.to_string().contains("allows no violations"), "{e}");
}

#[test]
fn fail_rules_reject_below_threshold() {
    let data = "a\n1\n\n\"\"\n";
    let doc = json!({"version": 1, "on_violation": {"fail": {"max_count": 5}}, "rules": [{"column": "a", "check": "not_null"}]});
    let (clean, rej, v) = run(data, doc);
    assert_eq!(clean, "a\n1\n");
    assert!(rej.contains("rule:a_not_null"));
    assert_eq!(v["a_not_null"], 1);
}

#[test]
fn one_of_reference_and_ignore_case() {
    let d = from_value(&json!({"version": 1, "rules": [
        {"column": "c", "check": {"one_of": {"ref": {"key": "refs/countries.csv", "column": "code"}, "ignore_case": true}}}
    ]}))
    .unwrap();
    assert_eq!(d.references().len(), 1);
    let err = CompiledRules::compile(&d, &cols(&["c"]), &ResolvedRefs::none(), None).unwrap_err();
    assert_eq!(err[0].path, "/rules/0/check/one_of/ref");
    let mut refs = ResolvedRefs::none();
    refs.insert(d.references()[0].clone(), vec!["DE".into(), "FR".into()]);
    let c = Arc::new(CompiledRules::compile(&d, &cols(&["c"]), &refs, None).unwrap());
    let mut r = RuleRunner::new(c);
    let check = |r: &mut RuleRunner, v: &str| {
        let ends = [v.len()];
        r.check(&crate::record::Record::new(v, &ends), 0)
    };
    assert_eq!(check(&mut r, "de"), Verdict::Keep);
    assert_eq!(check(&mut r, "Fr"), Verdict::Keep);
    assert_eq!(check(&mut r, "XX"), Verdict::Reject(0));
}

#[test]
fn validation_reports_every_error_with_its_path() {
    let doc = json!({
        "version": 1,
        "colums": {},
        "columns": {
            "nope": {"transforms": ["trim"]},
            "flag": {"type": "boolean"},
            "name": {"transforms": [{"replace": {"pattern": "(", "with": ""}}, {"mask": {"token": {}}}, "shout"]}
        },
        "rules": [
            {"column": "Amount", "check": "not_null"},
            {"column": "code", "check": {"matches": {"pattern": "[a-"}}},
            {"id": "x", "column": "code", "check": "not_null"},
            {"id": "x", "column": "code", "check": "not_null"},
            {"column": "flag", "check": {"range": {"min": 0}}},
            {"column": "code", "check": {"compare": {"left": "start", "op": ">=", "right": "code"}}},
            {"column": "code", "chekc": "not_null"},
            {"column": "code", "check": {"between": {}}}
        ]
    });
    // Structure first: every structural error at once.
    let errs = from_value(&doc).unwrap_err();
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/colums",
            "/columns/name/transforms/2",
            "/rules/6/chekc",
            "/rules/6/check",
            "/rules/7/check"
        ],
        "{errs:#?}"
    );
    assert!(errs[0].message.contains("unknown key `colums`"));
    // Fix the structure; then every semantic error at once.
    let mut doc = doc;
    doc.as_object_mut().unwrap().remove("colums");
    doc["columns"]["name"]["transforms"]
        .as_array_mut()
        .unwrap()
        .pop();
    let rules = doc["rules"].as_array_mut().unwrap();
    rules.truncate(6);
    let d = from_value(&doc).unwrap();
    let errs = CompiledRules::compile(
        &d,
        &cols(&["amount", "code", "flag", "name", "start"]),
        &ResolvedRefs::none(),
        None,
    )
    .unwrap_err();
    let got: Vec<(&str, &str)> = errs
        .iter()
        .map(|e| (e.path.as_str(), e.message.as_str()))
        .collect();
    let has = |path: &str, text: &str| {
        assert!(
            got.iter().any(|(p, m)| *p == path && m.contains(text)),
            "no {path} containing {text:?} in {got:#?}"
        )
    };
    has("/columns/nope", "unknown column `nope`");
    has(
        "/columns/name/transforms/0/replace/pattern",
        "invalid regular expression",
    );
    has("/columns/name/transforms/1/mask/token", "needs a key");
    has("/rules/0/column", "did you mean `amount`?");
    has(
        "/rules/1/check/matches/pattern",
        "invalid regular expression",
    );
    has("/rules/3/id", "duplicate id `x`");
    has("/rules/4/check/range", "type mismatch");
    has("/rules/5/column", "remove `column`");
    has("/rules/5/check/compare", "has no type");
}

#[test]
fn generated_ids_are_stable_and_distinct() {
    let d = from_value(&json!({"version": 1, "rules": [
        {"column": "a", "check": "not_null"},
        {"column": "a", "check": "not_null"},
        {"id": "a_not_null_3", "column": "a", "check": "unique"},
        {"column": "a", "check": "not_null"},
        {"column": "a b", "check": "not_null"}
    ]}))
    .unwrap();
    assert_eq!(
        d.rule_ids(),
        [
            "a_not_null",
            "a_not_null_2",
            "a_not_null_3",
            "a_not_null_4",
            "a_b_not_null"
        ]
    );
    assert_eq!(d.rule_ids(), d.clone().rule_ids());
}

#[test]
fn documents_round_trip() {
    let text = r#"{"version":1,"on_violation":{"fail":{"max_percent":1.5}},
        "columns":{"d":{"type":{"timestamp":{"format":"%Y%m%d %T"}},"transforms":[{"mask":{"token":{"encoding":"base64url","length":10}}}]}},
        "rules":[{"column":"d","check":{"type":{"timestamp":{}}},"on_violation":"flag","message":"bad time"}]}"#;
    let d = parse_document(text).unwrap();
    let again = parse_document(&serde_json::to_string(&d).unwrap()).unwrap();
    assert_eq!(d, again);
    assert!(parse_document("{").unwrap_err()[0]
        .message
        .contains("not valid JSON"));
    assert_eq!(parse_document("{}").unwrap_err()[0].path, "/version");
}

#[test]
fn committed_schema_matches_the_types() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/rules.schema.json");
    let generated = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
    if std::env::var_os("TESSERA_WRITE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/rules.schema.json is out of date; regenerate it with \
         TESSERA_WRITE_SCHEMA=1 cargo test -p tessera-engine committed_schema"
    );
}

#[test]
fn unique_rerun_rejects_exactly_the_known_repeats_and_emits_no_keys() {
    let d = from_value(&json!({"version": 1, "rules": [
        {"column": "id", "check": "unique"},
        {"column": "id", "check": "not_null", "on_violation": "flag"}
    ]}))
    .unwrap();
    let c =
        Arc::new(CompiledRules::compile(&d, &cols(&["id"]), &ResolvedRefs::none(), None).unwrap());
    let check = |r: &mut RuleRunner, v: &str, off: u64| {
        let ends = [v.len()];
        r.check(&crate::record::Record::new(v, &ends), off)
    };
    // First pass: every value passes, and its key is kept for the second pass.
    let mut first = RuleRunner::new(c.clone());
    assert_eq!(check(&mut first, "a", 10), Verdict::Keep);
    assert_eq!(check(&mut first, "a", 20), Verdict::Keep);
    let out = first.finish();
    assert_eq!(out.unique_keys[0].entries.len(), 2);
    assert_eq!(out.violations["id_unique"], 0);
    // Re-run with the pass's answer: the record at 20 repeats, 10 does not.
    let mut known = crate::rules::unique::Repeats::new();
    known.insert("id_unique".into(), [20u64].into_iter().collect());
    let mut rerun = RuleRunner::with_repeats(c, &known);
    assert_eq!(check(&mut rerun, "a", 10), Verdict::Keep);
    assert_eq!(check(&mut rerun, "a", 20), Verdict::Reject(0));
    let out = rerun.finish();
    assert_eq!(out.violations["id_unique"], 1);
    assert!(out.unique_keys[0].entries.is_empty());
}

#[test]
fn documents_are_checked_against_the_profile() {
    // Profile a small file: `amount` has one decimal among integers, `name` is text, `day` dates.
    let data = "id,amount,name,day\n1,10,Ann,2026-01-02\n2,20.5,Bob,2026-01-03\n3,30,Cy,\n";
    let out = process_bytes(data.as_bytes(), &ProcessOptions::default()).unwrap();
    let profile = out.profile.report();
    let doc = from_value(&json!({"version": 1,
    "columns": {"amount": {"type": "integer"}, "nope": {"transforms": ["trim"]}},
    "rules": [
        {"column": "name", "check": {"type": "decimal"}},
        {"column": "name", "check": {"range": {"min": 0}}},
        {"column": "day", "check": {"type": {"date": {}}}},
        {"column": "id", "check": {"range": {"min": 0, "max": 9}}},
        {"check": {"compare": {"left": "id", "op": "<=", "right": "gone"}}}
    ]}))
    .unwrap();
    let errs = against_profile(&doc, &profile);
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/columns/nope",
            "/rules/4/check/compare/right",
            "/columns/amount/type",
            "/rules/0/check/type",
        ],
        "{errs:#?}"
    );
    assert!(
        errs[0].message.contains("id, amount, name, day"),
        "{}",
        errs[0]
    );
    assert!(
        errs[2]
            .message
            .contains("1 of the 3 non-empty values of `amount` are not integers")
            && errs[2].message.contains("`decimal`"),
        "{}",
        errs[2]
    );
    assert!(errs[3].message.contains("3 of the 3"), "{}", errs[3]);
    // A numeric range on an undeclared text column compares as decimal: nothing fits.
    let range = from_value(&json!({"version": 1,
        "rules": [{"column": "name", "check": {"range": {"min": 0}}}]}))
    .unwrap();
    let errs = against_profile(&range, &profile);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "/rules/0/check/range");
    // A document that fits its file has nothing to report.
    let good = from_value(
        &json!({"version": 1, "columns": {"amount": {"type": "decimal"}},
        "rules": [{"column": "amount", "check": {"range": {"min": 0}}},
                  {"column": "day", "check": {"type": {"date": {}}}}]}),
    )
    .unwrap();
    assert_eq!(against_profile(&good, &profile), vec![]);
}

#[test]
fn a_replace_pattern_that_matches_between_characters_is_refused() {
    let compile = |pattern: &str| {
        let doc = json!({"version": 1, "columns": {
            "name": {"transforms": [{"replace": {"pattern": pattern, "with": "--"}}]}}});
        CompiledRules::compile(
            &from_value(&doc).unwrap(),
            &cols(&["name"]),
            &ResolvedRefs::none(),
            None,
        )
    };
    for bad in ["x*", "", "a?", "\\b|q*"] {
        let errs = compile(bad).unwrap_err();
        assert_eq!(errs[0].path, "/columns/name/transforms/0/replace/pattern");
        assert!(
            errs[0].message.contains("matches the empty string"),
            "{bad}: {errs:?}"
        );
    }
    // One empty match per value (a prefix or a suffix) and ordinary patterns stay allowed.
    for good in ["^", "$", "x+", "-(\\d+)", "^$"] {
        assert!(compile(good).is_ok(), "{good}");
    }
}
