//! The arithmetic of multipart uploads: how many parts of what size, and whether the parts a
//! client lists to complete an upload are the ones S3 holds. Pure functions; the api's
//! `uploads` routes call them and answer their errors as they are.

use serde::Deserialize;

use crate::config::{Config, MAX_PART_SIZE, MIN_PART_SIZE};
use crate::error::ApiError;
use crate::store::objects::{same_etag, PartRef, UploadedPart};

/// S3's limit on parts per upload.
pub const MAX_PARTS: u64 = 10_000;
/// S3's limit for one PUT.
pub const MAX_SINGLE_PUT: u64 = 5 * 1024 * 1024 * 1024;
pub const MIB: u64 = 1024 * 1024;

/// Whether an upload of `size` bytes is multipart (`multipart` as asked, else above the
/// threshold), and its part size and count (`part_size` as asked, else the configured one).
pub fn choose_parts(
    size: u64,
    multipart: Option<bool>,
    part_size: Option<u64>,
    cfg: &Config,
) -> Result<Option<(u64, u32)>, ApiError> {
    let multipart = multipart.unwrap_or(size > cfg.multipart_threshold);
    if !multipart {
        if part_size.is_some() {
            return Err(ApiError::unprocessable(
                "invalid_request",
                "`part_size` applies only to multipart uploads; drop it or send `\"multipart\": true`.",
            ));
        }
        if size > MAX_SINGLE_PUT {
            return Err(ApiError::unprocessable(
                "multipart_required",
                "S3 takes at most 5 GiB in one PUT; send `\"multipart\": true` (or leave it out).",
            ));
        }
        return Ok(None);
    }
    if let Some(p) = part_size {
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&p) {
            return Err(ApiError::unprocessable(
                "invalid_part_size",
                format!("`part_size` must be between {MIN_PART_SIZE} (5 MiB) and {MAX_PART_SIZE} (5 GiB) bytes, S3's part limits."),
            ));
        }
    }
    Ok(Some(part_plan(size, part_size.unwrap_or(cfg.part_size))))
}

/// Part size and count for `size` bytes: at least `floor` and 5 MiB, at least
/// `ceil(size / 10,000)` so no upload needs more parts than S3 allows, rounded up to a MiB.
pub fn part_plan(size: u64, floor: u64) -> (u64, u32) {
    let p = floor.max(MIN_PART_SIZE).max(size.div_ceil(MAX_PARTS));
    let p = p.div_ceil(MIB) * MIB;
    (p, size.div_ceil(p).max(1) as u32)
}

/// Length of part `n` (1-based) of an upload of `size` bytes in parts of `part_size`: every
/// part but the last is `part_size`, the last holds the rest. What each part URL signs as its
/// `content-length`, so S3 refuses a part of another size.
pub fn part_length(size: u64, part_size: u64, n: u32) -> u64 {
    let start = u64::from(n.saturating_sub(1)) * part_size;
    size.saturating_sub(start).min(part_size)
}

/// One `{part_number, etag}` pair.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletePart {
    pub part_number: u32,
    pub etag: String,
}

/// Checks that `parts` names every part `1..=count` exactly once, ascending.
pub fn check_part_list(parts: &[CompletePart], count: u32) -> Result<(), ApiError> {
    let mut prev = 0u32;
    for p in parts {
        let n = p.part_number;
        if n == 0 || n > count {
            return Err(ApiError::bad_request(
                "unknown_part",
                format!("Part {n} is not part of this upload: part numbers run from 1 to {count}."),
            ));
        }
        if n == prev {
            return Err(ApiError::bad_request(
                "duplicate_part",
                format!("Part {n} is listed twice; list each part once."),
            ));
        }
        if n < prev {
            return Err(ApiError::bad_request(
                "parts_out_of_order",
                format!("Part {n} comes after part {prev}; list the parts in ascending order of part_number."),
            ));
        }
        prev = n;
    }
    // Ascending and unique: the first gap is the first missing part.
    let mut expect = 1u32;
    for p in parts {
        if p.part_number != expect {
            return Err(missing_part(expect));
        }
        expect += 1;
    }
    if expect <= count {
        return Err(missing_part(expect));
    }
    Ok(())
}

fn missing_part(n: u32) -> ApiError {
    ApiError::bad_request(
        "missing_part",
        format!("Part {n} is missing from the list; send every part from 1 to the part count with its ETag."),
    )
}

