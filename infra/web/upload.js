// Browser uploads to Tessera: one presigned PUT for small files, or an S3 multipart upload
// with parallel parts, per-part retry with exponential backoff, resume after a reload (the job
// is remembered in localStorage per file name + size + lastModified), and abort.
//
// No DOM here: the page (app.js) passes callbacks. Not here: job status, sign-in.

/** Files at or above this size go multipart (parallel, resumable parts). */
export const MULTIPART_MIN_BYTES = 5 * 1024 * 1024;
/** Parts in flight at once. */
export const CONCURRENCY = 5;
/** Attempts per part (the first try included) before the upload stops as interrupted. */
export const MAX_ATTEMPTS = 4;
const RESUME_PREFIX = 'tessera.upload.';

/** An error answered by the API: `{"error": {code, message, request_id, details}}`. */
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `The API answered HTTP ${status}.`);
    this.status = status;
    this.code = e.code || `http_${status}`;
    this.requestId = e.request_id || '';
    /** More about the error, e.g. `{errors: [{code, path, message}]}` for a 422 invalid_query. */
    this.details = e.details || null;
  }
}

/** Calls the API with the token; JSON in and out; throws ApiError on non-2xx. */
export async function api(cfg, token, method, path, body) {
  const headers = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(cfg.api + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, { error: { code: 'network', message: `Cannot reach the API (${e.message}). Is \`tessera up\` running?` } });
  }
  const text = await resp.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!resp.ok) throw new ApiError(resp.status, json);
  return json;
}

/** The localStorage key remembering an unfinished upload of this file. */
export function resumeKey(file) {
  return `${RESUME_PREFIX}${file.name}|${file.size}|${file.lastModified}`;
}

function remembered(file) {
  try { return JSON.parse(localStorage.getItem(resumeKey(file)) || 'null'); } catch { return null; }
}

/**
 * SHA-256 of the file's first and last 64 KiB, so a different file with the same name, size and
 * date is not completed with another file's parts (S3's part ETags are MD5s, which browsers
 * cannot compute natively; this catches the likely case, an edited file saved at the same size).
 */
export async function fingerprint(file) {
  const k = 64 * 1024;
  const head = await file.slice(0, k).arrayBuffer();
  const tail = await file.slice(Math.max(0, file.size - k)).arrayBuffer();
  const both = new Uint8Array(head.byteLength + tail.byteLength);
  both.set(new Uint8Array(head), 0);
  both.set(new Uint8Array(tail), head.byteLength);
  if (!globalThis.crypto?.subtle) return `${file.size}`; // not a secure context: size only
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', both));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(t); reject(abortError()); }, { once: true });
});

function abortError() {
  const e = new Error('The upload was aborted.');
  e.name = 'AbortError';
  return e;
}

/**
 * PUTs `blob` to `url` with XMLHttpRequest (fetch has no upload progress). Resolves with the
 * ETag header; rejects with `{retryable, status}` errors.
 */
function put(url, blob, headers, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    for (const [k, v] of Object.entries(headers || {})) {
      if (k.toLowerCase() !== 'host') xhr.setRequestHeader(k, v);
    }
    xhr.upload.onprogress = (ev) => onProgress(ev.loaded);
    const onAbort = () => xhr.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = () => signal?.removeEventListener('abort', onAbort);
    xhr.onload = () => {
      done();
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(xhr.getResponseHeader('ETag') || '');
      } else {
        const e = new Error(`S3 answered HTTP ${xhr.status} to a part upload.`);
        // 403: the presigned URL expired (refresh it); 5xx/429: S3 asks to retry.
        e.retryable = xhr.status === 403 || xhr.status === 429 || xhr.status >= 500;
        e.expired = xhr.status === 403;
        e.status = xhr.status;
        reject(e);
      }
    };
    xhr.onerror = () => {
      done();
      const e = new Error('The network dropped a part upload.');
      e.retryable = true;
      reject(e);
    };
    xhr.onabort = () => { done(); reject(abortError()); };
    xhr.send(blob);
  });
}

/**
 * One upload of one file. `onProgress({sent, total, resumedBytes, mbps, secondsLeft, parts})`
 * reports as bytes move; `onStatus(text)` reports phases; `onJob(jobId)` as soon as the job
 * exists (so the page can show and abort it).
 */
export class Upload {
  constructor(cfg, token, file, { onProgress = () => {}, onStatus = () => {}, onJob = () => {}, concurrency = CONCURRENCY } = {}) {
    Object.assign(this, { cfg, token, file, onProgress, onStatus, onJob, concurrency });
    this.controller = new AbortController();
    this.jobId = null;
    this.multipart = false;
    this.resumed = false;
    this.partPuts = 0;
  }

  call(method, path, body) { return api(this.cfg, this.token, method, path, body); }

