//! Heavy hitters: a Misra-Gries summary with the mergeable reduction of Agarwal et al.
//! ("Mergeable summaries", 2012). Counts are exact while the column has at most `capacity`
//! distinct values; afterwards each stored count is a lower bound and the true count is at
//! most `count + error`, with `error <= n / (capacity/2 + 1)`; every value whose true count
//! exceeds `error` is stored.
//!
//! Per value this is one probe of a swiss table keyed by the value's precomputed hash; the
//! value text is appended to an arena (no allocation per value). When the table grows past
//! its working capacity it is reduced in one O(work) step to at most `work/2` entries, so the
//! reduction cost is amortised over at least `work/2` new values.
//!
//! The working capacity may be larger than `capacity` (see [`TopK::with_work`]): while a chunk
//! is observed, a value found in the table skips its classification and most of the profile's
//! per-value work (see `ColumnState::observe`), so a table that holds a column of a few
//! thousand distinct values makes it much cheaper. The summary written out (the wire form, what
//! a chunk hands to the merge) is reduced to `capacity` entries: a reduction at any point keeps
//! the Misra-Gries bound, so the stated error bound holds with `capacity`, and the merged
//! states are as small as before.
//!
//! Not here: choosing the top k to report (see [`TopK::top`]).

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};

use xxhash_rust::xxh3::xxh3_64;

use super::classify::{classify, Class, Kind};

/// One counter, 24 bytes (the table's cache footprint is most of the per-value cost).
/// The value's hash is not stored: rehashing re-reads the arena, which is rare.
#[derive(Clone, Copy, Debug)]
struct Slot {
    count: u64,
    /// The numeric value for `Kind::Int`/`Kind::Dec` (so a repeated value is not parsed again).
    num: f64,
    start: u32,
    /// `len << 3 | kind index`.
    len_kind: u32,
}

impl Slot {
    #[inline]
    fn len(&self) -> usize {
        (self.len_kind >> 3) as usize
    }
    #[inline]
    fn kind(&self) -> Kind {
        Kind::BY_INDEX[(self.len_kind & 7) as usize]
    }
    #[inline]
    fn text<'a>(&self, arena: &'a str) -> &'a str {
        &arena[self.start as usize..self.start as usize + self.len()]
    }
}

/// Values at least this long are not tracked (they cannot be stored in `len_kind`).
const MAX_VALUE_LEN: usize = 1 << 28;

/// What [`TopK::insert`] learned about a value.
pub(crate) enum Seen {
    /// Stored already, so seen before: its kind and numeric value.
    Again(Kind, f64),
    /// Not stored (new, or evicted earlier): its full class, and for strings the PII mask.
    New(Class, u8),
}

/// Mergeable heavy-hitters summary.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(into = "TopKWire", from = "TopKWire")]
pub(crate) struct TopK {
    capacity: usize,
    /// Entries the table may hold before a reduction (>= `capacity`).
    work: usize,
    /// Upper bound of how much any stored count (or any absent value's count) is short by.
    error: u64,
    table: HashTable<Slot>,
    arena: String,
    scratch: Vec<u64>,
    survivors: Vec<Slot>,
    /// The arena compaction writes into this one and swaps: both keep their capacity, so a
    /// compaction does not regrow a fresh string by doubling (reallocs were ~1% of the profile).
    spare_arena: String,
}

impl TopK {
    pub(crate) fn new(capacity: usize) -> Self {
        TopK::with_work(capacity, capacity)
    }

    /// A summary of `capacity` entries whose table holds up to `work` entries while values are
    /// inserted (see the module docs).
    pub(crate) fn with_work(capacity: usize, work: usize) -> Self {
        let capacity = capacity.max(2);
        TopK {
            capacity,
            work: work.max(capacity),
            error: 0,
            table: HashTable::new(),
            arena: String::new(),
            scratch: Vec::new(),
            survivors: Vec::new(),
            spare_arena: String::new(),
        }
    }

    pub(crate) fn error(&self) -> u64 {
        self.error
    }

