//! The final step, after every range's state is merged: each group's aggregate values, then
//! `having`, the order (the document's terms, then the keys ascending; nulls last in both
//! directions), `offset` and `limit`, and the result object of issue 11.
//!
//! Not here: accumulation (`exec`, `agg`).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::agg::{self, AggState};
use super::doc::ValueType;
use super::error::QueryError;
use super::exec::{op_holds, PartialState};
use super::plan::{AggKind, HavingLit, HavingPred, Plan};
use super::value::{Fixed, OwnedVal};

/// Fraction digits of an average (rounded half-even).
pub const AVG_DIGITS: u8 = 12;

/// The answer: `columns`, `rows` and `unparsed` are the fixed shape of issue 11; the rest
/// are extensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// One per group key, then one per aggregate.
    pub columns: Vec<String>,
    /// The rows after having, order, offset and limit.
    pub rows: Vec<Vec<Value>>,
    /// Per column the query reads: non-null values that do not parse as its type (read as null).
    pub unparsed: BTreeMap<String, u64>,
    /// The type each column the query reads was read as.
    pub types: BTreeMap<String, ValueType>,
    /// Groups before `having`, `offset` and `limit`.
    pub groups: u64,
    /// Rows after `having`, before `offset` and `limit`.
    pub total_rows: u64,
    /// Well-formed records read.
    pub rows_scanned: u64,
    /// Records that passed the filter.
    pub rows_matched: u64,
    /// Malformed records skipped (as the chunk worker rejects them).
    pub rejected_rows: u64,
}

/// One result cell, typed for `having` and ordering.
#[derive(Debug, Clone)]
enum Cell {
    Null,
    Count(u64),
    Num(Fixed),
    Float(f64),
    Val(OwnedVal),
    List(Vec<(OwnedVal, u64)>),
}

impl Cell {
    fn number(&self) -> Option<Result<Fixed, f64>> {
        match self {
            Cell::Count(n) => Some(Ok(Fixed {
                m: i128::from(*n),
                s: 0,
            })),
            Cell::Num(f) => Some(Ok(*f)),
            Cell::Float(x) => Some(Err(*x)),
            Cell::Val(v) => v.as_val().fixed().map(Ok),
            _ => None,
        }
    }

    /// Order of two non-null cells of one column.
    fn cmp(&self, o: &Cell) -> Ordering {
        if let (Cell::Val(a), Cell::Val(b)) = (self, o) {
            return a.as_val().cmp_same(&b.as_val());
        }
        match (self.number(), o.number()) {
            (Some(Ok(a)), Some(Ok(b))) => a.cmp_exact(b),
            (Some(a), Some(b)) => {
                let f = |x: Result<Fixed, f64>| match x {
                    Ok(f) => f.to_f64(),
                    Err(x) => x,
                };
                f(a).partial_cmp(&f(b)).unwrap_or(Ordering::Equal)
            }
            _ => Ordering::Equal,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Count(n) => json!(n),
            Cell::Num(f) => Value::String(f.text()),
            Cell::Float(x) => json!(x),
            Cell::Val(v) => v.as_val().to_json(),
            Cell::List(l) => Value::Array(
                l.iter()
                    .map(|(v, n)| json!({"value": v.as_val().to_json(), "count": n}))
                    .collect(),
            ),
        }
    }
}

/// Nulls last, in both directions.
fn cmp_nulls_last(a: &Cell, b: &Cell, desc: bool) -> Ordering {
    match (a, b) {
        (Cell::Null, Cell::Null) => Ordering::Equal,
        (Cell::Null, _) => Ordering::Greater,
        (_, Cell::Null) => Ordering::Less,
        _ if desc => b.cmp(a),
        _ => a.cmp(b),
    }
}

fn cell(kind: AggKind, st: &AggState, name: &str) -> Result<Cell, QueryError> {
    let overflow = || QueryError::Overflow {
        what: name.to_string(),
    };
    Ok(match (kind, st) {
        (_, AggState::Count(n)) => Cell::Count(*n),
        (_, AggState::Sum(0, _)) => Cell::Null,
        (AggKind::Avg, AggState::Sum(n, s)) => {
            Cell::Num(s.div_round(*n, AVG_DIGITS).ok_or_else(overflow)?)
        }
        (_, AggState::Sum(_, s)) => Cell::Num(*s),
        (_, AggState::Extreme(v)) => v.clone().map_or(Cell::Null, Cell::Val),
        (_, AggState::Moments(n, s, ss)) => {
            agg::stddev(*n, *s, *ss).map_or(Cell::Null, Cell::Float)
        }
        (AggKind::Top(k), AggState::Values(c)) => Cell::List(agg::top(c, k as usize)),
        (_, AggState::Values(c)) => Cell::Count(c.len() as u64),
        (_, AggState::Hll(d)) => Cell::Count(d.estimate()),
        (AggKind::Quantile(q), AggState::Quantile(s)) => {
            let sk = s.flushed();
            match sk.quantile(q) {
                Ok(Some(x)) if sk.count() > 0 => Cell::Float(x),
                _ => Cell::Null,
            }
        }
        (_, AggState::Quantile(_)) => Cell::Null,
        (_, AggState::Corr(n, m)) => agg::corr(*n, m).map_or(Cell::Null, Cell::Float),
    })
}

