//! The compiled query: what `exec` runs per record and `finish` applies at the end. Built only
//! by `compile`, so every slot, type and literal in it has been checked.
//!
//! Not here: building it (`compile`, `resolve`), running it (`exec`).

use regex::Regex;

use super::doc::{TimeBucket, ValueType};
use super::value::{Fixed, OwnedVal};

/// A checked, compiled query for one file layout.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Columns of the file.
    pub(crate) ncols: usize,
    /// The columns the query reads, by slot (the only ones materialised per record).
    pub(crate) slot_cols: Vec<usize>,
    pub(crate) slot_names: Vec<String>,
    pub(crate) slot_types: Vec<ValueType>,
    pub(crate) filter: Option<Pred>,
    pub(crate) keys: Vec<KeyPlan>,
    pub(crate) aggs: Vec<AggPlan>,
    pub(crate) having: Option<HavingPred>,
    /// (result column, descending).
    pub(crate) order: Vec<(usize, bool)>,
    pub(crate) limit: u64,
    pub(crate) offset: u64,
    /// Result column names: keys, then aggregates.
    pub(crate) columns: Vec<String>,
    pub(crate) max_groups: usize,
    pub(crate) max_values: u64,
    pub(crate) fingerprint: u64,
}

impl Plan {
    /// Result column names: one per group key, then one per aggregate.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The names of the columns the query reads.
    pub fn read_columns(&self) -> &[String] {
        &self.slot_names
    }
}

/// Comparison operators over typed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A compiled record predicate; `usize` is a slot.
#[derive(Debug, Clone)]
pub(crate) enum Pred {
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Not(Box<Pred>),
    Cmp(usize, CmpOp, OwnedVal),
    In(usize, Vec<OwnedVal>),
    Between(usize, OwnedVal, OwnedVal),
    IsNull(usize),
    Contains(usize, String),
    StartsWith(usize, String),
    Matches(usize, Regex),
}

/// One group key.
#[derive(Debug, Clone)]
pub(crate) struct KeyPlan {
    pub(crate) slot: usize,
    pub(crate) kind: KeyKind,
    pub(crate) name: String,
    pub(crate) out_type: ValueType,
}

#[derive(Debug, Clone)]
pub(crate) enum KeyKind {
    Plain,
    Bucket(TimeBucket),
    Width(Fixed),
    Edges(Vec<Fixed>),
    Lower,
    Trim,
}

/// One aggregate.
#[derive(Debug, Clone)]
pub(crate) struct AggPlan {
    pub(crate) kind: AggKind,
    pub(crate) slot: usize,
    pub(crate) other: usize,
    pub(crate) filter: Option<Pred>,
    pub(crate) name: String,
    pub(crate) out: CellKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum AggKind {
    CountRows,
    Count,
    CountIf,
    Sum,
    Avg,
    Min,
    Max,
    Stddev,
    Distinct,
    ApproxDistinct,
    Quantile(f64),
    Top(u32),
    Corr,
    NullCount,
}

/// What a result column holds, for `having` literals and ordering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum CellKind {
    /// A value of the column type (keys, min, max).
    Typed(ValueType),
    /// A count, exact decimal or float.
    Number,
    /// `top`'s list (neither comparable nor orderable).
    List,
}

/// A compiled `having` predicate; `usize` is a result column.
#[derive(Debug, Clone)]
pub(crate) enum HavingPred {
    And(Vec<HavingPred>),
    Or(Vec<HavingPred>),
    Not(Box<HavingPred>),
    Cmp(usize, CmpOp, HavingLit),
    IsNull(usize),
}

/// A `having` literal, typed as its column.
#[derive(Debug, Clone)]
pub(crate) enum HavingLit {
    Val(OwnedVal),
    Num(Fixed),
    Float(f64),
}
