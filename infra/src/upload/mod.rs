//! Uploading a local file through the Tessera API the way a client should: `POST /v1/uploads`,
//! then either one presigned PUT or a multipart upload (README "Uploads"), with progress.
//!
//! The file is streamed, never held whole: a single PUT reads it in 256 KiB pieces; a multipart
//! upload reads each part from its offset when that part is sent, `concurrency` parts at a
//! time, so memory is bounded by `concurrency x part_size`. A part that fails (network error,
//! 5xx, 429) is sent again after an exponential backoff; part URLs past the first 100 are fetched
//! from `routes.parts?from=N` when needed; the ETags are posted to `routes.complete`.
//!
//! Not here: resuming an upload started by another process (the API supports it through
//! `routes.parts`; this command always starts a new job), or following the job afterwards
//! (see [`crate::demo`]).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

mod progress;
pub use progress::progress_line;
use progress::Progress;

/// What went wrong, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("cannot read {path}: {source}; pass the path of a readable CSV file")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("{what} failed: {source} (is the API at the given address still running?)")]
    Http {
        what: String,
        source: reqwest::Error,
    },
    #[error("{what} answered {status}: {message}")]
    Refused {
        what: String,
        status: u16,
        message: String,
    },
    #[error("the API's answer to {what} lacks {field}: {body}")]
    Protocol {
        what: String,
        field: &'static str,
        body: String,
    },
}

/// A caller of the API with a bearer token.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    /// `http://127.0.0.1:3000`, without `/v1`.
    pub base: String,
    pub token: String,
}

impl Api {
    /// `GET {base}{path}`; the body as JSON when the status is a success, else [`UploadError::Refused`].
    pub async fn get(&self, path: &str) -> Result<Value, UploadError> {
        let rb = self.http.get(format!("{}{path}", self.base));
        self.send(rb, &format!("GET {path}")).await
    }

    /// `POST {base}{path}` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, UploadError> {
        let rb = self.http.post(format!("{}{path}", self.base)).json(body);
        self.send(rb, &format!("POST {path}")).await
    }

    async fn send(&self, rb: reqwest::RequestBuilder, what: &str) -> Result<Value, UploadError> {
        let resp =
            rb.bearer_auth(&self.token)
                .send()
                .await
                .map_err(|source| UploadError::Http {
                    what: what.to_string(),
                    source,
                })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let mut message = error_text(&body);
            if status == reqwest::StatusCode::UNAUTHORIZED {
                message.push_str(
                    "; the API rejected the token: is it a `tessera up` started with another TESSERA_HOME?",
                );
            }
            return Err(UploadError::Refused {
                what: what.to_string(),
                status: status.as_u16(),
                message,
            });
        }
        Ok(body)
    }
}

/// The API's error text: `message (code)`, or the body as it is.
pub fn error_text(body: &Value) -> String {
    match body["error"]["message"].as_str() {
        Some(m) => format!("{m} ({})", body["error"]["code"].as_str().unwrap_or("")),
        None => body.to_string(),
    }
}

/// How to upload.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Ask for a multipart (`Some(true)`) or single (`Some(false)`) upload; `None`: the API
    /// decides by its threshold.
    pub multipart: Option<bool>,
    /// Part size to ask for (5 MiB - 5 GiB); `None`: the API's.
    pub part_size: Option<u64>,
    /// Parts in flight at once.
    pub concurrency: usize,
    /// Tries per part (and for a single PUT) before giving up.
    pub attempts: u32,
    /// Print the progress line on stderr.
    pub progress: bool,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            multipart: None,
            part_size: None,
            concurrency: 4,
            attempts: 5,
            progress: true,
        }
    }
}

/// A finished upload.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub job_id: String,
    pub size: u64,
    /// 0 for a single PUT.
    pub parts: u64,
    pub elapsed: Duration,
}

