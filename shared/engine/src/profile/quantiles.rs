//! Quantiles: `sketches-ddsketch`'s DDSketch, fed in batches.
//!
//! DDSketch puts a value v > 0 in bucket `floor(ln(v) / ln(gamma))`; `DDSketch::add` per
//! value (a logarithm, a libm `floor` call, and the store's range checks) was the largest
//! single cost of the profile. So values go first through a small direct-mapped cache of
//! (value, pending count), where a repeated value costs one compare; evicted values are
//! bucketed in batches of 64 (independent logarithms overlap) into a local dense array of
//! counts, with exactly the crate's bucket for every value. Counts reach the sketch via
//! `add_with_count(a_value_of_that_bucket, n)`, which the crate documents as equivalent to n
//! single adds: the resulting bins are identical to adding every value one by one.
//!
//! Not here: the choice of sketch (see docs/profile.md) or the report.

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

/// Local bucket counts are flushed into the sketch when they span more keys than this.
const MAX_LOCAL_KEYS: usize = 4096;

/// Dense per-key counts with one representative value per key.
#[derive(Clone, Default)]
struct Bins {
    offset: i32,
    counts: Vec<u64>,
    reps: Vec<f64>,
}

impl Bins {
    /// Count `n` values of bucket `key` (`v` one of them); true when the bins have grown past
    /// `MAX_LOCAL_KEYS` and must be flushed. A key inside the current range (nearly always)
    /// takes the inline path; the range grows out of line.
    #[inline(always)]
    fn add(&mut self, key: i32, v: f64, n: u64) -> bool {
        // A key below `offset` wraps to a huge index and takes the slow path.
        let idx = key.wrapping_sub(self.offset) as u32 as usize;
        if idx < self.counts.len() {
            let c = &mut self.counts[idx];
            if *c == 0 {
                self.reps[idx] = v;
            }
            *c += n;
            // The length did not change, and it was at most MAX_LOCAL_KEYS after the last add.
            return false;
        }
        self.add_slow(key, v, n)
    }

    #[cold]
    #[inline(never)]
    fn add_slow(&mut self, key: i32, v: f64, n: u64) -> bool {
        if self.counts.is_empty() {
            self.offset = key;
        }
        if key < self.offset {
            let grow = (self.offset - key) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.reps.splice(0..0, std::iter::repeat_n(0.0, grow));
            self.offset = key;
        }
        let idx = (key - self.offset) as usize;
        if idx >= self.counts.len() {
            self.counts.resize(idx + 1, 0);
            self.reps.resize(idx + 1, 0.0);
        }
        let c = &mut self.counts[idx];
        if *c == 0 {
            self.reps[idx] = v;
        }
        *c += n;
        self.counts.len() > MAX_LOCAL_KEYS
    }

    fn flush_into(&self, s: &mut DDSketch) {
        for (&n, &v) in self.counts.iter().zip(&self.reps) {
            if n > 0 {
                s.add_with_count(v, n);
            }
        }
    }
}

/// Batched front end of a DDSketch.
#[derive(Clone)]
pub(crate) struct Quant {
    accuracy: f64,
    sketch: DDSketch,
    gamma_ln: f64,
    inv_gamma_ln: f64,
    min_value: f64,
    pos: Bins,
    neg: Bins,
    zeros: u64,
    /// A positive key with a safe value range `(lo, hi)` inside its bucket, set when a batch
    /// ends with two values of one key (sorted data such as ids): values inside it skip the
    /// logarithm.
    run: (f64, f64, i32),
    /// Direct-mapped (value bits, pending count): a repeated value costs one compare.
    cache: Box<[(u64, u64); CACHE]>,
    /// Values evicted from the cache, bucketed a batch at a time: the logarithms of a batch
    /// are independent, so they overlap instead of each waiting for the previous one.
    pending: Vec<(f64, u64)>,
    /// Cache use in the current trial (lookups, hits), and values left to send straight to
    /// `pending` after a trial where fewer than one lookup in 8 hit (unique ids, amounts: the
    /// cache would only add a random access per value).
    trial: (u32, u32),
    bypass: u32,
}

