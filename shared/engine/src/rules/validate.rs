//! Reading a rule document from JSON with *every* problem reported, each with a JSON pointer
//! (`/rules/3/check/matches/pattern`) and a message a person can act on.
//!
//! Structure is checked piece by piece (top-level keys, each column spec, each rule, each
//! transform) so one typo does not hide the others; meaning (columns, regexes, types, ids) is
//! checked by `compile`.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::doc::{
    Action, Bound, Check, ColumnSpec, Rule, RuleDocument, SentimentEngine, SentimentSpec,
    Transform, TypeSpec, RULES_VERSION,
};

/// One problem in a rule document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationError {
    /// JSON pointer (RFC 6901) to the offending value; empty for the whole document.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{p}: {}", self.message)
    }
}

impl ValidationError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Most rules in one document (each is checked on every record of every chunk).
pub const MAX_RULES: usize = 500;
/// Most column specs (`columns.<name>`) in one document: the file's own column limit.
pub const MAX_COLUMN_SPECS: usize = 10_000;
/// Most distinct reference files (`one_of.ref`) one document names: every chunk worker holds
/// each list in memory (each at most 64 MiB), so 4 bound that to 256 MiB of lists.
pub const MAX_REFERENCES: usize = 4;

/// A document over one of the limits above: a stable code, the JSON path and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    /// `too_many_rules`, `too_many_column_specs` or `too_many_references`.
    pub code: &'static str,
    pub path: &'static str,
    pub message: String,
}

/// Checks the document's counts against [`MAX_RULES`], [`MAX_COLUMN_SPECS`] and
/// [`MAX_REFERENCES`] on the raw JSON, before any rule is parsed or compiled, so an oversized
/// document costs one pass over its JSON. Shapes are [`from_value`]'s to check.
pub fn check_limits(v: &Value) -> Result<(), LimitExceeded> {
    let rules = v.get("rules").and_then(Value::as_array);
    let n = rules.map_or(0, Vec::len);
    if n > MAX_RULES {
        return Err(LimitExceeded {
            code: "too_many_rules",
            path: "/rules",
            message: format!("the document has {n} rules; at most {MAX_RULES} are allowed. Merge checks on one column into one rule (e.g. one `matches` pattern), or split the work over two workflows."),
        });
    }
    let n = v
        .get("columns")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len());
    if n > MAX_COLUMN_SPECS {
        return Err(LimitExceeded {
            code: "too_many_column_specs",
            path: "/columns",
            message: format!("the document declares {n} columns; at most {MAX_COLUMN_SPECS} are allowed (a file has at most that many)."),
        });
    }
    let mut keys: Vec<&str> = rules
        .into_iter()
        .flatten()
        .filter_map(|r| r.pointer("/check/one_of/ref/key")?.as_str())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.len() > MAX_REFERENCES {
        return Err(LimitExceeded {
            code: "too_many_references",
            path: "/rules",
            message: format!("the document names {} reference files; at most {MAX_REFERENCES} are allowed (every worker holds each list in memory). Combine the lists into fewer files.", keys.len()),
        });
    }
    Ok(())
}

/// Escapes one JSON pointer segment.
pub(crate) fn seg(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn field<T: DeserializeOwned>(v: &Value, path: &str, errs: &mut Vec<ValidationError>) -> Option<T> {
    match serde_json::from_value::<T>(v.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            errs.push(ValidationError::new(path, e.to_string()));
            None
        }
    }
}

fn check_keys(
    obj: &serde_json::Map<String, Value>,
    known: &[&str],
    path: &str,
    errs: &mut Vec<ValidationError>,
) {
    for k in obj.keys() {
        if !known.contains(&k.as_str()) {
            errs.push(ValidationError::new(
                format!("{path}/{}", seg(k)),
                format!("unknown key `{k}`; expected one of: {}", known.join(", ")),
            ));
        }
    }
}

