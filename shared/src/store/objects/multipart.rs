//! Multipart writes: a part writer fed piece by piece, and the stitching of result parts into
//! one object (UploadPartCopy for large parts, a bounded buffer for small ones).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::ObjectStore;
use crate::store::StoreError;

/// S3's minimum part size (all parts but the last).
pub const MIN_PART: u64 = 5 * 1024 * 1024;
/// Size of the parts this adapter uploads from its own buffer.
const BUFFER_PART: usize = 8 * 1024 * 1024;

/// Parts of a stitch built at once.
const CONCAT_CONCURRENCY: usize = 8;

/// One part of a stitched object (see [`plan_concat`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConcatPart {
    /// A server-side `UploadPartCopy` of source `source`, whole or the byte range `[start, end)`.
    Copy {
        source: usize,
        range: Option<(u64, u64)>,
    },
    /// An `UploadPart` of these pieces `(source, start, end)` read into memory.
    Build(Vec<(usize, u64, u64)>),
}

/// Plans the parts that stitch sources of `sizes` bytes, in order, into one multipart object so
/// that as little data as possible passes through the caller: a source of at least
/// [`MIN_PART`] bytes is copied by S3 itself (`UploadPartCopy`); smaller sources are gathered
/// into uploaded parts, and when small data precedes a large source, the part is completed with
/// the large source's first bytes (up to `MIN_PART` in all) and the rest of it is copied as a
/// range. So at most `MIN_PART` bytes per small run are read, never the large sources, and every
/// part but the last has S3's minimum size. Empty sources are skipped.
pub fn plan_concat(sizes: &[u64]) -> Vec<ConcatPart> {
    let mut out = Vec::new();
    let mut pending: Vec<(usize, u64, u64)> = Vec::new();
    let mut pending_bytes = 0u64;
    for (i, &size) in sizes.iter().enumerate() {
        if size == 0 {
            continue;
        }
        if pending.is_empty() && size >= MIN_PART {
            out.push(ConcatPart::Copy {
                source: i,
                range: None,
            });
            continue;
        }
        if pending_bytes + size <= BUFFER_PART as u64 {
            pending.push((i, 0, size));
            pending_bytes += size;
            if pending_bytes >= MIN_PART {
                out.push(ConcatPart::Build(std::mem::take(&mut pending)));
                pending_bytes = 0;
            }
            continue;
        }
        // Small data waits and this source is large: complete a part with its head.
        let head = MIN_PART - pending_bytes;
        pending.push((i, 0, head));
        out.push(ConcatPart::Build(std::mem::take(&mut pending)));
        pending_bytes = 0;
        let rest = size - head;
        if rest >= MIN_PART {
            out.push(ConcatPart::Copy {
                source: i,
                range: Some((head, size)),
            });
        } else {
            pending.push((i, head, size));
            pending_bytes = rest;
        }
    }
    if !pending.is_empty() {
        out.push(ConcatPart::Build(pending));
    }
    out
}