/// Lookups per trial of the value cache, and values bypassing it after a poor trial.
const TRIAL: u32 = 4096;
const BYPASS: u32 = 1 << 16;

const CACHE: usize = 256;
const BATCH: usize = 64;

const MAX_MAGNITUDE: f64 = 1e250;

impl Quant {
    /// A sketch with relative accuracy `accuracy` (DDSketch alpha), 2048 bins, and values in
    /// (-1e-9, 1e-9) counted as zero.
    pub(crate) fn new(accuracy: f64) -> Self {
        let min_value = 1.0e-9;
        let config = Config::new(accuracy, 2048, min_value);
        let gamma_ln = config.gamma.ln();
        Quant {
            accuracy,
            sketch: DDSketch::new(config),
            gamma_ln,
            inv_gamma_ln: 1.0 / gamma_ln,
            min_value,
            pos: Bins::default(),
            neg: Bins::default(),
            zeros: 0,
            run: (f64::INFINITY, f64::NEG_INFINITY, 0),
            cache: Box::new([(0, 0); CACHE]),
            pending: Vec::with_capacity(BATCH),
            trial: (0, 0),
            bypass: 0,
        }
    }

    /// The crate's bucket of `a` (> min_value): `Config::key` is `floor(ln(a) / ln(gamma))`.
    /// A multiplication by the inverse is within a few ulps of that quotient, so its floor is
    /// the same unless the quotient is within 1e-9 of an integer; then the exact division
    /// decides. The floor is inline instead of the libm call that baseline x86-64 makes.
    #[inline]
    fn key(&self, a: f64) -> i32 {
        let l = fast_ln(a);
        let x = l * self.inv_gamma_ln;
        let f = floor_i64(x);
        let frac = x - f as f64;
        if frac > 1e-9 && frac < 1.0 - 1e-9 {
            f as i32
        } else {
            floor_i64(a.ln() / self.gamma_ln) as i32
        }
    }

