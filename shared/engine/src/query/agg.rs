//! Aggregate states: what one range accumulates per group and aggregate, how two states merge
//! (associative and commutative, so ranges merge in any order and grouping), and the final
//! value. Every state is exact except the two sketches (`approx` distinct: HyperLogLog;
//! `quantile`: DDSketch), and the floats (stddev, corr) are computed at the end from exact
//! fixed-point sums, so they too are the same for every chunking.
//!
//! Not here: which value an aggregate sees (`exec`), ordering and output (`finish`).

use base64::Engine as _;
use hashbrown::HashTable;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use xxhash_rust::xxh3::xxh3_64;

use super::plan::AggKind;
use super::value::{Fixed, OwnedVal, Val};
use crate::profile::distinct::Distinct;
use crate::profile::quantiles::Quant;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

/// HyperLogLog precision of `approx` distinct counts: 2^14 registers, standard error 0.81%.
pub const HLL_PRECISION: u8 = 14;
/// Distinct values counted exactly before an `approx` count switches to registers.
pub const HLL_EXACT_LIMIT: usize = 1024;
/// Relative accuracy of `quantile` (DDSketch alpha).
pub const QUANTILE_ACCURACY: f64 = 0.01;

/// Exact counts of encoded values (`count_distinct`, `top`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ValueCounts {
    table: HashTable<(u64, Box<[u8]>, u64)>,
}

impl ValueCounts {
    /// Counts `n` more of `key`; true when the value is new.
    #[inline]
    fn add(&mut self, key: &[u8], n: u64) -> bool {
        let h = xxh3_64(key);
        match self.table.find_mut(h, |e| &*e.1 == key) {
            Some(e) => {
                e.2 += n;
                false
            }
            None => {
                self.table.insert_unique(h, (h, key.into(), n), |e| e.0);
                true
            }
        }
    }

    /// Distinct values.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// `(encoded value, count)` in key order.
    pub(crate) fn sorted(&self) -> Vec<(&[u8], u64)> {
        let mut v: Vec<(&[u8], u64)> = self.table.iter().map(|e| (&*e.1, e.2)).collect();
        v.sort_unstable();
        v
    }
}

impl Serialize for ValueCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<(String, u64)> = self
            .sorted()
            .into_iter()
            .map(|(k, n)| (B64.encode(k), n))
            .collect();
        v.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ValueCounts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v: Vec<(String, u64)> = Vec::deserialize(d)?;
        let mut out = ValueCounts::default();
        for (k, n) in v {
            let k = B64.decode(k).map_err(serde::de::Error::custom)?;
            out.add(&k, n);
        }
        Ok(out)
    }
}

/// The state of one aggregate in one group.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggState {
    /// `count`, `count_if`, `null_count`.
    Count(u64),
    /// `sum`, `avg`: values and their exact sum.
    Sum(u64, Fixed),
    /// `min`, `max`.
    Extreme(Option<OwnedVal>),
    /// `stddev`: n, sum, sum of squares.
    Moments(u64, Fixed, Fixed),
    /// `count_distinct`, `top`.
    Values(ValueCounts),
    /// `count_distinct` with `approx`.
    Hll(Box<Distinct>),
    /// `quantile`.
    Quantile(Box<Quant>),
    /// `corr`: n, sx, sy, sxx, syy, sxy.
    Corr(u64, [Fixed; 5]),
}

/// An exact sum that left the 38-digit range (or, from `merge`, states of different
/// aggregates: a bad partial state).
#[derive(Debug)]
pub struct Overflow;

fn add(a: &mut Fixed, b: Fixed) -> Result<(), Overflow> {
    *a = a.checked_add(b).ok_or(Overflow)?;
    Ok(())
}

fn square(x: Fixed) -> Result<Fixed, Overflow> {
    x.checked_mul(x).ok_or(Overflow)
}

impl AggState {
    /// The empty state of an aggregate.
    pub fn new(kind: AggKind) -> AggState {
        match kind {
            AggKind::CountRows | AggKind::Count | AggKind::CountIf | AggKind::NullCount => {
                AggState::Count(0)
            }
            AggKind::Sum | AggKind::Avg => AggState::Sum(0, Fixed::ZERO),
            AggKind::Min | AggKind::Max => AggState::Extreme(None),
            AggKind::Stddev => AggState::Moments(0, Fixed::ZERO, Fixed::ZERO),
            AggKind::Distinct | AggKind::Top(_) => AggState::Values(ValueCounts::default()),
            AggKind::ApproxDistinct => {
                AggState::Hll(Box::new(Distinct::new(HLL_PRECISION, HLL_EXACT_LIMIT)))
            }
            AggKind::Quantile(_) => AggState::Quantile(Box::new(Quant::new(QUANTILE_ACCURACY))),
            AggKind::Corr => AggState::Corr(0, [Fixed::ZERO; 5]),
        }
    }

    /// Values held in exact sets (what `max_values` bounds).
    pub fn held_values(&self) -> u64 {
        match self {
            AggState::Values(c) => c.len() as u64,
            _ => 0,
        }
    }