/// Compares the client's list with what S3 holds; returns the parts to complete with (S3's
/// ETags) and their total size.
pub fn match_held(
    parts: &[CompletePart],
    held: &[UploadedPart],
) -> Result<(Vec<PartRef>, u64), ApiError> {
    let mut refs = Vec::with_capacity(parts.len());
    let mut sizes = Vec::with_capacity(parts.len());
    for p in parts {
        let Some(h) = held.iter().find(|h| h.part_number == p.part_number) else {
            return Err(ApiError::bad_request(
                "missing_part",
                format!(
                    "Part {} has not been uploaded (S3 holds no such part); PUT it to its URL (GET the upload's parts for a fresh one), then complete again.",
                    p.part_number
                ),
            ));
        };
        if !same_etag(&p.etag, &h.etag) {
            return Err(ApiError::bad_request(
                "etag_mismatch",
                format!(
                    "Part {}: ETag {} does not match the part S3 holds; send the ETag header of that part's PUT answer (or upload the part again).",
                    p.part_number, p.etag
                ),
            ));
        }
        sizes.push(h.size);
        refs.push(PartRef {
            part_number: h.part_number,
            etag: h.etag.clone(),
        });
    }
    let last = sizes.len().saturating_sub(1);
    if let Some(i) = sizes[..last].iter().position(|&s| s < MIN_PART_SIZE) {
        return Err(ApiError::bad_request(
            "part_too_small",
            format!(
                "Part {} is {} bytes; every part but the last must be at least 5 MiB.",
                refs[i].part_number, sizes[i]
            ),
        ));
    }
    Ok((refs, sizes.iter().sum()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_plans_respect_s3_limits() {
        const GIB: u64 = 1024 * MIB;
        // Small files: the floor, one part.
        assert_eq!(part_plan(1, 8 * MIB), (8 * MIB, 1));
        assert_eq!(part_plan(12 * MIB, 5 * MIB), (5 * MIB, 3));
        // Below S3's minimum the floor is raised to 5 MiB.
        assert_eq!(part_plan(12 * MIB, MIB), (5 * MIB, 3));
        // 50 GiB at an 8 MiB floor would be 6,400 parts: fine.
        assert_eq!(part_plan(50 * GIB, 8 * MIB), (8 * MIB, 6400));
        // 5 TiB needs ceil(5 TiB / 10,000) = 549,755,814 bytes, rounded up to 525 MiB.
        let (p, n) = part_plan(5 * 1024 * GIB, 8 * MIB);
        assert_eq!(p, 525 * MIB);
        assert!(n <= 10_000, "{n}");
        for size in [1, 5 * MIB, 5 * MIB + 1, 100 * MIB, 80 * GIB, 5 * 1024 * GIB] {
            let (p, n) = part_plan(size, 8 * MIB);
            assert!(p >= MIN_PART_SIZE && p % MIB == 0 && p <= MAX_PART_SIZE);
            assert!(u64::from(n) <= MAX_PARTS && u64::from(n) * p >= size);
            assert!(u64::from(n - 1) * p < size, "no empty last part");
        }
    }

    #[test]
    fn part_lengths_add_up_to_the_size() {
        assert_eq!(part_length(12 * MIB, 5 * MIB, 1), 5 * MIB);
        assert_eq!(part_length(12 * MIB, 5 * MIB, 3), 2 * MIB);
        assert_eq!(part_length(10 * MIB, 5 * MIB, 2), 5 * MIB);
        for size in [1, 5 * MIB, 5 * MIB + 1, 100 * MIB + 7] {
            let (p, n) = part_plan(size, 8 * MIB);
            let total: u64 = (1..=n).map(|i| part_length(size, p, i)).sum();
            assert_eq!(total, size);
            assert!((1..=n).all(|i| part_length(size, p, i) > 0));
        }
    }

    fn parts(ns: &[u32]) -> Vec<CompletePart> {
        ns.iter()
            .map(|&n| CompletePart {
                part_number: n,
                etag: format!("\"e{n}\""),
            })
            .collect()
    }

    #[test]
    fn part_lists_are_checked_and_name_the_part() {
        assert!(check_part_list(&parts(&[1, 2, 3]), 3).is_ok());
        let e = check_part_list(&parts(&[1, 3]), 3).unwrap_err();
        assert_eq!(e.code, "missing_part");
        assert!(e.message.contains("Part 2"), "{}", e.message);
        let e = check_part_list(&parts(&[1, 2]), 3).unwrap_err();
        assert!(e.code == "missing_part" && e.message.contains("Part 3"));
        let e = check_part_list(&parts(&[2, 1, 3]), 3).unwrap_err();
        assert!(e.code == "parts_out_of_order" && e.message.contains("Part 1"));
        let e = check_part_list(&parts(&[1, 1, 2, 3]), 3).unwrap_err();
        assert!(e.code == "duplicate_part" && e.message.contains("Part 1"));
        let e = check_part_list(&parts(&[1, 2, 3, 4]), 3).unwrap_err();
        assert!(e.code == "unknown_part" && e.message.contains("Part 4"));
        assert_eq!(check_part_list(&[], 1).unwrap_err().code, "missing_part");
    }

    #[test]
    fn held_parts_are_matched_by_etag_without_quotes() {
        let held: Vec<UploadedPart> = (1..=2)
            .map(|n| UploadedPart {
                part_number: n,
                etag: format!("\"e{n}\""),
                size: if n == 1 { MIN_PART_SIZE } else { 10 },
            })
            .collect();
        let mut ps = parts(&[1, 2]);
        ps[1].etag = "e2".into();
        let (refs, total) = match_held(&ps, &held).unwrap();
        assert_eq!(total, MIN_PART_SIZE + 10);
        assert_eq!(refs[1].etag, "\"e2\"");
        ps[1].etag = "\"zz\"".into();
        let e = match_held(&ps, &held).unwrap_err();
        assert!(e.code == "etag_mismatch" && e.message.contains("Part 2"));
        let e = match_held(&parts(&[1, 2, 3]), &held).unwrap_err();
        assert!(e.code == "missing_part" && e.message.contains("Part 3"));
        let small = vec![
            UploadedPart {
                size: 10,
                ..held[0].clone()
            },
            held[1].clone(),
        ];
        let e = match_held(&parts(&[1, 2]), &small).unwrap_err();
        assert!(e.code == "part_too_small" && e.message.contains("Part 1"));
    }
}