/// A presigned request the client performs itself.
impl ObjectStore {
    /// Starts a multipart upload that the caller feeds part by part.
    pub async fn start_multipart(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<MultipartWriter, StoreError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| StoreError::service("CreateMultipartUpload", e))?;
        Ok(MultipartWriter {
            store: self.clone(),
            key: key.to_string(),
            upload_id: out.upload_id.unwrap_or_default(),
            done: Vec::new(),
        })
    }

    /// Concatenates `parts` (in order) into `dest`. Parts of at least 5 MiB are copied inside S3
    /// (UploadPartCopy); small parts are gathered in an 8 MiB buffer. Memory is bounded by the
    /// buffer. Returns the total size.
    pub async fn concat(
        &self,
        dest: &str,
        parts: &[String],
        content_type: &str,
    ) -> Result<u64, StoreError> {
        let mut sizes = Vec::with_capacity(parts.len());
        for p in parts {
            sizes.push(self.size(p).await?.ok_or_else(|| StoreError::Service {
                op: "concat",
                detail: format!("part {p} is missing"),
            })?);
        }
        let total: u64 = sizes.iter().sum();
        if total < MIN_PART {
            let mut buf = Vec::with_capacity(total as usize);
            for p in parts {
                buf.extend_from_slice(&self.read_all(p).await?);
            }
            self.put(dest, buf, content_type).await?;
            return Ok(total);
        }
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(dest)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| StoreError::service("CreateMultipartUpload", e))?;
        let upload_id = upload.upload_id.unwrap_or_default();
        let result = self.concat_parts(dest, &upload_id, parts, &sizes).await;
        match result {
            Ok(done) => {
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(dest)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(done))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| StoreError::service("CompleteMultipartUpload", e))?;
                Ok(total)
            }
            Err(e) => {
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(dest)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                Err(e)
            }
        }
    }

    /// Builds the parts of [`plan_concat`] concurrently (8 at a time); returns them in order.
    async fn concat_parts(
        &self,
        dest: &str,
        upload_id: &str,
        parts: &[String],
        sizes: &[u64],
    ) -> Result<Vec<CompletedPart>, StoreError> {
        use futures::{StreamExt, TryStreamExt};
        let plan = plan_concat(sizes);
        let work: Vec<_> = plan
            .iter()
            .enumerate()
            .map(|(i, part)| self.concat_part(dest, upload_id, i as i32 + 1, part, parts))
            .collect();
        futures::stream::iter(work)
            .buffered(CONCAT_CONCURRENCY)
            .try_collect()
            .await
    }

    /// One planned part: a server-side copy of (a range of) one source, or a part uploaded from
    /// the pieces read into memory (at most [`BUFFER_PART`] + [`MIN_PART`] bytes).
    async fn concat_part(
        &self,
        dest: &str,
        upload_id: &str,
        n: i32,
        part: &ConcatPart,
        keys: &[String],
    ) -> Result<CompletedPart, StoreError> {
        let e_tag = match part {
            ConcatPart::Copy { source, range } => {
                let mut req = self
                    .client
                    .upload_part_copy()
                    .bucket(&self.bucket)
                    .key(dest)
                    .upload_id(upload_id)
                    .part_number(n)
                    .copy_source(format!("{}/{}", self.bucket, keys[*source]));
                if let Some((start, end)) = range {
                    req = req.copy_source_range(format!("bytes={start}-{}", end - 1));
                }
                let out = req
                    .send()
                    .await
                    .map_err(|e| StoreError::service("UploadPartCopy", e))?;
                out.copy_part_result.and_then(|r| r.e_tag)
            }
            ConcatPart::Build(pieces) => {
                let mut body =
                    Vec::with_capacity(pieces.iter().map(|p| p.2 - p.1).sum::<u64>() as usize);
                for &(source, start, end) in pieces {
                    body.extend_from_slice(
                        &self.read_range(&keys[source], start, end - start).await?,
                    );
                }
                return self.put_part(dest, upload_id, n, body).await;
            }
        };
        Ok(CompletedPart::builder()
            .part_number(n)
            .e_tag(e_tag.unwrap_or_default())
            .build())
    }

    /// `UploadPart` of `body` as part `n`.
    async fn put_part(
        &self,
        dest: &str,
        upload_id: &str,
        n: i32,
        body: Vec<u8>,
    ) -> Result<CompletedPart, StoreError> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(dest)
            .upload_id(upload_id)
            .part_number(n)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| StoreError::service("UploadPart", e))?;
        Ok(CompletedPart::builder()
            .part_number(n)
            .e_tag(out.e_tag.unwrap_or_default())
            .build())
    }

    /// Uploads `buf` as the next part after `done` and empties it.
    async fn upload_part(
        &self,
        dest: &str,
        upload_id: &str,
        done: &mut Vec<CompletedPart>,
        buf: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        let n = done.len() as i32 + 1;
        let body = std::mem::replace(buf, Vec::with_capacity(BUFFER_PART));
        done.push(self.put_part(dest, upload_id, n, body).await?);
        Ok(())
    }
}

/// A multipart upload fed part by part (each part but the last must be >= 5 MiB).
#[derive(Debug)]
pub struct MultipartWriter {
    store: ObjectStore,
    key: String,
    upload_id: String,
    done: Vec<CompletedPart>,
}

impl MultipartWriter {
    /// Uploads the next part.
    pub async fn write_part(&mut self, data: Vec<u8>) -> Result<(), StoreError> {
        let mut data = data;
        self.store
            .upload_part(&self.key, &self.upload_id, &mut self.done, &mut data)
            .await
    }

