// Tessera's page: sign in with a token, upload a CSV (upload.js), follow the job live over the
// WebSocket (falling back to polling GET /v1/jobs/{id} every second), then show the column
// profile and its sentiment charts (sentiment.js), the query panel (query.js), the agent panel (agent.js) and the jobs list. Plain ES module, no framework, no build
// step.

import { api, ApiError, Upload } from './upload.js';
import { initQuery, showQueryPanel, hideQueryPanel } from './query.js';
import { initAgent, showAgentPanel, hideAgentPanel } from './agent.js';
import { showSentiment, hideSentiment } from './sentiment.js';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'tessera.token';
const FINAL = new Set(['completed', 'failed', 'cancelled']);

let cfg = { api: '', ws: '' };
let token = localStorage.getItem(TOKEN_KEY) || '';
let current = null; // the Upload in progress
let watcher = null; // the job being followed

// ------------------------------------------------------------------ errors

function showError(e) {
  const box = $('error');
  if (!e) { box.hidden = true; box.textContent = ''; return; }
  let text = e.message || String(e);
  if (e instanceof ApiError) {
    text = `${e.message} (${e.code}${e.requestId ? `, request id ${e.requestId}` : ''})`;
    if (e.status === 401) text += ' — sign in again with a fresh `tessera token`.';
  }
  box.textContent = text;
  box.dataset.code = e.code || '';
  box.hidden = false;
}

// ------------------------------------------------------------------ formatting

