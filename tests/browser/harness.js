// What the browser tests share: a `tessera up` stack of their own (its own moto on a free port,
// 1 MiB chunks) started before a file's tests and stopped after, and Debian's chromium driven by
// playwright-core. Fails (never skips) when chromium or the binary is missing; never downloads
// a browser. Not a test file itself (`node --test` runs `*.test.js`).

import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = process.env.TESSERA_BIN || path.join(ROOT, 'target/debug/tessera');
export const CHROMIUM = process.env.TESSERA_CHROMIUM || '/usr/bin/chromium';
/** Where screenshots and logs go (test output, not committed). */
export const OUT = path.join(ROOT, 'target/browser');
export const MIB = 1024 * 1024;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startStack(tmp, extraEnv) {
  assert.ok(fs.existsSync(BIN), `${BIN} is missing: run \`cargo build -p tessera-infra --bin tessera\` first`);
  const [port, emulatorPort] = [await freePort(), await freePort()];
  const home = path.join(tmp, 'home');
  fs.mkdirSync(home, { recursive: true });
  const env = { ...process.env, TESSERA_HOME: home, TESSERA_CHUNK_SIZE: String(MIB), RUST_LOG: process.env.RUST_LOG || 'warn', ...extraEnv };
  const log = path.join(tmp, 'tessera-up.log');
  const out = fs.openSync(log, 'w');
  const proc = spawn(BIN, ['up', '--port', String(port), '--emulator-port', String(emulatorPort)], {
    cwd: tmp, env, stdio: ['ignore', out, out],
  });
  let exited = null;
  proc.on('exit', (code, sig) => { exited = `exited with ${code ?? sig}`; });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 240_000; // a first run may pip-install moto
  for (;;) {
    if (exited) assert.fail(`tessera up ${exited}:\n${fs.readFileSync(log, 'utf8').slice(-3000)}`);
    try {
      const r = await fetch(`${base}/v1/health`);
      if (r.ok) break;
    } catch { /* not yet */ }
    if (Date.now() > deadline) {
      proc.kill('SIGTERM');
      assert.fail(`tessera up did not answer /v1/health within 240 s:\n${fs.readFileSync(log, 'utf8').slice(-3000)}`);
    }
    await sleep(250);
  }
  const token = execFileSync(BIN, ['token'], { cwd: tmp, env }).toString().trim();
  return { proc, base, emulatorPort, token, home, log };
}

async function stopStack(stack) {
  if (!stack || stack.proc.exitCode !== null) return;
  const done = new Promise((r) => stack.proc.once('exit', r));
  process.kill(stack.proc.pid, 'SIGTERM');
  await Promise.race([done, sleep(30_000)]);
  if (stack.proc.exitCode === null) process.kill(stack.proc.pid, 'SIGKILL');
}

/**
 * Registers this file's `before`/`after`: a stack started with `env` added to the environment,
 * stopped after the file's tests, its log kept as `target/browser/<logName>`. Returns
 * `{tmp, stack, openPage, apiGet, apiPost}`; `stack` ({proc, base, emulatorPort, token, home,
 * log}) is set once `before` has run.
 */
export function useStack({ env = {}, logName = 'tessera-up.log' } = {}) {
  const h = {
    tmp: fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-browser-')),
    stack: null,
    /** A fresh browser (fresh profile dir) and a page signed in to the stack (unless `token` is null). */
    async openPage(token = h.stack.token) {
      const profile = fs.mkdtempSync(path.join(h.tmp, 'chromium-'));
      const context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        viewport: { width: 1280, height: 900 },
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
          '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
      const page = context.pages()[0] || await context.newPage();
      page.on('pageerror', (e) => console.error('page error:', e.message));
      await page.goto(`${h.stack.base}/`);
      await page.waitForSelector('body[data-ready=true]');
      if (token === null) return { context, page };
      await page.fill('#token', token);
      await page.click('#signin-button');
      await page.waitForFunction(() => document.getElementById('signin-state').textContent.startsWith('Signed in'));
      return { context, page };
    },
    /** The API's JSON answer to GET `p`, with the stack's token. */
    async apiGet(p) {
      const r = await fetch(h.stack.base + p, { headers: { authorization: `Bearer ${h.stack.token}` } });
      return r.json();
    },
    /** `{status, body}` of POST `p` with `body` as JSON, with the stack's token. */
    async apiPost(p, body) {
      const r = await fetch(h.stack.base + p, {
        method: 'POST',
        headers: { authorization: `Bearer ${h.stack.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: r.status, body: await r.json() };
    },
  };
  before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); these tests never download a browser`);
    h.stack = await startStack(h.tmp, env);
  });
  after(async () => {
    await stopStack(h.stack);
    if (h.stack) {
      // Keep the stack's log next to the screenshots for whoever reads a failure.
      fs.mkdirSync(OUT, { recursive: true });
      fs.copyFileSync(h.stack.log, path.join(OUT, logName));
    }
    fs.rmSync(h.tmp, { recursive: true, force: true });
  });
  process.on('exit', () => { try { if (h.stack?.proc.exitCode === null) process.kill(h.stack.proc.pid, 'SIGKILL'); } catch { /* gone */ } });
  return h;
}

/** Waits for the job shown on the page to reach a final state and asserts `want`, showing the page's account if not. */
export async function waitFinal(page, want, timeout) {
  await page.waitForSelector('#job-state[data-state=completed], #job-state[data-state=failed], #job-state[data-state=cancelled]', { timeout });
  const state = await page.getAttribute('#job-state', 'data-state');
  if (state !== want) {
    const stats = await page.textContent('#job-stats');
    const err = await page.textContent('#error');
    assert.fail(`the job ended ${state}, not ${want}: ${stats} ${err}`);
  }
}
