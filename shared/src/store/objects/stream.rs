//! Streaming helpers over [`ObjectStore`]: an output part written as a multipart upload once
//! it passes 8 MiB, and a planned object read as a stream with its size checked.

use super::{MultipartWriter, ObjectStore};
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

/// Streams `key` from byte `from`, checking that the object is still the `planned` bytes its
/// work was cut for (S3's `Content-Range` total, no extra request); `SourceChanged` if it is
/// gone, shorter, or another size. `names`: what the object and the plan are called in the
/// message (`("object", "job")`, `("output", "export")`).
pub async fn open_planned(
    objects: &ObjectStore,
    key: &str,
    from: u64,
    planned: u64,
    names: (&str, &str),
) -> Result<aws_sdk_s3::primitives::ByteStream, SourceChanged> {
    let (object, plan) = names;
    let Some((body, total)) = objects.stream_from_sized(key, from).await? else {
        return Err(SourceChanged::Changed(format!(
            "the {object} is gone or shorter than byte {from}"
        )));
    };
    if let Some(total) = total.filter(|&t| t != planned) {
        return Err(SourceChanged::Changed(format!(
            "the {object} is {total} bytes, the {plan} was planned for {planned}"
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
