// The sentiment chart in a real browser: a workflow with a lexicon `derive` step is saved and a
// file of reviews uploaded naming it (through the API); the page follows the job from its jobs
// list and, once completed, shows one bar per label of `review_sentiment` (plus "not scored")
// whose values equal the profile's `derived` section, which itself equals the clean output's
// labels counted by a query; the job's figures say how many rows were scored. A job without a
// derive step shows no sentiment section.
//
//   cargo build -p tessera-infra --bin tessera && (cd tests/browser && npm ci && node --test sentiment.test.js)
//
// Fails (never skips) when chromium or the binary is missing. Screenshot: target/browser/sentiment.png.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { useStack, waitFinal, OUT } from './harness.js';

const h = useStack({ logName: 'sentiment-tessera-up.log' });

const REVIEWS = [
  '"I love this kettle, it is AMAZING!!!"',
  'Terrible. Broke after two days :(',
  '"Not bad, not great"',
  '',
  'works as described',
  'absolutely the WORST purchase I have ever made',
  'Great value 😀 would buy again',
  'meh',
];

function makeCsv(rows) {
  const lines = ['id,product,review'];
  for (let i = 0; i < rows; i++) lines.push(`${i},p${i % 3},${REVIEWS[(i * 7) % REVIEWS.length]}`);
  return lines.join('\n') + '\n';
}

/** Uploads `body` through the API (naming `workflow` if given); returns the job id. */
async function upload(name, body, workflow) {
  const created = await h.apiPost('/v1/uploads', {
    filename: name, size: Buffer.byteLength(body), content_type: 'text/csv', ...(workflow ? { workflow } : {}),
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const put = await fetch(created.body.upload.url, { method: 'PUT', body });
  assert.equal(put.status, 200, await put.text());
  return created.body.job_id;
}

/** Opens job `jobId` from the page's jobs list and waits until the page shows it completed. */
async function openFromList(page, jobId) {
  await page.click('#jobs-refresh');
  const button = `#jobs-table tr[data-job="${jobId}"] button`;
  await page.waitForSelector(button);
  await page.click(button);
  await waitFinal(page, 'completed', 120_000);
  await page.waitForSelector('#result:not([hidden])');
  assert.equal(await page.textContent('#job-id'), jobId);
}

test('a completed job with a sentiment column shows its label distribution as a bar chart', { timeout: 300_000 }, async () => {
  const wf = await h.apiPost('/v1/workflows', {
    name: 'reviews',
    rules: { version: 1, columns: { review: { derive: { sentiment: { engine: 'lexicon' } } } } },
  });
  assert.equal(wf.status, 201, JSON.stringify(wf.body));
  const { context, page } = await h.openPage();
  try {
    const jobId = await upload('reviews.csv', makeCsv(400), { id: wf.body.workflow_id });
    await openFromList(page, jobId);

    const profile = await h.apiGet(`/v1/jobs/${jobId}/profile`);
    const d = profile.derived?.review_sentiment;
    assert.ok(d, `the profile has the derived section: ${JSON.stringify(profile.derived)}`);
    assert.equal(d.not_scored, 50, 'one review in eight is empty');
    assert.equal(d.scored + d.not_scored, 400);
    // The profile's counts are the clean output's labels (a query counts them).
    const q = await h.apiPost(`/v1/jobs/${jobId}/queries`, {
      version: 1, source: 'clean', group_by: ['review_sentiment_label'], aggregates: [{ fn: 'count' }],
    });
    assert.equal(q.status, 200, JSON.stringify(q.body));
    const counted = Object.fromEntries(q.body.result.rows.map(([k, n]) => [k ?? 'not scored', n]));
    assert.deepEqual(counted, { positive: d.labels.positive, negative: d.labels.negative, neutral: d.labels.neutral, 'not scored': 50 });

    // The page: the section, one figure, one bar per label with the profile's count.
    await page.waitForSelector('#sentiment:not([hidden]) figure[data-column=review_sentiment] svg[data-kind=bar]');
    const bars = await page.$$eval('#sentiment figure[data-column=review_sentiment] g.bar',
      (gs) => gs.map((g) => [g.dataset.key, g.dataset.value, Number(g.querySelector('rect').getAttribute('width')) > 0]));
    const want = [['positive', d.labels.positive], ['neutral', d.labels.neutral], ['negative', d.labels.negative], ['not scored', 50]]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .map(([k, n]) => [k, String(n), n > 0]);
    assert.deepEqual(bars, want);
    assert.ok(d.labels.positive > 0 && d.labels.negative > 0 && d.labels.neutral > 0, JSON.stringify(d.labels));
    assert.equal(await page.$$eval('#sentiment svg text.axis-title', (ts) => ts.map((t) => t.textContent).sort().join('|')), 'label|rows');
    const caption = await page.textContent('#sentiment figure[data-column=review_sentiment] figcaption');
    assert.match(caption, new RegExp(`${d.scored} of 400 rows scored`));
    assert.match(caption, new RegExp(`mean ${d.mean.toFixed(4)}`));
    assert.match(caption, /lexicon engine, of review/);
    // The job's figures say how many rows were scored.
    assert.match(await page.textContent('#job-stats'), new RegExp(`${d.scored} rows scored`));
    // An accessible name that carries the numbers.
    assert.match(await page.getAttribute('#sentiment svg', 'aria-label'), /positive: \d+/);
    fs.mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: path.join(OUT, 'sentiment.png'), fullPage: true });

    // A job without a derive step: no sentiment section, no "rows scored".
    const plain = await upload('plain.csv', makeCsv(20));
    await openFromList(page, plain);
    assert.equal(await page.isVisible('#sentiment'), false);
    assert.equal(await page.$$eval('#sentiment figure', (f) => f.length), 0);
    assert.doesNotMatch(await page.textContent('#job-stats'), /scored/);
  } finally {
    await context.close();
  }
});