/// Creates the job for `file` and uploads it; returns when the object is complete in S3.
pub async fn upload_file(
    api: &Api,
    file: &Path,
    opts: &UploadOptions,
) -> Result<Uploaded, UploadError> {
    let file_err = |source| UploadError::File {
        path: file.display().to_string(),
        source,
    };
    let size = tokio::fs::metadata(file).await.map_err(file_err)?.len();
    let filename = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("upload.csv");
    let mut req = json!({ "filename": filename, "size": size, "content_type": "text/csv" });
    if let Some(m) = opts.multipart {
        req["multipart"] = json!(m);
    }
    if let Some(p) = opts.part_size {
        req["part_size"] = json!(p);
    }
    let created = api.post("/v1/uploads", &req).await?;
    let what = "POST /v1/uploads";
    let job_id = field_str(&created, "job_id", what)?.to_string();
    let plan = &created["upload"];
    let started = Instant::now();
    let progress = Progress::start(size, opts.progress);
    let parts = if plan["kind"] == "multipart" {
        if opts.progress {
            eprintln!(
                "job {job_id}: uploading {filename} ({size} bytes) in {} parts of {} bytes, {} at a time",
                plan["part_count"], plan["part_size"], opts.concurrency.max(1)
            );
        }
        let plan = MultipartPlan::read(plan)?;
        let r = multipart(api, file, size, &plan, opts, &progress.sent).await;
        progress.stop().await;
        r?;
        plan.part_count
    } else {
        if opts.progress {
            eprintln!("job {job_id}: uploading {filename} ({size} bytes) in one PUT");
        }
        let r = single(api, file, size, plan, opts, &progress.sent).await;
        progress.stop().await;
        r?;
        0
    };
    Ok(Uploaded {
        job_id,
        size,
        parts,
        elapsed: started.elapsed(),
    })
}

fn field_str<'a>(v: &'a Value, field: &'static str, what: &str) -> Result<&'a str, UploadError> {
    v[field].as_str().ok_or_else(|| UploadError::Protocol {
        what: what.to_string(),
        field,
        body: v.to_string(),
    })
}

