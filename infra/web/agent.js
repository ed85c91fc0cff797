// The agent on the page, for a completed job: "Suggest rules" (`POST /v1/rules/generate`: where
// the rules came from, each rule with its reason and its dry-run violations on the job's sample,
// "Check the whole file" (`POST /v1/rules/dry-runs`, followed to its counts per rule), the
// document as JSON, "Save as workflow" through `POST /v1/workflows`) and a chat panel
// (`POST /v1/sessions`, `POST /v1/sessions/{id}/messages`, then `GET /v1/sessions/{id}` every
// 500 ms until the message is answered or failed: its state, the tools it called, the answer
// text, its table and its chart, drawn with chart.js).
//
// Everything the API returns is shown with `textContent`, never as HTML: cell values and model
// text may hold markup.
//
// Not here: sign-in, uploads, the job's profile (app.js), the query form (query.js).

import { api, ApiError } from './upload.js';
import { chartFor } from './chart.js';

const $ = (id) => document.getElementById(id);
const POLL_MS = 500;
const FINAL = new Set(['answered', 'failed']);
/** What each message state is called on the page. */
export const STATE_TEXT = {
  queued: 'Queued: waiting for the agent…',
  running: 'Working: the agent is calling the model and its tools…',
  waiting_for_query: 'Waiting for a long query to finish (it runs as a query job)…',
  waiting_for_model_capacity: 'Waiting for model capacity (the model is busy; the message is retried shortly)…',
  answered: 'Answered',
  failed: 'Failed',
};
const FALLBACK_TEXT = {
  no_model: 'no model is configured (set TESSERA_MODEL_ID)',
  model_unavailable: 'the model could not be reached',
  model_busy: 'the model is busy (rate limit)',
  budget_exceeded: 'the daily model budget is spent',
  model_rules_invalid: 'the model kept proposing invalid rules',
};

let ctx = null; // {cfg(), token()}
let job = null; // the job shown
let lastRules = null; // the last suggested document
let session = null; // {id, jobId}
let chatRun = 0; // bumps when the job changes; older polls stop

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, String(v));
  }
  if (text !== undefined) e.textContent = text;
  return e;
}

function errorText(e) {
  if (e instanceof ApiError) {
    let t = `${e.message} (${e.code}${e.requestId ? `, request id ${e.requestId}` : ''})`;
    if (e.status === 401) t += ' — sign in again with a fresh `tessera token`.';
    return t;
  }
  return e.message || String(e);
}

function showBoxError(box, e) {
  if (!e) { box.hidden = true; box.textContent = ''; delete box.dataset.code; return; }
  box.textContent = errorText(e);
  box.dataset.code = e.code || '';
  box.hidden = false;
}

const cellText = (v) => (v === null || v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v));
const checkText = (c) => (typeof c === 'string' ? c : JSON.stringify(c));

// ------------------------------------------------------------------ suggest rules

async function suggest() {
  if (!job) return;
  const prompt = $('rules-prompt').value.trim() || $('rules-prompt').placeholder;
  const forJob = job.job_id;
  showBoxError($('rules-error'), null);
  $('rules-result').hidden = true;
  $('rules-run').disabled = true;
  $('rules-status').textContent = 'Asking for rules and dry-running them on the sample…';
  $('agent-section').dataset.rules = 'running';
  try {
    const a = await api(ctx.cfg(), ctx.token(), 'POST', '/v1/rules/generate', { job_id: forJob, prompt });
    if (job?.job_id !== forJob) return;
    renderRules(a);
    $('rules-status').textContent = '';
    $('agent-section').dataset.rules = 'done';
  } catch (e) {
    if (job?.job_id !== forJob) return;
    $('rules-status').textContent = '';
    showBoxError($('rules-error'), e);
    $('agent-section').dataset.rules = 'error';
  } finally {
    $('rules-run').disabled = false;
  }
}