fn having(p: &HavingPred, row: &[Cell]) -> bool {
    match p {
        HavingPred::And(ps) => ps.iter().all(|p| having(p, row)),
        HavingPred::Or(ps) => ps.iter().any(|p| having(p, row)),
        HavingPred::Not(p) => !having(p, row),
        HavingPred::IsNull(c) => matches!(row[*c], Cell::Null),
        HavingPred::Cmp(c, op, lit) => {
            let x = &row[*c];
            if matches!(x, Cell::Null) {
                return false;
            }
            let lit = match lit {
                HavingLit::Val(v) => Cell::Val(v.clone()),
                HavingLit::Num(f) => Cell::Num(*f),
                HavingLit::Float(f) => Cell::Float(*f),
            };
            op_holds(*op, x.cmp(&lit))
        }
    }
}

/// The final step over a state given in partitions (groups cut by key hash, see
/// [`PartialState::partitions`]): each partition's groups become rows (`having` applied) as it
/// is added, and only the first `offset + limit` rows in the result's order are kept, so
/// memory holds one partition and the kept rows. [`finish`] is a finisher given one state.
pub struct Finisher {
    rows: Vec<Vec<Cell>>,
    groups: u64,
    total: u64,
    unparsed: Vec<u64>,
    rows_scanned: u64,
    rows_matched: u64,
    rejected_rows: u64,
}

impl Finisher {
    pub fn new(plan: &Plan) -> Self {
        Finisher {
            rows: Vec::new(),
            groups: 0,
            total: 0,
            unparsed: vec![0; plan.slot_names.len()],
            rows_scanned: 0,
            rows_matched: 0,
            rejected_rows: 0,
        }
    }

    fn order(plan: &Plan, a: &[Cell], b: &[Cell]) -> Ordering {
        let nkeys = plan.keys.len();
        plan.order
            .iter()
            .map(|&(c, desc)| cmp_nulls_last(&a[c], &b[c], desc))
            .chain((0..nkeys).map(|c| cmp_nulls_last(&a[c], &b[c], false)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }

    fn keep(&self, plan: &Plan) -> usize {
        usize::try_from(plan.offset.saturating_add(plan.limit)).unwrap_or(usize::MAX)
    }

    /// Adds a group's row (`having` applied); keeps the first `offset + limit`.
    fn push_rows(&mut self, plan: &Plan, mut rows: Vec<Vec<Cell>>) {
        if let Some(h) = &plan.having {
            rows.retain(|r| having(h, r));
        }
        self.total += rows.len() as u64;
        self.rows.append(&mut rows);
        self.rows.sort_by(|a, b| Self::order(plan, a, b));
        self.rows.truncate(self.keep(plan));
    }

    /// Adds one partition (or a whole state).
    pub fn add(&mut self, plan: &Plan, state: &PartialState) -> Result<(), QueryError> {
        self.rows_scanned += state.rows_scanned;
        self.rows_matched += state.rows_matched;
        self.rejected_rows += state.rejected_rows;
        for (a, b) in self.unparsed.iter_mut().zip(&state.unparsed) {
            *a += b;
        }
        self.groups += state.groups() as u64;
        if self.groups > plan.max_groups as u64 {
            return Err(QueryError::TooManyGroups {
                limit: plan.max_groups,
            });
        }
        let nkeys = plan.keys.len();
        let mut rows: Vec<Vec<Cell>> = Vec::with_capacity(state.groups());
        for (key, states) in state.group_iter() {
            let mut row = Vec::with_capacity(plan.columns.len());
            let mut rest: &[u8] = key;
            for _ in 0..nkeys {
                let (v, r) = OwnedVal::decode(rest)
                    .ok_or_else(|| QueryError::BadState("a group key does not decode".into()))?;
                row.push(if v == OwnedVal::Null {
                    Cell::Null
                } else {
                    Cell::Val(v)
                });
                rest = r;
            }
            for (a, st) in plan.aggs.iter().zip(states.iter()) {
                row.push(cell(a.kind, st, &a.name)?);
            }
            rows.push(row);
        }
        self.push_rows(plan, rows);
        Ok(())
    }

    /// The result. Without keys there is always one row (of empty aggregates when no record
    /// matched).
    pub fn finish(mut self, plan: &Plan) -> Result<QueryResult, QueryError> {
        if plan.keys.is_empty() && self.groups == 0 {
            let row = plan
                .aggs
                .iter()
                .map(|a| cell(a.kind, &AggState::new(a.kind), &a.name))
                .collect::<Result<Vec<_>, _>>()?;
            self.groups = 1;
            self.push_rows(plan, vec![row]);
        }
        let out: Vec<Vec<Value>> = self
            .rows
            .iter()
            .skip(usize::try_from(plan.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(plan.limit).unwrap_or(usize::MAX))
            .map(|r| r.iter().map(Cell::to_json).collect())
            .collect();
        Ok(QueryResult {
            columns: plan.columns.clone(),
            rows: out,
            unparsed: plan
                .slot_names
                .iter()
                .cloned()
                .zip(self.unparsed.iter().copied())
                .collect(),
            types: plan
                .slot_names
                .iter()
                .cloned()
                .zip(plan.slot_types.iter().copied())
                .collect(),
            groups: self.groups,
            total_rows: self.total,
            rows_scanned: self.rows_scanned,
            rows_matched: self.rows_matched,
            rejected_rows: self.rejected_rows,
        })
    }
}

/// Applies the final step to the merged state of every range.
pub fn finish(plan: &Plan, state: &PartialState) -> Result<QueryResult, QueryError> {
    let mut f = Finisher::new(plan);
    f.add(plan, state)?;
    f.finish(plan)
}
