//! Running a [`Plan`] over records: the per-range [`PartialState`] (counters, unparsed counts
//! per column, and one aggregate state per group and aggregate), built record by record,
//! serialised compactly and merged associatively with the states of other ranges.
//!
//! Only the columns the plan reads are parsed per record; the group key is the byte encoding
//! of the key values (`Val::encode`), looked up in a hash table of group indices.
//!
//! Not here: reading files and ranges (`run`), the final step (`finish`).

use base64::Engine as _;
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use super::agg::{AggState, Overflow};
use super::doc::TimeBucket;
use super::error::QueryError;
use super::plan::{AggKind, CmpOp, KeyKind, KeyPlan, Plan, Pred};
use super::value::{is_null, parse_as, Fixed, Val};
use crate::profile::classify::days_from_civil;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

/// Version of the serialised partial state.
pub const STATE_VERSION: u32 = 1;

/// What one byte range (or several, merged) contributes to a query's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(into = "StateWire", try_from = "StateWire")]
pub struct PartialState {
    fingerprint: u64,
    /// Well-formed records read.
    pub rows_scanned: u64,
    /// Records that passed the filter.
    pub rows_matched: u64,
    /// Malformed records skipped (what the chunk worker would reject).
    pub rejected_rows: u64,
    /// Per slot: non-null values that do not parse as the column type.
    pub(crate) unparsed: Vec<u64>,
    /// Values held in exact sets (`count_distinct`, `top`) over all groups.
    values: u64,
    naggs: usize,
    table: HashTable<(u64, u32)>,
    keys: Vec<Box<[u8]>>,
    /// `naggs` states per group, group after group.
    states: Vec<AggState>,
    key_buf: Vec<u8>,
    scratch: Vec<u8>,
    vals: Vec<Val<'static>>,
}

impl PartialState {
    /// The empty state of `plan`.
    pub fn new(plan: &Plan) -> Self {
        PartialState {
            fingerprint: plan.fingerprint,
            rows_scanned: 0,
            rows_matched: 0,
            rejected_rows: 0,
            unparsed: vec![0; plan.slot_cols.len()],
            values: 0,
            naggs: plan.aggs.len(),
            table: HashTable::new(),
            keys: Vec::new(),
            states: Vec::new(),
            key_buf: Vec::new(),
            scratch: Vec::new(),
            vals: Vec::new(),
        }
    }