const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
function duration(s) {
  if (!Number.isFinite(s)) return '–';
  if (s < 60) return `${Math.ceil(s)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}
function value(v) {
  return v === null || v === undefined ? '–' : String(v);
}
function mean(v) {
  if (v === null || v === undefined) return '–';
  return Math.abs(v) >= 1e6 || Number.isInteger(v) ? String(v) : v.toFixed(4).replace(/\.?0+$/, '');
}
function cell(tr, text, cls, field) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  if (field) td.dataset.field = field;
  tr.appendChild(td);
  return td;
}

// ------------------------------------------------------------------ sign in

function setSignedIn() {
  $('token').value = token ? '••••••••' : '';
  $('signin-state').textContent = token ? 'Signed in (token kept in this browser).' : 'Not signed in.';
  $('signout-button').hidden = !token;
}

$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const t = $('token').value.trim();
  if (!t || t === '••••••••') return;
  token = t.replace(/^Bearer\s+/i, '');
  showError(null);
  try {
    await loadJobs();
    localStorage.setItem(TOKEN_KEY, token);
  } catch (e) {
    token = '';
    showError(e);
  }
  setSignedIn();
});
$('signout-button').addEventListener('click', () => {
  token = '';
  localStorage.removeItem(TOKEN_KEY);
  setSignedIn();
  $('jobs-table').tBodies[0].replaceChildren();
});

// ------------------------------------------------------------------ picking a file

const drop = $('dropzone');
drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (ev) => {
  ev.preventDefault();
  drop.classList.remove('over');
  const f = ev.dataTransfer.files[0];
  if (f) startUpload(f);
});
drop.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); $('file').click(); } });
$('file').addEventListener('change', () => {
  const f = $('file').files[0];
  $('file').value = ''; // picking the same file again (resume) must fire `change` again
  if (f) startUpload(f);
});

// ------------------------------------------------------------------ upload

async function startUpload(file) {
  showError(null);
  if (!token) { showError(new Error('Sign in first: paste a token from `tessera token`.')); return; }
  if (current) { showError(new Error('An upload is already running; abort it or wait for it to finish.')); return; }
  stopWatching();
  $('job').hidden = true;
  $('upload-panel').hidden = false;
  $('upload-file').textContent = file.name;
  $('upload-size').textContent = mb(file.size);
  $('upload-progress').value = 0;
  $('upload-percent').textContent = '0 %';
  $('upload-speed').textContent = '– MB/s';
  $('upload-eta').textContent = '– left';
  $('upload-parts').textContent = '';
  const abortBtn = $('abort-button');
  abortBtn.hidden = false;
  abortBtn.disabled = false;
  const up = new Upload(cfg, token, file, {
    onStatus: (t) => { $('upload-status').textContent = t; },
    onJob: (id) => { showJob(id); },
    onProgress: (p) => {
      // Repaint at most 4 times a second; tell screen readers every 10 %.
      const now = performance.now();
      const frac = p.total ? p.sent / p.total : 1;
      if (now - lastPaint < 250 && frac < 1) return;
      lastPaint = now;
      const decile = Math.floor(frac * 10);
      if (decile !== lastDecile) {
        lastDecile = decile;
        $('upload-announce').textContent = `Upload ${decile * 10} percent done.`;
      }
      $('upload-progress').value = frac;
      $('upload-percent').textContent = `${(frac * 100).toFixed(0)} %`;
      $('upload-speed').textContent = `${p.mbps.toFixed(1)} MB/s`;
      $('upload-eta').textContent = `${duration(p.secondsLeft)} left`;
      if (p.parts) $('upload-parts').textContent = `· parts ${p.parts.done}/${p.parts.total}`;
    },
  });
  let lastPaint = 0;
  let lastDecile = -1;
  current = up;
  try {
    const r = await up.run();
    $('upload-progress').value = 1;
    $('upload-percent').textContent = '100 %';
    $('upload-speed').textContent = `${r.mbps.toFixed(1)} MB/s`;
    $('upload-speed').dataset.mbps = r.mbps.toFixed(2);
    $('upload-eta').textContent = `done in ${r.seconds.toFixed(1)} s`;
    $('upload-status').textContent = `Uploaded${r.resumed ? ' (resumed)' : ''}${r.multipart ? ` in ${up.partCount} parts (${up.partPuts} sent now)` : ''}.`;
    $('upload-status').dataset.partPuts = String(up.partPuts);
    $('upload-status').dataset.resumed = String(r.resumed);
    $('upload-status').dataset.done = 'true';
    abortBtn.hidden = true;
    watch(r.jobId);
  } catch (e) {
    abortBtn.hidden = true;
    if (e.name === 'AbortError') {
      $('upload-status').textContent = 'Upload aborted.';
    } else {
      $('upload-status').textContent = 'Upload stopped.';
      $('upload-status').dataset.done = 'error';
      showError(e);
    }
  } finally {
    current = null;
    loadJobs().catch(() => {});
  }
}

$('abort-button').addEventListener('click', async () => {
  const up = current;
  if (!up) return;
  $('abort-button').disabled = true;
  $('upload-status').textContent = 'Aborting…';
  try {
    const snap = await up.abort();
    if (snap) renderJob(snap);
    $('upload-status').textContent = 'Upload aborted; the job is cancelled.';
  } catch (e) {
    showError(e);
  }
  loadJobs().catch(() => {});
});

// ------------------------------------------------------------------ job status

function showJob(id) {
  $('job').hidden = false;
  $('job-id').textContent = id;
  $('result').hidden = true;
  hideSentiment();
  hideQueryPanel();
  hideAgentPanel();
}

function renderJob(job) {
  showJob(job.job_id);
  const s = $('job-state');
  s.textContent = job.state;
  s.dataset.state = job.state;
  const p = job.progress || {};
  $('job-progress').value = p.fraction ?? 0;
  const bits = [];
  if (p.chunks_total) bits.push(`chunks ${p.chunks_done}/${p.chunks_total}`);
  if (p.bytes_total) bits.push(`${mb(p.bytes_done || 0)} of ${mb(p.bytes_total)}`);
  if (job.rows != null) bits.push(`${job.rows.toLocaleString('en')} rows`);
  if (job.scored_rows) bits.push(`${job.scored_rows.toLocaleString('en')} rows scored`);
  if (job.error) bits.push(`error: ${job.error.message} (${job.error.code})`);
  $('job-stats').textContent = bits.join(' · ');
}

function stopWatching() {
  if (watcher) watcher.stop();
  watcher = null;
}

function setMode(mode, why) {
  const m = $('watch-mode');
  m.dataset.mode = mode;
  m.textContent = mode === 'ws' ? 'live (WebSocket)' : `polling every second${why ? ` (${why})` : ''}`;
}

/** Follows a job: the WebSocket when it connects, else polling. */
function watch(jobId) {
  stopWatching();
  let stopped = false;
  let timer = null;
  let socket = null;
  const w = {
    stop() { stopped = true; clearTimeout(timer); if (socket) socket.close(); },
    messages: 0,
  };
  watcher = w;
  const finish = async (job) => {
    w.stop();
    renderJob(job);
    if (job.state === 'completed') await showProfile(job);
    loadJobs().catch(() => {});
  };
  const poll = async (why) => {
    if (stopped) return;
    setMode('polling', why);
    try {
      const job = await api(cfg, token, 'GET', `/v1/jobs/${jobId}`);
      if (stopped) return;
      if (FINAL.has(job.state)) return finish(job);
      renderJob(job);
    } catch (e) {
      showError(e);
    }
    if (!stopped) timer = setTimeout(() => poll(why), 1000);
  };
  if (!cfg.ws || typeof WebSocket === 'undefined') { poll('no WebSocket configured'); return; }
  let subscribed = false;
  let fellBack = false;
  const fallback = (why) => {
    if (fellBack || stopped) return;
    fellBack = true;
    if (socket) { socket.onclose = null; socket.close(); }
    poll(why);
  };
  try {
    socket = new WebSocket(`${cfg.ws}?token=${encodeURIComponent(token)}`);
  } catch (e) {
    fallback('the WebSocket URL is invalid');
    return;
  }
  const deadline = setTimeout(() => { if (!subscribed) fallback('the WebSocket did not answer'); }, 4000);
  socket.onopen = () => socket.send(JSON.stringify({ action: 'subscribe', job_id: jobId }));
  socket.onerror = () => { if (!subscribed) fallback('the WebSocket could not connect'); };
  socket.onclose = () => { if (!stopped) fallback(subscribed ? 'the WebSocket closed' : 'the WebSocket could not connect'); };
  socket.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    w.messages++;
    $('watch-mode').dataset.messages = String(w.messages);
    if (msg.type === 'subscribed') {
      subscribed = true;
      clearTimeout(deadline);
      setMode('ws');
    } else if (msg.type === 'error') {
      showError(new ApiError(400, { error: { code: msg.code, message: msg.message } }));
      if (!subscribed) fallback(`the WebSocket refused: ${msg.code}`);
    } else if (msg.job && String(msg.type).startsWith('job.')) {
      if (!subscribed) { subscribed = true; clearTimeout(deadline); setMode('ws'); }
      $('watch-mode').dataset.last = msg.type;
      if (FINAL.has(msg.job.state)) finish(msg.job); else renderJob(msg.job);
    }
  };
}

async function showProfile(job) {
  let profile;
  try {
    profile = await api(cfg, token, 'GET', `/v1/jobs/${job.job_id}/profile`);
  } catch (e) {
    showError(e);
    return;
  }
  $('result-rows').textContent = (profile.rows ?? job.rows ?? 0).toLocaleString('en');
  $('result-rows').dataset.value = String(profile.rows ?? job.rows ?? 0);
  $('result-rejected').textContent = (job.rejected_rows ?? profile.rejected_rows ?? 0).toLocaleString('en');
  $('result-rejected').dataset.value = String(job.rejected_rows ?? profile.rejected_rows ?? 0);
  $('result-columns').textContent = String(profile.columns.length);
  const body = $('profile').tBodies[0];
  body.replaceChildren();
  for (const c of profile.columns) {
    const tr = document.createElement('tr');
    tr.dataset.column = c.name;
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = c.name;
    tr.appendChild(th);
    cell(tr, c.type, '', 'type');
    cell(tr, c.nulls.toLocaleString('en'), 'num', 'nulls');
    cell(tr, `${c.distinct_exact ? '' : '≈'}${c.distinct.toLocaleString('en')}`, 'num', 'distinct');
    // Numbers and dates read best on one line; strings may wrap.
    const cls = c.type === 'string' ? 'num' : 'num nowrap';
    cell(tr, value(c.min), cls, 'min');
    cell(tr, value(c.max), cls, 'max');
    cell(tr, mean(c.mean), 'num', 'mean');
    cell(tr, (c.top || []).slice(0, 5).map((t) => `${t.value === '' ? '""' : t.value} (${t.count.toLocaleString('en')})`).join(', '), '', 'top');
    body.appendChild(tr);
  }
  showSentiment(profile);
  $('result').hidden = false;
  showQueryPanel(job, profile);
  showAgentPanel(job);
}

// ------------------------------------------------------------------ jobs list

async function loadJobs() {
  if (!token) return;
  const list = await api(cfg, token, 'GET', '/v1/jobs?limit=20');
  const body = $('jobs-table').tBodies[0];
  body.replaceChildren();
  for (const j of list.jobs) {
    const tr = document.createElement('tr');
    tr.dataset.job = j.job_id;
    cell(tr, j.filename);
    const st = cell(tr, '');
    const span = document.createElement('span');
    span.className = 'state';
    span.dataset.state = j.state;
    span.textContent = j.state;
    st.appendChild(span);
    cell(tr, mb(j.size), 'num');
    cell(tr, j.rows == null ? '–' : j.rows.toLocaleString('en'), 'num');
    cell(tr, new Date(j.created_at).toLocaleString());
    const actions = cell(tr, '');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'secondary';
    b.textContent = j.state === 'completed' ? 'Profile' : 'Follow';
    b.setAttribute('aria-label', `${b.textContent} ${j.filename}`);
    b.addEventListener('click', () => {
      showError(null);
      renderJob(j);
      if (j.state === 'completed') { stopWatching(); showProfile(j); } else if (!FINAL.has(j.state)) watch(j.job_id);
    });
    actions.appendChild(b);
    body.appendChild(tr);
  }
  $('jobs-empty').hidden = list.jobs.length > 0;
}
$('jobs-refresh').addEventListener('click', () => loadJobs().catch(showError));

// ------------------------------------------------------------------ start

async function init() {
  try {
    const resp = await fetch('config.json', { cache: 'no-cache' });
    if (resp.ok) cfg = { ...cfg, ...(await resp.json()) };
  } catch { /* same-origin API, no WebSocket: the defaults */ }
  initQuery({ cfg: () => cfg, token: () => token });
  initAgent({ cfg: () => cfg, token: () => token });
  setSignedIn();
  if (token) loadJobs().catch(showError);
  document.body.dataset.ready = 'true';
}
init();
