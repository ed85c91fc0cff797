//! From a [`QueryDocument`] and the file's [`Schema`] to a [`Plan`]: names resolved to the
//! few columns the query reads ("slots"), literals typed as their column, every semantic
//! problem collected with its JSON path (unknown columns with a suggestion, type mismatches,
//! bad arguments).
//!
//! Not here: JSON structure (`parse`), running (`exec`), the final step (`finish`).

use regex::Regex;

use super::doc::*;
use super::error::{Problem, QueryError};
use super::plan::*;
use super::schema::Schema;
use super::value::{parse_as, Fixed, OwnedVal};

/// Knobs of a query run.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOptions {
    /// Groups allowed before the query fails with `too_many_groups`.
    pub max_groups: usize,
    /// Values held by the exact sets of `count_distinct` and `top`, over all groups, before
    /// the query fails with `too_many_values` (each costs about 60 bytes plus its text).
    pub max_values: u64,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            max_groups: 1_000_000,
            max_values: 5_000_000,
        }
    }
}

pub(crate) struct Ctx<'a> {
    schema: &'a Schema,
    types: Vec<ValueType>,
    slots: Vec<usize>,
    problems: Vec<Problem>,
}

/// Checks `doc` against `schema` and builds the plan; all problems at once.
pub fn compile(
    doc: &QueryDocument,
    schema: &Schema,
    opts: &QueryOptions,
) -> Result<Plan, QueryError> {
    let mut cx = Ctx {
        schema,
        types: schema.types.clone(),
        slots: Vec::new(),
        problems: Vec::new(),
    };
    if doc.version != QUERY_VERSION {
        cx.problem(
            "unsupported_version",
            "$.version",
            format!(
                "version {} is not known; this engine reads version {QUERY_VERSION}",
                doc.version
            ),
        );
    }
    for (name, ty) in &doc.types {
        if let Some(c) = cx.column(name, &format!("$.types.{name}")) {
            cx.types[c] = *ty;
        }
    }
    if doc.group_by.is_empty() && doc.aggregates.is_empty() {
        cx.problem(
            "empty_query",
            "$",
            "give at least one of `group_by` and `aggregates`, e.g. \"aggregates\": [{\"fn\": \"count\"}]",
        );
    }
    let filter = doc.filter.as_ref().and_then(|p| cx.pred(p, "$.filter"));
    let keys: Vec<KeyPlan> = doc
        .group_by
        .iter()
        .enumerate()
        .filter_map(|(i, k)| cx.key(k, &format!("$.group_by[{i}]")))
        .collect();
    let aggs: Vec<AggPlan> = doc
        .aggregates
        .iter()
        .enumerate()
        .filter_map(|(i, a)| cx.agg(a, &format!("$.aggregates[{i}]")))
        .collect();
    if !cx.problems.is_empty() {
        return Err(QueryError::Invalid(cx.problems));
    }
    let mut columns: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
    columns.extend(aggs.iter().map(|a| a.name.clone()));
    let kinds: Vec<CellKind> = keys
        .iter()
        .map(|k| CellKind::Typed(k.out_type))
        .chain(aggs.iter().map(|a| a.out))
        .collect();
    let having = doc
        .having
        .as_ref()
        .and_then(|h| cx.having(h, "$.having", &columns, keys.len(), &kinds));
    let mut order = Vec::new();
    for (i, o) in doc.order_by.iter().enumerate() {
        let path = format!("$.order_by[{i}]");
        if let Some(col) = cx.target(
            o.key.as_deref(),
            o.aggregate,
            &path,
            &columns,
            keys.len(),
            &kinds,
        ) {
            order.push((col, o.desc));
        }
    }
    if !cx.problems.is_empty() {
        return Err(QueryError::Invalid(cx.problems));
    }
    let slot_names = cx
        .slots
        .iter()
        .map(|&c| schema.columns[c].clone())
        .collect();
    let slot_types = cx.slots.iter().map(|&c| cx.types[c]).collect();
    Ok(Plan {
        ncols: schema.columns.len(),
        slot_cols: cx.slots,
        slot_names,
        slot_types,
        filter,
        keys,
        aggs,
        having,
        order,
        limit: doc.limit.unwrap_or(DEFAULT_LIMIT),
        offset: doc.offset.unwrap_or(0),
        columns,
        max_groups: opts.max_groups,
        max_values: opts.max_values,
        fingerprint: fingerprint(doc, schema),
    })
}

