// Interop: real hookd deliveries, checked by verifiers hookd did not write:
// the npm `standardwebhooks` library, the seed page's own TypeScript
// `verifySignature`, and the seed page's own Flask handler (python3-flask).
// Runs the real `hookd serve` and `hookd mock` on loopback ports they pick.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, existsSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { Webhook } from 'standardwebhooks';
import ts from 'typescript';
import { API_KEY, HOOKD, api, makeRun, records, waitFor } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const run = makeRun();
const { dir, start } = run;

// The seed page: the shared copy when this checkout sits beside it, else the
// copy kept with this test.
function seedPage() {
  const shared = join(here, '..', '..', '..', 'shared', 'seed', 'webhook-notifications.md');
  return readFileSync(existsSync(shared) ? shared : join(here, 'seed', 'webhook-notifications.md'), 'utf8');
}

function codeBlock(page, marker) {
  const blocks = [...page.matchAll(/```[a-z]+[^\n]*\n([\s\S]*?)```/g)].map((m) => m[1]);
  const block = blocks.find((b) => b.includes(marker));
  assert.ok(block, `the seed page has a code block with ${marker}`);
  return block;
}

after(() => run.stop());

const events = [
  { event: 'media.created', data: { media_id: 'med_1', site_id: 'site_9', status: 'pending' } },
  { event: 'media.moderated', data: { media_id: 'med_1', status: 'rejected', confidence: 0.93, labels: ['nudity', 'violence'] } },
  { event: 'test.webhook', data: { message: 'héllo wörld ✓ — "quotes" \\ and \u2028 separators', nested: { a: [1, 2.5, null, true] } } },
];

let delivered = [];

test('hookd delivers signed events to the mock', async () => {
  assert.ok(HOOKD, 'HOOKD_BIN names the hookd binary');
  const recFile = join(dir, 'rec.jsonl');
  const mockPort = await start(['mock', '--listen', '127.0.0.1:0', '--secret', SECRET, '--record', recFile], 'mock');
  const port = await start(['serve', '--listen', '127.0.0.1:0', '--db', `sqlite:${join(dir, 'hookd.db')}`,
    '--api-key', API_KEY, '--allow-http', '--allow-private-networks'], 'serve');
  const ep = await api(port, 'POST', '/v1/endpoints', { url: `http://127.0.0.1:${mockPort}/hooks`, secret: SECRET });
  assert.equal(ep.status, 201);
  const acc = await api(port, 'POST', '/v1/events', { events });
  assert.equal(acc.status, 202);
  delivered = await waitFor('three deliveries', () => { const r = records(recFile); return r.length >= 3 && r; });
  assert.equal(delivered.length, 3);
  for (const r of delivered) assert.equal(r.verified, true, `mock verified ${r.body}`);
});

test('npm standardwebhooks verifies every delivery', () => {
  const wh = new Webhook(SECRET);
  for (const r of delivered) {
    const h = { 'webhook-id': r.headers['webhook-id'], 'webhook-timestamp': r.headers['webhook-timestamp'], 'webhook-signature': r.headers['webhook-signature'] };
    const payload = wh.verify(r.body, h);
    assert.equal(payload.id, r.headers['webhook-id']);
    assert.throws(() => wh.verify(r.body.replace('"data"', '"dat4"'), h), 'a tampered body fails');
  }
  const sent = delivered.map((r) => JSON.parse(r.body)).sort((a, b) => a.event.localeCompare(b.event));
  assert.deepEqual(sent.map((e) => e.data), [...events].sort((a, b) => a.event.localeCompare(b.event)).map((e) => e.data));
});

test("the seed's TypeScript verifySignature accepts every delivery", () => {
  const source = codeBlock(seedPage(), 'function verifySignature(');
  const js = ts.transpileModule(source + '\nmodule.exports = { verifySignature };\n',
    { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2020 } }).outputText;
  const mod = { exports: {} };
  new Function('require', 'module', 'exports', js)(createRequire(import.meta.url), mod, mod.exports);
  const { verifySignature } = mod.exports;
  for (const r of delivered) {
    const sig = r.headers['x-pixelpatrol-signature'];
    const ts_ = r.headers['x-pixelpatrol-timestamp'];
    assert.equal(verifySignature(r.body, sig, ts_, SECRET), true, 'seed check passes');
    assert.equal(verifySignature(r.body + ' ', sig, ts_, SECRET), false, 'seed check fails on a changed body');
  }
});

test("the seed's Flask handler accepts every delivery", () => {
  const source = codeBlock(seedPage(), 'from flask import Flask');
  const reqFile = join(dir, 'requests.json');
  writeFileSync(reqFile, JSON.stringify(delivered.map((r) => ({ body: r.body, headers: r.headers }))));
  const py = spawnSync(existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3', [join(here, 'flask_check.py'), reqFile, SECRET], { input: source, encoding: 'utf8' });
  assert.equal(py.status, 0, `flask check: ${py.stdout}${py.stderr}`);
  assert.match(py.stdout, new RegExp(`flask: ${delivered.length} accepted, 1 tampered rejected`));
});