function renderRules(a) {
  lastRules = a.rules;
  const src = $('rules-source');
  src.dataset.source = a.source;
  src.textContent = a.source === 'model'
    ? `Proposed by the model${a.repairs ? ` (after ${a.repairs} repair${a.repairs > 1 ? 's' : ''})` : ''}.`
    : `Suggested from the profile${a.fallback ? '' : ' (no model is configured: set TESSERA_MODEL_ID for model rules)'}.`;
  const fb = $('rules-fallback');
  if (a.fallback) {
    const code = a.fallback.code || a.fallback;
    fb.dataset.code = code;
    fb.textContent = `The model was not used: ${FALLBACK_TEXT[code] || code}${a.fallback.message ? ` — ${a.fallback.message}` : ''}.`;
    fb.hidden = false;
  } else {
    fb.hidden = true;
    fb.textContent = '';
  }
  const dry = a.dry_run || {};
  $('rules-sample').textContent = String(dry.sample_rows ?? 0);
  $('rules-sample').dataset.value = String(dry.sample_rows ?? 0);
  $('rules-rejected').textContent = String(dry.rejected_rows ?? 0);
  $('rules-rejected').dataset.value = String(dry.rejected_rows ?? 0);
  const why = new Map((a.reasons || []).map((r) => [r.rule_id, r.why]));
  const violations = dry.violations || {};
  const body = $('rules-table').tBodies[0];
  body.replaceChildren();
  (a.rules?.rules || []).forEach((r, i) => {
    const id = r.id || `#${i}`;
    const tr = el('tr', { dataset: { rule: id } });
    const th = el('th', { scope: 'row', class: 'mono' }, id);
    tr.appendChild(th);
    tr.appendChild(el('td', { 'data-field': 'column' }, r.column ?? (r.columns ? r.columns.join(', ') : '–')));
    tr.appendChild(el('td', { 'data-field': 'check', class: 'mono' }, checkText(r.check)));
    tr.appendChild(el('td', { 'data-field': 'why' }, why.get(id) ?? '–'));
    const n = violations[id] ?? 0;
    tr.appendChild(el('td', { 'data-field': 'violations', 'data-value': n, class: 'num' }, String(n)));
    tr.appendChild(el('td', { 'data-field': 'file-violations', class: 'num' }, '–'));
    body.appendChild(tr);
  });
  fileRun += 1;
  $('rules-file').dataset.state = '';
  $('rules-file-status').textContent = 'The counts above are the sample\'s; the whole file runs as a job of its own.';
  $('rules-file-run').disabled = false;
  showBoxError($('rules-file-error'), null);
  $('rules-json').textContent = JSON.stringify(a.rules, null, 2);
  $('wf-saved').textContent = '';
  delete $('wf-saved').dataset.workflowId;
  showBoxError($('wf-error'), null);
  $('rules-result').hidden = false;
}

let fileRun = 0; // bumps when new rules are shown; an older dry run's polls stop

/** Runs the shown rules over the whole file (`POST /v1/rules/dry-runs`) and follows the run. */
async function checkWholeFile() {
  if (!lastRules || !job) return;
  const run = ++fileRun;
  const box = $('rules-file');
  const status = $('rules-file-status');
  showBoxError($('rules-file-error'), null);
  $('rules-file-run').disabled = true;
  box.dataset.state = 'running';
  status.textContent = 'Starting a dry run over the whole file…';
  try {
    const started = await api(ctx.cfg(), ctx.token(), 'POST', '/v1/rules/dry-runs', { job_id: job.job_id, rules: lastRules });
    box.dataset.dryRunId = started.dry_run_id;
    for (;;) {
      if (run !== fileRun) return;
      const r = await api(ctx.cfg(), ctx.token(), 'GET', started.status_url);
      if (run !== fileRun) return;
      if (r.state === 'completed') {
        box.dataset.state = 'completed';
        box.dataset.rows = String(r.rows);
        box.dataset.rejected = String(r.rejected_rows);
        status.textContent = `Whole file: ${r.rows} records, ${r.rejected_rows} would be rejected.`;
        for (const tr of $('rules-table').tBodies[0].rows) {
          const n = (r.violations || {})[tr.dataset.rule] ?? 0;
          const td = tr.querySelector('[data-field=file-violations]');
          td.textContent = String(n);
          td.dataset.value = String(n);
        }
        return;
      }
      if (r.state === 'failed' || r.state === 'cancelled') {
        box.dataset.state = 'failed';
        status.textContent = '';
        const e = r.error || { code: r.state, message: `The dry run ${r.state}.` };
        showBoxError($('rules-file-error'), new ApiError(200, { error: e }));
        return;
      }
      const pct = Math.round(100 * (r.progress?.fraction || 0));
      status.textContent = `Running over the whole file: ${pct} % (${r.progress?.chunks_done ?? 0} of ${r.progress?.chunks_total ?? '?'} chunks)…`;
      await new Promise((res) => setTimeout(res, POLL_MS));
    }
  } catch (e) {
    if (run !== fileRun) return;
    box.dataset.state = 'failed';
    status.textContent = '';
    showBoxError($('rules-file-error'), e);
  } finally {
    if (run === fileRun) $('rules-file-run').disabled = false;
  }
}