    #[inline(always)]
    pub(crate) fn add(&mut self, v: f64) {
        // The sketch keeps a running sum that JSON cannot carry once it overflows to infinity;
        // magnitudes beyond 1e250 are recorded as 1e250 (quantiles there are meaningless).
        let v = v.clamp(-MAX_MAGNITUDE, MAX_MAGNITUDE);
        if self.bypass > 0 {
            self.bypass -= 1;
            self.pending.push((v, 1));
            if self.pending.len() >= BATCH {
                self.drain();
            }
            return;
        }
        self.trial.0 += 1;
        if self.trial.0 == TRIAL {
            if self.trial.1 < TRIAL / 8 {
                self.bypass = BYPASS;
            }
            self.trial = (0, 0);
        }
        let bits = v.to_bits();
        let idx = (bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize;
        let slot = &mut self.cache[idx];
        if slot.0 == bits && slot.1 > 0 {
            slot.1 += 1;
            self.trial.1 += 1;
            return;
        }
        let (old, n) = std::mem::replace(slot, (bits, 1));
        if n > 0 {
            self.pending.push((f64::from_bits(old), n));
            if self.pending.len() >= BATCH {
                self.drain();
            }
        }
    }

    /// Bucket the pending values: keys first (independent), then the counts.
    fn drain(&mut self) {
        let mut keys = [0i32; BATCH];
        let (min, run) = (self.min_value, self.run);
        let pending = std::mem::take(&mut self.pending);
        for (k, &(v, _)) in keys.iter_mut().zip(&pending) {
            let a = v.abs();
            *k = if a <= min {
                0
            } else if v > run.0 && v < run.1 {
                run.2
            } else {
                self.key(a)
            };
        }
        let n = pending.len();
        if n >= 2 {
            let (a, b) = (pending[n - 2].0, pending[n - 1].0);
            let k = keys[n - 1];
            if a > min && b > min && keys[n - 2] == k && k != run.2 {
                // Bucket k is [gamma^k, gamma^(k+1)); 1e-10 of margin dwarfs the error of
                // ln/exp, so every value strictly inside maps to k under `key`.
                let lo = (f64::from(k) * self.gamma_ln).exp() * (1.0 + 1e-10);
                let hi = (f64::from(k + 1) * self.gamma_ln).exp() * (1.0 - 1e-10);
                self.run = (lo, hi, k);
            }
        }
        for (&(v, c), &k) in pending.iter().zip(&keys) {
            if v > min {
                if self.pos.add(k, v, c) {
                    self.pos.flush_into(&mut self.sketch);
                    self.pos = Bins::default();
                }
            } else if v < -min {
                if self.neg.add(k, v, c) {
                    self.neg.flush_into(&mut self.sketch);
                    self.neg = Bins::default();
                }
            } else {
                self.zeros += c;
            }
        }
        self.pending = pending;
        self.pending.clear();
    }

    /// The sketch with the local counts added.
    pub(crate) fn flushed(&self) -> DDSketch {
        let mut s = self.sketch.clone();
        for &(bits, n) in self.cache.iter() {
            if n > 0 {
                s.add_with_count(f64::from_bits(bits), n);
            }
        }
        for &(v, n) in &self.pending {
            s.add_with_count(v, n);
        }
        self.pos.flush_into(&mut s);
        self.neg.flush_into(&mut s);
        if self.zeros > 0 {
            s.add_with_count(0.0, self.zeros);
        }
        s
    }

    pub(crate) fn merge(&mut self, o: &Quant) {
        let theirs = o.flushed();
        if theirs.count() == 0 {
            return;
        }
        if self.sketch.count() == 0 {
            self.sketch = theirs;
        } else {
            self.sketch
                .merge(&theirs)
                .expect("quantile sketches share one config (checked with the options)");
        }
    }
}

/// `ln(1 + i/256)` for the top 8 mantissa bits, and `1 / (1 + i/256)`.
struct LnTable {
    ln: [f64; 256],
    inv: [f64; 256],
}

fn ln_table() -> &'static LnTable {
    static T: std::sync::OnceLock<LnTable> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t = LnTable {
            ln: [0.0; 256],
            inv: [0.0; 256],
        };
        for i in 0..256 {
            let c = 1.0 + i as f64 / 256.0;
            t.ln[i] = c.ln();
            t.inv[i] = 1.0 / c;
        }
        t
    })
}

/// `ln(a)` for a positive normal `a`, within ~3e-13 absolute of the exact value (libm's `ln`
/// otherwise): `a = 2^e * m`, `m = c * (1 + t)` with `c = 1 + i/256` from the top mantissa
/// bits and `0 <= t < 1/256`, so `ln a = e ln 2 + ln c + ln(1 + t)`, the last by four terms of
/// its series (the remainder is below `t^5/5 < 2e-13`). [`Quant::key`] only trusts the floor
/// of `ln(a)/ln(gamma)` when the quotient is more than 1e-9 from an integer, far above this
/// error, and recomputes with libm otherwise, so keys stay exactly the crate's.
#[inline]
fn fast_ln(a: f64) -> f64 {
    let bits = a.to_bits();
    let e = (bits >> 52) as i64;
    if e == 0 || e >= 0x7ff {
        return a.ln(); // zero, subnormal, infinite, NaN (or negative: not called with those)
    }
    let t = ln_table();
    let i = ((bits >> 44) & 0xff) as usize;
    let m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    let x = m * t.inv[i] - 1.0;
    let series = x * (1.0 - x * (0.5 - x * (1.0 / 3.0 - x * 0.25)));
    (e - 1023) as f64 * std::f64::consts::LN_2 + t.ln[i] + series
}

#[inline]
fn floor_i64(x: f64) -> i64 {
    let t = x as i64;
    if (t as f64) > x {
        t - 1
    } else {
        t
    }
}

impl std::fmt::Debug for Quant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DDSketch(n={})", self.flushed().count())
    }
}

