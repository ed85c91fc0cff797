//! The data bucket (S3): presigned uploads, ranged streaming reads, result parts and their
//! stitching into whole outputs.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;

use super::StoreError;

mod multipart;
mod stream;

pub use multipart::{plan_concat, ConcatPart, MultipartWriter, MIN_PART};
pub use stream::{next_piece, open_planned, PartSink, Planned, SourceChanged};

#[derive(Debug, Clone)]
pub struct Presigned {
    pub url: String,
    pub method: String,
    /// Headers the client must send (none for a plain PUT: checksums are not signed).
    pub headers: Vec<(String, String)>,
}

/// A part S3 holds for a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    pub part_number: u32,
    /// As S3 reports it (quoted).
    pub etag: String,
    pub size: u64,
}

/// A part the client says it uploaded, for `CompleteMultipartUpload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRef {
    pub part_number: u32,
    pub etag: String,
}

/// Outcome of an operation on a multipart upload that may no longer exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadLookup<T> {
    Found(T),
    /// S3 has no such upload (completed, aborted, or expired by the lifecycle rule).
    NoSuchUpload,
}

fn is_no_such_upload<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|c| c == "NoSuchUpload")
}

/// ETags compare without their quotes (browsers and SDKs differ in keeping them).
pub fn same_etag(a: &str, b: &str) -> bool {
    a.trim().trim_matches('"') == b.trim().trim_matches('"')
}

/// The signed headers a client must send with a presigned request: all but `host` (its URL's)
/// and `content-length` (set by every HTTP client from its body; browsers refuse to set it).
fn client_headers<'a>(headers: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
    headers
        .filter(|(k, _)| {
            !k.eq_ignore_ascii_case("host") && !k.eq_ignore_ascii_case("content-length")
        })
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An object's size and ETag (HeadObject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    /// As S3 reports it (quoted); `None` if absent.
    pub etag: Option<String>,
}

/// A ranged read of an object pinned to an ETag.
pub enum RangedRead {
    /// The bytes from the start asked for, and the object's whole size (`Content-Range`).
    Body(ByteStream, Option<u64>),
    /// No such object, or it is shorter than the start.
    Missing,
    /// The object is not the one with the ETag asked for (S3 answered 412 to `If-Match`).
    Replaced,
}

/// An object found by [`ObjectStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// RFC 3339.
    pub last_modified: Option<String>,
}

/// The bucket adapter.
#[derive(Clone, Debug)]
pub struct ObjectStore {
    client: Client,
    bucket: String,
}

impl ObjectStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        ObjectStore {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// A presigned PUT for `key`, valid for `ttl`, that S3 accepts only with exactly
    /// `content_length` bytes and, when given, this `content_type`: both are signed headers
    /// (`X-Amz-SignedHeaders=content-length;content-type;host`), so a body of another size is
    /// refused with `SignatureDoesNotMatch` instead of stored. The answer's headers are the ones
    /// the client must send besides `content-length` (which every HTTP client sets from its
    /// body). No checksum terms: the S3 client is built without default request checksums
    /// (see `aws::Clients`), so a plain `curl --upload-file` works.
    pub async fn presign_put(
        &self,
        key: &str,
        ttl: Duration,
        content_length: u64,
        content_type: Option<&str>,
    ) -> Result<Presigned, StoreError> {
        let conf = PresigningConfig::expires_in(ttl)
            .map_err(|e| StoreError::service("PresigningConfig", e))?;
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(content_length as i64)
            .set_content_type(content_type.map(str::to_string))
            .presigned(conf)
            .await
            .map_err(|e| StoreError::service("presign PutObject", e))?;
        Ok(Presigned {
            url: req.uri().to_string(),
            method: req.method().to_string(),
            headers: client_headers(req.headers()),
        })
    }

    /// A presigned GET for `key`, valid for `ttl` (an export's download link).
    pub async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String, StoreError> {
        let conf = PresigningConfig::expires_in(ttl)
            .map_err(|e| StoreError::service("PresigningConfig", e))?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(conf)
            .await
            .map_err(|e| StoreError::service("presign GetObject", e))?;
        Ok(req.uri().to_string())
    }

