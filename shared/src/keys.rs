//! S3 key layout. Keys are made by the server, never taken from clients:
//!
//! - `uploads/<owner>/<job>/source` — the uploaded file;
//! - `results/<owner>/<job>/parts/{clean,rejected,result}/<chunk:06>` — per-chunk parts;
//! - `results/<owner>/<job>/{clean.csv,rejected.csv,profile.json,manifest.json}` — final outputs;
//! - `results/<owner>/<job>/exports/<id>.{csv,jsonl}` — exports of an output;
//! - `results/<owner>/<job>/exports/<id>/parts/<range:06>` — an export job's converted ranges;
//! - `refs/<owner>/<key>` — the owner's reference files (`one_of` lists of rule documents).
//!
//! The owner (a JWT `sub`) is percent-encoded so that any claim value gives one safe path segment.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// The owner as one key segment (percent-encoded), e.g. for `refs/<owner>/...`, the prefix of
/// an owner's reference files.
pub fn segment(owner: &str) -> String {
    seg(owner)
}

/// The first character a caller-given name or key may not hold, with its position (0-based, in
/// characters): control characters (C0, DEL, C1: they break listings, logs and terminals),
/// Unicode's bidirectional controls (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to
/// U+2069: they make a name display as another, e.g. `invoice\u{202E}vsc.exe`) and the line
/// and paragraph separators (U+2028, U+2029).
pub fn forbidden_char(s: &str) -> Option<(usize, char)> {
    s.chars().enumerate().find(|&(_, c)| {
        c.is_control()
            || matches!(
                c,
                '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}'
            )
            || ('\u{202A}'..='\u{202E}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    })
}

/// Key of an export of a job's output.
pub fn export_key(owner: &str, job_id: &str, export_id: &str, ext: &str) -> String {
    format!(
        "{}/exports/{}.{ext}",
        results_prefix(owner, job_id),
        seg(export_id)
    )
}

/// Key of range `index`'s converted part of export job `export_id`.
pub fn export_part_key(owner: &str, job_id: &str, export_id: &str, index: u32) -> String {
    format!(
        "{}/exports/{}/parts/{index:06}",
        results_prefix(owner, job_id),
        seg(export_id)
    )
}

/// Key of query `query_id`'s result: `result.json` or `result.csv`.
pub fn query_result_key(owner: &str, job_id: &str, query_id: &str, file: &str) -> String {
    format!(
        "{}/queries/{}/{file}",
        results_prefix(owner, job_id),
        seg(query_id)
    )
}

/// Key of range `index`'s partial aggregate state of query job `query_id`.
pub fn query_part_key(owner: &str, job_id: &str, query_id: &str, index: u32) -> String {
    format!(
        "{}/queries/{}/parts/{index:06}",
        results_prefix(owner, job_id),
        seg(query_id)
    )
}

/// Key of partition `part` of range `index`'s spilled partial state of query job `query_id`.
pub fn query_partition_key(
    owner: &str,
    job_id: &str,
    query_id: &str,
    index: u32,
    part: u32,
) -> String {
    format!(
        "{}.p{part:02}",
        query_part_key(owner, job_id, query_id, index)
    )
}

/// Key of a job's uploaded source object.
pub fn source_key(owner: &str, job_id: &str) -> String {
    format!("uploads/{}/{}/source", seg(owner), seg(job_id))
}

/// Prefix of a job's results.
pub fn results_prefix(owner: &str, job_id: &str) -> String {
    format!("results/{}/{}", seg(owner), seg(job_id))
}

/// The kinds of a job's parts, `results/<owner>/<job>/parts/<kind>/<index:06>`: every key a
/// job writes besides its final outputs. The cleanup lists are derived from [`PartKind::ALL`],
/// so a new kind is cleaned up with the job as soon as it is added here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartKind {
    /// A chunk's clean rows (chunk 0's begins with the header).
    Clean,
    /// A chunk's rejected rows, with chunk-local line numbers.
    Rejected,
    /// A chunk's result (profile state, counters, quote-parity facts).
    Result,
    /// A chunk's keys for the `unique` second pass.
    Unique,
    /// The `unique` repeats in a chunk's range, for its re-run.
    UniqueRepeats,
    /// A chunk's rejected rows with absolute line numbers (the finalizer's).
    RejectedFinal,
    /// The header of rejected.csv (index 0).
    RejectedHeader,
    /// The chunks' `unique` key headers end to end (index 0).
    UniqueIndex,
    /// What one search group of the `unique` pass found (index: the group).
    UniqueFound,
}

/// What a part's index counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartIndex {
    /// One part per chunk.
    Chunk,
    /// One part per job (index 0).
    Job,
    /// One part per search group of the `unique` pass.
    SearchGroup,
}

impl PartKind {
    pub const ALL: [PartKind; 9] = [
        PartKind::Clean,
        PartKind::Rejected,
        PartKind::Result,
        PartKind::Unique,
        PartKind::UniqueRepeats,
        PartKind::RejectedFinal,
        PartKind::RejectedHeader,
        PartKind::UniqueIndex,
        PartKind::UniqueFound,
    ];

    /// The key segment.
    pub fn as_str(self) -> &'static str {
        match self {
            PartKind::Clean => "clean",
            PartKind::Rejected => "rejected",
            PartKind::Result => "result",
            PartKind::Unique => "unique",
            PartKind::UniqueRepeats => "unique-repeats",
            PartKind::RejectedFinal => "rejected-final",
            PartKind::RejectedHeader => "rejected-header",
            PartKind::UniqueIndex => "unique-index",
            PartKind::UniqueFound => "unique-found",
        }
    }

    /// What the part's index counts.
    pub fn indexed_by(self) -> PartIndex {
        match self {
            PartKind::RejectedHeader | PartKind::UniqueIndex => PartIndex::Job,
            PartKind::UniqueFound => PartIndex::SearchGroup,
            _ => PartIndex::Chunk,
        }
    }
}

