//! The stored form of the `unique` second pass of a job: the keys object one chunk writes, and
//! how the finalizer reads it back in bounded memory. Pure code (no I/O); the pipeline moves the
//! bytes. The pass itself (sort, candidate groups, exact verification) is the engine's
//! `rules::unique`.
//!
//! A chunk writes one object, `parts/unique/<index>`: a header, then its `(hash, record offset)`
//! pairs grouped **rule-major, partition-minor** (partition = [`partition_of`] the hash's high
//! bits among [`partitions_for`] the file size). Because partitions of one rule are adjacent,
//! the finalizer can read any run of consecutive partitions of one rule from one chunk with a
//! single ranged GET; it groups partitions so that one group of all chunks holds about
//! [`GROUP_BYTES`] of pairs ([`group_partitions`]), so its memory does not grow with the file.
//!
//! Header: `b"TUK1"`, rules `u32`, partitions `u32`, then `rules x partitions` entry counts
//! (`u64`); all little-endian. Rules are in document order (`CompiledRules::unique_rules`).

use tessera_engine::rules::unique::UniqueKeys;

const MAGIC: &[u8; 4] = b"TUK1";
/// Source bytes per fine partition written by the chunks.
pub const PARTITION_SOURCE_BYTES: u64 = 64 << 20;
/// Most fine partitions per rule (header: 8 KiB per rule).
pub const MAX_PARTITIONS: u32 = 1024;
/// Pairs the finalizer holds in memory at once (one group of partitions, all chunks): 128 MiB
/// = 8 M records.
pub const GROUP_BYTES: u64 = 128 << 20;

/// Fine partitions for a file of `size` bytes: one per 64 MiB of source, 1 to 1024.
pub fn partitions_for(size: u64) -> u32 {
    size.div_ceil(PARTITION_SOURCE_BYTES)
        .clamp(1, u64::from(MAX_PARTITIONS)) as u32
}

/// Length of the header of a keys object with `rules` rules and `parts` partitions.
pub fn header_len(rules: usize, parts: u32) -> u64 {
    12 + 8 * rules as u64 * u64::from(parts)
}

/// Encodes one chunk's keys (one [`UniqueKeys`] per unique rule, in document order).
pub fn encode_chunk_keys(keys: &[UniqueKeys], parts: u32) -> Vec<u8> {
    let parts = parts.max(1);
    let split: Vec<Vec<Vec<(u64, u64)>>> = keys.iter().map(|k| k.split(parts)).collect();
    let total: usize = keys.iter().map(|k| k.entries.len()).sum();
    let mut out = Vec::with_capacity(header_len(keys.len(), parts) as usize + total * 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
    out.extend_from_slice(&parts.to_le_bytes());
    for rule in &split {
        for p in rule {
            out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        }
    }
    for rule in &split {
        for p in rule {
            out.extend_from_slice(&tessera_engine::rules::unique::encode(p));
        }
    }
    out
}

/// The header of one chunk's keys object: where each (rule, partition) run lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysIndex {
    rules: usize,
    parts: u32,
    counts: Vec<u64>,
    /// Byte offset in the object of each run (same order as `counts`).
    starts: Vec<u64>,
}

impl KeysIndex {
    /// Parses a header read from the start of a keys object. `rules` and `parts` are what the
    /// job expects; a mismatch (another version's object) is an error, never a silent misread.
    pub fn parse(header: &[u8], rules: usize, parts: u32) -> Result<Self, String> {
        let len = header_len(rules, parts) as usize;
        if header.len() < len || &header[..4] != MAGIC {
            return Err(format!(
                "not a keys header ({} bytes, expected {len} starting with TUK1)",
                header.len()
            ));
        }
        let u32_at = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4"));
        let (r, p) = (u32_at(4) as usize, u32_at(8));
        if (r, p) != (rules, parts) {
            return Err(format!(
                "keys header has {r} rules x {p} partitions, the job expects {rules} x {parts}"
            ));
        }
        let counts: Vec<u64> = header[12..len]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
            .collect();
        let mut starts = Vec::with_capacity(counts.len());
        let mut at = len as u64;
        for &n in &counts {
            starts.push(at);
            at += n * 16;
        }
        Ok(KeysIndex {
            rules,
            parts,
            counts,
            starts,
        })
    }

    /// Pairs of `rule` in partition `part`.
    pub fn count(&self, rule: usize, part: u32) -> u64 {
        self.counts[rule * self.parts as usize + part as usize]
    }

