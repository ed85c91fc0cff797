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

/// Key of a job's uploaded source object.
pub fn source_key(owner: &str, job_id: &str) -> String {
    format!("uploads/{}/{}/source", seg(owner), seg(job_id))
}

/// Prefix of a job's results.
pub fn results_prefix(owner: &str, job_id: &str) -> String {
    format!("results/{}/{}", seg(owner), seg(job_id))
}

/// Key of one chunk's part of an output (`clean`, `rejected` or `result`).
pub fn part_key(owner: &str, job_id: &str, kind: &str, index: u32) -> String {
    format!("{}/parts/{kind}/{index:06}", results_prefix(owner, job_id))
}

/// Every key a job may have written under its results prefix: the per-chunk parts (including
/// the finaliser's rebased rejected parts) and the final outputs. Known without listing, so a
/// cancelled job's outputs can be deleted with `DeleteObjects` alone (no `ListBucket` grant).
pub fn job_output_keys(owner: &str, job_id: &str, chunk_count: u32) -> Vec<String> {
    let mut keys = Vec::with_capacity(chunk_count as usize * 6 + 5);
    for i in 0..chunk_count {
        keys.extend(chunk_part_keys(owner, job_id, i));
    }
    keys.push(part_key(owner, job_id, "rejected-header", 0));
    let prefix = results_prefix(owner, job_id);
    for name in ["clean.csv", "rejected.csv", "profile.json", "manifest.json"] {
        keys.push(format!("{prefix}/{name}"));
    }
    keys
}

/// The parts one chunk writes (`clean`, `rejected`, `result`, `unique` keys for the second
/// pass of `unique` rules), and the finaliser's for it (`unique-repeats` for its re-run,
/// `rejected-final`).
pub fn chunk_part_keys(owner: &str, job_id: &str, index: u32) -> Vec<String> {
    [
        "clean",
        "rejected",
        "result",
        "unique",
        "unique-repeats",
        "rejected-final",
    ]
    .iter()
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
        let keys = job_output_keys("a", "j", 2);
        assert_eq!(keys.len(), 2 * 6 + 5);
        assert!(keys.contains(&"results/a/j/parts/unique-repeats/000001".to_string()));
        assert!(keys.contains(&"results/a/j/parts/clean/000001".to_string()));
        assert!(keys.contains(&"results/a/j/parts/rejected-header/000000".to_string()));
        assert!(keys.contains(&"results/a/j/manifest.json".to_string()));
        assert!(keys.iter().all(|k| k.starts_with("results/a/j/")));
    }

    #[test]
    fn other_keys_are_not_sources() {
        assert_eq!(parse_source_key("results/a/b/clean.csv"), None);
        assert_eq!(parse_source_key("uploads/a/b/source/x"), None);
        assert_eq!(parse_source_key("uploads//b/source"), None);
    }
}
