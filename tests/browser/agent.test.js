// The agent panel in a real browser, end to end, against a scripted model: a tiny Converse
// server in this process (POST /model/{id}/converse, Bedrock's wire shapes) that `tessera up`'s
// real Bedrock client calls (TESSERA_BEDROCK_ENDPOINT). The model says only what this file tells
// it: `propose_rules` with a not_null and a range rule when it is asked for rules; for a
// question, first a `run_query` group-by, then a text that echoes the rows of the tool result it
// was given. The page must show exactly what the API answers to the same requests made directly:
// the rules' source, reasons and dry-run counts; the chat's answer text, its table (equal to a
// direct POST /v1/jobs/{id}/queries), one bar per group; a cell holding markup shown as text.
// Queries run as query jobs (TESSERA_QUERY_INLINE_MAX_BYTES=0), so the turn waits for one.
//
//   cargo build -p tessera-infra --bin tessera && (cd tests/browser && npm ci && node --test)
//
// Fails (never skips) when chromium or the binary is missing. Screenshots: target/browser/agent*.png.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { useStack, waitFinal, OUT } from './harness.js';

const MODEL = 'us.anthropic.test-v1:0';
const XSS = '<img src=x onerror=alert(1)>';
const REGIONS = ['north', 'south', 'east', XSS];
const RULES = {
  version: 1, on_violation: 'reject', rules: [
    { id: 'note_present', column: 'note', check: 'not_null' },
    { id: 'amount_small', column: 'amount', check: { range: { min: 0, max: 300 } } },
  ],
};
const REASONS = [
  { rule_id: 'note_present', why: 'Every order should carry a note.' },
  { rule_id: 'amount_small', why: 'Amounts above 300 are suspicious here.' },
];
const QUERY = {
  version: 1, source: 'clean', group_by: ['region'],
  aggregates: [{ fn: 'count' }, { fn: 'sum', column: 'amount' }],
  order_by: [{ key: 'region' }],
};

// ------------------------------------------------------------------ the scripted model

/** Every Converse request received: {modelId, body}. */
const requests = [];

function converseReply(content, stopReason) {
  return {
    output: { message: { role: 'assistant', content } },
    stopReason,
    usage: { inputTokens: 10, outputTokens: 5, totalTokens: 15 },
    metrics: { latencyMs: 7 },
  };
}

/** The JSON of the last tool result in a Converse request, or null. */
function lastToolResult(body) {
  for (const m of [...(body.messages || [])].reverse()) {
    for (const b of [...(m.content || [])].reverse()) if (b.toolResult) return b.toolResult;
  }
  return null;
}

/** The line the model writes per result row. */
const line = (row) => `${row[0]}: ${row[1]} orders, ${row[2]}`;

/** What the scripted model answers to `body`. */
function script(body) {
  if (body.toolConfig?.toolChoice?.tool?.name === 'propose_rules') {
    return converseReply([{ toolUse: { toolUseId: `t${requests.length}`, name: 'propose_rules', input: { rules: RULES, reasons: REASONS } } }], 'tool_use');
  }
  const last = (body.messages || []).filter((m) => m.role === 'user').pop();
  if (JSON.stringify(last?.content || []).includes('PLEASE FAIL')) return null; // a service error
  const result = lastToolResult(body);
  if (!result) {
    return converseReply([
      { text: 'Counting per region.' },
      { toolUse: { toolUseId: `t${requests.length}`, name: 'run_query', input: { query: QUERY } } },
    ], 'tool_use');
  }
  const json = result.content?.[0]?.json;
  const rows = json?.rows || json?.result?.rows;
  if (result.status === 'error' || !rows) return converseReply([{ text: `no rows in the tool result: ${JSON.stringify(result).slice(0, 300)}` }], 'end_turn');
  return converseReply([{ text: rows.map(line).join('\n') }], 'end_turn');
}