    /// The byte range `(start, len)` in the object of `rule`'s partitions `[from, to)`.
    pub fn range(&self, rule: usize, from: u32, to: u32) -> (u64, u64) {
        debug_assert!(rule < self.rules && from <= to && to <= self.parts);
        let i = rule * self.parts as usize + from as usize;
        let len = (from..to).map(|p| self.count(rule, p)).sum::<u64>() * 16;
        (self.starts[i], len)
    }
}

/// Groups the partitions of one rule, given their pair counts summed over all chunks, into
/// runs `[from, to)` of about `GROUP_BYTES` of pairs each (a partition bigger than that is a
/// group of its own). Empty partitions are skipped.
pub fn group_partitions(totals: &[u64], group_bytes: u64) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut from = None;
    let mut bytes = 0u64;
    for (p, &n) in totals.iter().enumerate() {
        let p = p as u32;
        if n == 0 && from.is_none() {
            continue;
        }
        if let Some(f) = from {
            if bytes + n * 16 > group_bytes && bytes > 0 {
                out.push((f, p));
                from = None;
                bytes = 0;
                if n == 0 {
                    continue;
                }
            }
        }
        from.get_or_insert(p);
        bytes += n * 16;
    }
    if let Some(f) = from {
        out.push((f, totals.len() as u32));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_engine::rules::unique::{decode, partition_of as partition};

    fn keys(rule: &str, entries: Vec<(u64, u64)>) -> UniqueKeys {
        UniqueKeys {
            rule: rule.into(),
            column: 0,
            entries,
        }
    }

    #[test]
    fn encoded_runs_read_back_by_range() {
        let a: Vec<(u64, u64)> = (0..200u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15), i))
            .collect();
        let b: Vec<(u64, u64)> = (0..50u64).map(|i| (u64::MAX - i, 1000 + i)).collect();
        let parts = 8;
        let bytes = encode_chunk_keys(&[keys("a", a.clone()), keys("b", b.clone())], parts);
        let idx = KeysIndex::parse(&bytes, 2, parts).unwrap();
        for (r, src) in [(0usize, &a), (1, &b)] {
            let mut all = Vec::new();
            for p in 0..parts {
                let (s, l) = idx.range(r, p, p + 1);
                let got = decode(&bytes[s as usize..(s + l) as usize]);
                assert!(got.iter().all(|e| partition(e.0, parts) == p));
                all.extend(got);
            }
            all.sort_unstable();
            let mut want = src.clone();
            want.sort_unstable();
            assert_eq!(all, want);
            // A run of partitions is one contiguous range.
            let (s, l) = idx.range(r, 2, 6);
            let want: u64 = (2..6).map(|p| idx.count(r, p)).sum();
            assert_eq!(l, want * 16);
            assert_eq!(
                decode(&bytes[s as usize..(s + l) as usize]).len() as u64,
                want
            );
        }
        assert_eq!(bytes.len() as u64, header_len(2, parts) + 250 * 16);
    }

    #[test]
    fn a_header_of_another_shape_is_refused() {
        let bytes = encode_chunk_keys(&[keys("a", vec![(1, 2)])], 4);
        assert!(KeysIndex::parse(&bytes, 1, 2)
            .unwrap_err()
            .contains("1 rules x 4 partitions"));
        assert!(KeysIndex::parse(&bytes, 1, 8).is_err());
        assert!(KeysIndex::parse(&bytes, 2, 4).is_err());
        assert!(KeysIndex::parse(b"nope", 1, 4).is_err());
    }

    #[test]
    fn partitions_and_groups() {
        assert_eq!(partitions_for(0), 1);
        assert_eq!(partitions_for(64 << 20), 1);
        assert_eq!(partitions_for((64 << 20) + 1), 2);
        assert_eq!(partitions_for(50 << 30), 800);
        assert_eq!(partitions_for(u64::MAX), MAX_PARTITIONS);
        // 16 bytes per pair; groups of at most 160 bytes = 10 pairs.
        assert_eq!(
            group_partitions(&[0, 4, 4, 4, 0, 0, 30, 1, 0], 160),
            vec![(1, 3), (3, 6), (6, 7), (7, 9)]
        );
        assert_eq!(group_partitions(&[0, 0], 160), vec![]);
        let totals = [3u64, 9, 2, 2, 7, 1];
        let groups = group_partitions(&totals, 160);
        // Every non-empty partition is in exactly one group, in order.
        let covered: Vec<u32> = groups.iter().flat_map(|&(f, t)| f..t).collect();
        assert_eq!(covered, (0..6).collect::<Vec<_>>());
    }
}