  /** Uploads the file; resolves with `{jobId, resumed, multipart, seconds, mbps}`. */
  async run() {
    const started = performance.now();
    const mem = remembered(this.file);
    const print = await fingerprint(this.file);
    let result;
    if (this.controller.signal.aborted) throw abortError();
    if (mem && mem.fingerprint !== print) {
      // Same name, size and date, other bytes: the old upload cannot be reused.
      localStorage.removeItem(resumeKey(this.file));
      this.call('DELETE', `/v1/uploads/${mem.job_id}`).catch(() => {});
      this.onStatus('This file changed since its interrupted upload; starting afresh.');
    }
    if (mem && mem.fingerprint === print && await this.tryResume(mem)) {
      result = await this.runMultipart();
    } else {
      const multipart = this.file.size >= MULTIPART_MIN_BYTES;
      const partSize = this.file.size < 256 * 1024 * 1024 ? 5 * 1024 * 1024 : 16 * 1024 * 1024;
      this.onStatus('Creating the job…');
      const created = await this.call('POST', '/v1/uploads', {
        filename: this.file.name,
        size: this.file.size,
        content_type: this.file.type === 'text/csv' || !this.file.type ? 'text/csv' : this.file.type,
        multipart,
        ...(multipart ? { part_size: partSize } : {}),
      });
      this.jobId = created.job_id;
      if (this.controller.signal.aborted) {
        // Aborted while the job was being created: cancel it too.
        await (created.upload.kind === 'multipart'
          ? this.call('DELETE', `/v1/uploads/${this.jobId}`)
          : this.call('POST', `/v1/jobs/${this.jobId}/cancel`)).catch(() => {});
        throw abortError();
      }
      this.onJob(this.jobId);
      if (created.upload.kind === 'multipart') {
        const plan = created.upload;
        this.setPlan(plan.upload_id, plan.part_size, plan.part_count, plan.routes);
        for (const p of plan.parts) this.urls.set(p.part_number, p.url);
        this.nextFrom = plan.next_from ?? null;
        localStorage.setItem(resumeKey(this.file), JSON.stringify({
          job_id: this.jobId, name: this.file.name, size: this.file.size,
          lastModified: this.file.lastModified, part_size: plan.part_size, fingerprint: print,
        }));
        result = await this.runMultipart();
      } else {
        result = await this.runSingle(created.upload);
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const sent = this.file.size - (this.resumedBytes || 0);
    return { jobId: this.jobId, resumed: this.resumed, multipart: this.multipart, partPuts: this.partPuts, seconds, mbps: sent / 1e6 / Math.max(seconds, 1e-3), ...result };
  }

  setPlan(uploadId, partSize, partCount, routes) {
    this.multipart = true;
    this.uploadId = uploadId;
    this.partSize = partSize;
    this.partCount = partCount;
    this.routes = routes || {
      parts: `/v1/uploads/${this.jobId}/parts`,
      complete: `/v1/uploads/${this.jobId}/complete`,
      abort: `/v1/uploads/${this.jobId}`,
    };
    this.urls = new Map();
    this.etags = new Map();
    this.nextFrom = null;
  }

  /** Picks up a remembered upload: true when S3 still holds it (some parts may be there). */
  async tryResume(mem) {
    this.jobId = mem.job_id;
    this.onStatus('Resuming the previous upload of this file…');
    let st;
    try {
      st = await this.call('GET', `/v1/uploads/${mem.job_id}/parts`);
    } catch (e) {
      // Completed, aborted, gone or not ours any more: start afresh.
      if (e instanceof ApiError && e.status >= 400 && e.status < 500) {
        localStorage.removeItem(resumeKey(this.file));
        this.jobId = null;
        return false;
      }
      throw e;
    }
    this.onJob(this.jobId);
    this.setPlan(st.upload_id, st.part_size, st.part_count, null);
    for (const p of st.uploaded) this.etags.set(p.part_number, p.etag);
    for (const p of st.missing) this.urls.set(p.part_number, p.url);
    this.nextFrom = st.next_from ?? null;
    this.resumed = true;
    this.resumedBytes = st.uploaded.reduce((n, p) => n + p.size, 0);
    return true;
  }

  /** Fresh URLs for missing parts from `from` up (expired URLs, or pages past the first 100). */
  refreshUrls(from) {
    // Workers that miss URLs at the same time share one request.
    this.refreshing ??= new Map();
    if (!this.refreshing.has(from)) {
      this.refreshing.set(from, this.fetchUrls(from).finally(() => this.refreshing.delete(from)));
    }
    return this.refreshing.get(from);
  }

  async fetchUrls(from) {
    const st = await this.call('GET', `${this.routes.parts}?from=${from}`);
    for (const p of st.missing) this.urls.set(p.part_number, p.url);
    for (const p of st.uploaded) if (!this.etags.has(p.part_number)) this.etags.set(p.part_number, p.etag);
    this.nextFrom = st.next_from ?? null;
  }

  async urlFor(n) {
    if (!this.urls.has(n)) await this.refreshUrls(n);
    const u = this.urls.get(n);
    if (!u) throw new Error(`The API gave no URL for part ${n}.`);
    return u;
  }

  async runSingle(target) {
    this.onStatus('Uploading…');
    const meter = new Meter(this.file.size, 0);
    await put(target.url, this.file, target.headers, (loaded) => this.onProgress(meter.update(loaded)), this.controller.signal);
    this.partPuts = 1;
    this.onProgress(meter.update(this.file.size));
    return {};
  }

  async runMultipart() {
    const signal = this.controller.signal;
    const todo = [];
    for (let n = 1; n <= this.partCount; n++) if (!this.etags.has(n)) todo.push(n);
    const held = this.resumedBytes || 0;
    const meter = new Meter(this.file.size, held);
    const inflight = new Map();
    const report = () => {
      let sent = held + this.doneBytes;
      for (const v of inflight.values()) sent += v;
      this.onProgress({ ...meter.update(sent - held), parts: { done: this.etags.size, total: this.partCount } });
    };
    this.doneBytes = 0;
    this.onStatus(this.resumed
      ? `Resuming: ${this.etags.size} of ${this.partCount} parts already uploaded, ${todo.length} to go.`
      : `Uploading ${this.partCount} parts, ${this.concurrency} at a time…`);
    report();
    const worker = async () => {
      while (todo.length) {
        if (signal.aborted) throw abortError();
        const n = todo.shift();
        const start = (n - 1) * this.partSize;
        const blob = this.file.slice(start, Math.min(start + this.partSize, this.file.size));
        for (let attempt = 1; ; attempt++) {
          try {
            const url = await this.urlFor(n);
            this.partPuts++;
            const etag = await put(url, blob, null, (loaded) => { inflight.set(n, loaded); report(); }, signal);
            inflight.delete(n);
            this.etags.set(n, etag);
            this.doneBytes += blob.size;
            report();
            break;
          } catch (e) {
            inflight.delete(n);
            if (e.name === 'AbortError' || !e.retryable || attempt >= MAX_ATTEMPTS) {
              if (e.name !== 'AbortError' && e.retryable) {
                e.message = `Part ${n} failed ${attempt} times (${e.message}). Pick the same file again to resume where it stopped.`;
              }
              throw e;
            }
            if (e.expired) this.urls.delete(n);
            // Exponential backoff with jitter: ~0.5 s, 1 s, 2 s...
            const wait = 500 * 2 ** (attempt - 1) * (0.75 + Math.random() / 2);
            this.onStatus(`Part ${n} failed (${e.message}); retry ${attempt} of ${MAX_ATTEMPTS - 1} in ${(wait / 1000).toFixed(1)} s…`);
            await sleep(wait, signal);
          }
        }
      }
    };
    const workers = [];
    for (let i = 0; i < Math.min(this.concurrency, Math.max(todo.length, 1)); i++) workers.push(worker());
    try {
      await Promise.all(workers);
    } catch (e) {
      this.controller.abort(); // stop the siblings; the parts S3 holds stay for a resume
      throw e;
    }
    this.onStatus('Completing the upload…');
    const parts = [...this.etags.entries()].sort((a, b) => a[0] - b[0]).map(([part_number, etag]) => ({ part_number, etag }));
    const done = await this.call('POST', this.routes.complete, { parts, upload_id: this.uploadId });
    localStorage.removeItem(resumeKey(this.file));
    return { completed: done };
  }

  /** Stops the transfers and aborts the upload (the job ends cancelled). */
  async abort() {
    this.controller.abort();
    localStorage.removeItem(resumeKey(this.file));
    if (!this.jobId) return null;
    if (this.multipart) return this.call('DELETE', `/v1/uploads/${this.jobId}`);
    return this.call('POST', `/v1/jobs/${this.jobId}/cancel`);
  }
}

/** Throughput over the last few seconds, and the time left at that rate. */
class Meter {
  constructor(total, already) {
    this.total = total;
    this.already = already;
    this.t0 = performance.now();
    this.samples = [[this.t0, 0]];
  }

  update(sentThisSession) {
    const now = performance.now();
    this.samples.push([now, sentThisSession]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 3000) this.samples.shift();
    const [t, b] = this.samples[0];
    const rate = now - t > 200 ? (sentThisSession - b) / ((now - t) / 1000) : (sentThisSession / Math.max((now - this.t0) / 1000, 1e-3));
    const sent = this.already + sentThisSession;
    return {
      sent,
      total: this.total,
      resumedBytes: this.already,
      mbps: rate / 1e6,
      averageMbps: sentThisSession / 1e6 / Math.max((now - this.t0) / 1000, 1e-3),
      secondsLeft: rate > 0 ? (this.total - sent) / rate : Infinity,
    };
  }
}
