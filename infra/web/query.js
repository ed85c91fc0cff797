// The query panel of a completed job: a form that builds a query document (docs/query.md) from
// the job's profiled columns, `POST /v1/jobs/{id}/queries`, progress while a query job runs
// (polling its status URL), then the result table, a chart of the first aggregate (chart.js),
// the CSV link, and every error with its message and JSON path.
//
// Not here: sign-in, uploads, the job's status and profile (app.js).

import { api, ApiError } from './upload.js';
import { chartFor } from './chart.js';

const $ = (id) => document.getElementById(id);
const NUMERIC = new Set(['integer', 'decimal']);
const TIME = new Set(['date', 'timestamp']);
const STRING_OPS = new Set(['contains', 'starts_with']);
const POLL_MS = 500;
const LIMIT_MAX = 100000;

/** Aggregate functions offered: [fn, label, which columns (`any`, `numeric`, or `optional`: none = records)]. */
const FNS = [
  ['count', 'count', 'optional'],
  ['sum', 'sum', 'numeric'],
  ['avg', 'average', 'numeric'],
  ['min', 'minimum', 'any'],
  ['max', 'maximum', 'any'],
  ['count_distinct', 'distinct values', 'any'],
  ['null_count', 'nulls (and unparsed values)', 'any'],
];
const OPS = [
  ['eq', '='], ['ne', '≠'], ['lt', '<'], ['le', '≤'], ['gt', '>'], ['ge', '≥'],
  ['contains', 'contains'], ['starts_with', 'starts with'], ['is_null', 'is null'],
];

let ctx = null; // {cfg(), token()}
let state = null; // {job, columns: [{name, type}], types: Map}
let run = 0; // the current run's number; an older run's answers are ignored

// ------------------------------------------------------------------ small DOM helpers

function option(select, value, text) {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = text;
  select.appendChild(o);
  return o;
}

function fill(select, items, keep = true) {
  const before = select.value;
  select.replaceChildren();
  for (const [v, t] of items) option(select, v, t);
  if (keep && items.some(([v]) => v === before)) select.value = before;
}

const typeOf = (name) => state?.types.get(name) || 'string';

/**
 * The type a query reads a profiled column as (the server's `Schema::from_profile`): the family
 * most non-null values have (numbers, dates/times, booleans; text when text ties or wins), then
 * the narrowest type of the family. Not the profile's `type`, which every value must fit: a
 * decimal column with a few `n/a`s profiles as string but is queried as decimal (the rest are
 * counted as unparsed).
 */
export function queryType(c) {
  const t = c.type_counts;
  if (!t) return c.type === 'empty' ? 'string' : c.type;
  const int = t.integer;
  const dec = Math.max(0, t.decimal - t.integer);
  const date = t.date;
  const ts = Math.max(0, t.timestamp - t.date);
  const bool = t.boolean;
  const str = Math.max(0, c.count - (int + dec + date + ts + bool));
  const num = int + dec;
  const time = date + ts;
  const best = Math.max(num, time, bool);
  if (best === 0 || best <= str || [num, time, bool].filter((x) => x === best).length > 1) return 'string';
  if (best === num) return dec === 0 ? 'integer' : 'decimal';
  if (best === time) return ts === 0 ? 'date' : 'timestamp';
  return 'boolean';
}

// ------------------------------------------------------------------ the form

