//! `unique` rules across a whole file, in bounded memory.
//!
//! A chunk cannot see the other chunks' values, so it emits, per `unique` rule, one
//! `(xxh3-64 hash of the value, record byte offset)` pair per non-empty value
//! ([`UniqueKeys`], 16 bytes per record). A second pass finds duplicates:
//!
//! 1. **Partition** every chunk's pairs by hash ([`partition_of`]): partition `p` of all chunks
//!    holds every pair whose value could equal another's in `p`, so partitions are independent.
//! 2. **Per partition**, sort the pairs by `(hash, offset)`; runs of equal hashes are
//!    candidate groups ([`candidate_groups`]).
//! 3. **Verify** each candidate group exactly by reading the values back at their offsets
//!    ([`exact_duplicates`]): equal hashes of different values (collisions) are dropped, so the
//!    result is exact, not probabilistic. Every occurrence after the first (in file order) of a
//!    value is a violation.
//!
//! Memory bound: 16 bytes x records / partitions per partition (e.g. a 50 GB file of 700 M
//! records in 256 partitions: ~44 MB each), plus the candidate groups. Reads for verification
//! are one record per candidate: true duplicates plus hash collisions, and with 64-bit hashes
//! the expected number of colliding pairs among n distinct values is n^2 / 2^65 (~0.01 for
//! n = 700 M).

/// Records the second pass found to repeat an earlier record's value: rule id -> record byte
/// offsets. A chunk re-run with these ([`crate::chunk::ChunkOptions::unique_repeats`]) treats
/// exactly those records as violating the `unique` rule (rejected, flagged or counted towards a
/// `fail` threshold like any other violation) and emits no keys.
pub type Repeats = std::collections::BTreeMap<String, std::collections::HashSet<u64>>;

/// What to re-run after a second pass (`rule -> [(repeat offset, first offset)]`): the chunks
/// that own a repeat (the chunk whose range `[start, end)` holds the record's first byte;
/// `starts` are the chunks' range starts in order), ascending, and every repeat by rule — one
/// answer for all those re-runs.
pub fn rerun_plan(
    duplicates: &std::collections::BTreeMap<String, Vec<(u64, u64)>>,
    starts: &[u64],
) -> (Vec<u32>, Repeats) {
    let mut chunks = std::collections::BTreeSet::new();
    let mut known = Repeats::new();
    for (rule, dups) in duplicates {
        for &(off, _) in dups {
            chunks.insert(starts.partition_point(|&s| s <= off).saturating_sub(1) as u32);
            known.entry(rule.clone()).or_default().insert(off);
        }
    }
    (chunks.into_iter().collect(), known)
}

/// Field `column` of the record at the start of `window` — bytes of the file from a record's
/// first byte, which is outside quotes, so parsing from there is exact. `at_eof`: the window
/// reaches the end of the file. `Ok(None)`: the record does not end inside the window; read a
/// longer one. How the verification of a candidate reads its value back.
pub fn field_at_start(
    window: &[u8],
    cfg: crate::parse::ParserConfig,
    column: usize,
    at_eof: bool,
) -> Result<Option<String>, crate::error::EngineError> {
    use crate::parse::{Outcome, Parser, RecordBuf};
    let field = |rec: &RecordBuf| {
        // A record with fewer fields (not a candidate: keys come from well-formed records)
        // reads as empty rather than panicking.
        let s = match column {
            0 => 0,
            c => rec.ends.get(c - 1).copied().unwrap_or(rec.text.len()),
        };
        let e = rec.ends.get(column).copied().unwrap_or(s);
        String::from_utf8_lossy(&rec.text[s.min(e)..e]).into_owned()
    };
    let mut p = Parser::from_start(cfg);
    let mut rec = RecordBuf::default();
    let mut at = 0;
    while at < window.len() {
        let (o, used) = p.parse(&window[at..], &mut rec);
        at += used;
        if o == Outcome::Record {
            return Ok(Some(field(&rec)));
        }
    }
    if !at_eof {
        return Ok(None);
    }
    p.finish(&mut rec)?;
    Ok(Some(field(&rec)))
}

/// The keys one chunk emitted for one `unique` rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UniqueKeys {
    /// The rule id.
    pub rule: String,
    /// The column index in the source header.
    pub column: usize,
    /// `(hash, record byte offset)` in record order.
    pub entries: Vec<(u64, u64)>,
}