    /// Count one occurrence of `value` (whose hash is `hash`). A value that is already stored
    /// has been seen before: callers skip the work a repeated value cannot change (min/max,
    /// lengths, distinct).
    #[inline]
    pub(crate) fn insert(&mut self, hash: u64, value: &str) -> Seen {
        let r = self.add(hash, value, 1, None);
        if matches!(r, Seen::New(..)) && self.table.len() > self.work {
            self.reduce(self.work / 2);
        }
        r
    }

    #[inline]
    fn add(&mut self, hash: u64, value: &str, count: u64, class: Option<Class>) -> Seen {
        let arena = &self.arena;
        let entry = self.table.entry(
            hash,
            |s| s.len() == value.len() && eq_bytes(s.text(arena).as_bytes(), value.as_bytes()),
            |s| xxh3_64(s.text(arena).as_bytes()),
        );
        match entry {
            Entry::Occupied(mut e) => {
                let slot = e.get_mut();
                slot.count += count;
                Seen::Again(slot.kind(), slot.num)
            }
            Entry::Vacant(e) => {
                let class = class.unwrap_or_else(|| classify(value));
                let kind = class.kind() as u8;
                let pii = if kind == Kind::Str as u8 {
                    super::pii::detect(value)
                } else {
                    0
                };
                if value.len() >= MAX_VALUE_LEN
                    || self.arena.len() + value.len() > u32::MAX as usize
                {
                    return Seen::New(class, pii);
                }
                let start = self.arena.len() as u32;
                self.arena.push_str(value);
                e.insert(Slot {
                    count,
                    // Strings have no number: the slot keeps their PII mask instead.
                    num: if kind == Kind::Str as u8 {
                        f64::from(pii)
                    } else {
                        class.num()
                    },
                    start,
                    len_kind: (value.len() as u32) << 3 | kind as u32,
                });
                Seen::New(class, pii)
            }
        }
    }

    /// Subtract the (keep + 1)-th largest count from every counter and drop the ones that
    /// reach zero; at most `keep` entries survive.
    fn reduce(&mut self, keep: usize) {
        if self.table.len() <= keep {
            return;
        }
        // On high-cardinality columns nearly every count is 1: then the (keep+1)-th largest
        // count is 1, and the entries above it are the survivors, gathered in the same pass
        // that counts them (no selection, one walk of the table).
        let mut survivors = std::mem::take(&mut self.survivors);
        survivors.clear();
        survivors.extend(self.table.iter().filter(|s| s.count > 1).copied());
        let c = if survivors.len() <= keep {
            1
        } else {
            let counts = &mut self.scratch;
            counts.clear();
            counts.extend(self.table.iter().map(|s| s.count));
            counts.select_nth_unstable_by(keep, |a, b| b.cmp(a));
            let c = counts[keep];
            survivors.retain(|s| s.count > c);
            c
        };
        self.error += c;
        for s in survivors.iter_mut() {
            s.count -= c;
        }
        // Rebuild instead of `retain`: erasing most of the entries one by one (the usual case
        // on high-cardinality columns) cost more than clearing and re-inserting the few left.
        self.table.clear();
        let live: usize = survivors.iter().map(|s| s.len()).sum();
        // Compact the arena only once most of it is garbage: amortised O(1) per value.
        if self.arena.len() > 4 * live + 4096 {
            let mut arena = std::mem::take(&mut self.spare_arena);
            arena.clear();
            for s in survivors.iter_mut() {
                let start = arena.len() as u32;
                arena.push_str(s.text(&self.arena));
                s.start = start;
            }
            self.spare_arena = std::mem::replace(&mut self.arena, arena);
            self.spare_arena.clear();
        }
        let arena = &self.arena;
        for s in survivors.drain(..) {
            let h = xxh3_64(s.text(arena).as_bytes());
            self.table
                .insert_unique(h, s, |s| xxh3_64(s.text(arena).as_bytes()));
        }
        self.survivors = survivors;
    }

    pub(crate) fn merge(&mut self, other: &TopK) {
        for s in other.table.iter() {
            let v = s.text(&other.arena);
            self.add(xxh3_64(v.as_bytes()), v, s.count, None);
        }
        self.error += other.error;
        if self.table.len() > self.work {
            self.reduce(self.work / 2);
        }
    }