const model = http.createServer((req, res) => {
  let data = '';
  req.on('data', (c) => { data += c; });
  req.on('end', () => {
    const m = /^\/model\/([^/]+)\/converse$/.exec(new URL(req.url, 'http://x').pathname);
    let body = null;
    try { body = JSON.parse(data); } catch { /* below */ }
    if (req.method !== 'POST' || !m || !body) {
      res.writeHead(400, { 'content-type': 'application/json', 'x-amzn-errortype': 'ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/' });
      res.end(JSON.stringify({ message: `scripted model: not a Converse request: ${req.method} ${req.url}` }));
      return;
    }
    requests.push({ modelId: decodeURIComponent(m[1]), body });
    const answer = script(body);
    if (!answer) {
      res.writeHead(400, { 'content-type': 'application/json', 'x-amzn-errortype': 'ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/' });
      res.end(JSON.stringify({ message: 'scripted model: refused as asked' }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'x-amzn-requestid': `req-${requests.length}` });
    res.end(JSON.stringify(answer));
  });
});
const modelPort = await new Promise((resolve) => model.listen(0, '127.0.0.1', () => resolve(model.address().port)));
after(() => new Promise((r) => model.close(r)));

const h = useStack({
  env: {
    TESSERA_MODEL_ID: MODEL,
    TESSERA_BEDROCK_ENDPOINT: `http://127.0.0.1:${modelPort}`,
    TESSERA_MODEL_PRICES: JSON.stringify({ '*': { input_per_1k: 0.003, output_per_1k: 0.015 } }),
    // Room for every call of this file in one minute (a rules request reserves its whole prompt
    // and maxTokens; the default 50,000 tokens per owner would send the second one to the profile).
    TESSERA_MODEL_OWNER_TOKENS: '2000000',
    // The Bedrock client signs with the default credential chain even at a local endpoint; with
    // none on the machine every call fails before it is sent (and the rules fall back to the profile).
    AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID || 'test',
    AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY || 'test',
    TESSERA_MODEL_GLOBAL_TOKENS: '4000000',
    TESSERA_QUERY_INLINE_MAX_BYTES: '0',
    TESSERA_QUERY_RANGE_SIZE: String(8 * 1024),
  },
  logName: 'agent-tessera-up.log',
});
before(() => { requests.length = 0; });

// ------------------------------------------------------------------ data

/** 600 orders: id, region (one of them markup), amount (0 to 499.99), note (every 7th empty). */
function makeCsv(file) {
  let x = 20261203;
  const r = (n) => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x % n; };
  const lines = ['id,region,amount,note'];
  for (let i = 0; i < 600; i++) {
    const cents = r(50000);
    lines.push(`${i},"${REGIONS[r(REGIONS.length)]}",${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')},${i % 7 === 0 ? '' : `n${i}`}`);
  }
  fs.writeFileSync(file, lines.join('\n') + '\n');
}

const shown = (v) => (v === null ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v));

async function ask(jobId, doc) {
  const first = await h.apiPost(`/v1/jobs/${jobId}/queries`, doc);
  assert.ok([200, 202].includes(first.status), `query answered ${first.status}: ${JSON.stringify(first.body)}`);
  let a = first.body;
  const until = Date.now() + 60_000;
  while (a.state === 'queued' || a.state === 'running') {
    assert.ok(Date.now() < until, `query not final: ${JSON.stringify(a)}`);
    await new Promise((res) => setTimeout(res, 200));
    a = await h.apiGet(a.status_url);
  }
  return a;
}