/// The partition of a hash among `parts` (uses the high bits, so partitions are even).
pub fn partition_of(hash: u64, parts: u32) -> u32 {
    ((u128::from(hash) * u128::from(parts.max(1))) >> 64) as u32
}

impl UniqueKeys {
    /// The entries split into `parts` partitions.
    pub fn split(&self, parts: u32) -> Vec<Vec<(u64, u64)>> {
        let mut out = vec![Vec::new(); parts.max(1) as usize];
        for &e in &self.entries {
            out[partition_of(e.0, parts) as usize].push(e);
        }
        out
    }
}

/// Encodes entries as 16 bytes each (little-endian hash, offset), for storing a partition.
pub fn encode(entries: &[(u64, u64)]) -> Vec<u8> {
    let mut v = Vec::with_capacity(entries.len() * 16);
    for (h, o) in entries {
        v.extend_from_slice(&h.to_le_bytes());
        v.extend_from_slice(&o.to_le_bytes());
    }
    v
}

/// Decodes [`encode`]'s output (a trailing partial entry is ignored).
pub fn decode(bytes: &[u8]) -> Vec<(u64, u64)> {
    bytes
        .chunks_exact(16)
        .map(|c| {
            (
                u64::from_le_bytes(c[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(c[8..].try_into().expect("8 bytes")),
            )
        })
        .collect()
}

/// Sorts one partition and returns the offsets of each run of equal hashes (size >= 2), each
/// run in file order.
pub fn candidate_groups(entries: &mut [(u64, u64)]) -> Vec<Vec<u64>> {
    entries.sort_unstable();
    let mut out = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let mut j = i + 1;
        while j < entries.len() && entries[j].0 == entries[i].0 {
            j += 1;
        }
        if j - i > 1 {
            out.push(entries[i..j].iter().map(|e| e.1).collect());
        }
        i = j;
    }
    out
}

/// Verifies candidate groups with the real values (`read_value(offset)`): returns
/// `(duplicate offset, offset of the first occurrence)` for every repeat, sorted by offset.
pub fn exact_duplicates<E>(
    groups: &[Vec<u64>],
    mut read_value: impl FnMut(u64) -> Result<String, E>,
) -> Result<Vec<(u64, u64)>, E> {
    let mut out = Vec::new();
    for g in groups {
        let mut firsts: Vec<(String, u64)> = Vec::new();
        for &off in g {
            let v = read_value(off)?;
            match firsts.iter().find(|(f, _)| *f == v) {
                Some(&(_, first)) => out.push((off, first)),
                None => firsts.push((v, off)),
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_group_and_verify() {
        let keys = UniqueKeys {
            rule: "id_unique".into(),
            column: 0,
            entries: vec![(7, 100), (3, 10), (7, 50), (9, 5), (7, 70)],
        };
        let parts = keys.split(4);
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 5);
        assert_eq!(decode(&encode(&keys.entries)), keys.entries);
        let mut all = keys.entries.clone();
        let groups = candidate_groups(&mut all);
        assert_eq!(groups, vec![vec![50, 70, 100]]);
        // 50 and 100 hold "a", 70 holds "b" with the same hash (a collision): only 100 repeats.
        let dups = exact_duplicates(&groups, |o| {
            Ok::<_, ()>(if o == 70 { "b".into() } else { "a".into() })
        })
        .unwrap();
        assert_eq!(dups, vec![(100, 50)]);
        assert_eq!(partition_of(u64::MAX, 256), 255);
        let (chunks, known) = rerun_plan(
            &[("r".to_string(), vec![(100, 50), (10, 5), (250, 5)])].into(),
            &[3, 100, 200],
        );
        assert_eq!(chunks, vec![0, 1, 2]);
        assert_eq!(known["r"].len(), 3);
        assert!(known["r"].contains(&100) && known["r"].contains(&10));
        let cfg = crate::parse::ParserConfig::default();
        assert_eq!(
            field_at_start(b"a,\"x\ny\"\nb", cfg, 1, false)
                .unwrap()
                .as_deref(),
            Some("x\ny")
        );
        assert_eq!(field_at_start(b"a,\"x\ny", cfg, 1, false).unwrap(), None);
        assert_eq!(
            field_at_start(b"a,b", cfg, 1, true).unwrap().as_deref(),
            Some("b")
        );
        assert_eq!(
            field_at_start(b"a", cfg, 3, true).unwrap().as_deref(),
            Some("")
        );
        assert_eq!(partition_of(0, 256), 0);
    }
}