/** The keys, bucket and aggregate-column choices follow the chosen columns' types. */
function syncForm() {
  const cols = state.columns;
  for (const i of [0, 1]) {
    const key = $(`q-key-${i}`).value;
    const ty = key ? typeOf(key) : '';
    $(`q-bucket-wrap-${i}`).hidden = !TIME.has(ty);
    $(`q-width-wrap-${i}`).hidden = !NUMERIC.has(ty);
    if (TIME.has(ty)) {
      const b = [['', 'each value'], ...(ty === 'timestamp' ? [['hour', 'hour']] : []),
        ['day', 'day'], ['week', 'week (from Monday)'], ['month', 'month'], ['year', 'year']];
      fill($(`q-bucket-${i}`), b);
    }
  }
  $('q-key-1').disabled = !$('q-key-0').value;
  if (!$('q-key-0').value) $('q-key-1').value = '';
  for (const i of [0, 1]) {
    const fn = $(`q-fn-${i}`).value;
    const spec = FNS.find(([f]) => f === fn);
    const wrap = $(`q-col-wrap-${i}`);
    wrap.hidden = !spec;
    if (!spec) continue;
    const allowed = cols.filter((c) => spec[2] !== 'numeric' || NUMERIC.has(c.type));
    const items = allowed.map((c) => [c.name, `${c.name} (${c.type})`]);
    if (spec[2] === 'optional') items.unshift(['', 'all records']);
    fill($(`q-col-${i}`), items);
  }
  const fcol = $('q-filter-col').value;
  const fty = fcol ? typeOf(fcol) : '';
  $('q-filter-op').disabled = !fcol;
  fill($('q-filter-op'), OPS.filter(([op]) => !STRING_OPS.has(op) || fty === 'string' || !fcol).map(([v, t]) => [v, t]));
  const op = $('q-filter-op').value;
  $('q-filter-value').disabled = !fcol || op === 'is_null';
  $('q-filter-value').placeholder = !fcol ? '' : {
    integer: 'a whole number', decimal: 'a number', boolean: 'true or false',
    date: 'YYYY-MM-DD', timestamp: 'YYYY-MM-DDTHH:MM:SSZ', string: 'text',
  }[fty] || '';
  const k0 = $('q-key-0').value;
  $('q-order').disabled = !k0;
}

/** A problem found before sending: which control, what is wrong. */
class FormError extends Error {
  constructor(control, message) { super(message); this.control = control; }
}

/** The filter value typed into the box, as the JSON the column's type takes (else the text as typed: the API then says why). */
function literal(text, ty) {
  const t = text.trim();
  if (NUMERIC.has(ty) && /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(t)) return Number(t);
  if (ty === 'boolean' && /^(true|false)$/i.test(t)) return t.toLowerCase() === 'true';
  return text;
}

/** The query document the form describes. */
export function documentFromForm() {
  const doc = { version: 1, source: $('q-source').value };
  const keys = [];
  const group = [];
  for (const i of [0, 1]) {
    const col = $(`q-key-${i}`).value;
    if (!col || (i === 1 && !$('q-key-0').value)) continue;
    const ty = typeOf(col);
    const bucket = TIME.has(ty) ? $(`q-bucket-${i}`).value : '';
    const widthText = NUMERIC.has(ty) ? $(`q-width-${i}`).value.trim() : '';
    if (bucket) {
      group.push({ column: col, bucket });
      keys.push({ name: `${bucket}(${col})`, label: `${col} (${bucket})`, kind: 'time', bucket });
    } else if (widthText) {
      const w = Number(widthText);
      if (!/^\d+(\.\d+)?$/.test(widthText) || !(w > 0)) throw new FormError(`q-width-${i}`, `Bucket width of ${col}: "${widthText}" is not a positive number; type one such as 10, or leave it empty to group by each value.`);
      group.push({ column: col, width: w });
      keys.push({ name: `bucket(${col},${String(w)})`, label: `${col} (width ${String(w)})`, kind: 'number' });
    } else {
      group.push(col);
      // Each date is a point in time too; each number a bucket of width 0.
      const kind = NUMERIC.has(ty) ? 'number' : TIME.has(ty) ? 'time' : 'category';
      keys.push({ name: col, label: col, kind, bucket: ty === 'date' ? 'day' : undefined });
    }
  }
  if (group.length) doc.group_by = group;
  const aggs = [];
  for (const i of [0, 1]) {
    const fn = $(`q-fn-${i}`).value;
    if (!fn) continue;
    const col = $(`q-col-${i}`).value;
    aggs.push(col ? { fn, column: col } : { fn });
  }
  doc.aggregates = aggs;
  const fcol = $('q-filter-col').value;
  if (fcol) {
    const op = $('q-filter-op').value;
    const f = { column: fcol, op };
    if (op !== 'is_null') {
      const text = $('q-filter-value').value;
      if (text === '') throw new FormError('q-filter-value', `Filter: type a value to compare ${fcol} with, or pick "no filter".`);
      f.value = literal(text, typeOf(fcol));
    }
    doc.filter = f;
  }
  if (group.length) {
    let order = $('q-order').value;
    if (order === 'auto') order = keys[0].kind === 'time' || keys[0].kind === 'number' ? 'key_asc' : 'agg_desc';
    doc.order_by = order.startsWith('agg')
      ? [{ aggregate: 0, desc: order === 'agg_desc' }]
      : [{ key: keys[0].name, desc: order === 'key_desc' }];
  }
  const limitText = $('q-limit').value.trim();
  const limit = Number(limitText);
  if (!/^\d+$/.test(limitText) || limit < 1 || limit > LIMIT_MAX) throw new FormError('q-limit', `Rows at most: "${limitText}" is not a whole number from 1 to ${LIMIT_MAX}.`);
  doc.limit = limit;
  return { doc, keys };
}