    /// Groups so far.
    pub fn groups(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn group_iter(&self) -> impl Iterator<Item = (&[u8], &[AggState])> {
        self.keys
            .iter()
            .enumerate()
            .map(|(g, k)| (&**k, &self.states[g * self.naggs..(g + 1) * self.naggs]))
    }

    /// The group of `key`, created (with empty states) if new.
    fn group(&mut self, plan: &Plan, key: &[u8]) -> Result<usize, QueryError> {
        let h = xxh3_64(key);
        let keys = &self.keys;
        if let Some(&(_, g)) = self
            .table
            .find(h, |&(hh, g)| hh == h && &*keys[g as usize] == key)
        {
            return Ok(g as usize);
        }
        if self.keys.len() >= plan.max_groups {
            return Err(QueryError::TooManyGroups {
                limit: plan.max_groups,
            });
        }
        let g = self.keys.len();
        self.table.insert_unique(h, (h, g as u32), |e| e.0);
        self.keys.push(key.into());
        self.states
            .extend(plan.aggs.iter().map(|a| AggState::new(a.kind)));
        Ok(g)
    }

    /// Adds one well-formed record (`ends[i]`: end of field `i` in `text`, as the parser gives
    /// them; the caller has checked the field count and that the ends are char boundaries).
    pub fn observe(&mut self, plan: &Plan, text: &str, ends: &[usize]) -> Result<(), QueryError> {
        self.rows_scanned += 1;
        // Reuse the allocation of the value buffer across records of different lifetimes: an
        // empty Vec collected into a Vec of the same layout keeps its buffer.
        let mut vals: Vec<Val<'_>> = std::mem::take(&mut self.vals)
            .into_iter()
            .map(|_| Val::Null)
            .collect();
        for (s, &c) in plan.slot_cols.iter().enumerate() {
            let start = if c == 0 { 0 } else { ends[c - 1] };
            let t = &text[start..ends[c]];
            let v = if is_null(t) {
                Val::Null
            } else {
                match parse_as(plan.slot_types[s], t) {
                    Some(v) => v,
                    None => {
                        self.unparsed[s] += 1;
                        Val::Null
                    }
                }
            };
            vals.push(v);
        }
        let r = self.add(plan, &vals);
        vals.clear();
        self.vals = vals.into_iter().map(|_| Val::Null).collect();
        r
    }

    fn add(&mut self, plan: &Plan, vals: &[Val<'_>]) -> Result<(), QueryError> {
        if let Some(f) = &plan.filter {
            if !eval(f, vals) {
                return Ok(());
            }
        }
        self.rows_matched += 1;
        let g = if plan.keys.is_empty() && !self.keys.is_empty() {
            0 // the one group of a query without keys: no hashing
        } else {
            let mut key = std::mem::take(&mut self.key_buf);
            key.clear();
            for k in &plan.keys {
                encode_key(k, &vals[k.slot], &mut key);
            }
            let g = self.group(plan, &key);
            self.key_buf = key;
            g?
        };
        let states = &mut self.states[g * self.naggs..(g + 1) * self.naggs];
        for (a, st) in plan.aggs.iter().zip(states) {
            if a.kind == AggKind::CountIf && !a.filter.as_ref().is_some_and(|p| eval(p, vals)) {
                continue;
            }
            // `count` of records reads no column: a query of only that has no slots at all.
            let v = vals.get(a.slot).unwrap_or(&Val::Null);
            let other = vals.get(a.other).unwrap_or(&Val::Null);
            self.values += st
                .update(a.kind, v, other, &mut self.scratch)
                .map_err(|Overflow| QueryError::Overflow {
                    what: a.name.clone(),
                })?;
        }
        self.check_values(plan)
    }

    fn check_values(&self, plan: &Plan) -> Result<(), QueryError> {
        if self.values > plan.max_values {
            return Err(QueryError::TooManyValues {
                limit: plan.max_values,
            });
        }
        Ok(())
    }

    /// Folds another range's state of the same plan into this one.
    pub fn merge(&mut self, plan: &Plan, o: &PartialState) -> Result<(), QueryError> {
        if o.fingerprint != self.fingerprint
            || o.naggs != self.naggs
            || o.unparsed.len() != self.unparsed.len()
        {
            return Err(QueryError::BadState(
                "the partial state belongs to another query".into(),
            ));
        }
        self.rows_scanned += o.rows_scanned;
        self.rows_matched += o.rows_matched;
        self.rejected_rows += o.rejected_rows;
        for (a, b) in self.unparsed.iter_mut().zip(&o.unparsed) {
            *a += b;
        }
        for (key, theirs) in o.group_iter() {
            let g = self.group(plan, key)?;
            let mine = &mut self.states[g * self.naggs..(g + 1) * self.naggs];
            for ((a, st), t) in plan.aggs.iter().zip(mine).zip(theirs) {
                self.values += st
                    .merge(a.kind, t)
                    .map_err(|Overflow| QueryError::Overflow {
                        what: a.name.clone(),
                    })?;
            }
            self.check_values(plan)?;
        }
        Ok(())
    }

    /// This state's groups cut into `parts` partitions by the hash of their key, the counters
    /// (rows, unparsed values) going with partition 0: merging partition `p` of every range
    /// gives partition `p` of the whole, so a merger holds one partition at a time and feeds
    /// each to a [`Finisher`](super::finish::Finisher).
    pub fn partitions(&self, plan: &Plan, parts: usize) -> Result<Vec<PartialState>, QueryError> {
        let parts = parts.max(1);
        let mut out: Vec<PartialState> = (0..parts).map(|_| PartialState::new(plan)).collect();
        out[0].rows_scanned = self.rows_scanned;
        out[0].rows_matched = self.rows_matched;
        out[0].rejected_rows = self.rejected_rows;
        out[0].unparsed.clone_from(&self.unparsed);
        for (key, states) in self.group_iter() {
            let t = &mut out[partition_of(key, parts)];
            let g = t.group(plan, key)?;
            t.states[g * t.naggs..(g + 1) * t.naggs].clone_from_slice(states);
        }
        Ok(out)
    }

    /// The compact serialised form (JSON; groups in key order, so equal states give equal
    /// bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a partial state serialises")
    }

    /// Reads [`to_bytes`](Self::to_bytes) output.
    pub fn from_bytes(b: &[u8]) -> Result<Self, QueryError> {
        serde_json::from_slice(b).map_err(|e| QueryError::BadState(e.to_string()))
    }
}

/// The partition of a group key among `parts` (a hash independent of the group table's).
pub(crate) fn partition_of(key: &[u8], parts: usize) -> usize {
    (xxhash_rust::xxh3::xxh3_64_with_seed(key, 0x7e55_e7a5) % parts as u64) as usize
}

/// The serialised form of [`PartialState`].
#[derive(Serialize, Deserialize)]
struct StateWire {
    version: u32,
    fingerprint: u64,
    rows_scanned: u64,
    rows_matched: u64,
    rejected_rows: u64,
    unparsed: Vec<u64>,
    naggs: usize,
    groups: Vec<(String, Vec<AggState>)>,
}

impl From<PartialState> for StateWire {
    fn from(p: PartialState) -> Self {
        let mut groups: Vec<(String, Vec<AggState>)> = p
            .group_iter()
            .map(|(k, s)| (B64.encode(k), s.to_vec()))
            .collect();
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        StateWire {
            version: STATE_VERSION,
            fingerprint: p.fingerprint,
            rows_scanned: p.rows_scanned,
            rows_matched: p.rows_matched,
            rejected_rows: p.rejected_rows,
            unparsed: p.unparsed,
            naggs: p.naggs,
            groups,
        }
    }
}

impl TryFrom<StateWire> for PartialState {
    type Error = String;
    fn try_from(w: StateWire) -> Result<Self, String> {
        if w.version != STATE_VERSION {
            return Err(format!(
                "state version {} (expected {STATE_VERSION})",
                w.version
            ));
        }
        let mut p = PartialState {
            fingerprint: w.fingerprint,
            rows_scanned: w.rows_scanned,
            rows_matched: w.rows_matched,
            rejected_rows: w.rejected_rows,
            unparsed: w.unparsed,
            values: 0,
            naggs: w.naggs,
            table: HashTable::new(),
            keys: Vec::new(),
            states: Vec::new(),
            key_buf: Vec::new(),
            scratch: Vec::new(),
            vals: Vec::new(),
        };
        for (k, s) in w.groups {
            if s.len() != w.naggs {
                return Err("a group has the wrong number of aggregate states".into());
            }
            let key = B64.decode(k).map_err(|e| e.to_string())?;
            let h = xxh3_64(&key);
            let g = p.keys.len() as u32;
            p.table.insert_unique(h, (h, g), |e| e.0);
            p.keys.push(key.into());
            p.values += s.iter().map(AggState::held_values).sum::<u64>();
            p.states.extend(s);
        }
        Ok(p)
    }
}

/// A record predicate over the slot values (two-valued: a comparison with null is false).
pub(crate) fn eval(p: &Pred, v: &[Val<'_>]) -> bool {
    match p {
        Pred::And(ps) => ps.iter().all(|p| eval(p, v)),
        Pred::Or(ps) => ps.iter().any(|p| eval(p, v)),
        Pred::Not(p) => !eval(p, v),
        Pred::IsNull(s) => matches!(v[*s], Val::Null),
        Pred::Cmp(s, op, lit) => {
            let x = &v[*s];
            !matches!(x, Val::Null) && op_holds(*op, x.cmp_same(&lit.as_val()))
        }
        Pred::In(s, set) => {
            let x = &v[*s];
            !matches!(x, Val::Null) && set.iter().any(|l| x.cmp_same(&l.as_val()).is_eq())
        }
        Pred::Between(s, lo, hi) => {
            let x = &v[*s];
            !matches!(x, Val::Null)
                && x.cmp_same(&lo.as_val()).is_ge()
                && x.cmp_same(&hi.as_val()).is_le()
        }
        Pred::Contains(s, n) => matches!(v[*s], Val::Str(t) if t.contains(n.as_str())),
        Pred::StartsWith(s, n) => matches!(v[*s], Val::Str(t) if t.starts_with(n.as_str())),
        Pred::Matches(s, re) => matches!(v[*s], Val::Str(t) if re.is_match(t)),
    }
}

pub(crate) fn op_holds(op: CmpOp, o: std::cmp::Ordering) -> bool {
    match op {
        CmpOp::Eq => o.is_eq(),
        CmpOp::Ne => o.is_ne(),
        CmpOp::Lt => o.is_lt(),
        CmpOp::Le => o.is_le(),
        CmpOp::Gt => o.is_gt(),
        CmpOp::Ge => o.is_ge(),
    }
}

/// Year and month of a day count.
fn year_month(days: i64) -> (i64, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m)
}

/// The first day of the period holding `d` (weeks start on Monday; 1970-01-01 was a Thursday).
fn day_bucket(b: TimeBucket, d: i64) -> i64 {
    match b {
        TimeBucket::Hour | TimeBucket::Day => d,
        TimeBucket::Week => d - (d + 3).rem_euclid(7),
        TimeBucket::Month => {
            let (y, m) = year_month(d);
            days_from_civil(y, m, 1)
        }
        TimeBucket::Year => days_from_civil(year_month(d).0, 1, 1),
    }
}

/// Appends the encoding of one key's value (derived as the key says) to `out`.
#[inline]
fn encode_key(k: &KeyPlan, v: &Val<'_>, out: &mut Vec<u8>) {
    let derived = match (&k.kind, *v) {
        (KeyKind::Plain, v) | (_, v @ Val::Null) => v,
        (KeyKind::Bucket(b), Val::Date(d)) => Val::Date(day_bucket(*b, i64::from(d)) as i32),
        (KeyKind::Bucket(TimeBucket::Hour), Val::Ts(s, _)) => Val::Ts(s - s.rem_euclid(3600), 0),
        (KeyKind::Bucket(b), Val::Ts(s, _)) => {
            Val::Ts(day_bucket(*b, s.div_euclid(86_400)) * 86_400, 0)
        }
        (KeyKind::Width(w), v) => match v.fixed().and_then(|x| width_bucket(x, *w)) {
            Some(f) => number_key(f, k),
            None => Val::Null,
        },
        (KeyKind::Edges(e), v) => {
            let x = v.fixed().unwrap_or(Fixed::ZERO);
            let n = e.partition_point(|edge| edge.cmp_exact(x).is_le());
            if n == 0 {
                Val::Null
            } else {
                number_key(e[n - 1], k)
            }
        }
        (KeyKind::Trim, Val::Str(t)) => Val::Str(t.trim()),
        (KeyKind::Lower, Val::Str(t)) => {
            let l = t.to_lowercase();
            out.push(6);
            out.extend_from_slice(&(l.len() as u32).to_le_bytes());
            out.extend_from_slice(l.as_bytes());
            return;
        }
        (_, v) => v,
    };
    derived.encode(out);
}

/// `floor(x / w) * w`, exactly.
fn width_bucket(x: Fixed, w: Fixed) -> Option<Fixed> {
    let s = x.s.max(w.s);
    let (xm, wm) = (x.rescale(s)?.m, w.rescale(s)?.m);
    Some(
        Fixed {
            m: xm.div_euclid(wm).checked_mul(wm)?,
            s,
        }
        .normalised(),
    )
}

/// A numeric key as the key's result type (integer when it fits, else decimal).
fn number_key(f: Fixed, k: &KeyPlan) -> Val<'static> {
    let f = f.normalised();
    match (k.out_type, i64::try_from(f.m)) {
        (super::doc::ValueType::Integer, Ok(i)) if f.s == 0 => Val::Int(i),
        _ => Val::Dec(f),
    }
}
