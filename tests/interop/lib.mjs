// What the interop test files share: starting `hookd serve` and `hookd mock`
// on loopback ports they pick, calling the API, reading the mock's record
// file and waiting on a condition with a deadline.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const HOOKD = process.env.HOOKD_BIN;
export const API_KEY = 'interop-test-key';

// A temporary directory and the processes started in it; stop() ends them
// (SIGTERM, then SIGKILL after 5 s) and removes the directory.
export function makeRun() {
  const dir = mkdtempSync(join(tmpdir(), 'hookd-interop-'));
  const procs = [];

  // Starts a process and resolves with its port once it prints "... listening on http://H:P".
  function start(args, name) {
    return new Promise((resolve, reject) => {
      const p = spawn(HOOKD, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      procs.push(p);
      let out = '';
      let err = '';
      const timer = setTimeout(() => reject(new Error(`${name} did not start: ${err}`)), 10000);
      p.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/listening on http:\/\/[^:]+:(\d+)/);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      p.stderr.on('data', (d) => { err += d; });
      p.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${name} exited ${code}: ${err}`)); });
    });
  }

  async function stop() {
    for (const p of procs) {
      if (p.exitCode === null) {
        p.kill('SIGTERM');
        await new Promise((r) => { const t = setTimeout(() => { p.kill('SIGKILL'); r(); }, 5000); p.on('exit', () => { clearTimeout(t); r(); }); });
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }

  return { dir, start, stop };
}

export async function api(port, method, path, body) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

export function records(file) {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

export async function waitFor(what, fn, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