test('the agent panel: model rules with reasons and dry-run counts, saved as a workflow; a chat answer with its table, chart and tools', { timeout: 300_000 }, async () => {
  const file = path.join(h.tmp, 'orders.csv');
  makeCsv(file);
  const { context, page } = await h.openPage();
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  try {
    await page.setInputFiles('#file', file);
    await waitFinal(page, 'completed', 120_000);
    await page.waitForSelector('#agent-section:not([hidden])');
    const jobId = await page.textContent('#job-id');

    // 1. Suggest rules with the default prompt.
    assert.equal(await page.inputValue('#rules-prompt'), 'Suggest data-quality rules for this file');
    const posted = page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === '/v1/rules/generate');
    await page.click('#rules-run');
    assert.deepEqual(JSON.parse((await posted).postData()), { job_id: jobId, prompt: 'Suggest data-quality rules for this file' });
    await page.waitForSelector('#agent-section[data-rules=done], #agent-section[data-rules=error]', { timeout: 60_000 });
    assert.equal(await page.getAttribute('#agent-section', 'data-rules'), 'done', await page.textContent('#rules-error'));
    const direct = await h.apiPost('/v1/rules/generate', { job_id: jobId, prompt: 'Suggest data-quality rules for this file' });
    assert.equal(direct.status, 200, JSON.stringify(direct.body));
    assert.equal(direct.body.source, 'model', JSON.stringify(direct.body));
    assert.deepEqual(direct.body.rules, RULES);
    assert.equal(await page.getAttribute('#rules-source', 'data-source'), 'model');
    assert.match(await page.textContent('#rules-source'), /^Proposed by the model/);
    assert.equal(await page.isVisible('#rules-fallback'), false);
    assert.equal(await page.getAttribute('#rules-sample', 'data-value'), String(direct.body.dry_run.sample_rows));
    assert.equal(await page.getAttribute('#rules-rejected', 'data-value'), String(direct.body.dry_run.rejected_rows));
    assert.ok(direct.body.dry_run.rejected_rows > 0, 'the sample holds empty notes and large amounts');
    const rules = await page.$$eval('#rules-table tbody tr', (trs) => trs.map((tr) => [tr.dataset.rule,
      tr.querySelector('[data-field=why]').textContent, tr.querySelector('[data-field=violations]').dataset.value]));
    assert.deepEqual(rules, REASONS.map((r) => [r.rule_id, r.why, String(direct.body.dry_run.violations[r.rule_id] ?? 0)]));
    for (const r of REASONS) assert.ok(direct.body.dry_run.violations[r.rule_id] > 0, `${r.rule_id} rejects some sample rows: ${JSON.stringify(direct.body.dry_run)}`);
    assert.deepEqual(JSON.parse(await page.textContent('#rules-json')), direct.body.rules);
    const rulesCalls = requests.filter((q) => q.body.toolConfig?.toolChoice?.tool?.name === 'propose_rules');
    assert.equal(rulesCalls.length, 2, 'one model call for the page, one for the direct request');
    assert.ok(requests.every((q) => q.modelId === MODEL));

    // The whole file: the same document as a dry-run job; the page's counts are the API's.
    assert.equal(await page.getAttribute(`#rules-table tbody tr [data-field=file-violations]`, 'data-value'), null);
    await page.click('#rules-file-run');
    await page.waitForSelector('#rules-file[data-state=completed], #rules-file[data-state=failed]', { timeout: 90_000 });
    assert.equal(await page.getAttribute('#rules-file', 'data-state'), 'completed', await page.textContent('#rules-file-error'));
    const dryId = await page.getAttribute('#rules-file', 'data-dry-run-id');
    const fileRun = await h.apiGet(`/v1/rules/dry-runs/${dryId}`);
    assert.equal(fileRun.state, 'completed');
    assert.equal(fileRun.job_id, jobId);
    assert.equal(await page.textContent('#rules-file-status'), `Whole file: ${fileRun.rows} records, ${fileRun.rejected_rows} would be rejected.`);
    const fileCounts = await page.$$eval('#rules-table tbody tr', (trs) => trs.map((tr) => [tr.dataset.rule,
      tr.querySelector('[data-field=file-violations]').dataset.value]));
    assert.deepEqual(fileCounts, REASONS.map((r) => [r.rule_id, String(fileRun.violations[r.rule_id] ?? 0)]));
    const allRows = await h.apiGet(`/v1/jobs/${jobId}`);
    assert.equal(fileRun.rows, allRows.rows + allRows.rejected_rows, 'every record of the file');

    // Saving: a name is required, then the workflow holds the document.
    await page.click('#wf-save');
    assert.match(await page.textContent('#wf-error'), /^Workflow name: /);
    await page.fill('#wf-name', 'orders checks');
    await page.click('#wf-save');
    await page.waitForSelector('#wf-saved[data-workflow-id]');
    const wfId = await page.getAttribute('#wf-saved', 'data-workflow-id');
    assert.match(await page.textContent('#wf-saved'), new RegExp(`^Saved as workflow ${wfId} \\(version 1\\)`));
    const wf = await h.apiGet(`/v1/workflows/${wfId}`);
    assert.equal(wf.name, 'orders checks');
    assert.deepEqual(wf.rules, RULES);
    await page.evaluate(() => { document.getElementById('rules-json-wrap').open = true; });
    fs.mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: path.join(OUT, 'agent-rules.png'), fullPage: true });

    // 2. A question: run_query (a query job the turn waits for), then the echoed rows.
    await page.fill('#chat-text', 'How many orders and how much per region?');
    await page.click('#chat-send');
    await page.waitForSelector('#chat-log article[data-state=answered], #chat-log article[data-state=failed]', { timeout: 90_000 });
    const art = '#chat-log article';
    assert.equal(await page.getAttribute(art, 'data-state'), 'answered', await page.textContent(art));
    const apiQ = await ask(jobId, QUERY);
    assert.equal(apiQ.state, 'completed', JSON.stringify(apiQ));
    assert.equal(apiQ.cached, true, 'the agent asked the same query');
    assert.equal(apiQ.result.rows.length, REGIONS.length);
    assert.equal(await page.textContent(`${art} .chat-question`), 'How many orders and how much per region?');
    assert.equal(await page.textContent(`${art} .chat-answer`), apiQ.result.rows.map(line).join('\n'));
    const table = await page.$eval(`${art} table.chat-table`, (t) => ({
      columns: [...t.tHead.rows[0].cells].map((c) => c.textContent),
      rows: [...t.tBodies[0].rows].map((r) => [...r.cells].map((c) => c.textContent)),
    }));
    assert.deepEqual(table.columns, apiQ.result.columns);
    assert.deepEqual(table.rows, apiQ.result.rows.map((r) => r.map(shown)));
    // The markup is a cell's text: shown as itself, never an element, never run.
    assert.ok(table.rows.some((r) => r[0] === XSS), JSON.stringify(table.rows));
    assert.equal(await page.$$eval('#chat-log img, #agent-section img', (is) => is.length), 0);
    assert.deepEqual(dialogs, []);
    // One bar per group.
    await page.waitForSelector(`${art} figure.chat-chart svg[data-kind=bar]`);
    const bars = await page.$$eval(`${art} svg g.bar`, (gs) => gs.map((g) => g.dataset.key).sort());
    assert.deepEqual(bars, apiQ.result.rows.map((r) => r[0]).sort());
    // The tools it called, and the states it was seen in.
    assert.deepEqual(await page.$$eval(`${art} .chat-tools li`, (ls) => ls.map((l) => [l.dataset.tool, l.dataset.status])), [['run_query', 'ok']]);
    // The wait for the query job may fall between two polls: the server marks every state, and
    // the page shows the path it was given.
    const session = await h.apiGet(`/v1/sessions/${await page.getAttribute('#chat-log', 'data-session')}`);
    const marked = session.messages[0].states.map((x) => x.state);
    assert.deepEqual(marked, ['queued', 'running', 'waiting_for_query', 'running', 'answered']);
    const seen = (await page.getAttribute(art, 'data-seen')).split(' ');
    assert.ok(seen.includes('waiting_for_query'), `the page knows the wait for the query job: ${seen}`);
    assert.equal(await page.getAttribute(`${art} .chat-path`, 'data-path'), marked.join(' '));
    assert.match(await page.textContent(`${art} .chat-path`), /^Path: queued → running → waiting for query → running → answered, in \d+\.\d s$/);
    assert.equal(session.messages[0].answer.text, await page.textContent(`${art} .chat-answer`));
    await page.evaluate(() => { document.querySelector('#chat-log .chat-tools').open = true; });
    await page.screenshot({ path: path.join(OUT, 'agent.png'), fullPage: true });

    // 3. A model that refuses: the message fails, and the page shows its code and message.
    await page.fill('#chat-text', 'PLEASE FAIL this one');
    await page.click('#chat-send');
    const second = '#chat-log article:nth-of-type(2)';
    await page.waitForSelector(`${second}[data-state=failed], ${second}[data-state=answered]`, { timeout: 60_000 });
    assert.equal(await page.getAttribute(second, 'data-state'), 'failed', await page.textContent(second));
    const after2 = await h.apiGet(`/v1/sessions/${await page.getAttribute('#chat-log', 'data-session')}`);
    assert.equal(after2.messages.length, 2);
    const err = after2.messages[1].error;
    assert.ok(err?.code && err?.message, JSON.stringify(after2.messages[1]));
    assert.equal(await page.getAttribute(`${second} .chat-error-msg`, 'data-code'), err.code);
    assert.equal(await page.textContent(`${second} .chat-error-msg`), `${err.message} (${err.code})`);
    assert.equal(await page.textContent(`${second} .chat-state`), 'Failed');
    assert.equal(await page.isDisabled('#chat-send'), false);
    await page.screenshot({ path: path.join(OUT, 'agent-error.png'), fullPage: true });
    console.log(`# agent screenshots: ${path.join(OUT, 'agent.png')}, agent-rules.png`);
  } finally {
    await context.close();
  }
});
