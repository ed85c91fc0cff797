//! Rule documents of saved workflows: validation when a workflow is saved (the api), and what a
//! job needs to run one (the pipeline): owner-relative reference keys and the compiled rules.
//!
//! Not here: storage (`store::workflows`), the rule language itself (`tessera_engine::rules`).

use tessera_engine::rules::{self, CompiledRules, ResolvedRefs, RuleDocument, ValidationError};

/// A key the token-mask check accepts while validating without a configured key (the real key
/// is only needed when a job runs).
const PLACEHOLDER_KEY: [u8; 32] = [0; 32];

/// Validates a rule document as far as it can be without the file: its structure
/// (`parse_document`), then its meaning (regexes, formats, types, ids) by compiling it against
/// the columns it names itself. Unknown columns are found when a job runs against a header.
/// `model_configured`: the deployment has a language model (`TESSERA_MODEL_ID`); without one a
/// `model` sentiment step is refused at its path (`rules::MODEL_ENGINE_UNAVAILABLE`).
pub fn validate_document(
    v: &serde_json::Value,
    model_configured: bool,
) -> Result<RuleDocument, Vec<ValidationError>> {
    let doc = rules::from_value(v)?;
    if !model_configured {
        let errs = rules::refuse_model_engine(&doc, rules::MODEL_ENGINE_UNAVAILABLE);
        if !errs.is_empty() {
            return Err(errs);
        }
    }
    let columns = named_columns(&doc);
    let mut refs = ResolvedRefs::none();
    for r in doc.references() {
        if let Err(e) = reference_key("validation", &r.key) {
            let i = doc
                .rules
                .iter()
                .position(|x| match &x.check {
                    rules::Check::OneOf(o) => o.reference.as_ref() == Some(&r),
                    _ => false,
                })
                .unwrap_or(0);
            return Err(vec![ValidationError {
                path: format!("/rules/{i}/check/one_of/ref/key"),
                message: e,
            }]);
        }
        refs.insert(r, Vec::new());
    }
    CompiledRules::compile(&doc, &columns, &refs, Some(&PLACEHOLDER_KEY))?;
    Ok(doc)
}

/// Every column the document mentions, in first-mention order.
fn named_columns(doc: &RuleDocument) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |c: &str| {
        if !out.iter().any(|x| x == c) {
            out.push(c.to_string());
        }
    };
    for c in doc.columns.keys() {
        add(c);
    }
    for r in &doc.rules {
        if let Some(c) = &r.column {
            add(c);
        }
        if let rules::Check::Compare(c) = &r.check {
            add(&c.left);
            add(&c.right);
        }
    }
    out
}

/// Largest reference file (each chunk worker holds its column in memory as a set).
pub const MAX_REFERENCE_BYTES: u64 = 64 << 20;

/// The prefix of an owner's reference files.
pub fn reference_prefix(owner: &str) -> String {
    format!("refs/{}/", crate::keys::segment(owner))
}

/// The S3 key of a reference file: `refs/<owner>/<key>`. The document's key is relative to the
/// owner's prefix, so one owner can never name another's file; `..`, empty segments and absolute
/// keys are refused.
pub fn reference_key(owner: &str, key: &str) -> Result<String, String> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.len() > 512
        || key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(format!(
            "reference key `{key}` must be a relative path like `countries.csv` or `lists/codes.csv` \
             (no leading `/`, no empty, `.` or `..` segments); it is read from refs/<your id>/"
        ));
    }
    if let Some((i, c)) = crate::keys::forbidden_char(key) {
        return Err(format!(
            "reference key {key:?} holds the character U+{:04X} at position {i}; keys may not hold \
             control or bidirectional-control characters (they break listings and display names \
             as others). Rename the file.",
            c as u32
        ));
    }
    Ok(format!("{}{key}", reference_prefix(owner)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bad_regex_is_reported_with_its_path() {
        let doc = json!({"version": 1, "rules": [
            {"column": "a", "check": "not_null"},
            {"column": "b", "check": {"matches": {"pattern": "[a-"}}}
        ]});
        let errs = validate_document(&doc, true).unwrap_err();
        assert_eq!(errs[0].path, "/rules/1/check/matches/pattern", "{errs:?}");
    }

    #[test]
    fn the_model_engine_needs_a_model() {
        let doc = json!({"version": 1, "columns": {
            "review": {"derive": {"sentiment": {"engine": "model", "max_cost_usd": 1}}},
            "title": {"derive": {"sentiment": {"engine": "lexicon"}}}
        }});
        assert!(validate_document(&doc, true).is_ok());
        let errs = validate_document(&doc, false).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].path, "/columns/review/derive/sentiment/engine");
        assert_eq!(errs[0].message, rules::MODEL_ENGINE_UNAVAILABLE);
    }

    #[test]
    fn reference_keys_stay_under_the_owner() {
        assert_eq!(
            reference_key("alice", "lists/c.csv").unwrap(),
            "refs/alice/lists/c.csv"
        );
        for k in [
            "../bob/x.csv",
            "/x.csv",
            "a//b",
            "",
            "a\nb.csv",
            "x\u{202E}vsc.csv",
        ] {
            assert!(reference_key("alice", k).is_err(), "{k}");
        }
    }
}