    /// Adds one value (`y`: the second column of `corr`); `buf` is scratch space. Returns the
    /// number of values it added to an exact set (0 or 1).
    #[inline]
    pub fn update(
        &mut self,
        kind: AggKind,
        v: &Val<'_>,
        y: &Val<'_>,
        buf: &mut Vec<u8>,
    ) -> Result<u64, Overflow> {
        let mut grew = 0;
        match self {
            AggState::Count(n) => {
                let hit = match kind {
                    AggKind::Count => !matches!(v, Val::Null),
                    AggKind::NullCount => matches!(v, Val::Null),
                    _ => true, // rows, and count_if (its predicate held)
                };
                *n += u64::from(hit);
            }
            AggState::Sum(n, s) => {
                if let Some(x) = v.fixed() {
                    *n += 1;
                    add(s, x)?;
                }
            }
            AggState::Extreme(cur) => {
                if !matches!(v, Val::Null) {
                    let better = match cur {
                        None => true,
                        Some(c) => {
                            let o = v.cmp_same(&c.as_val());
                            if kind == AggKind::Min {
                                o.is_lt()
                            } else {
                                o.is_gt()
                            }
                        }
                    };
                    if better {
                        *cur = Some(v.to_owned_val());
                    }
                }
            }
            AggState::Moments(n, s, ss) => {
                if let Some(x) = v.fixed() {
                    *n += 1;
                    add(s, x)?;
                    add(ss, square(x)?)?;
                }
            }
            AggState::Values(c) => {
                if !matches!(v, Val::Null) {
                    buf.clear();
                    v.encode(buf);
                    grew = u64::from(c.add(buf, 1));
                }
            }
            AggState::Hll(d) => {
                if !matches!(v, Val::Null) {
                    buf.clear();
                    v.encode(buf);
                    d.insert(xxh3_64(buf));
                }
            }
            AggState::Quantile(q) => {
                if let Some(x) = v.fixed() {
                    q.add(x.to_f64());
                }
            }
            AggState::Corr(n, m) => {
                if let (Some(x), Some(y)) = (v.fixed(), y.fixed()) {
                    *n += 1;
                    add(&mut m[0], x)?;
                    add(&mut m[1], y)?;
                    add(&mut m[2], square(x)?)?;
                    add(&mut m[3], square(y)?)?;
                    add(&mut m[4], x.checked_mul(y).ok_or(Overflow)?)?;
                }
            }
        }
        Ok(grew)
    }

    /// Folds `o` (a state of the same aggregate) into `self`; returns the values it added to
    /// an exact set.
    pub fn merge(&mut self, kind: AggKind, o: &AggState) -> Result<u64, Overflow> {
        let mut grew = 0;
        match (self, o) {
            (AggState::Count(a), AggState::Count(b)) => *a += b,
            (AggState::Sum(n, s), AggState::Sum(n2, s2)) => {
                *n += n2;
                add(s, *s2)?;
            }
            (AggState::Extreme(a), AggState::Extreme(Some(b))) => {
                let v = b.as_val();
                let mut scratch = Vec::new();
                let mut me = AggState::Extreme(a.take());
                me.update(kind, &v, &Val::Null, &mut scratch)?;
                if let AggState::Extreme(x) = me {
                    *a = x;
                }
            }
            (AggState::Extreme(_), AggState::Extreme(None)) => {}
            (AggState::Moments(n, s, ss), AggState::Moments(n2, s2, ss2)) => {
                *n += n2;
                add(s, *s2)?;
                add(ss, *ss2)?;
            }
            (AggState::Values(a), AggState::Values(b)) => {
                for e in b.table.iter() {
                    grew += u64::from(a.add(&e.1, e.2));
                }
            }
            (AggState::Hll(a), AggState::Hll(b)) => a.merge(b),
            (AggState::Quantile(a), AggState::Quantile(b)) => a.merge(b),
            (AggState::Corr(n, a), AggState::Corr(n2, b)) => {
                *n += n2;
                for (x, y) in a.iter_mut().zip(b) {
                    add(x, *y)?;
                }
            }
            _ => return Err(Overflow),
        }
        Ok(grew)
    }
}

/// `sqrt(variance)` of the sample from exact moments; `None` below two values.
pub fn stddev(n: u64, s: Fixed, ss: Fixed) -> Option<f64> {
    if n < 2 {
        return None;
    }
    let var = spread(n, s, s, ss)? / (n as f64 * (n - 1) as f64);
    Some(var.max(0.0).sqrt())
}

/// `n * sxy - sx * sy`, exactly when it fits 38 digits (then one rounding to f64), else in f64.
fn spread(n: u64, sx: Fixed, sy: Fixed, sxy: Fixed) -> Option<f64> {
    let exact = (|| {
        let nsxy = Fixed {
            m: sxy.m.checked_mul(i128::from(n))?,
            s: sxy.s,
        };
        let p = sx.checked_mul(sy)?;
        nsxy.checked_add(Fixed { m: -p.m, s: p.s })
    })();
    Some(match exact {
        Some(f) => f.to_f64(),
        None => n as f64 * sxy.to_f64() - sx.to_f64() * sy.to_f64(),
    })
}

/// Pearson correlation from exact co-moments; `None` below two pairs or with no variance.
pub fn corr(n: u64, m: &[Fixed; 5]) -> Option<f64> {
    if n < 2 {
        return None;
    }
    let cov = spread(n, m[0], m[1], m[4])?;
    let vx = spread(n, m[0], m[0], m[2])?;
    let vy = spread(n, m[1], m[1], m[3])?;
    if vx <= 0.0 || vy <= 0.0 {
        return None;
    }
    Some((cov / (vx.sqrt() * vy.sqrt())).clamp(-1.0, 1.0))
}

/// The `k` most frequent values, by count descending then value ascending.
pub fn top(c: &ValueCounts, k: usize) -> Vec<(OwnedVal, u64)> {
    let mut v = c.sorted();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| cmp_encoded(a.0, b.0)));
    v.into_iter()
        .take(k)
        .filter_map(|(key, n)| OwnedVal::decode(key).map(|(val, _)| (val, n)))
        .collect()
}

/// Value order of two encoded values.
fn cmp_encoded(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    match (OwnedVal::decode(a), OwnedVal::decode(b)) {
        (Some((x, _)), Some((y, _))) => x.as_val().cmp_same(&y.as_val()),
        _ => a.cmp(b),
    }
}