/// Wire form: the accuracy (to rebuild the config) and the flushed sketch. An empty DDSketch
/// holds infinite min/max, which JSON cannot carry, so an empty sketch is written as `null`.
#[derive(Serialize, Deserialize)]
struct QuantWire {
    accuracy: f64,
    sketch: Option<DDSketch>,
}

impl Serialize for Quant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.flushed();
        QuantWire {
            accuracy: self.accuracy,
            sketch: (f.count() > 0).then_some(f),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Quant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = QuantWire::deserialize(d)?;
        if !(w.accuracy > 0.0 && w.accuracy < 1.0) {
            return Err(serde::de::Error::custom(
                "quantile accuracy must be in (0, 1)",
            ));
        }
        let mut q = Quant::new(w.accuracy);
        if let Some(s) = w.sketch {
            q.sketch = s;
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_key_matches_the_crate() {
        let q = Quant::new(0.01);
        let config = Config::new(0.01, 2048, 1.0e-9);
        let mut x = 1u64;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = match i % 4 {
                0 => (x % 1_000_000) as f64 + 1.0,
                1 => (x % 100_000) as f64 / 100.0 + 0.01,
                2 => f64::from_bits((x >> 2) | (1u64 << 61)) % 1e300 + 1e-8,
                _ => 1.0e-9 * (1.0 + (x % 1000) as f64),
            };
            if v > 1.0e-9 && v.is_finite() {
                assert_eq!(q.key(v), config.key(v), "{v}");
            }
        }
        // Exact bucket boundaries, and their neighbours one ulp away.
        for k in -1000..1000 {
            let v = config.pow_gamma(k);
            for v in [
                v,
                f64::from_bits(v.to_bits() - 1),
                f64::from_bits(v.to_bits() + 1),
            ] {
                if v > 1.0e-9 {
                    assert_eq!(q.key(v), config.key(v), "{v}");
                }
            }
        }
        // Every top-mantissa table entry, around powers of two, and tiny/huge magnitudes.
        for e in [-30i32, -1, 0, 1, 7, 52, 300, 1000] {
            for i in 0..=256u64 {
                let v = 2f64.powi(e) * (1.0 + i as f64 / 256.0);
                for v in [
                    v,
                    f64::from_bits(v.to_bits() - 1),
                    f64::from_bits(v.to_bits() + 1),
                ] {
                    if v > 1.0e-9 && v.is_finite() {
                        assert_eq!(q.key(v), config.key(v), "{v}");
                    }
                }
            }
        }
    }

    #[test]
    fn huge_values_keep_the_state_serialisable() {
        let mut q = Quant::new(0.01);
        for _ in 0..10 {
            q.add(1e308);
            q.add(-1e308);
        }
        let json = serde_json::to_string(&q).unwrap();
        let back: Quant = serde_json::from_str(&json).unwrap();
        assert_eq!(back.flushed().count(), 20);
    }

    #[test]
    fn batched_equals_one_by_one() {
        let mut q = Quant::new(0.01);
        let mut plain = DDSketch::new(Config::defaults());
        for i in -3000..3000 {
            let v = i as f64 * 0.37;
            q.add(v);
            plain.add(v);
        }
        let f = q.flushed();
        for p in [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99] {
            assert_eq!(f.quantile(p).unwrap(), plain.quantile(p).unwrap());
        }
        assert_eq!(f.count(), plain.count());
    }

    #[test]
    fn sorted_runs_land_in_the_same_buckets() {
        // Sorted ids exercise the run cache; every rank must match one-by-one adds.
        let mut q = Quant::new(0.01);
        let mut plain = DDSketch::new(Config::new(0.01, 2048, 1.0e-9));
        for i in 1..300_000u64 {
            let v = (i * 7) as f64;
            q.add(v);
            plain.add(v);
        }
        let f = q.flushed();
        for i in 0..=1000 {
            let p = f64::from(i) / 1000.0;
            if p > 0.0 && p < 1.0 {
                assert_eq!(f.quantile(p).unwrap(), plain.quantile(p).unwrap(), "{p}");
            }
        }
    }
}