    /// Completes the upload (aborting it if completion fails).
    pub async fn complete(self) -> Result<(), StoreError> {
        let res = self
            .store
            .client
            .complete_multipart_upload()
            .bucket(&self.store.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(self.done.clone()))
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = res {
            self.abort().await;
            return Err(StoreError::service("CompleteMultipartUpload", e));
        }
        Ok(())
    }

    /// Aborts the upload, best effort (the bucket's lifecycle rule cleans up what this misses).
    pub async fn abort(&self) {
        let _ = self
            .store
            .client
            .abort_multipart_upload()
            .bucket(&self.store.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::objects::same_etag;

    #[test]
    fn etags_compare_without_quotes() {
        assert!(same_etag("\"abc\"", "abc"));
        assert!(same_etag("abc", "\"abc\""));
        assert!(!same_etag("\"abc\"", "\"abd\""));
    }

    /// Every byte of every source once, in order; every part but the last at least MIN_PART;
    /// uploaded parts within the buffer; and of a large source at most MIN_PART bytes read.
    fn check_plan(sizes: &[u64]) {
        let plan = plan_concat(sizes);
        let mut next = vec![0u64; sizes.len()];
        let mut last_source = 0;
        let mut read = vec![0u64; sizes.len()];
        for (k, part) in plan.iter().enumerate() {
            let pieces = match part {
                ConcatPart::Copy { source, range } => {
                    vec![range.map_or((*source, 0, sizes[*source]), |(a, b)| (*source, a, b))]
                }
                ConcatPart::Build(p) => {
                    for &(src, a, b) in p {
                        read[src] += b - a;
                    }
                    p.clone()
                }
            };
            let bytes: u64 = pieces.iter().map(|p| p.2 - p.1).sum();
            if k + 1 < plan.len() {
                assert!(bytes >= MIN_PART, "{sizes:?}: part {k} is {bytes} bytes");
            }
            if matches!(part, ConcatPart::Build(_)) {
                assert!(
                    bytes <= BUFFER_PART as u64,
                    "{sizes:?}: part {k} is {bytes} bytes"
                );
            }
            for (src, a, b) in pieces {
                assert!(
                    src >= last_source && a == next[src] && b > a,
                    "{sizes:?}: {plan:?}"
                );
                next[src] = b;
                last_source = src;
            }
        }
        assert_eq!(next, sizes, "{sizes:?}: {plan:?}");
        for (i, &size) in sizes.iter().enumerate() {
            if size >= 2 * MIN_PART {
                assert!(
                    read[i] <= MIN_PART,
                    "{sizes:?}: read {} of source {i}",
                    read[i]
                );
            }
        }
    }

    #[test]
    fn concat_plans_copy_large_sources_and_gather_small_ones() {
        const M: u64 = 1024 * 1024;
        assert_eq!(
            plan_concat(&[6 * M, 0, 7 * M]),
            vec![
                ConcatPart::Copy {
                    source: 0,
                    range: None
                },
                ConcatPart::Copy {
                    source: 2,
                    range: None
                }
            ]
        );
        // A header line before 12 MiB: one part of the header and 5 MiB - 100 B, then a copy.
        assert_eq!(
            plan_concat(&[100, 12 * M]),
            vec![
                ConcatPart::Build(vec![(0, 0, 100), (1, 0, 5 * M - 100)]),
                ConcatPart::Copy {
                    source: 1,
                    range: Some((5 * M - 100, 12 * M))
                }
            ]
        );
        for sizes in [
            vec![],
            vec![0, 0],
            vec![1],
            vec![100, 6 * M, 3 * M, 12 * M, 0, 7 * M, 2 * M],
            vec![4 * M, 4 * M, 4 * M, 9 * M, 1, 20 * M],
            vec![5 * M - 1, 5 * M + 1, 1, 5 * M],
        ] {
            check_plan(&sizes);
        }
        // Many shapes: a small deterministic generator over sizes around the thresholds.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..5_000 {
            let n = (x % 9) as usize;
            let sizes: Vec<u64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    [
                        0,
                        1,
                        100,
                        M,
                        3 * M,
                        5 * M - 1,
                        5 * M,
                        5 * M + 1,
                        8 * M,
                        9 * M,
                        33 * M,
                    ][(x % 11) as usize]
                })
                .collect();
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            check_plan(&sizes);
        }
    }
}
