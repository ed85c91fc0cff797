// The query panel in a real browser, end to end: a generated CSV (a category, a timestamp and an
// amount column, with unparsable amounts) is uploaded through the page; questions are asked
// through the panel's form; the page's table must equal the API's answer to the same document
// asked directly, and both the figures computed here from the rows; a bar chart has one bar per
// group, a month bucket draws a line; a bad question shows the API's message with its JSON path.
// Every query runs as a query job (TESSERA_QUERY_INLINE_MAX_BYTES=0, 64 KiB ranges), so the
// page's progress and polling are exercised too.
//
//   cargo build -p tessera-infra --bin tessera && (cd tests/browser && npm ci && node --test)
//
// Fails (never skips) when chromium or the binary is missing. Screenshots: target/browser/query*.png.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { useStack, waitFinal, OUT } from './harness.js';

const h = useStack({
  env: { TESSERA_QUERY_INLINE_MAX_BYTES: '0', TESSERA_QUERY_RANGE_SIZE: String(64 * 1024) },
  logName: 'query-tessera-up.log',
});

const CATEGORIES = ['north', 'south', 'east', 'west', 'Zone "9", far', 'centre'];

/** A small deterministic generator (xorshift32). */
function rng(seed) {
  let x = seed >>> 0;
  return (n) => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x % n;
  };
}

/**
 * `rows` records of id,category,ts,amount: categories skewed so counts differ, timestamps over
 * January to June 2026, amounts in cents with some empty and some `lots` (unparsable). Returns
 * what the test knows: per category {count, cents, unparsed}, per month {count, cents}.
 */
function makeCsv(file, rows) {
  const r = rng(20261203);
  const lines = ['id,category,ts,amount'];
  const byCat = new Map();
  const byMonth = new Map();
  let unparsed = 0;
  for (let i = 0; i < rows; i++) {
    const cat = CATEGORIES[Math.min(r(8), r(8), CATEGORIES.length - 1)];
    const month = 1 + r(6);
    const ts = `2026-${String(month).padStart(2, '0')}-${String(1 + r(28)).padStart(2, '0')}T${String(r(24)).padStart(2, '0')}:${String(r(60)).padStart(2, '0')}:00Z`;
    let amount;
    let cents = null;
    const roll = r(25);
    if (roll === 0) amount = '';
    else if (roll === 1) { amount = 'lots'; unparsed++; } else {
      cents = r(200000) - 30000;
      const a = Math.abs(cents);
      amount = `${cents < 0 ? '-' : ''}${Math.floor(a / 100)}.${String(a % 100).padStart(2, '0')}`;
    }
    lines.push(`${i},"${cat.replaceAll('"', '""')}",${ts},${amount}`);
    const c = byCat.get(cat) || { count: 0, cents: 0n };
    c.count++;
    if (cents !== null) c.cents += BigInt(cents);
    byCat.set(cat, c);
    const mk = `2026-${String(month).padStart(2, '0')}-01T00:00:00Z`;
    const m = byMonth.get(mk) || { count: 0, cents: 0n };
    m.count++;
    if (cents !== null) m.cents += BigInt(cents);
    byMonth.set(mk, m);
  }
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return { byCat, byMonth, unparsed };
}

/** The canonical exact decimal text of `cents` (no trailing fraction zeros), as the API writes sums. */
function centsText(cents) {
  const neg = cents < 0n;
  const a = neg ? -cents : cents;
  let t = `${a / 100n}.${String(a % 100n).padStart(2, '0')}`.replace(/0+$/, '').replace(/\.$/, '');
  return `${neg ? '-' : ''}${t}`;
}

/** The text the page shows for a result value. */
const shown = (v) => (v === null ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v));

/** Asks `doc` directly (POST, then the status URL until final); returns the final answer. */
async function ask(jobId, doc) {
  const first = await h.apiPost(`/v1/jobs/${jobId}/queries`, doc);
  assert.ok([200, 202].includes(first.status), `query answered ${first.status}: ${JSON.stringify(first.body)}`);
  let a = first.body;
  const until = Date.now() + 60_000;
  while (a.state === 'queued' || a.state === 'running') {
    assert.ok(Date.now() < until, `query not final: ${JSON.stringify(a)}`);
    await new Promise((r) => setTimeout(r, 200));
    a = await h.apiGet(a.status_url);
  }
  return a;
}