async function saveWorkflow() {
  if (!lastRules) return;
  const name = $('wf-name').value.trim();
  showBoxError($('wf-error'), null);
  if (!name) {
    $('wf-name').setAttribute('aria-invalid', 'true');
    showBoxError($('wf-error'), new Error('Workflow name: type a name for the workflow, then save.'));
    return;
  }
  $('wf-name').removeAttribute('aria-invalid');
  $('wf-save').disabled = true;
  try {
    const w = await api(ctx.cfg(), ctx.token(), 'POST', '/v1/workflows', { name, rules: lastRules });
    $('wf-saved').dataset.workflowId = w.workflow_id;
    $('wf-saved').textContent = `Saved as workflow ${w.workflow_id} (version ${w.version}). Uploads can name it to run these rules.`;
  } catch (e) {
    showBoxError($('wf-error'), e);
  } finally {
    $('wf-save').disabled = false;
  }
}

// ------------------------------------------------------------------ chat

async function ask() {
  if (!job) return;
  const text = $('chat-text').value.trim();
  const box = $('chat-error');
  showBoxError(box, null);
  if (!text) {
    showBoxError(box, new Error('Question: type a question about the file first.'));
    return;
  }
  const runNo = chatRun;
  const forJob = job.job_id;
  $('chat-send').disabled = true;
  try {
    if (!session || session.jobId !== forJob) {
      const s = await api(ctx.cfg(), ctx.token(), 'POST', '/v1/sessions', { job_id: forJob });
      session = { id: s.session_id, jobId: forJob };
      $('chat-log').dataset.session = s.session_id;
    }
    const m = await api(ctx.cfg(), ctx.token(), 'POST', `/v1/sessions/${session.id}/messages`, { text });
    $('chat-text').value = '';
    await follow(session.id, m.message_id, runNo);
  } catch (e) {
    if (runNo === chatRun) showBoxError(box, e);
  } finally {
    if (runNo === chatRun) $('chat-send').disabled = false;
  }
}