    /// Starts the multipart upload of a client's file at `key`; returns the upload id.
    pub async fn create_upload(&self, key: &str, content_type: &str) -> Result<String, StoreError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| StoreError::service("CreateMultipartUpload", e))?;
        out.upload_id.ok_or_else(|| StoreError::Malformed {
            what: "CreateMultipartUpload answer",
            detail: "no upload id".into(),
        })
    }

    /// A presigned `UploadPart` (PUT) for one part of exactly `content_length` bytes, valid for
    /// `ttl`. Like [`Self::presign_put`] it signs `content-length` (a part of another size is
    /// refused by S3) and carries no checksum terms (the client is built with
    /// `RequestChecksumCalculation::WhenRequired`), so a browser's plain PUT of the bytes works.
    /// The content type is the upload's, fixed at `CreateMultipartUpload`.
    pub async fn presign_upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        content_length: u64,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        let conf = PresigningConfig::expires_in(ttl)
            .map_err(|e| StoreError::service("PresigningConfig", e))?;
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number as i32)
            .content_length(content_length as i64)
            .presigned(conf)
            .await
            .map_err(|e| StoreError::service("presign UploadPart", e))?;
        Ok(req.uri().to_string())
    }

    /// Every part S3 holds for the upload, in part order (ListParts, all pages).
    pub async fn list_upload_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadLookup<Vec<UploadedPart>>, StoreError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let res = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await;
            let out = match res {
                Ok(o) => o,
                Err(e) if is_no_such_upload(&e) => return Ok(UploadLookup::NoSuchUpload),
                Err(e) => return Err(StoreError::service("ListParts", e)),
            };
            for p in out.parts.unwrap_or_default() {
                parts.push(UploadedPart {
                    part_number: p.part_number.unwrap_or(0).max(0) as u32,
                    etag: p.e_tag.unwrap_or_default(),
                    size: p.size.unwrap_or(0).max(0) as u64,
                });
            }
            match (out.is_truncated, out.next_part_number_marker) {
                (Some(true), Some(m)) if !m.is_empty() => marker = Some(m),
                _ => break,
            }
        }
        parts.sort_by_key(|p| p.part_number);
        parts.dedup_by_key(|p| p.part_number);
        Ok(UploadLookup::Found(parts))
    }

    /// Completes a client's multipart upload with `parts` (ascending, validated by the caller).
    pub async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartRef],
    ) -> Result<UploadLookup<()>, StoreError> {
        let done: Vec<CompletedPart> = parts
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(p.part_number as i32)
                    .e_tag(&p.etag)
                    .build()
            })
            .collect();
        let res = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await;
        match res {
            Ok(_) => Ok(UploadLookup::Found(())),
            Err(e) if is_no_such_upload(&e) => Ok(UploadLookup::NoSuchUpload),
            Err(e) => Err(StoreError::service("CompleteMultipartUpload", e)),
        }
    }

    /// Aborts a client's multipart upload; an upload that is already gone is fine.
    pub async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_no_such_upload(&e) => Ok(()),
            Err(e) => Err(StoreError::service("AbortMultipartUpload", e)),
        }
    }

    /// Deletes `keys` (missing ones are fine), 1,000 per `DeleteObjects` call.
    pub async fn delete_keys(&self, keys: &[String]) -> Result<(), StoreError> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        for batch in keys.chunks(1000) {
            let ids = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::service("ObjectIdentifier builder", e))?;
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| StoreError::service("Delete builder", e))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| StoreError::service("DeleteObjects", e))?;
            if let Some(err) = out.errors.unwrap_or_default().first() {
                return Err(StoreError::Service {
                    op: "DeleteObjects",
                    detail: format!(
                        "{}: {} {}",
                        err.key.as_deref().unwrap_or("?"),
                        err.code.as_deref().unwrap_or("?"),
                        err.message.as_deref().unwrap_or("")
                    ),
                });
            }
        }
        Ok(())
    }

    /// One page (up to `max_keys`, at most 1,000) of the objects under `prefix` in key order, after the key
    /// `start_after` when given, and whether more follow.
    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: i32,
    ) -> Result<(Vec<ObjectInfo>, bool), StoreError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_string))
            .max_keys(max_keys)
            .send()
            .await
            .map_err(|e| StoreError::service("ListObjectsV2", e))?;
        let items = out
            .contents()
            .iter()
            .map(|o| ObjectInfo {
                key: o.key().unwrap_or_default().to_string(),
                size: o.size().unwrap_or(0).max(0) as u64,
                last_modified: o
                    .last_modified()
                    .and_then(|t| t.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime).ok()),
            })
            .collect();
        Ok((items, out.is_truncated().unwrap_or(false)))
    }

    /// Size of an object, or `None` when it does not exist.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.head(key).await?.map(|h| h.size))
    }

    /// Size and ETag of an object, or `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectHead>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(ObjectHead {
                size: o.content_length.unwrap_or(0).max(0) as u64,
                etag: o.e_tag,
            })),
            Err(e)
                if e.as_service_error()
                    .map(|s| s.is_not_found())
                    .unwrap_or(false) =>
            {
                Ok(None)
            }
            Err(e) => Err(StoreError::service("HeadObject", e)),
        }
    }

    /// Streams the object from byte `start` to its end. The caller reads as far as it needs and
    /// drops the stream; memory stays at one network buffer.
    pub async fn stream_from(&self, key: &str, start: u64) -> Result<ByteStream, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={start}-"))
            .send()
            .await
            .map_err(|e| StoreError::service("GetObject(range)", e))?;
        Ok(out.body)
    }

    /// Like [`Self::stream_from`], and also returns the object's whole size as S3 reports it
    /// in `Content-Range` (`None` if absent), so a reader can check the object is the one it
    /// planned for without another request. With `if_match`, the GET carries `If-Match` and S3
    /// answers 412 ([`RangedRead::Replaced`]) when the object's ETag is another: the object was
    /// replaced, even by one of the same size.
    pub async fn stream_from_sized(
        &self,
        key: &str,
        start: u64,
        if_match: Option<&str>,
    ) -> Result<RangedRead, StoreError> {
        let res = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={start}-"))
            .set_if_match(if_match.map(str::to_string))
            .send()
            .await;
        let out = match res {
            Ok(o) => o,
            Err(e) => {
                let code = e
                    .as_service_error()
                    .and_then(|se| aws_sdk_s3::error::ProvideErrorMetadata::code(se));
                let status = e.raw_response().map(|r| r.status().as_u16());
                return match (code, status) {
                    (Some("InvalidRange" | "NoSuchKey"), _) => Ok(RangedRead::Missing),
                    (Some("PreconditionFailed"), _) | (_, Some(412)) => Ok(RangedRead::Replaced),
                    _ => Err(StoreError::service("GetObject(range)", e)),
                };
            }
        };
        let total = out
            .content_range
            .as_deref()
            .and_then(|r| r.rsplit_once('/'))
            .and_then(|(_, t)| t.trim().parse::<u64>().ok());
        Ok(RangedRead::Body(out.body, total))
    }

    /// The first `max + 1` bytes at most of an object (a ranged GET), or `None` when it does
    /// not exist: a caller that allows `max` bytes learns the object is larger from the length
    /// without reading it whole, whatever its size was when it was checked or declared.
    pub async fn read_at_most(&self, key: &str, max: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let res = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes=0-{max}"))
            .send()
            .await;
        let out = match res {
            Ok(o) => o,
            Err(e) => {
                let code = e
                    .as_service_error()
                    .and_then(|se| aws_sdk_s3::error::ProvideErrorMetadata::code(se));
                return match code {
                    Some("NoSuchKey") => Ok(None),
                    // An empty object has no byte 0.
                    Some("InvalidRange") => Ok(Some(Vec::new())),
                    _ => Err(StoreError::service("GetObject(range)", e)),
                };
            }
        };
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::service("GetObject(body)", e))?;
        let mut data = data.into_bytes().to_vec();
        // A server that ignores the range still never makes the caller hold more than this.
        data.truncate((max + 1) as usize);
        Ok(Some(data))
    }

    /// Reads bytes `[start, start+len)` (or fewer at the end) into memory. For small reads only.
    pub async fn read_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={start}-{}", start + len - 1))
            .send()
            .await
            .map_err(|e| StoreError::service("GetObject(range)", e))?;
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::service("GetObject(body)", e))?;
        Ok(data.into_bytes().to_vec())
    }

    /// Reads a completed job's profile (`keys::profile_key`).
    pub async fn read_profile(
        &self,
        job: &crate::job::Job,
    ) -> Result<tessera_engine::profile::ProfileReport, StoreError> {
        let bytes = self.read_all(&crate::keys::profile_key(job)).await?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Malformed {
            what: "profile",
            detail: format!("job {}: {e}", job.id),
        })
    }

    /// Reads a whole (small) object.
    pub async fn read_all(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| StoreError::service("GetObject", e))?;
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::service("GetObject(body)", e))?;
        Ok(data.into_bytes().to_vec())
    }

    /// Writes a whole object from memory.
    pub async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| StoreError::service("PutObject", e))?;
        Ok(())
    }
}