/** The table the page shows: header texts and each row's cell texts. */
async function pageTable(page) {
  return page.evaluate(() => {
    const t = document.getElementById('query-table');
    return {
      columns: [...t.tHead.rows[0].cells].map((c) => c.textContent),
      rows: [...t.tBodies[0].rows].map((r) => [...r.cells].map((c) => c.textContent)),
    };
  });
}

/** Clicks Run with the keyboard, captures the document the page POSTs, waits for the run to end. */
async function run(page) {
  const posted = page.waitForRequest((r) => r.method() === 'POST' && /\/v1\/jobs\/[^/]+\/queries$/.test(new URL(r.url()).pathname));
  const answered = page.waitForResponse((r) => r.request().method() === 'POST' && /\/queries$/.test(new URL(r.url()).pathname));
  await page.focus('#q-run');
  await page.keyboard.press('Enter');
  const doc = JSON.parse((await posted).postData());
  const status = (await answered).status();
  await page.waitForSelector('#query-section[data-state=completed], #query-section[data-state=error]', { timeout: 90_000 });
  return { doc, status, state: await page.getAttribute('#query-section', 'data-state') };
}

test('the query panel: a grouped table equal to the API, a bar chart, a month line chart, errors with their paths', { timeout: 300_000 }, async () => {
  const file = path.join(h.tmp, 'sales.csv');
  const known = makeCsv(file, 3000);
  const { context, page } = await h.openPage();
  try {
    await page.setInputFiles('#file', file);
    await waitFinal(page, 'completed', 120_000);
    await page.waitForSelector('#query-section:not([hidden])');
    const jobId = await page.textContent('#job-id');

    // 1. Count and sum of amount by category, largest count first (the automatic order).
    await page.selectOption('#q-source', 'clean');
    await page.selectOption('#q-key-0', 'category');
    await page.selectOption('#q-fn-0', 'count');
    await page.selectOption('#q-col-0', '');
    await page.selectOption('#q-fn-1', 'sum');
    await page.selectOption('#q-col-1', 'amount');
    await page.fill('#q-limit', '50');
    const seenProgress = page.waitForSelector('#query-running:not([hidden])', { timeout: 30_000 });
    const grouped = await run(page);
    const byCategory = {
      version: 1, source: 'clean', group_by: ['category'],
      aggregates: [{ fn: 'count' }, { fn: 'sum', column: 'amount' }],
      order_by: [{ aggregate: 0, desc: true }], limit: 50,
    };
    assert.deepEqual(grouped.doc, byCategory, 'the document the panel built');
    assert.equal(grouped.state, 'completed', await page.textContent('#query-error'));
    assert.equal(grouped.status, 202, 'the query ran as a query job');
    await seenProgress;
    const api = await ask(jobId, byCategory);
    assert.equal(api.state, 'completed', JSON.stringify(api));
    assert.equal(api.cached, true, 'the same question again is the stored answer');
    // The API's answer is the truth computed from the rows ...
    const want = [...known.byCat.entries()].sort((a, b) => b[1].count - a[1].count || (a[0] < b[0] ? -1 : 1));
    assert.deepEqual(api.result.columns, ['category', 'count', 'sum(amount)']);
    assert.deepEqual(api.result.rows, want.map(([c, k]) => [c, k.count, centsText(k.cents)]));
    assert.equal(api.result.unparsed.amount, known.unparsed);
    // ... and the page shows exactly it.
    const table = await pageTable(page);
    assert.deepEqual(table.columns, api.result.columns);
    assert.deepEqual(table.rows, api.result.rows.map((r) => r.map(shown)));
    assert.equal(await page.getAttribute('#query-unparsed strong[data-column=amount]', 'data-count'), String(known.unparsed));
    assert.equal(await page.isVisible('#query-unparsed'), true);
    // One bar per group, each with its key and value.
    await page.waitForSelector('#query-chart svg[data-kind=bar]');
    const bars = await page.$$eval('#query-chart svg g.bar', (gs) => gs.map((g) => [g.dataset.key, g.dataset.value, g.querySelector('rect').getAttribute('width') > 0]));
    assert.deepEqual(bars, api.result.rows.map((r) => [r[0], String(r[1]), true]));
    assert.equal(await page.$$eval('#query-chart svg text.axis-title', (ts) => ts.map((t) => t.textContent).sort().join('|')), 'category|count');
    // The CSV link: the same stored object as the API's (each answer presigns it afresh).
    const href = new URL(await page.getAttribute('#query-csv', 'href'));
    assert.equal(`${href.origin}${href.pathname}`, `${new URL(api.csv.url).origin}${new URL(api.csv.url).pathname}`);
    assert.ok(href.searchParams.has('X-Amz-Signature'), 'a presigned link');
    fs.mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: path.join(OUT, 'query.png'), fullPage: true });

    // 2. Sum of amount per month of ts: a line, one point per month, in time order.
    await page.selectOption('#q-key-0', 'ts');
    await page.selectOption('#q-bucket-0', 'month');
    await page.selectOption('#q-fn-0', 'sum');
    await page.selectOption('#q-col-0', 'amount');
    await page.selectOption('#q-fn-1', '');
    const monthly = await run(page);
    const byMonth = {
      version: 1, source: 'clean', group_by: [{ column: 'ts', bucket: 'month' }],
      aggregates: [{ fn: 'sum', column: 'amount' }],
      order_by: [{ key: 'month(ts)', desc: false }], limit: 50,
    };
    assert.deepEqual(monthly.doc, byMonth);
    assert.equal(monthly.state, 'completed', await page.textContent('#query-error'));
    const apiMonth = await ask(jobId, byMonth);
    const months = [...known.byMonth.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
    assert.deepEqual(apiMonth.result.rows, months.map(([m, k]) => [m, centsText(k.cents)]));
    const monthTable = await pageTable(page);
    assert.deepEqual(monthTable.columns, ['month(ts)', 'sum(amount)']);
    assert.deepEqual(monthTable.rows, apiMonth.result.rows.map((r) => r.map(shown)));
    await page.waitForSelector('#query-chart svg[data-kind=line]');
    assert.equal(await page.$$eval('#query-chart svg g.bar', (gs) => gs.length), 0);
    const points = await page.$$eval('#query-chart svg circle.point', (cs) => cs.map((c) => [c.dataset.key, c.dataset.value]));
    assert.deepEqual(points, apiMonth.result.rows.map((r) => [r[0], r[1]]));
    const xLabels = await page.$$eval('#query-chart svg .grid text.tick', (ts) => ts.map((t) => t.textContent).filter((t) => /^2026-/.test(t)));
    assert.deepEqual(xLabels, months.map(([m]) => m.slice(0, 7)));
    await page.screenshot({ path: path.join(OUT, 'query-line.png'), fullPage: true });

    // 3. A filter comparing the decimal amount with a word: the API's message, at its path.
    await page.selectOption('#q-filter-col', 'amount');
    await page.selectOption('#q-filter-op', 'ge');
    await page.fill('#q-filter-value', 'lots');
    const bad = await run(page);
    assert.equal(bad.state, 'error');
    assert.equal(bad.status, 422);
    assert.deepEqual(bad.doc.filter, { column: 'amount', op: 'ge', value: 'lots' });
    const refused = await h.apiPost(`/v1/jobs/${jobId}/queries`, bad.doc);
    assert.equal(refused.status, 422);
    const problem = refused.body.error.details.errors[0];
    assert.equal(problem.path, '$.filter.value');
    assert.equal(await page.getAttribute('#query-error', 'data-code'), 'invalid_query');
    assert.equal(refused.body.error.details.errors.length, 1, JSON.stringify(refused.body));
    assert.match(await page.textContent('#query-error .q-error-message'), /^The query was refused: 1 problem \(invalid_query, request id [0-9a-f-]{36}\)\.$/);
    const li = (await page.textContent('#query-error li[data-path="$.filter.value"]')).trim();
    assert.equal(li, `$.filter.value: ${problem.message} (${problem.code}) — in the filter's value`);
    assert.equal(await page.getAttribute('#q-filter-value', 'aria-invalid'), 'true');
    assert.equal(await page.isVisible('#query-result'), false, 'no stale result next to the error');
    await page.screenshot({ path: path.join(OUT, 'query-error.png'), fullPage: true });

    // 4. The first question again: answered from the stored result, and the page says so.
    await page.selectOption('#q-filter-col', '');
    await page.selectOption('#q-key-0', 'category');
    await page.selectOption('#q-fn-0', 'count');
    await page.selectOption('#q-col-0', '');
    await page.selectOption('#q-fn-1', 'sum');
    await page.selectOption('#q-col-1', 'amount');
    const again = await run(page);
    assert.deepEqual(again.doc, byCategory);
    assert.equal(again.status, 200);
    assert.equal(await page.getAttribute('#query-section', 'data-cached'), 'true');
    assert.match(await page.textContent('#query-cached'), /cached/);
    assert.equal(await page.isVisible('#query-error'), false, 'the error is gone once a query succeeds');
    assert.equal(await page.getAttribute('#q-filter-value', 'aria-invalid'), null);
    assert.deepEqual((await pageTable(page)).rows, api.result.rows.map((r) => r.map(shown)));
    console.log(`# query screenshots: ${path.join(OUT, 'query.png')}, query-line.png, query-error.png`);
  } finally {
    await context.close();
  }
});

