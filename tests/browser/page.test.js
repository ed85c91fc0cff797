// The page in a real browser, end to end, no fakes: Debian's chromium driven by playwright-core
// against `target/debug/tessera up` (its own moto on a free port, 1 MiB chunks).
//
//   cargo build -p tessera-infra --bin tessera && (cd tests/browser && npm ci && node --test)
//
// Fails (never skips) when chromium or the binary is missing. Never downloads a browser.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { useStack, waitFinal, sleep, OUT, MIB } from './harness.js';

const SHOT = path.join(OUT, 'page.png');

const h = useStack({ logName: 'tessera-up.log' });
const { tmp } = h;
const openPage = (token) => h.openPage(token);

/** Part PUTs (UploadPart) the page sends to the emulator. */
function countPartPuts(page) {
  const c = { n: 0 };
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (r.method() === 'PUT' && u.port === String(h.stack.emulatorPort) && u.searchParams.has('partNumber')) c.n++;
  });
  return c;
}

/**
 * A CSV of about `bytes` bytes: id,name,amount,day,category. `amount` is below 999999.5
 * everywhere but one row, where it is exactly 999999.5 (the known profile max).
 */
function makeCsv(file, bytes) {
  const cats = ['alpha', 'beta', 'gamma', 'delta'];
  const lines = ['id,name,amount,day,category'];
  let size = lines[0].length + 1;
  let rows = 0;
  while (size < bytes) {
    const i = rows + 1;
    const amount = i === 4242 ? '999999.5' : ((i * 7919) % 900000 + (i % 100) / 100).toFixed(2);
    const day = `2026-${String((i % 12) + 1).padStart(2, '0')}-${String((i % 28) + 1).padStart(2, '0')}`;
    const line = `${i},"name ${i % 5000}, the ${i % 3 ? 'first' : 'second'}",${amount},${day},${cats[i % 4]}`;
    lines.push(line);
    size += line.length + 1;
    rows++;
  }
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return { rows, size: fs.statSync(file).size };
}

async function jobOf(page) {
  return page.textContent('#job-id');
}

const apiGet = (p) => h.apiGet(p);

test('a ~30 MiB CSV uploads in parallel parts, the job completes live and the page shows its profile', { timeout: 300_000 }, async () => {
  const file = path.join(tmp, 'amounts.csv');
  const { rows, size } = makeCsv(file, 30 * MIB);
  const { context, page } = await openPage();
  try {
    const puts = countPartPuts(page);
    await page.setInputFiles('#file', file);
    await page.waitForSelector('#upload-status[data-done=true]', { timeout: 120_000 });
    await waitFinal(page, 'completed', 240_000);
    await page.waitForSelector('#result:not([hidden])');
    const mode = await page.getAttribute('#watch-mode', 'data-mode');
    const messages = await page.getAttribute('#watch-mode', 'data-messages');
    const mbps = Number(await page.getAttribute('#upload-speed', 'data-mbps'));
    const max = (await page.textContent('tr[data-column=amount] td[data-field=max]')).trim();
    const shownRows = Number(await page.getAttribute('#result-rows', 'data-value'));
    const rejected = Number(await page.getAttribute('#result-rejected', 'data-value'));
    await page.click('#jobs-refresh');
    await page.waitForSelector(`#jobs-table tr[data-job="${await jobOf(page)}"] .state[data-state=completed]`);
    fs.mkdirSync(path.dirname(SHOT), { recursive: true });
    await page.screenshot({ path: SHOT, fullPage: true });
    console.log(`# upload: ${(size / MIB).toFixed(1)} MiB in ${puts.n} part PUTs at ${mbps.toFixed(1)} MB/s (as the page shows it)`);
    console.log(`# job progress mode seen by the page: ${mode}${mode === 'ws' ? ` (${messages} WebSocket messages)` : ''}`);
    console.log(`# screenshot: ${SHOT}`);
    assert.ok(['ws', 'polling'].includes(mode), `watch mode ${mode}`);
    if (process.env.TESSERA_ALLOW_POLLING !== '1') {
      assert.equal(mode, 'ws', 'the page fell back to polling: the WebSocket did not work');
      assert.equal(await page.getAttribute('#watch-mode', 'data-last'), 'job.completed', 'completion was pushed');
    }
    assert.equal(puts.n, Math.ceil(size / (5 * MIB)), 'one PUT per 5 MiB part');
    assert.equal(max, '999999.5');
    assert.equal(shownRows, rows);
    assert.equal(rejected, 0);
    assert.ok(mbps > 0, 'the page shows an upload rate');
  } finally {
    await context.close();
  }
});

