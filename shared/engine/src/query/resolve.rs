//! The second half of `compile`: group keys, aggregates, `having` and `order_by`, resolved
//! against the schema and the result columns.
//!
//! Not here: predicates over records (`compile`).

use super::compile::Ctx;
use super::doc::*;
use super::plan::*;
use super::value::Fixed;

fn numeric(t: ValueType) -> bool {
    matches!(t, ValueType::Integer | ValueType::Decimal)
}

fn number(n: &serde_json::Number) -> Option<Fixed> {
    Fixed::parse(&n.to_string())
}

impl Ctx<'_> {
    pub(crate) fn key(&mut self, k: &GroupKey, path: &str) -> Option<KeyPlan> {
        let d = match k {
            GroupKey::Column(c) => {
                let (slot, ty) = self.slot(c, path)?;
                return Some(KeyPlan {
                    slot,
                    kind: KeyKind::Plain,
                    name: c.clone(),
                    out_type: ty,
                });
            }
            GroupKey::Derived(d) => d,
        };
        let (slot, ty) = self.slot(&d.column, &format!("{path}.column"))?;
        let given = [
            d.bucket.is_some(),
            d.width.is_some(),
            d.edges.is_some(),
            d.transform.is_some(),
        ];
        if given.iter().filter(|&&g| g).count() != 1 {
            self.problem(
                "invalid_value",
                path,
                "a derived key takes exactly one of `bucket`, `width`, `edges`, `transform`",
            );
            return None;
        }
        let c = &d.column;
        let mismatch = |cx: &mut Self, what: &str, want: &str| {
            cx.problem(
                "type_mismatch",
                format!("{path}.{what}"),
                format!("`{what}` applies to {want} columns; `{c}` is {ty:?}"),
            );
            None
        };
        if let Some(b) = d.bucket {
            let ok = match ty {
                ValueType::Date => b != TimeBucket::Hour,
                ValueType::Timestamp => true,
                _ => false,
            };
            if !ok {
                return mismatch(self, "bucket", "timestamp (or, except `hour`, date)");
            }
            let name = format!("{}({c})", serde_json::to_value(b).ok()?.as_str()?);
            return Some(KeyPlan {
                slot,
                kind: KeyKind::Bucket(b),
                name,
                out_type: ty,
            });
        }
        if d.width.is_some() || d.edges.is_some() {
            if !numeric(ty) {
                let what = if d.width.is_some() { "width" } else { "edges" };
                return mismatch(self, what, "integer or decimal");
            }
            return self.numeric_key(d, path, slot, ty);
        }
        if ty != ValueType::String {
            return mismatch(self, "transform", "string");
        }
        let (kind, f) = match d.transform? {
            Transform::Lower => (KeyKind::Lower, "lower"),
            Transform::Trim => (KeyKind::Trim, "trim"),
        };
        Some(KeyPlan {
            slot,
            kind,
            name: format!("{f}({c})"),
            out_type: ValueType::String,
        })
    }

    /// A `width` or `edges` key of numeric column `d.column` (checked by the caller).
    fn numeric_key(
        &mut self,
        d: &DerivedKey,
        path: &str,
        slot: usize,
        ty: ValueType,
    ) -> Option<KeyPlan> {
        let c = &d.column;
        if let Some(w) = &d.width {
            let Some(f) = number(w).filter(|f| f.m > 0) else {
                self.problem(
                    "invalid_value",
                    format!("{path}.width"),
                    "`width` must be a positive number of at most 38 digits",
                );
                return None;
            };
            let out = if ty == ValueType::Integer && f.s == 0 {
                ty
            } else {
                ValueType::Decimal
            };
            return Some(KeyPlan {
                slot,
                kind: KeyKind::Width(f),
                name: format!("bucket({c},{})", f.text()),
                out_type: out,
            });
        }
        if let Some(e) = &d.edges {
            let edges: Option<Vec<Fixed>> = e.iter().map(number).collect();
            let ok = edges.as_ref().is_some_and(|v| {
                !v.is_empty() && v.windows(2).all(|w| w[0].cmp_exact(w[1]).is_lt())
            });
            if !ok {
                self.problem(
                    "invalid_value",
                    format!("{path}.edges"),
                    "`edges` must be a non-empty array of strictly increasing numbers",
                );
                return None;
            }
            let edges = edges?;
            let out = if ty == ValueType::Integer && edges.iter().all(|f| f.s == 0) {
                ty
            } else {
                ValueType::Decimal
            };
            return Some(KeyPlan {
                slot,
                kind: KeyKind::Edges(edges),
                name: format!("bucket({c})"),
                out_type: out,
            });
        }
        None
    }

    /// Reports the arguments `a.func` does not take.
    fn unexpected_args(&mut self, a: &Aggregate, path: &str, fname: &str) {
        let f = a.func;
        let given = [
            ("approx", a.approx.is_some() && f != AggFn::CountDistinct),
            ("q", a.q.is_some() && f != AggFn::Quantile),
            ("k", a.k.is_some() && f != AggFn::Top),
            ("other", a.other.is_some() && f != AggFn::Corr),
            ("filter", a.filter.is_some() && f != AggFn::CountIf),
            ("column", a.column.is_some() && f == AggFn::CountIf),
        ];
        for (arg, bad) in given {
            if bad {
                self.problem(
                    "unexpected_argument",
                    format!("{path}.{arg}"),
                    format!("`{fname}` takes no `{arg}`"),
                );
            }
        }
    }

    fn count_if(&mut self, a: &Aggregate, path: &str) -> Option<AggPlan> {
        let Some(p) = &a.filter else {
            self.problem(
                "missing_argument",
                path,
                "`count_if` needs a `filter` predicate",
            );
            return None;
        };
        let pred = self.pred(p, &format!("{path}.filter"))?;
        Some(AggPlan {
            kind: AggKind::CountIf,
            slot: 0,
            other: 0,
            filter: Some(pred),
            name: "count_if".into(),
            out: CellKind::Number,
        })
    }

    pub(crate) fn agg(&mut self, a: &Aggregate, path: &str) -> Option<AggPlan> {
        let f = a.func;
        let fname = serde_json::to_value(f).ok()?.as_str()?.to_string();
        self.unexpected_args(a, path, &fname);
        if f == AggFn::CountIf {
            return self.count_if(a, path);
        }
        let Some(col) = &a.column else {
            if f == AggFn::Count {
                return Some(AggPlan {
                    kind: AggKind::CountRows,
                    slot: 0,
                    other: 0,
                    filter: None,
                    name: "count".into(),
                    out: CellKind::Number,
                });
            }
            self.problem(
                "missing_argument",
                path,
                format!("`{fname}` needs a `column`"),
            );
            return None;
        };
        let (slot, ty) = self.slot(col, &format!("{path}.column"))?;
        let needs_number = matches!(
            f,
            AggFn::Sum | AggFn::Avg | AggFn::Stddev | AggFn::Quantile | AggFn::Corr
        );
        if needs_number && !numeric(ty) {
            self.problem("type_mismatch", format!("{path}.column"), format!("`{fname}` needs an integer or decimal column; `{col}` is {ty:?} (a cast in `types` can change that)"));
            return None;
        }
        let mut name = format!("{fname}({col})");
        let mut other = 0;
        let kind = match f {
            AggFn::Count => AggKind::Count,
            AggFn::Sum => AggKind::Sum,
            AggFn::Avg => AggKind::Avg,
            AggFn::Min => AggKind::Min,
            AggFn::Max => AggKind::Max,
            AggFn::Stddev => AggKind::Stddev,
            AggFn::NullCount => AggKind::NullCount,
            AggFn::CountDistinct if a.approx == Some(true) => {
                name = format!("approx_count_distinct({col})");
                AggKind::ApproxDistinct
            }
            AggFn::CountDistinct => AggKind::Distinct,
            AggFn::Quantile => {
                let Some(q) = a.q.filter(|q| (0.0..=1.0).contains(q)) else {
                    self.problem(
                        "invalid_value",
                        format!("{path}.q"),
                        "`quantile` needs `q` in [0, 1], e.g. 0.5 for the median",
                    );
                    return None;
                };
                name = format!("quantile({col},{q})");
                AggKind::Quantile(q)
            }
            AggFn::Top => {
                let k = a.k.unwrap_or(10);
                if !(1..=10_000).contains(&k) {
                    self.problem(
                        "invalid_value",
                        format!("{path}.k"),
                        "`k` is between 1 and 10000",
                    );
                    return None;
                }
                AggKind::Top(k)
            }
            AggFn::Corr => {
                let Some(o) = &a.other else {
                    self.problem(
                        "missing_argument",
                        path,
                        "`corr` needs `other`, the second column",
                    );
                    return None;
                };
                let (s2, t2) = self.slot(o, &format!("{path}.other"))?;
                if !numeric(t2) {
                    self.problem(
                        "type_mismatch",
                        format!("{path}.other"),
                        format!("`corr` needs an integer or decimal column; `{o}` is {t2:?}"),
                    );
                    return None;
                }
                other = s2;
                name = format!("corr({col},{o})");
                AggKind::Corr
            }
            AggFn::CountIf => unreachable!("handled above"),
        };
        let out = match kind {
            AggKind::Min | AggKind::Max => CellKind::Typed(ty),
            AggKind::Top(_) => CellKind::List,
            _ => CellKind::Number,
        };
        Some(AggPlan {
            kind,
            slot,
            other,
            filter: None,
            name,
            out,
        })
    }

    /// A result column named by `key` (a key's result name, or the column of one key) or
    /// `aggregate` (an index).
    pub(crate) fn target(
        &mut self,
        key: Option<&str>,
        agg: Option<usize>,
        path: &str,
        columns: &[String],
        nkeys: usize,
        kinds: &[CellKind],
    ) -> Option<usize> {
        let col = match (key, agg) {
            (Some(k), None) => match columns[..nkeys].iter().position(|c| c == k) {
                Some(i) => i,
                None => {
                    self.problem(
                        "unknown_key",
                        format!("{path}.key"),
                        format!(
                            "`{k}` is not a group key; the keys are: {}",
                            columns[..nkeys].join(", ")
                        ),
                    );
                    return None;
                }
            },
            (None, Some(a)) if a < columns.len() - nkeys => nkeys + a,
            (None, Some(a)) => {
                self.problem(
                    "aggregate_out_of_range",
                    format!("{path}.aggregate"),
                    format!(
                        "aggregate {a} does not exist; there are {} (counted from 0)",
                        columns.len() - nkeys
                    ),
                );
                return None;
            }
            _ => {
                self.problem(
                    "invalid_value",
                    path,
                    "give exactly one of `key` and `aggregate`",
                );
                return None;
            }
        };
        if kinds[col] == CellKind::List {
            self.problem(
                "invalid_value",
                path,
                "a `top` list cannot be compared or sorted",
            );
            return None;
        }
        Some(col)
    }

    pub(crate) fn having(
        &mut self,
        h: &Having,
        path: &str,
        columns: &[String],
        nkeys: usize,
        kinds: &[CellKind],
    ) -> Option<HavingPred> {
        let list = |cx: &mut Self, hs: &[Having], p: &str| -> Option<Vec<HavingPred>> {
            let v: Vec<Option<HavingPred>> = hs
                .iter()
                .enumerate()
                .map(|(i, h)| cx.having(h, &format!("{p}[{i}]"), columns, nkeys, kinds))
                .collect();
            v.into_iter().collect()
        };
        match h {
            Having::And { and } => list(self, and, &format!("{path}.and")).map(HavingPred::And),
            Having::Or { or } => list(self, or, &format!("{path}.or")).map(HavingPred::Or),
            Having::Not { not } => self
                .having(not, &format!("{path}.not"), columns, nkeys, kinds)
                .map(|p| HavingPred::Not(Box::new(p))),
            Having::Compare(c) => {
                let col =
                    self.target(c.key.as_deref(), c.aggregate, path, columns, nkeys, kinds)?;
                let vpath = format!("{path}.value");
                let op = match c.op {
                    Op::IsNull if c.value.is_none() => return Some(HavingPred::IsNull(col)),
                    Op::Eq => CmpOp::Eq,
                    Op::Ne => CmpOp::Ne,
                    Op::Lt => CmpOp::Lt,
                    Op::Le => CmpOp::Le,
                    Op::Gt => CmpOp::Gt,
                    Op::Ge => CmpOp::Ge,
                    _ => {
                        self.problem(
                            "invalid_value",
                            format!("{path}.op"),
                            "`having` takes eq, ne, lt, le, gt, ge or is_null (without a value)",
                        );
                        return None;
                    }
                };
                let Some(v) = &c.value else {
                    self.problem("missing_argument", path, "the comparison needs a `value`");
                    return None;
                };
                let lit = match kinds[col] {
                    CellKind::Typed(ty) => HavingLit::Val(self.literal(ty, v, &vpath)?),
                    _ => match v.as_number() {
                        Some(n) => match number(n) {
                            Some(f) => HavingLit::Num(f),
                            None => HavingLit::Float(n.as_f64()?),
                        },
                        None => {
                            self.problem(
                                "type_mismatch",
                                vpath,
                                "an aggregate is compared with a JSON number",
                            );
                            return None;
                        }
                    },
                };
                Some(HavingPred::Cmp(col, op, lit))
            }
        }
    }
}