test('no chart without a group key; a form mistake is named before anything is sent', { timeout: 180_000 }, async () => {
  const file = path.join(h.tmp, 'totals.csv');
  const known = makeCsv(file, 500);
  const { context, page } = await h.openPage();
  try {
    await page.setInputFiles('#file', file);
    await waitFinal(page, 'completed', 120_000);
    await page.waitForSelector('#query-section:not([hidden])');
    let posts = 0;
    page.on('request', (r) => { if (r.method() === 'POST' && /\/queries$/.test(r.url())) posts++; });
    await page.selectOption('#q-key-0', '');
    await page.fill('#q-limit', 'ten');
    await page.click('#q-run');
    await page.waitForSelector('#query-error:not([hidden])');
    assert.equal(await page.textContent('#query-error'), 'Rows at most: "ten" is not a whole number from 1 to 100000.');
    assert.equal(await page.getAttribute('#q-limit', 'aria-invalid'), 'true');
    assert.equal(posts, 0);
    await page.fill('#q-limit', '10');
    // The simplest question: how many records (no column read at all).
    const totals = await run(page);
    assert.deepEqual(totals.doc, { version: 1, source: 'clean', aggregates: [{ fn: 'count' }], limit: 10 });
    assert.equal(totals.state, 'completed', await page.textContent('#query-error'));
    const all = [...known.byCat.values()];
    assert.deepEqual(await pageTable(page), { columns: ['count'], rows: [[String(all.reduce((s, k) => s + k.count, 0))]] });
    // And a total of the amounts beside it.
    await page.selectOption('#q-fn-1', 'sum');
    await page.selectOption('#q-col-1', 'amount');
    const sums = await run(page);
    assert.deepEqual(sums.doc, { version: 1, source: 'clean', aggregates: [{ fn: 'count' }, { fn: 'sum', column: 'amount' }], limit: 10 });
    const cents = all.reduce((s, k) => s + k.cents, 0n);
    assert.deepEqual(await pageTable(page), { columns: ['count', 'sum(amount)'], rows: [[String(all.reduce((s, k) => s + k.count, 0)), centsText(cents)]] });
    assert.equal(await page.getAttribute('#query-chart', 'data-kind'), 'none');
    assert.equal(await page.$$eval('#query-chart svg', (s) => s.length), 0);
  } finally {
    await context.close();
  }
});