/// One presigned PUT of the whole file, streamed from disk (reopened on a retry).
async fn single(
    api: &Api,
    file: &Path,
    size: u64,
    plan: &Value,
    opts: &UploadOptions,
    sent: &Arc<AtomicU64>,
) -> Result<(), UploadError> {
    let url = field_str(plan, "url", "POST /v1/uploads (upload)")?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let this_try = Arc::new(AtomicU64::new(0));
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|source| UploadError::File {
                path: file.display().to_string(),
                source,
            })?;
        let counters = [sent.clone(), this_try.clone()];
        let stream = futures::stream::try_unfold(f, |mut f| async move {
            let mut buf = vec![0u8; 256 * 1024];
            let n = f.read(&mut buf).await?;
            buf.truncate(n);
            Ok::<_, std::io::Error>((n > 0).then(|| (Bytes::from(buf), f)))
        })
        .inspect_ok(move |b| counters.iter().for_each(|c| add(c, b.len())));
        let mut put = api
            .http
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(stream));
        if let Some(headers) = plan["headers"].as_object() {
            for (k, v) in headers {
                put = put.header(k.as_str(), v.as_str().unwrap_or_default());
            }
        }
        match put_once(put, "the upload PUT").await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < opts.attempts && retryable(&e) => {
                sent.fetch_sub(this_try.load(Ordering::Relaxed), Ordering::Relaxed);
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

/// Sends a PUT; returns the answer's ETag (empty when absent).
async fn put_once(rb: reqwest::RequestBuilder, what: &str) -> Result<String, UploadError> {
    let resp = rb.send().await.map_err(|source| UploadError::Http {
        what: what.to_string(),
        source,
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(UploadError::Refused {
            what: what.to_string(),
            status: status.as_u16(),
            message: resp.text().await.unwrap_or_default(),
        });
    }
    Ok(resp
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string())
}

/// Network errors, throttling and server errors may pass on a second try; a 4xx will not.
fn retryable(e: &UploadError) -> bool {
    match e {
        UploadError::Http { .. } => true,
        UploadError::Refused { status, .. } => *status == 429 || *status >= 500,
        _ => false,
    }
}

/// 250 ms, 500 ms, 1 s, ... capped at 8 s, plus up to 25 % jitter so parallel parts that failed
/// together do not retry in lockstep.
fn backoff(attempt: u32) -> Duration {
    let base = 250u64 << attempt.saturating_sub(1).min(5);
    let jitter = rand::random::<u64>() % (base / 4 + 1);
    Duration::from_millis(base + jitter)
}

/// The fields of a multipart plan this command uses.
struct MultipartPlan {
    part_size: u64,
    part_count: u64,
    /// The first page of part URLs.
    urls: VecDeque<(u64, String)>,
    next_from: Option<u64>,
    upload_id: String,
    parts_route: String,
    complete_route: String,
}

impl MultipartPlan {
    fn read(plan: &Value) -> Result<Self, UploadError> {
        let what = "POST /v1/uploads (multipart upload)";
        let missing = |field| UploadError::Protocol {
            what: what.into(),
            field,
            body: plan.to_string(),
        };
        Ok(MultipartPlan {
            part_size: plan["part_size"]
                .as_u64()
                .ok_or_else(|| missing("part_size"))?,
            part_count: plan["part_count"]
                .as_u64()
                .ok_or_else(|| missing("part_count"))?,
            urls: part_urls(&plan["parts"]).ok_or_else(|| missing("parts"))?,
            next_from: plan["next_from"].as_u64(),
            upload_id: field_str(plan, "upload_id", what)?.to_string(),
            parts_route: plan["routes"]["parts"]
                .as_str()
                .ok_or_else(|| missing("routes.parts"))?
                .to_string(),
            complete_route: plan["routes"]["complete"]
                .as_str()
                .ok_or_else(|| missing("routes.complete"))?
                .to_string(),
        })
    }
}

/// `[{part_number, url}]` as pairs.
fn part_urls(list: &Value) -> Option<VecDeque<(u64, String)>> {
    list.as_array()?
        .iter()
        .map(|p| Some((p["part_number"].as_u64()?, p["url"].as_str()?.to_string())))
        .collect()
}

/// Uploads every part, `concurrency` at a time, then completes the upload.
async fn multipart(
    api: &Api,
    file: &Path,
    size: u64,
    plan: &MultipartPlan,
    opts: &UploadOptions,
    sent: &Arc<AtomicU64>,
) -> Result<(), UploadError> {
    let mut urls = plan.urls.clone();
    let mut next_from = plan.next_from;
    let mut etags: Vec<Option<String>> = vec![None; plan.part_count as usize];
    let mut inflight = FuturesUnordered::new();
    loop {
        while inflight.len() < opts.concurrency.max(1) {
            if urls.is_empty() {
                // Only parts below `from` were handed out, so every part from there on is
                // still missing and the page lists them all.
                if let Some(from) = next_from.take() {
                    let path = format!("{}?from={from}", plan.parts_route);
                    let page = api.get(&path).await?;
                    urls = part_urls(&page["missing"]).ok_or(UploadError::Protocol {
                        what: format!("GET {path}"),
                        field: "missing",
                        body: page.to_string(),
                    })?;
                    next_from = page["next_from"].as_u64();
                }
            }
            let Some((n, url)) = urls.pop_front() else {
                break;
            };
            let offset = (n - 1) * plan.part_size;
            let len = plan.part_size.min(size.saturating_sub(offset));
            let part = Part {
                file: file.to_path_buf(),
                number: n,
                offset,
                len,
                url,
            };
            inflight.push(part.send(api.http.clone(), opts.attempts, sent.clone()));
        }
        match inflight.next().await {
            Some(r) => {
                let (n, etag) = r?;
                if let Some(slot) = etags.get_mut(n as usize - 1) {
                    *slot = Some(etag);
                }
            }
            None => break,
        }
    }
    let parts: Vec<Value> = etags
        .iter()
        .enumerate()
        .map(|(i, e)| match e {
            Some(etag) => Ok(json!({ "part_number": i + 1, "etag": etag })),
            None => Err(UploadError::Protocol {
                what: format!("GET {}", plan.parts_route),
                field: "a URL for every part",
                body: format!("part {} never got one", i + 1),
            }),
        })
        .collect::<Result<_, _>>()?;
    api.post(
        &plan.complete_route,
        &json!({ "parts": parts, "upload_id": plan.upload_id }),
    )
    .await?;
    Ok(())
}

/// One part: bytes `[offset, offset + len)` of the file, PUT to its presigned URL.
struct Part {
    file: PathBuf,
    number: u64,
    offset: u64,
    len: u64,
    url: String,
}

impl Part {
    /// Reads the part (once: retries resend the same bytes) and PUTs it; returns its ETag.
    async fn send(
        self,
        http: reqwest::Client,
        attempts: u32,
        sent: Arc<AtomicU64>,
    ) -> Result<(u64, String), UploadError> {
        let data = self.read().await?;
        let what = format!("the PUT of part {}", self.number);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let this_try = Arc::new(AtomicU64::new(0));
            let put = http
                .put(&self.url)
                .header(reqwest::header::CONTENT_LENGTH, self.len)
                .body(counted(data.clone(), [sent.clone(), this_try.clone()]));
            match put_once(put, &what).await {
                Ok(etag) if !etag.is_empty() => return Ok((self.number, etag)),
                Ok(_) => {
                    return Err(UploadError::Protocol {
                        what,
                        field: "the ETag header",
                        body: String::new(),
                    })
                }
                Err(e) if attempt < attempts && retryable(&e) => {
                    sent.fetch_sub(this_try.load(Ordering::Relaxed), Ordering::Relaxed);
                    tracing::warn!(part = self.number, attempt, error = %e, "retrying a part");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn read(&self) -> Result<Bytes, UploadError> {
        let err = |source| UploadError::File {
            path: self.file.display().to_string(),
            source,
        };
        let mut f = tokio::fs::File::open(&self.file).await.map_err(err)?;
        f.seek(std::io::SeekFrom::Start(self.offset))
            .await
            .map_err(err)?;
        let mut buf = vec![0u8; self.len as usize];
        f.read_exact(&mut buf).await.map_err(err)?;
        Ok(Bytes::from(buf))
    }
}

/// A request body over `data` in 64 KiB pieces that adds each piece to the counters as the
/// client takes it, so the progress line moves during a part, not only between parts.
fn counted(data: Bytes, counters: [Arc<AtomicU64>; 2]) -> reqwest::Body {
    const PIECE: usize = 64 * 1024;
    let len = data.len();
    let pieces = (0..len)
        .step_by(PIECE)
        .map(move |i| data.slice(i..(i + PIECE).min(len)));
    let stream = futures::stream::iter(pieces).map(move |b| {
        counters.iter().for_each(|c| add(c, b.len()));
        Ok::<_, std::io::Error>(b)
    });
    reqwest::Body::wrap_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(
            backoff(1) >= Duration::from_millis(250) && backoff(1) < Duration::from_millis(320)
        );
        assert!(backoff(3) >= Duration::from_millis(1000));
        assert!(backoff(30) <= Duration::from_millis(10_000));
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let refused = |status| UploadError::Refused {
            what: "x".into(),
            status,
            message: String::new(),
        };
        assert!(retryable(&refused(503)));
        assert!(retryable(&refused(429)));
        assert!(!retryable(&refused(403)));
    }
}
