// What the browser tests share: `hookd serve` and `hookd mock` on loopback ports they pick (in a
// temporary directory, stopped at the end), the API, waits with a deadline, and a headless
// Debian chromium driven by playwright-core that records console errors, page errors, dialogs
// and CSP violations.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const HOOKD = process.env.HOOKD_BIN;
export const CHROMIUM = process.env.HOOKD_CHROMIUM || '/usr/bin/chromium';
export const ADMIN_KEY = 'ui-test-admin-key';

const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// A temporary directory, the processes started in it and the browser; stop() ends them all.
export function makeRun() {
  assert.ok(HOOKD, 'HOOKD_BIN names the hookd binary');
  const dir = mkdtempSync(join(tmpdir(), 'hookd-ui-'));
  const procs = [];
  let context = null;

  // Starts `hookd ARGS` and resolves with its port once it prints "... listening on http://H:P".
  function start(args, name) {
    return new Promise((resolve, reject) => {
      const env = { ...process.env };
      for (const k of Object.keys(env)) if (/_proxy$/i.test(k) || k.startsWith('HOOKD_')) delete env[k];
      const p = spawn(HOOKD, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
      procs.push(p);
      let out = '';
      let err = '';
      const timer = setTimeout(() => reject(new Error(`${name} did not start: ${err}`)), 15000);
      p.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/listening on http:\/\/[^\s]+:(\d+)/);
        if (m) { clearTimeout(timer); resolve({ port: Number(m[1]), proc: p }); }
      });
      p.stderr.on('data', (d) => { err += d; p.stderrText = err.slice(-4000); });
      p.procName = name;
      p.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${name} exited ${code}: ${err}`)); });
    });
  }

  // A key made with `hookd key create` (the server may be running).
  function createKey(db, scope) {
    const r = spawnSync(HOOKD, ['key', 'create', '--scope', scope, '--name', 'ui-test', '--db', db], { encoding: 'utf8' });
    const m = /^key:\s+(\S+)/m.exec(r.stdout || '');
    assert.ok(m, `hookd key create printed a key: ${r.stdout} ${r.stderr}`);
    return m[1];
  }

  async function browser() {
    if (!context) {
      context = await chromium.launchPersistentContext(mkdtempSync(join(dir, 'chromium-')), {
        executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS,
        viewport: { width: 1280, height: 900 },
      });
    }
    return context;
  }

  async function stopProc(p) {
    if (p.exitCode !== null || p.signalCode !== null) return p.exitCode;
    p.kill('SIGTERM');
    return new Promise((r) => {
      const t = setTimeout(() => { p.kill('SIGKILL'); r(-1); }, 15000);
      p.on('exit', (code) => { clearTimeout(t); r(code); });
    });
  }

  // Stops everything; asserts that each hookd exited 0 on SIGTERM (a sanitizer report, a leak
  // included, makes the exit status non-zero).
  async function stop() {
    if (context) await context.close().catch(() => {});
    const bad = [];
    for (const p of procs) {
      const code = await stopProc(p);
      if (code !== 0) bad.push(`${p.procName} exited ${code}: ${p.stderrText || ''}`);
    }
    rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(bad, [], 'every hookd process exits 0 on SIGTERM');
  }

  return { dir, start, stop, stopProc, createKey, browser };
}

export async function api(port, method, path, body, key = ADMIN_KEY) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null, headers: res.headers };
}

export async function waitFor(what, fn, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// A new tab that records what must not happen: console errors, uncaught page errors, dialogs
// (an alert() from an injected payload) and CSP violations. allow: failed requests (console
// "Failed to load resource" lines) whose URL matches one of these regexps are expected.
export async function watchedPage(context, allow = []) {
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const problems = [];
  const dialogs = [];
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const url = (m.location() && m.location().url) || '';
    if (/^Failed to load resource/.test(m.text()) && allow.some((re) => re.test(url))) return;
    problems.push(`console: ${m.text()} ${url}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  // Asserts none of it happened (so far) on this tab.
  page.assertClean = async () => {
    const csp = await page.evaluate(() => window.__csp);
    assert.deepEqual(problems, [], 'no console or page errors');
    assert.deepEqual(dialogs, [], 'no dialog opened');
    assert.deepEqual(csp, [], 'no CSP violation');
  };
  return page;
}

// Waits until the view has drawn what it was loading.
export async function settle(page) {
  await page.waitForFunction(() => !document.getElementById('main').textContent.includes('Loading…'));
}

export async function login(page, port, key = ADMIN_KEY) {
  await page.goto(`http://127.0.0.1:${port}/ui/`);
  await page.fill('#api-key', key);
  await page.click('button[type=submit]');
}