/** Polls the session until message `mid` is final, rendering the conversation each time. */
async function follow(sid, mid, runNo) {
  const seen = new Set();
  for (;;) {
    if (runNo !== chatRun) return;
    const s = await api(ctx.cfg(), ctx.token(), 'GET', `/v1/sessions/${sid}`);
    if (runNo !== chatRun) return;
    renderConversation(s.messages || []);
    const m = (s.messages || []).find((x) => x.message_id === mid);
    if (m) {
      for (const st of pathOf(m)) seen.add(st);
      const art = document.querySelector(`#chat-log article[data-message-id="${CSS.escape(mid)}"]`);
      if (art) art.dataset.seen = [...seen].join(' ');
      if (FINAL.has(m.state)) return;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

function renderConversation(messages) {
  const log = $('chat-log');
  // Keep what each message has been seen in (the states it passed through).
  const seen = new Map([...log.querySelectorAll('article')].map((a) => [a.dataset.messageId, a.dataset.seen || '']));
  log.replaceChildren(...messages.map((m) => {
    const a = renderMessage(m);
    const before = seen.get(m.message_id);
    const all = new Set([...(before ? before.split(' ') : []), ...pathOf(m)]);
    a.dataset.seen = [...all].join(' ');
    return a;
  }));
}

/** The states message `m` went through, as the server marked them (and its state now). */
function pathOf(m) {
  const marks = (m.states || []).map((x) => x.state);
  if (marks[marks.length - 1] !== m.state) marks.push(m.state);
  return marks;
}

/** "queued → running → waiting for a query job → answered, in 3.2 s" for a final message. */
function pathText(m) {
  const marks = m.states || [];
  const names = pathOf(m).map((s) => s.replaceAll('_', ' '));
  let text = `Path: ${names.join(' → ')}`;
  if (marks.length > 1) {
    const ms = Date.parse(marks[marks.length - 1].at) - Date.parse(marks[0].at);
    if (Number.isFinite(ms)) text += `, in ${(ms / 1000).toFixed(1)} s`;
  }
  return text;
}

function renderMessage(m) {
  const art = el('article', { class: 'chat-msg', dataset: { messageId: m.message_id, state: m.state } });
  art.appendChild(el('p', { class: 'chat-question' }, m.text));
  const st = el('p', { class: 'chat-state state', 'data-state': m.state, role: 'status' }, STATE_TEXT[m.state] || m.state);
  art.appendChild(st);
  if (FINAL.has(m.state)) art.appendChild(el('p', { class: 'chat-path note', 'data-path': pathOf(m).join(' ') }, pathText(m)));
  const calls = m.tool_calls || [];
  if (calls.length) {
    const d = el('details', { class: 'chat-tools' });
    d.appendChild(el('summary', {}, `Tools called: ${calls.map((c) => `${c.tool} (${c.status || 'pending'})`).join(', ')}`));
    const ol = el('ol');
    for (const c of calls) {
      const li = el('li', { dataset: { tool: c.tool, status: c.status || '' } });
      li.appendChild(el('strong', {}, c.tool));
      li.appendChild(document.createTextNode(` — ${c.status || 'pending'}`));
      li.appendChild(el('pre', { class: 'chat-tool-input' }, JSON.stringify(c.input, null, 2)));
      ol.appendChild(li);
    }
    d.appendChild(ol);
    art.appendChild(d);
  }
  if (m.answer) {
    art.appendChild(el('p', { class: 'chat-answer' }, m.answer.text || ''));
    if (m.answer.bound) art.appendChild(el('p', { class: 'note warn chat-bound', 'data-bound': m.answer.bound }, `A partial answer: the agent stopped at its ${m.answer.bound.replace('_', ' ')} bound.`));
    if (m.answer.chart) art.appendChild(renderChart(m.answer.chart));
    if (m.answer.table) art.appendChild(renderTable(m.answer.table));
  }
  if (m.error) {
    const e = el('div', { class: 'error chat-error-msg', role: 'alert', 'data-code': m.error.code || '' });
    e.textContent = `${m.error.message} (${m.error.code})`;
    art.appendChild(e);
  }
  return art;
}

function renderTable(t) {
  const wrap = el('div', { class: 'table-wrap' });
  const table = el('table', { class: 'chat-table' });
  const head = el('thead');
  const hr = el('tr');
  for (const c of t.columns || []) hr.appendChild(el('th', { scope: 'col' }, c));
  head.appendChild(hr);
  const body = el('tbody');
  for (const r of t.rows || []) {
    const tr = el('tr');
    for (const v of r) tr.appendChild(el('td', {}, cellText(v)));
    body.appendChild(tr);
  }
  table.append(head, body);
  wrap.appendChild(table);
  return wrap;
}

/** The answer's chart spec `{kind, x, y, points}` drawn by chart.js as a one-key result. */
function renderChart(spec) {
  const fig = el('figure', { class: 'chart-wrap chat-chart' });
  const result = { columns: [spec.x, spec.y], rows: spec.points || [] };
  const c = chartFor(result, [{ name: spec.x, label: spec.x, kind: spec.kind === 'line' ? 'time' : 'category' }]);
  fig.dataset.kind = c.kind || 'none';
  if (c.svg) fig.appendChild(c.svg);
  fig.appendChild(el('figcaption', {}, c.kind ? `${c.kind === 'bar' ? 'Bar' : 'Line'} chart of ${spec.y} by ${spec.x}. ${c.note || ''}`.trim() : c.note));
  return fig;
}

// ------------------------------------------------------------------ entry points

/** Wires the forms once; `context` gives the API config and the token. */
export function initAgent(context) {
  ctx = context;
  $('rules-form').addEventListener('submit', (ev) => { ev.preventDefault(); suggest(); });
  $('wf-form').addEventListener('submit', (ev) => { ev.preventDefault(); saveWorkflow(); });
  $('rules-file-run').addEventListener('click', () => { checkWholeFile(); });
  $('chat-form').addEventListener('submit', (ev) => { ev.preventDefault(); ask(); });
}

/** Shows the agent panel for a completed job. */
export function showAgentPanel(j) {
  if (job?.job_id !== j.job_id) {
    chatRun++;
    session = null;
    lastRules = null;
    $('rules-result').hidden = true;
    $('rules-status').textContent = '';
    showBoxError($('rules-error'), null);
    showBoxError($('chat-error'), null);
    $('chat-log').replaceChildren();
    delete $('chat-log').dataset.session;
    delete $('agent-section').dataset.rules;
    $('chat-send').disabled = false;
    $('rules-run').disabled = false;
  }
  job = j;
  $('agent-job').textContent = j.filename ? `of ${j.filename}` : '';
  $('agent-section').hidden = false;
}

/** Hides the panel (another job is shown). */
export function hideAgentPanel() {
  $('agent-section').hidden = true;
}