/// Key of part `index` of kind `kind` of a job.
pub fn part_key(owner: &str, job_id: &str, kind: PartKind, index: u32) -> String {
    format!(
        "{}/parts/{}/{index:06}",
        results_prefix(owner, job_id),
        kind.as_str()
    )
}

/// Every key a job may have written under its results prefix: every part of every
/// [`PartKind`] (`chunk_count` chunks, `search_groups` groups of the `unique` pass) and the
/// final outputs. Known without listing, so a cancelled job's outputs can be deleted with
/// `DeleteObjects` alone (no `ListBucket` grant).
pub fn job_output_keys(
    owner: &str,
    job_id: &str,
    chunk_count: u32,
    search_groups: u32,
) -> Vec<String> {
    let mut keys = Vec::new();
    for kind in PartKind::ALL {
        let count = match kind.indexed_by() {
            PartIndex::Chunk => chunk_count,
            PartIndex::Job => 1,
            PartIndex::SearchGroup => search_groups,
        };
        keys.extend((0..count).map(|i| part_key(owner, job_id, kind, i)));
    }
    let prefix = results_prefix(owner, job_id);
    for name in ["clean.csv", "rejected.csv", "profile.json", "manifest.json"] {
        keys.push(format!("{prefix}/{name}"));
    }
    keys
}

/// Where a completed job's profile is (`results/<owner>/<job>/profile.json` unless its record
/// names another key).
pub fn profile_key(job: &crate::job::Job) -> String {
    job.results
        .profile
        .clone()
        .unwrap_or_else(|| format!("{}/profile.json", results_prefix(&job.owner, &job.id)))
}

/// The parts of chunk `index`: those it writes and those the finalizer writes for it.
pub fn chunk_part_keys(owner: &str, job_id: &str, index: u32) -> Vec<String> {
    PartKind::ALL
        .into_iter()
        .filter(|k| k.indexed_by() == PartIndex::Chunk)
        .map(|k| part_key(owner, job_id, k, index))
        .collect()
}

/// `(owner, job_id)` from a source key, or `None` when the key is not an upload's source.
pub fn parse_source_key(key: &str) -> Option<(String, String)> {
    let mut it = key.split('/');
    let (a, owner, job, b) = (it.next()?, it.next()?, it.next()?, it.next()?);
    if a != "uploads" || b != "source" || it.next().is_some() || owner.is_empty() || job.is_empty()
    {
        return None;
    }
    let owner = percent_decode_str(owner).decode_utf8().ok()?.into_owned();
    let job = percent_decode_str(job).decode_utf8().ok()?.into_owned();
    Some((owner, job))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_characters_are_found_with_their_position() {
        assert_eq!(forbidden_char("report 2024 – é.csv"), None);
        assert_eq!(forbidden_char("a\tb"), Some((1, '\t')));
        assert_eq!(forbidden_char("ab\u{7f}"), Some((2, '\u{7f}')));
        assert_eq!(forbidden_char("x\u{85}"), Some((1, '\u{85}')));
        for c in [
            '\u{202E}', '\u{202A}', '\u{2066}', '\u{2069}', '\u{200F}', '\u{061C}', '\u{2028}',
        ] {
            assert_eq!(
                forbidden_char(&format!("inv{c}vsc.exe")),
                Some((3, c)),
                "{c:?}"
            );
        }
    }

    #[test]
    fn source_keys_round_trip_any_owner() {
        for owner in ["alice", "auth0|12/34", "ünï cödé", "a+b=c"] {
            let k = source_key(owner, "job-1");
            assert_eq!(k.matches('/').count(), 3, "{k}");
            assert_eq!(
                parse_source_key(&k),
                Some((owner.to_string(), "job-1".to_string()))
            );
        }
    }

    #[test]
    fn output_keys_cover_parts_and_outputs() {
        let keys = job_output_keys("a", "j", 2, 3);
        // 6 parts per chunk, 2 per job, 1 per search group; 4 final outputs.
        assert_eq!(keys.len(), 2 * 6 + 2 + 3 + 4);
        assert!(keys.contains(&"results/a/j/parts/unique-repeats/000001".to_string()));
        assert!(keys.contains(&"results/a/j/parts/clean/000001".to_string()));
        assert!(keys.contains(&"results/a/j/parts/rejected-header/000000".to_string()));
        assert!(keys.contains(&"results/a/j/manifest.json".to_string()));
        assert!(keys.iter().all(|k| k.starts_with("results/a/j/")));
    }

    /// A cancelled job leaves none of the `unique` pass's parts behind (they were once missing
    /// from the cleanup list).
    #[test]
    fn output_keys_cover_every_unique_part() {
        let keys = job_output_keys("a", "j", 2, 3);
        for k in [
            "results/a/j/parts/unique/000001",
            "results/a/j/parts/unique-repeats/000000",
            "results/a/j/parts/unique-index/000000",
            "results/a/j/parts/unique-found/000000",
            "results/a/j/parts/unique-found/000002",
        ] {
            assert!(keys.contains(&k.to_string()), "{k}");
        }
        assert!(!keys.contains(&"results/a/j/parts/unique-found/000003".to_string()));
        for kind in PartKind::ALL {
            assert!(keys
                .iter()
                .any(|k| k.contains(&format!("/parts/{}/", kind.as_str()))));
        }
    }

    #[test]
    fn other_keys_are_not_sources() {
        assert_eq!(parse_source_key("results/a/b/clean.csv"), None);
        assert_eq!(parse_source_key("uploads/a/b/source/x"), None);
        assert_eq!(parse_source_key("uploads//b/source"), None);
    }
}