/// Parses a rule document, reporting every structural problem with its path.
pub fn parse_document(json: &str) -> Result<RuleDocument, Vec<ValidationError>> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| vec![ValidationError::new("", format!("not valid JSON: {e}"))])?;
    from_value(&v)
}

/// Like [`parse_document`] from an already parsed JSON value.
pub fn from_value(v: &Value) -> Result<RuleDocument, Vec<ValidationError>> {
    let mut errs = Vec::new();
    let Some(obj) = v.as_object() else {
        return Err(vec![ValidationError::new(
            "",
            "a rule document is a JSON object: {\"version\": 1, \"rules\": [...]}",
        )]);
    };
    check_keys(
        obj,
        &["version", "on_violation", "columns", "rules"],
        "",
        &mut errs,
    );
    let version = match obj.get("version") {
        None => {
            errs.push(ValidationError::new(
                "/version",
                format!("missing; add \"version\": {RULES_VERSION}"),
            ));
            None
        }
        Some(x) => match x.as_u64() {
            Some(n) if n == u64::from(RULES_VERSION) => Some(RULES_VERSION),
            _ => {
                errs.push(ValidationError::new(
                    "/version",
                    format!("unsupported version {x}; this engine reads version {RULES_VERSION}"),
                ));
                None
            }
        },
    };
    let on_violation = obj.get("on_violation").map_or(Some(Action::Reject), |x| {
        field::<Action>(x, "/on_violation", &mut errs)
    });
    let mut columns = std::collections::BTreeMap::new();
    match obj.get("columns") {
        None => {}
        Some(Value::Object(m)) => {
            for (name, spec) in m {
                let p = format!("/columns/{}", seg(name));
                if let Some(s) = column_spec(spec, &p, &mut errs) {
                    columns.insert(name.clone(), s);
                }
            }
        }
        Some(_) => errs.push(ValidationError::new(
            "/columns",
            "must be an object keyed by column name",
        )),
    }
    let mut rules = Vec::new();
    match obj.get("rules") {
        None => {}
        Some(Value::Array(a)) => {
            for (i, r) in a.iter().enumerate() {
                if let Some(r) = rule(r, &format!("/rules/{i}"), &mut errs) {
                    rules.push(r);
                }
            }
        }
        Some(_) => errs.push(ValidationError::new("/rules", "must be an array of rules")),
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(RuleDocument {
        version: version.expect("no error means a version"),
        on_violation: on_violation.expect("no error means an action"),
        columns,
        rules,
    })
}

fn column_spec(v: &Value, p: &str, errs: &mut Vec<ValidationError>) -> Option<ColumnSpec> {
    let Some(obj) = v.as_object() else {
        errs.push(ValidationError::new(
            p,
            "must be an object: {\"type\", \"transforms\", \"rename\", \"drop\", \"derive\"}",
        ));
        return None;
    };
    let before = errs.len();
    check_keys(
        obj,
        &["type", "transforms", "rename", "drop", "derive"],
        p,
        errs,
    );
    // `null` is an absent step, as the schema (an optional field) allows.
    if let Some(d) = obj.get("derive").filter(|d| !d.is_null()) {
        derive_spec(d, &format!("{p}/derive"), errs);
    }
    if let Some(t) = obj.get("type") {
        field::<TypeSpec>(t, &format!("{p}/type"), errs);
    }
    match obj.get("transforms") {
        Some(Value::Array(a)) => {
            for (j, t) in a.iter().enumerate() {
                field::<Transform>(t, &format!("{p}/transforms/{j}"), errs);
            }
        }
        Some(_) => errs.push(ValidationError::new(
            format!("{p}/transforms"),
            "must be an array",
        )),
        None => {}
    }
    if errs.len() > before {
        return None;
    }
    field::<ColumnSpec>(v, p, errs)
}

/// The message of a derive step that asks for the `model` engine where no model is
/// configured (stable: callers and tests match it). See [`refuse_model_engine`].
pub const MODEL_ENGINE_UNAVAILABLE: &str = "the `model` sentiment engine needs a language model, \
     and none is configured here (TESSERA_MODEL_ID); use \"engine\": \"lexicon\", or ask the \
     operator to configure a model";

/// The message of a `model` step without `max_cost_usd` (stable: callers and tests match it).
pub const MAX_COST_REQUIRED: &str = "the `model` engine needs a cost limit: add \
     \"max_cost_usd\": the most this job may spend grading the column, in US dollars (a job \
     estimated above it is refused with `cost_limit`; one that reaches it stops grading)";

/// One error per `model` derive step of `doc`, at `/columns/<name>/derive/sentiment/engine`,
/// with `message`: what a caller without a model (a deployment without `TESSERA_MODEL_ID`,
/// `tessera process` on a local file) answers.
pub fn refuse_model_engine(doc: &RuleDocument, message: &str) -> Vec<ValidationError> {
    doc.columns
        .iter()
        .filter(|(_, c)| {
            c.derive
                .as_ref()
                .is_some_and(|d| d.sentiment.engine == SentimentEngine::Model)
        })
        .map(|(name, _)| {
            ValidationError::new(
                format!("/columns/{}/derive/sentiment/engine", seg(name)),
                message,
            )
        })
        .collect()
}

/// A `derive` object: each key checked on its own, so a typo and the `model` engine are both
/// reported at their own paths.
fn derive_spec(v: &Value, p: &str, errs: &mut Vec<ValidationError>) {
    let Some(obj) = v.as_object() else {
        errs.push(ValidationError::new(
            p,
            "must be an object: {\"sentiment\": {\"engine\": \"lexicon\"}}",
        ));
        return;
    };
    check_keys(obj, &["sentiment"], p, errs);
    let Some(sv) = obj.get("sentiment") else {
        errs.push(ValidationError::new(
            format!("{p}/sentiment"),
            "missing; add \"sentiment\": {\"engine\": \"lexicon\"}",
        ));
        return;
    };
    let sp = format!("{p}/sentiment");
    if let Some(spec) = field::<SentimentSpec>(sv, &sp, errs) {
        match (spec.engine, spec.sample) {
            (SentimentEngine::Lexicon, Some(_)) => errs.push(ValidationError::new(
                format!("{sp}/sample"),
                "`sample` is for the `model` engine (the lexicon scores every row at engine \
                 speed); remove it",
            )),
            (_, Some(0)) => errs.push(ValidationError::new(
                format!("{sp}/sample"),
                "must be at least 1 (the number of rows to grade)",
            )),
            _ => {}
        }
        match (spec.engine, spec.max_cost_usd) {
            (SentimentEngine::Lexicon, Some(_)) => errs.push(ValidationError::new(
                format!("{sp}/max_cost_usd"),
                "`max_cost_usd` is for the `model` engine (the lexicon costs nothing per row); \
                 remove it",
            )),
            (SentimentEngine::Model, None) => errs.push(ValidationError::new(
                format!("{sp}/max_cost_usd"),
                MAX_COST_REQUIRED,
            )),
            (_, Some(c)) if !(c.is_finite() && c > 0.0) => errs.push(ValidationError::new(
                format!("{sp}/max_cost_usd"),
                "must be a number of US dollars above 0",
            )),
            _ => {}
        }
    }
}

fn rule(v: &Value, p: &str, errs: &mut Vec<ValidationError>) -> Option<Rule> {
    let Some(obj) = v.as_object() else {
        errs.push(ValidationError::new(
            p,
            "a rule is an object: {\"column\", \"check\", ...}",
        ));
        return None;
    };
    let before = errs.len();
    check_keys(
        obj,
        &["id", "column", "check", "on_violation", "message"],
        p,
        errs,
    );
    match obj.get("check") {
        None => errs.push(ValidationError::new(
            format!("{p}/check"),
            "missing; e.g. \"check\": \"not_null\" or \"check\": {\"range\": {\"min\": 0}}",
        )),
        Some(c) => {
            field::<Check>(c, &format!("{p}/check"), errs);
        }
    }
    if let Some(a) = obj.get("on_violation") {
        field::<Action>(a, &format!("{p}/on_violation"), errs);
    }
    if errs.len() > before {
        return None;
    }
    field::<Rule>(v, p, errs)
}

/// Checks a parsed document against the profile of a file it is meant for: every column it
/// names must exist, and every type it relies on — `columns.<c>.type`, a `type` check, a
/// `range` with numeric bounds on an undeclared column (compared as decimal) — must fit the
/// column's values. Integer and decimal counts in the profile are exact, so any value that does
/// not fit is reported (with how many, so a person can tell a typo in the data from a wrong
/// declaration). For booleans, dates and timestamps the profile recognises fewer spellings than
/// the rules accept (`true`/`false`, ISO dates), so only a type that *no* value fits is
/// reported. A custom `format` is not second-guessed.
pub fn against_profile(
    doc: &RuleDocument,
    profile: &crate::profile::ProfileReport,
) -> Vec<ValidationError> {
    let mut errs = Vec::new();
    let column = |name: &str| profile.columns.iter().find(|c| c.name == name);
    let names = || {
        profile
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let unknown = |path: String, name: &str, errs: &mut Vec<ValidationError>| {
        if column(name).is_none() {
            errs.push(ValidationError::new(
                path,
                format!(
                    "unknown column `{name}`; the file's columns are: {}",
                    names()
                ),
            ));
            false
        } else {
            true
        }
    };
    let mut types: Vec<(String, String, TypeSpec)> = Vec::new();
    for (name, spec) in &doc.columns {
        let path = format!("/columns/{}", seg(name));
        if unknown(path.clone(), name, &mut errs) {
            if let Some(ty) = &spec.ty {
                types.push((format!("{path}/type"), name.clone(), ty.clone()));
            }
        }
    }
    for (i, rule) in doc.rules.iter().enumerate() {
        let path = format!("/rules/{i}");
        if let Check::Compare(c) = &rule.check {
            unknown(format!("{path}/check/compare/left"), &c.left, &mut errs);
            unknown(format!("{path}/check/compare/right"), &c.right, &mut errs);
            continue;
        }
        let Some(name) = &rule.column else { continue };
        if !unknown(format!("{path}/column"), name, &mut errs) {
            continue;
        }
        match &rule.check {
            Check::Type(ty) => types.push((format!("{path}/check/type"), name.clone(), ty.clone())),
            Check::Range(r) => {
                let numeric = matches!(r.min, Some(Bound::Number(_)))
                    || matches!(r.max, Some(Bound::Number(_)));
                let declared = doc.columns.get(name).is_some_and(|c| c.ty.is_some())
                    || doc.rules.iter().any(|o| {
                        o.column.as_deref() == Some(name) && matches!(o.check, Check::Type(_))
                    });
                if numeric && !declared {
                    types.push((
                        format!("{path}/check/range"),
                        name.clone(),
                        TypeSpec::Decimal,
                    ));
                }
            }
            _ => {}
        }
    }
    for (path, name, ty) in types {
        let Some(c) = column(&name) else { continue };
        let tc = &c.type_counts;
        let (fits, exact, what) = match &ty {
            TypeSpec::Integer => (tc.integer, true, "integers"),
            TypeSpec::Decimal => (tc.decimal, true, "decimal numbers"),
            TypeSpec::Boolean => (tc.boolean, false, "booleans"),
            TypeSpec::Date(f) if f.format.is_none() => (tc.date, false, "dates"),
            TypeSpec::Timestamp(f) if f.format.is_none() => (tc.timestamp, false, "timestamps"),
            _ => continue,
        };
        let off = c.count.saturating_sub(fits);
        if off == 0 || (!exact && fits > 0) {
            continue;
        }
        let profiled = serde_json::to_value(c.r#type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        errs.push(ValidationError::new(
            path,
            format!(
                "type mismatch with the profile: {off} of the {} non-empty values of `{name}` are not {what} (the profile infers `{profiled}`); fix the declared type, or keep it and expect those records to violate",
                c.count
            ),
        ));
    }
    errs
}