// ------------------------------------------------------------------ errors

/** The control a JSON path of the document points at, if the form has one. */
function controlFor(path) {
  let m;
  if ((m = /^\$\.group_by\[(\d)\]/.exec(path))) return `q-key-${m[1]}`;
  if ((m = /^\$\.aggregates\[(\d)\]\.(\w+)/.exec(path))) return m[2] === 'fn' ? `q-fn-${m[1]}` : `q-col-${m[1]}`;
  if ((m = /^\$\.aggregates\[(\d)\]/.exec(path))) return `q-fn-${m[1]}`;
  if (/^\$\.filter.*\.value/.test(path)) return 'q-filter-value';
  if (/^\$\.filter.*\.op/.test(path)) return 'q-filter-op';
  if (/^\$\.filter/.test(path)) return 'q-filter-col';
  if (/^\$\.order_by/.test(path)) return 'q-order';
  if (/^\$\.limit/.test(path)) return 'q-limit';
  if (/^\$\.source/.test(path)) return 'q-source';
  return null;
}

const CONTROL_NAMES = {
  'q-key-0': 'the first group key', 'q-key-1': 'the second group key', 'q-fn-0': 'the first aggregate',
  'q-fn-1': 'the second aggregate', 'q-col-0': "the first aggregate's column", 'q-col-1': "the second aggregate's column",
  'q-filter-col': "the filter's column", 'q-filter-op': "the filter's operator", 'q-filter-value': "the filter's value",
  'q-order': 'the order', 'q-limit': 'rows at most', 'q-source': 'the source', 'q-width-0': 'the first bucket width',
  'q-width-1': 'the second bucket width',
};

function clearInvalid() {
  for (const e of document.querySelectorAll('#query-form [aria-invalid]')) {
    e.removeAttribute('aria-invalid');
    e.removeAttribute('aria-errormessage');
  }
}

function markInvalid(id) {
  const c = id && $(id);
  if (!c) return;
  c.setAttribute('aria-invalid', 'true');
  c.setAttribute('aria-errormessage', 'query-error');
}

/** What to do about an error, by code. */
function advice(code) {
  return {
    invalid_query: 'Change the marked control and run the query again.',
    too_many_groups: 'Group by fewer or coarser keys (a date bucket, a bucket width) or add a filter.',
    too_many_values: 'Count the distinct values of fewer groups, or of a column with fewer values.',
    job_not_completed: 'Wait for the job to complete, then run the query again.',
    query_stalled: 'Run the query again.',
    query_enqueue_failed: 'Run the query again.',
    unauthorized: 'Sign in again with a fresh `tessera token`.',
    network: 'Check that `tessera up` (or the API) is running, then run the query again.',
  }[code] || 'Run the query again; if it fails the same way, report the request id.';
}

/** Shows an error in the panel: its message, code, every problem with its JSON path, what to do. */
function showQueryError(e) {
  const box = $('query-error');
  clearInvalid();
  if (!e) { box.hidden = true; box.replaceChildren(); delete box.dataset.code; return; }
  box.replaceChildren();
  const head = document.createElement('p');
  head.className = 'q-error-message';
  const code = e.code || 'error';
  box.dataset.code = code;
  if (e instanceof FormError) {
    head.textContent = e.message;
    markInvalid(e.control);
    box.appendChild(head);
    box.hidden = false;
    return;
  }
  const problems = e.details?.errors || [];
  const ids = `${code}${e.requestId ? `, request id ${e.requestId}` : ''}`;
  // With its problems listed one by one (path and message), the API's summary of the first
  // would say it twice.
  head.textContent = problems.length
    ? `The query was refused: ${problems.length} problem${problems.length === 1 ? '' : 's'} (${ids}).`
    : `${e.message} (${ids})`;
  box.appendChild(head);
  if (problems.length) {
    const ul = document.createElement('ul');
    ul.className = 'q-problems';
    for (const p of problems) {
      const li = document.createElement('li');
      li.dataset.path = p.path;
      li.dataset.code = p.code;
      const path = document.createElement('code');
      path.textContent = p.path;
      const control = controlFor(p.path);
      markInvalid(control);
      li.append(path, `: ${p.message} (${p.code})${control ? ` — in ${CONTROL_NAMES[control]}` : ''}`);
      ul.appendChild(li);
    }
    box.appendChild(ul);
  }
  const tip = document.createElement('p');
  tip.className = 'q-error-advice';
  tip.textContent = advice(code) + (problems.length ? ' The paths point into the query as JSON, shown below the form.' : '');
  box.appendChild(tip);
  box.hidden = false;
}

