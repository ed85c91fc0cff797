//! Support for the end-to-end tests: one AWS emulator per test binary (moto on a free port,
//! installed with pip when missing; a test panics with the reason when it cannot start, it never
//! skips), a [`LocalStack`] per test with its own resource names, an HTTP client that talks to
//! the stack like a browser, and generators of adversarial CSV files with a reference count.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_infra::emulator::Emulator;
pub use tessera_infra::stack::{LocalStack, StackOptions};

mod dead_letters;
pub use dead_letters::RefusingPollers;

/// URL of the emulator shared by every test of this binary.
pub fn emulator_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        // An emulator the developer already runs (must be moto started by `tessera`, or with
        // the same DynamoDB fix: see `tessera_infra::emulator::MOTO_LAUNCHER`).
        if let Ok(url) = std::env::var("TESSERA_E2E_EMULATOR_URL") {
            if !url.is_empty() {
                return url;
            }
        }
        let dir = std::env::temp_dir().join("tessera-e2e");
        let em = Emulator::start_on_free_port(&dir).unwrap_or_else(|e| {
            panic!("the end-to-end tests need the AWS emulator and it could not start: {e}")
        });
        let url = em.url();
        // The emulator lives as long as this process: its keeper thread ties moto's life to ours
        // (PR_SET_PDEATHSIG), so nothing is left running when the test binary exits.
        std::mem::forget(em);
        url
    })
}

/// Starts a stack for one test with the test defaults (64 KiB chunks, unique names).
pub async fn stack() -> LocalStack {
    stack_with(|_| {}).await
}

/// Starts a stack for one test after `tweak` adjusts the options.
pub async fn stack_with(tweak: impl FnOnce(&mut StackOptions)) -> LocalStack {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let mut opts = StackOptions::for_tests(emulator_url());
    tweak(&mut opts);
    LocalStack::start(opts)
        .await
        .unwrap_or_else(|e| panic!("the local stack could not start: {e}"))
}

/// A caller of the stack's HTTP API.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

/// An HTTP answer: status, headers and the body parsed as JSON (`Value::Null` when not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Client {
    /// A caller with a token for `sub`.
    pub fn new(stack: &LocalStack, sub: &str) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: stack.http_url.clone(),
            token: Some(stack.token(sub)),
        }
    }

    /// A caller without a token.
    pub fn anonymous(stack: &LocalStack) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: stack.http_url.clone(),
            token: None,
        }
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        answer(
            self.auth(self.http.get(format!("{}{path}", self.base)))
                .send()
                .await
                .expect("GET"),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        answer(
            self.auth(self.http.delete(format!("{}{path}", self.base)))
                .send()
                .await
                .expect("DELETE"),
        )
        .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Answer {
        answer(
            self.auth(self.http.post(format!("{}{path}", self.base)))
                .json(body)
                .send()
                .await
                .expect("POST"),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        let rb = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        answer(self.auth(rb).send().await.expect("POST")).await
    }

    /// `POST /v1/uploads` for a CSV of `size` bytes; asserts 201 and returns the answer body.
    pub async fn create_upload(&self, filename: &str, size: u64) -> Value {
        let a = self
            .post_json(
                "/v1/uploads",
                &json!({ "filename": filename, "size": size, "content_type": "text/csv" }),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "create upload: {:?}", a.body);
        a.body
    }

    /// Creates an upload, PUTs `bytes` to the presigned URL (declaring `declared` bytes), and
    /// returns the job id.
    pub async fn upload(&self, filename: &str, declared: u64, bytes: Vec<u8>) -> String {
        let created = self.create_upload(filename, declared).await;
        let url = created["upload"]["url"].as_str().expect("upload.url");
        let put = self
            .http
            .put(url)
            .body(bytes)
            .send()
            .await
            .expect("PUT to the presigned URL");
        let status = put.status();
        assert_eq!(
            status,
            StatusCode::OK,
            "presigned PUT: {}",
            put.text().await.unwrap_or_default()
        );
        created["job_id"].as_str().expect("job_id").to_string()
    }

    /// Polls `GET /v1/jobs/{id}` until the job is final; panics after `timeout` with the last
    /// snapshot.
    pub async fn wait_final(&self, job_id: &str, timeout: Duration) -> Value {
        let until = Instant::now() + timeout;
        loop {
            let a = self.get(&format!("/v1/jobs/{job_id}")).await;
            assert_eq!(a.status, StatusCode::OK, "GET job: {:?}", a.body);
            let state = a.body["state"].as_str().unwrap_or("").to_string();
            if matches!(state.as_str(), "completed" | "failed" | "cancelled") {
                return a.body;
            }
            assert!(
                Instant::now() < until,
                "job {job_id} not final after {timeout:?}: {}",
                a.body
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}

async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("response body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// Records of a sequential RFC 4180 parse (the `csv` crate), header excluded.
pub fn reference_records(data: &[u8]) -> Vec<Vec<String>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(data);
    rdr.byte_records()
        .map(|r| {
            r.expect("the reference parser reads the generated file")
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect()
        })
        .collect()
}

/// A small deterministic generator (xorshift), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A CSV of at least `min_bytes` whose quoted fields contain the delimiter, doubled quotes and
/// CRLF and LF newlines; records end with `eol`. Returns the bytes (with a final `eol`).
pub fn tricky_csv(min_bytes: usize, seed: u64, eol: &str) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = format!("id,label,comment,amount{eol}").into_bytes();
    let words = ["alpha", "beta", "gamma", "delta", "omega", "ünïcödé", "x"];
    let mut id = 0u64;
    while out.len() < min_bytes {
        id += 1;
        let mut comment = String::new();
        for _ in 0..rng.below(12) + 1 {
            comment.push_str(words[rng.below(words.len() as u64) as usize]);
            comment.push_str(match rng.below(8) {
                0 => ", ",
                1 => "\"\"",
                2 => "\r\n",
                3 => "\n",
                4 => ",\r\n\"\"",
                _ => " ",
            });
        }
        let label = match rng.below(4) {
            0 => format!("\"plain {id}\""),
            1 => "\"\"".to_string(),
            _ => format!("label{id}"),
        };
        let line = format!(
            "{id},{label},\"{comment}\",{}.{:02}{eol}",
            rng.below(100_000),
            rng.below(100)
        );
        out.extend_from_slice(line.as_bytes());
    }
    out
}
