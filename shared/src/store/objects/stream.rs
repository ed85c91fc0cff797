//! Streaming helpers over [`ObjectStore`]: an output part written as a multipart upload once
//! it passes 8 MiB, and a planned object read as a stream with its size checked.

use super::{MultipartWriter, ObjectStore, RangedRead};
use crate::store::StoreError;

/// Output buffered by a chunk worker before it is sent to S3 as one multipart part.
const OUTPUT_PART_BYTES: usize = 8 * 1024 * 1024;

/// Why a planned object could not be streamed.
#[derive(Debug)]
pub enum SourceChanged {
    /// S3 failed.
    Store(StoreError),
    /// The object is gone, shorter, or of another size than planned.
    Changed(String),
}

impl From<StoreError> for SourceChanged {
    fn from(e: StoreError) -> Self {
        SourceChanged::Store(e)
    }
}

/// What a reader was planned against: the object's size and, when known, its ETag.
#[derive(Debug, Clone, Copy)]
pub struct Planned<'a> {
    pub size: u64,
    pub etag: Option<&'a str>,
}

/// Streams `key` from byte `from`, checking that the object is still the `planned` bytes its
/// work was cut for: the GET carries `If-Match` with the planned ETag (S3 refuses with 412 if
/// the object was replaced, even by one of the same size), and S3's `Content-Range` total
/// must be the planned size (no extra request). `SourceChanged` if it is gone, shorter, of
/// another size, or replaced. `names`: what the object and the plan are called in the message
/// (`("object", "job")`, `("output", "export")`).
pub async fn open_planned(
    objects: &ObjectStore,
    key: &str,
    from: u64,
    planned: Planned<'_>,
    names: (&str, &str),
) -> Result<aws_sdk_s3::primitives::ByteStream, SourceChanged> {
    let (object, plan) = names;
    let (body, total) = match objects.stream_from_sized(key, from, planned.etag).await? {
        RangedRead::Body(body, total) => (body, total),
        RangedRead::Missing => {
            return Err(SourceChanged::Changed(format!(
                "the {object} is gone or shorter than byte {from}"
            )))
        }
        RangedRead::Replaced => {
            return Err(SourceChanged::Changed(format!(
                "the {object} was replaced after the {plan} was planned (its ETag is not {})",
                planned.etag.unwrap_or_default()
            )))
        }
    };
    if let Some(total) = total.filter(|&t| t != planned.size) {
        return Err(SourceChanged::Changed(format!(
            "the {object} is {total} bytes, the {plan} was planned for {}",
            planned.size
        )));
    }
    Ok(body)
}

/// The next piece of an object stream (`None` at its end).
pub async fn next_piece(
    body: &mut aws_sdk_s3::primitives::ByteStream,
) -> Result<Option<bytes::Bytes>, StoreError> {
    body.try_next().await.map_err(|e| StoreError::Service {
        op: "GetObject(stream)",
        detail: e.to_string(),
    })
}

/// One chunk's (or export range's) output part: buffered up to 8 MiB, then sent to S3 as a
/// multipart part, so a worker's memory does not grow with its range.
pub struct PartSink {
    objects: ObjectStore,
    key: String,
    content_type: &'static str,
    pub buf: Vec<u8>,
    upload: Option<MultipartWriter>,
}

impl PartSink {
    pub fn new(objects: ObjectStore, key: String, content_type: &'static str) -> Self {
        PartSink {
            objects,
            key,
            content_type,
            buf: Vec::new(),
            upload: None,
        }
    }

    pub async fn flush_if_full(&mut self) -> Result<(), StoreError> {
        if self.buf.len() < OUTPUT_PART_BYTES {
            return Ok(());
        }
        if self.upload.is_none() {
            self.upload = Some(
                self.objects
                    .start_multipart(&self.key, self.content_type)
                    .await?,
            );
        }
        let data = std::mem::take(&mut self.buf);
        self.upload
            .as_mut()
            .expect("started")
            .write_part(data)
            .await
    }

    pub async fn close(mut self) -> Result<(), StoreError> {
        match self.upload.take() {
            None => {
                self.objects
                    .put(&self.key, std::mem::take(&mut self.buf), self.content_type)
                    .await
            }
            Some(mut up) => {
                if !self.buf.is_empty() {
                    up.write_part(std::mem::take(&mut self.buf)).await?;
                }
                up.complete().await
            }
        }
    }
}