test('an interrupted multipart upload resumes after a reload and sends only the missing parts', { timeout: 300_000 }, async () => {
  const file = path.join(tmp, 'resume.csv');
  const { size } = makeCsv(file, 20 * MIB);
  const partCount = Math.ceil(size / (5 * MIB));
  const { context, page } = await openPage();
  try {
    // First attempt: the network drops every part from 3 on (each retry too).
    const isLatePart = (u) => u.port === String(h.stack.emulatorPort) && Number(u.searchParams.get('partNumber')) >= 3;
    await page.route(isLatePart, (route) => route.abort('connectionreset'));
    const first = countPartPuts(page);
    await page.setInputFiles('#file', file);
    await page.waitForSelector('#upload-status[data-done=error]', { timeout: 60_000 });
    const jobId = await jobOf(page);
    assert.match(await page.textContent('#error'), /Pick the same file again to resume/);
    await page.unrouteAll({ behavior: 'ignoreErrors' });

    await page.reload();
    await page.waitForSelector('body[data-ready=true]');
    const second = countPartPuts(page);
    await page.setInputFiles('#file', file);
    await page.waitForSelector('#upload-status[data-done=true]', { timeout: 120_000 });
    assert.equal(await jobOf(page), jobId, 'the same job resumed');
    assert.equal(await page.getAttribute('#upload-status', 'data-resumed'), 'true');
    console.log(`# resume: ${partCount} parts; first attempt sent ${first.n} part PUTs (with retries), the resume sent ${second.n}`);
    assert.equal(second.n, partCount - 2, 'only the parts S3 lacked were sent again');
    assert.ok(second.n < partCount);
    await waitFinal(page, 'completed', 240_000);
  } finally {
    await context.close();
  }
});

test('abort stops the upload and the job ends cancelled', { timeout: 120_000 }, async () => {
  const file = path.join(tmp, 'abort.csv');
  makeCsv(file, 20 * MIB);
  const { context, page } = await openPage();
  try {
    // Slow parts down so there is time to press the button.
    await page.route((u) => u.port === String(h.stack.emulatorPort) && u.searchParams.has('partNumber'), async (route) => {
      await sleep(3000);
      await route.continue().catch(() => {});
    });
    await page.setInputFiles('#file', file);
    await page.waitForSelector('#abort-button:not([hidden])');
    await page.waitForFunction(() => document.getElementById('job-id').textContent.length > 0);
    const jobId = await jobOf(page);
    await page.click('#abort-button');
    await page.waitForSelector('#job-state[data-state=cancelled]', { timeout: 30_000 });
    assert.match(await page.textContent('#upload-status'), /aborted/i);
    const job = await apiGet(`/v1/jobs/${jobId}`);
    assert.equal(job.state, 'cancelled');
    await page.unrouteAll({ behavior: 'ignoreErrors' });
  } finally {
    await context.close();
  }
});

test('a small file dropped on the page goes in one PUT, and without the WebSocket the page polls to the end', { timeout: 180_000 }, async () => {
  const file = path.join(tmp, 'small.csv');
  const { rows } = makeCsv(file, 2 * MIB);
  const { context, page } = await openPage();
  try {
    // The WebSocket endpoint refuses every connection.
    await page.routeWebSocket(/\/v1\/ws/, (ws) => ws.close({ code: 1011, reason: 'test: no WebSocket' }));
    const puts = { single: 0, parts: 0 };
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (r.method() !== 'PUT' || u.port !== String(h.stack.emulatorPort)) return;
      if (u.searchParams.has('partNumber')) puts.parts++; else puts.single++;
    });
    // Drag and drop: a DataTransfer holding the file, dropped on the drop zone.
    const dataTransfer = await page.evaluateHandle((text) => {
      const dt = new DataTransfer();
      dt.items.add(new File([text], 'small.csv', { type: 'text/csv' }));
      return dt;
    }, fs.readFileSync(file, 'utf8'));
    await page.dispatchEvent('#dropzone', 'dragover', { dataTransfer });
    await page.dispatchEvent('#dropzone', 'drop', { dataTransfer });
    await waitFinal(page, 'completed', 120_000);
    await page.waitForSelector('#result:not([hidden])');
    assert.equal(await page.textContent('#upload-file'), 'small.csv');
    assert.equal(await page.getAttribute('#watch-mode', 'data-mode'), 'polling');
    assert.match(await page.textContent('#watch-mode'), /polling every second \(the WebSocket/);
    assert.deepEqual(puts, { single: 1, parts: 0 });
    assert.equal(Number(await page.getAttribute('#result-rows', 'data-value')), rows);
    assert.equal((await page.textContent('tr[data-column=amount] td[data-field=max]')).trim(), '999999.5');
  } finally {
    await context.close();
  }
});

test("the API's errors are shown: a bad token is refused and not kept", { timeout: 60_000 }, async () => {
  const { context, page } = await openPage(null);
  try {
    await page.fill('#token', 'not-a-token');
    await page.click('#signin-button');
    await page.waitForSelector('#error:not([hidden])');
    assert.equal(await page.getAttribute('#error', 'data-code'), 'unauthorized');
    assert.match(await page.textContent('#error'), /request id [0-9a-f-]{36}/);
    assert.equal(await page.evaluate(() => localStorage.getItem('tessera.token')), null);
    assert.equal(await page.textContent('#signin-state'), 'Not signed in.');
  } finally {
    await context.close();
  }
});