// ------------------------------------------------------------------ running

function showDocument(doc) {
  $('query-doc').textContent = JSON.stringify(doc, null, 2);
  $('query-doc-wrap').hidden = false;
}

function renderProgress(a) {
  const p = a.progress || {};
  $('query-running').hidden = false;
  $('query-progress').value = p.fraction ?? 0;
  const bits = [`${a.state}`];
  if (p.ranges) bits.push(`ranges ${p.ranges_done ?? 0}/${p.ranges}`);
  if (p.bytes) bits.push(`${((p.bytes_done || 0) / 1e6).toFixed(1)} of ${(p.bytes / 1e6).toFixed(1)} MB`);
  $('query-stats').textContent = bits.join(' · ');
  $('query-status').textContent = `The query runs as a query job over ${p.ranges ?? 'several'} byte ranges…`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function runQuery() {
  showQueryError(null);
  let built;
  try {
    built = documentFromForm();
  } catch (e) {
    showQueryError(e);
    return;
  }
  const { doc, keys } = built;
  const mine = ++run;
  const jobId = state.job.job_id;
  showDocument(doc);
  $('query-result').hidden = true;
  $('q-run').disabled = true;
  $('query-status').textContent = 'Running…';
  $('query-section').dataset.state = 'running';
  try {
    let a = await api(ctx.cfg(), ctx.token(), 'POST', `/v1/jobs/${jobId}/queries`, doc);
    while (a.state === 'queued' || a.state === 'running') {
      if (mine !== run) return;
      renderProgress(a);
      await sleep(POLL_MS);
      if (mine !== run) return;
      a = await api(ctx.cfg(), ctx.token(), 'GET', a.status_url);
    }
    if (mine !== run) return;
    $('query-running').hidden = true;
    if (a.state === 'failed') {
      const err = a.error || {};
      throw new ApiError(200, { error: { code: err.code || 'query_failed', message: err.message || 'The query failed.' } });
    }
    renderResult(a, keys);
    $('query-section').dataset.state = 'completed';
  } catch (e) {
    if (mine !== run) return;
    $('query-running').hidden = true;
    $('query-status').textContent = 'The query did not run.';
    $('query-section').dataset.state = 'error';
    showQueryError(e);
  } finally {
    if (mine === run) $('q-run').disabled = false;
  }
}

// ------------------------------------------------------------------ the result

function cellText(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function renderResult(a, keys) {
  const r = a.result;
  const shown = r.rows.length;
  const bits = [
    `${shown.toLocaleString('en')} row${shown === 1 ? '' : 's'}${r.total_rows > shown ? ` of ${r.total_rows.toLocaleString('en')}` : ''}`,
    `${(r.rows_scanned ?? 0).toLocaleString('en')} records scanned${r.rows_matched != null && r.rows_matched !== r.rows_scanned ? `, ${r.rows_matched.toLocaleString('en')} matched` : ''}`,
    `${((a.bytes_scanned || 0) / 1e6).toFixed(1)} MB`,
    `${(a.cpu_seconds ?? 0).toFixed(2)} CPU s`,
    a.mode === 'job' ? `as a query job over ${a.progress?.ranges ?? '?'} ranges` : 'within the request',
  ];
  if (r.rejected_rows) bits.push(`${r.rejected_rows.toLocaleString('en')} malformed records skipped`);
  $('query-meta').textContent = bits.join(' · ');
  const cached = $('query-cached');
  cached.hidden = !a.cached;
  cached.textContent = a.cached ? 'Answered from the stored result of the same question (cached).' : '';
  $('query-section').dataset.cached = String(!!a.cached);

  const unparsed = Object.entries(r.unparsed || {}).filter(([, n]) => n > 0);
  const up = $('query-unparsed');
  up.hidden = unparsed.length === 0;
  up.replaceChildren();
  if (unparsed.length) {
    up.append('Values that do not parse as their column\'s type were read as null: ');
    unparsed.forEach(([c, n], i) => {
      const s = document.createElement('strong');
      s.dataset.column = c;
      s.dataset.count = String(n);
      s.textContent = `${c}: ${n.toLocaleString('en')}${r.types?.[c] ? ` (not ${r.types[c]})` : ''}`;
      up.append(i ? ', ' : '', s);
    });
    up.append('.');
  }

  const table = $('query-table');
  const headRow = document.createElement('tr');
  r.columns.forEach((c, i) => {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = c;
    if (i >= keys.length) th.className = 'num';
    headRow.appendChild(th);
  });
  table.tHead.replaceChildren(headRow);
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const row of r.rows) {
    const tr = document.createElement('tr');
    row.forEach((v, i) => {
      const td = document.createElement(i < keys.length ? 'th' : 'td');
      if (i < keys.length) td.scope = 'row';
      td.textContent = cellText(v);
      if (v === null) { td.dataset.null = 'true'; td.title = 'null: no value'; }
      if (i >= keys.length) td.className = 'num';
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
  $('query-empty').hidden = r.rows.length > 0;

  const fig = $('query-chart');
  const c = chartFor(r, keys);
  fig.replaceChildren();
  fig.dataset.kind = c.kind || 'none';
  if (c.svg) fig.appendChild(c.svg);
  const cap = document.createElement('figcaption');
  cap.textContent = c.kind ? `${c.kind === 'bar' ? 'Bar' : 'Line'} chart of ${r.columns[keys.length]}. ${c.note || ''}`.trim() : c.note;
  fig.appendChild(cap);

  const link = $('query-csv');
  if (a.csv?.url) {
    link.href = a.csv.url;
    link.hidden = false;
    $('query-csv-note').textContent = `(the link works for ${Math.round((a.csv.expires_in || 0) / 60)} min; run the query again for a fresh one)`;
  } else {
    link.hidden = true;
    $('query-csv-note').textContent = '';
  }
  $('query-status').textContent = `Done: ${bits[0]}.`;
  $('query-result').hidden = false;
}

// ------------------------------------------------------------------ entry points

/** Wires the form once; `context` gives the API config and the token. */
export function initQuery(context) {
  ctx = context;
  for (const id of ['q-key-0', 'q-key-1', 'q-fn-0', 'q-fn-1', 'q-filter-col', 'q-filter-op']) {
    $(id).addEventListener('change', () => syncForm());
  }
  $('query-form').addEventListener('submit', (ev) => { ev.preventDefault(); runQuery(); });
  fill($('q-fn-0'), FNS.map(([f, l]) => [f, l]));
  fill($('q-fn-1'), [['', 'none'], ...FNS.map(([f, l]) => [f, l])]);
}

/** Shows the panel for a completed job, with its profiled columns. */
export function showQueryPanel(job, profile) {
  const changed = state?.job.job_id !== job.job_id;
  if (changed) run++; // a run still going for another job: its answer is ignored
  const columns = profile.columns.map((c) => ({ name: c.name, type: queryType(c) }));
  state = { job, columns, types: new Map(columns.map((c) => [c.name, c.type])) };
  const cols = state.columns.map((c) => [c.name, `${c.name} (${c.type})`]);
  fill($('q-key-0'), [['', 'no grouping (totals)'], ...cols], !changed);
  fill($('q-key-1'), [['', 'none'], ...cols], !changed);
  fill($('q-filter-col'), [['', 'no filter'], ...cols], !changed);
  if (changed) {
    // A sensible first question: count by the first text column with few values.
    const cat = profile.columns.find((c) => queryType(c) === 'string' && c.distinct > 1 && c.distinct <= 50);
    $('q-key-0').value = cat ? cat.name : '';
    $('q-key-1').value = '';
    $('q-fn-0').value = 'count';
    $('q-fn-1').value = '';
    $('q-filter-col').value = '';
    $('q-filter-value').value = '';
    $('query-result').hidden = true;
    $('query-doc-wrap').hidden = true;
    $('query-running').hidden = true;
    $('query-status').textContent = '';
    showQueryError(null);
    $('q-run').disabled = false;
    delete $('query-section').dataset.state;
  }
  syncForm();
  $('query-job').textContent = job.filename ? `of ${job.filename}` : '';
  $('query-section').hidden = false;
}

/** Hides the panel (another job is shown); a run in progress goes on and shows when the job is shown again. */
export function hideQueryPanel() {
  $('query-section').hidden = true;
}