    /// The summary proper: this one, or a copy reduced to `capacity` entries when the working
    /// table holds more. Reports and the wire form both use it, so a state and its bytes
    /// report the same.
    pub(crate) fn summary(&self) -> std::borrow::Cow<'_, TopK> {
        if self.table.len() > self.capacity {
            let mut t = self.clone();
            t.reduce(self.capacity / 2);
            std::borrow::Cow::Owned(t)
        } else {
            std::borrow::Cow::Borrowed(self)
        }
    }

    /// All stored (value, count) pairs, count descending then value ascending.
    pub(crate) fn entries(&self) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self
            .table
            .iter()
            .map(|s| (s.text(&self.arena), s.count))
            .collect();
        v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        v
    }

    /// The `k` most frequent stored values.
    pub(crate) fn top(&self, k: usize) -> Vec<(&str, u64)> {
        let mut v = self.entries();
        v.truncate(k);
        v
    }
}

/// Equality of two equally long byte strings; short ones compared inline (a hit compares
/// every value once, and a memcmp call per value was visible in profiles).
#[inline]
fn eq_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    debug_assert_eq!(n, b.len());
    let word = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    let half = |s: &[u8], i: usize| u32::from_le_bytes(s[i..i + 4].try_into().expect("4 bytes"));
    match n {
        // Two overlapping loads cover any length in 8..=16.
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct TopKWire {
    capacity: usize,
    error: u64,
    entries: Vec<(String, u64)>,
}

impl From<TopK> for TopKWire {
    fn from(t: TopK) -> Self {
        // The summary proper: a larger working table is reduced to `capacity` entries.
        let t = t.summary();
        TopKWire {
            capacity: t.capacity,
            error: t.error,
            entries: t
                .entries()
                .into_iter()
                .map(|(v, c)| (v.to_owned(), c))
                .collect(),
        }
    }
}

impl From<TopKWire> for TopK {
    fn from(w: TopKWire) -> Self {
        let mut t = TopK::new(w.capacity);
        t.error = w.error;
        for (v, c) in &w.entries {
            t.add(xxh3_64(v.as_bytes()), v, *c, None);
        }
        if t.table.len() > t.capacity {
            t.reduce(t.capacity / 2);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use xxhash_rust::xxh3::xxh3_64;

    fn feed(t: &mut TopK, values: &[String]) {
        for v in values {
            t.insert(xxh3_64(v.as_bytes()), v);
        }
    }

    #[test]
    fn eq_bytes_sees_every_byte() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n as u8).collect();
            assert!(eq_bytes(&a, &a.clone()));
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x40;
                assert!(!eq_bytes(&a, &b), "len {n} byte {i}");
            }
        }
    }

    #[test]
    fn exact_when_few_distinct() {
        let mut t = TopK::new(8);
        let vals: Vec<String> = "aabbbcdddd".chars().map(String::from).collect();
        feed(&mut t, &vals);
        assert_eq!(t.error(), 0);
        assert_eq!(t.top(2), vec![("d", 4), ("b", 3)]);
        assert_eq!(t.top(10).len(), 4);
    }

    #[test]
    fn bound_holds_on_skewed_stream() {
        let mut t = TopK::new(64);
        let mut truth: HashMap<String, u64> = HashMap::new();
        let mut vals = Vec::new();
        for i in 0..20_000u64 {
            // a few heavy values and a long tail
            let v = if i % 3 == 0 {
                format!("h{}", (i / 3) % 4)
            } else {
                format!("t{i}")
            };
            *truth.entry(v.clone()).or_default() += 1;
            vals.push(v);
        }
        feed(&mut t, &vals);
        let n = vals.len() as u64;
        assert!(t.error() <= n / (64 / 2 + 1));
        let stored: HashMap<&str, u64> = t.entries().into_iter().collect();
        for (v, &c) in &truth {
            match stored.get(v.as_str()) {
                Some(&s) => assert!(s <= c && c <= s + t.error(), "{v}: {s} vs {c}"),
                None => assert!(c <= t.error(), "{v} missing with {c}"),
            }
        }
        let mut top: Vec<&str> = t.top(4).into_iter().map(|(v, _)| v).collect();
        top.sort_unstable();
        assert_eq!(top, vec!["h0", "h1", "h2", "h3"]);
        let back: TopK = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back.entries(), t.entries());
        assert_eq!(back.error(), t.error());
    }
}