/// Identifies the (document, schema) pair, so that partial states of another query are
/// refused at merge.
fn fingerprint(doc: &QueryDocument, schema: &Schema) -> u64 {
    let text = serde_json::to_vec(&(doc, schema)).expect("documents serialise");
    xxhash_rust::xxh3::xxh3_64(&text)
}

impl Ctx<'_> {
    pub(crate) fn problem(&mut self, code: &str, path: impl Into<String>, msg: impl Into<String>) {
        self.problems.push(Problem::new(code, path, msg));
    }

    /// The column index of `name`, or a problem with a suggestion.
    pub(crate) fn column(&mut self, name: &str, path: &str) -> Option<usize> {
        if let Some(i) = self.schema.columns.iter().position(|c| c == name) {
            return Some(i);
        }
        let best = self
            .schema
            .columns
            .iter()
            .map(|c| {
                (
                    strsim::levenshtein(&c.to_lowercase(), &name.to_lowercase()),
                    c,
                )
            })
            .min();
        let hint = match best {
            Some((d, c)) if d <= 2.max(name.len() / 3) => format!("did you mean `{c}`?"),
            _ => format!("the columns are: {}", self.schema.columns.join(", ")),
        };
        self.problem(
            "unknown_column",
            path,
            format!("no column `{name}`; {hint}"),
        );
        None
    }

    /// The slot of column `name` (the slot list is the set of columns the query reads).
    pub(crate) fn slot(&mut self, name: &str, path: &str) -> Option<(usize, ValueType)> {
        let c = self.column(name, path)?;
        let s = match self.slots.iter().position(|&x| x == c) {
            Some(s) => s,
            None => {
                self.slots.push(c);
                self.slots.len() - 1
            }
        };
        Some((s, self.types[c]))
    }

    pub(crate) fn literal(
        &mut self,
        ty: ValueType,
        v: &serde_json::Value,
        path: &str,
    ) -> Option<OwnedVal> {
        use serde_json::Value as J;
        let got = match (ty, v) {
            (ValueType::Integer, J::Number(n)) => match n.as_i64() {
                Some(i) => Some(OwnedVal::Int(i)),
                None => Fixed::parse(&n.to_string()).map(OwnedVal::Dec),
            },
            (ValueType::Decimal, J::Number(n)) => Fixed::parse(&n.to_string()).map(OwnedVal::Dec),
            (ValueType::Boolean, J::Bool(b)) => Some(OwnedVal::Bool(*b)),
            (ValueType::Date | ValueType::Timestamp, J::String(s)) => {
                parse_as(ty, s).map(|v| v.to_owned_val())
            }
            (ValueType::String, J::String(s)) => Some(OwnedVal::Str(s.clone())),
            _ => None,
        };
        if got.is_none() {
            let want = match ty {
                ValueType::Integer | ValueType::Decimal => "a JSON number (at most 38 digits)",
                ValueType::Boolean => "true or false",
                ValueType::Date => "a date string YYYY-MM-DD",
                ValueType::Timestamp => "a timestamp string such as 2024-01-31T12:00:00Z",
                ValueType::String => "a JSON string",
            };
            self.problem(
                "type_mismatch",
                path,
                format!("the column is {ty:?}, so the value must be {want}, not {v}"),
            );
        }
        got
    }

    pub(crate) fn pred(&mut self, p: &Predicate, path: &str) -> Option<Pred> {
        match p {
            Predicate::And { and } => self.list(and, &format!("{path}.and")).map(Pred::And),
            Predicate::Or { or } => self.list(or, &format!("{path}.or")).map(Pred::Or),
            Predicate::Not { not } => self
                .pred(not, &format!("{path}.not"))
                .map(|p| Pred::Not(Box::new(p))),
            Predicate::Compare(c) => self.compare(c, path),
        }
    }

    fn list(&mut self, ps: &[Predicate], path: &str) -> Option<Vec<Pred>> {
        let out: Vec<Option<Pred>> = ps
            .iter()
            .enumerate()
            .map(|(i, p)| self.pred(p, &format!("{path}[{i}]")))
            .collect();
        out.into_iter().collect()
    }

    fn compare(&mut self, c: &Comparison, path: &str) -> Option<Pred> {
        let (slot, ty) = self.slot(&c.column, &format!("{path}.column"))?;
        let vpath = format!("{path}.value");
        let value = match (c.op, &c.value) {
            (Op::IsNull, None) => return Some(Pred::IsNull(slot)),
            (Op::IsNull, Some(_)) => {
                self.problem("unexpected_argument", vpath, "`is_null` takes no value");
                return None;
            }
            (_, None) => {
                self.problem(
                    "missing_argument",
                    path,
                    format!("`{:?}` needs a `value`", c.op),
                );
                return None;
            }
            (_, Some(v)) => v,
        };
        let simple = match c.op {
            Op::Eq => Some(CmpOp::Eq),
            Op::Ne => Some(CmpOp::Ne),
            Op::Lt => Some(CmpOp::Lt),
            Op::Le => Some(CmpOp::Le),
            Op::Gt => Some(CmpOp::Gt),
            Op::Ge => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(op) = simple {
            return self
                .literal(ty, value, &vpath)
                .map(|lit| Pred::Cmp(slot, op, lit));
        }
        match c.op {
            Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge => unreachable!("handled above"),
            Op::In => {
                let Some(items) = value.as_array() else {
                    self.problem("type_mismatch", vpath, "`in` takes an array of values");
                    return None;
                };
                let vals: Vec<Option<OwnedVal>> = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.literal(ty, v, &format!("{vpath}[{i}]")))
                    .collect();
                vals.into_iter()
                    .collect::<Option<Vec<_>>>()
                    .map(|v| Pred::In(slot, v))
            }
            Op::Between => match value.as_array().map(|a| a.as_slice()) {
                Some([lo, hi]) => {
                    let lo = self.literal(ty, lo, &format!("{vpath}[0]"));
                    let hi = self.literal(ty, hi, &format!("{vpath}[1]"));
                    Some(Pred::Between(slot, lo?, hi?))
                }
                _ => {
                    self.problem(
                        "type_mismatch",
                        vpath,
                        "`between` takes [low, high] (inclusive)",
                    );
                    None
                }
            },
            Op::Contains | Op::StartsWith | Op::Matches => {
                if ty != ValueType::String {
                    self.problem(
                        "type_mismatch",
                        format!("{path}.op"),
                        format!("`{:?}` applies to string columns; `{}` is {ty:?} (a cast in `types` makes it a string)", c.op, c.column),
                    );
                    return None;
                }
                let Some(s) = value.as_str() else {
                    self.problem("type_mismatch", vpath, "the value must be a JSON string");
                    return None;
                };
                match c.op {
                    Op::Contains => Some(Pred::Contains(slot, s.to_string())),
                    Op::StartsWith => Some(Pred::StartsWith(slot, s.to_string())),
                    _ => match Regex::new(s) {
                        Ok(re) => Some(Pred::Matches(slot, re)),
                        Err(e) => {
                            self.problem(
                                "invalid_value",
                                vpath,
                                format!("not a regular expression (regex crate syntax): {e}"),
                            );
                            None
                        }
                    },
                }
            }
            Op::IsNull => unreachable!("handled above"),
        }
    }
}
