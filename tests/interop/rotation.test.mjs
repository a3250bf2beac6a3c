// Interop for signing secrets (issue 5): after a rotation both the old and
// the new secret verify real hookd deliveries with the npm `standardwebhooks`
// library, and once --secret-overlap has passed only the new one does; an
// Ed25519 endpoint's "v1a" signatures verify with Node's own crypto and its
// "whpk_" public key. Node 18 APIs only (Debian's Node).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, verify } from 'node:crypto';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { API_KEY, HOOKD, api, makeRun, records, waitFor } from './lib.mjs';

const OVERLAP_S = 3;
const OLD = 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD';
const run = makeRun();
after(() => run.stop());

let serve;
let mockPort;
const recFile = join(run.dir, 'rotation.jsonl');

async function setup() {
  if (serve) return;
  assert.ok(HOOKD, 'HOOKD_BIN names the hookd binary');
  mockPort = await run.start(['mock', '--listen', '127.0.0.1:0', '--record', recFile], 'mock');
  serve = await run.start(['serve', '--listen', '127.0.0.1:0', '--db', `sqlite:${join(run.dir, 'rot.db')}`,
    '--api-key', API_KEY, '--allow-http', '--allow-private-networks',
    '--secret-overlap', `${OVERLAP_S}s`], 'serve');
}

// Sends one event and returns the request the mock recorded at `path`.
async function deliverTo(path) {
  const acc = await api(serve, 'POST', '/v1/events', { event: 'media.moderated', data: { path, at: Date.now() } });
  assert.equal(acc.status, 202);
  return waitFor(`the delivery to ${path}`, () => records(recFile).find((r) => r.headers['webhook-id'] === acc.json.id && r.path === path));
}

function swHeaders(r) {
  return { 'webhook-id': r.headers['webhook-id'], 'webhook-timestamp': r.headers['webhook-timestamp'], 'webhook-signature': r.headers['webhook-signature'] };
}

// Waits until the wall clock is past an RFC 3339 time (the overlap's end).
async function passTime(rfc3339) {
  const end = Date.parse(rfc3339);
  await waitFor(`the overlap to end at ${rfc3339}`, () => Date.now() > end + 50, (OVERLAP_S + 5) * 1000);
}

// A "whpk_" key as a Node KeyObject: the raw 32 bytes behind the SPKI DER
// prefix for Ed25519 (RFC 8410).
function publicKey(whpk) {
  const raw = Buffer.from(whpk.slice('whpk_'.length), 'base64');
  assert.equal(raw.length, 32);
  return createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]), format: 'der', type: 'spki' });
}

// True if some "v1a," entry of the request's webhook-signature verifies with key.
function v1aVerifies(r, key, body = r.body) {
  const msg = Buffer.from(`${r.headers['webhook-id']}.${r.headers['webhook-timestamp']}.${body}`);
  return r.headers['webhook-signature'].split(' ').filter((e) => e.startsWith('v1a,'))
    .some((e) => verify(null, msg, key, Buffer.from(e.slice(4), 'base64')));
}

test('after a rotation both secrets verify with standardwebhooks; after the overlap only the new one', async () => {
  await setup();
  const ep = await api(serve, 'POST', '/v1/endpoints', { url: `http://127.0.0.1:${mockPort}/hmac`, secret: OLD });
  assert.equal(ep.status, 201);
  const rot = await api(serve, 'POST', `/v1/endpoints/${ep.json.id}/secret/rotate`);
  assert.equal(rot.status, 200);
  const NEW = rot.json.secret;
  assert.notEqual(NEW, OLD);

  let r = await deliverTo('/hmac');
  assert.equal(r.headers['webhook-signature'].split(' ').length, 2);
  for (const secret of [NEW, OLD]) {
    const payload = new Webhook(secret).verify(r.body, swHeaders(r));
    assert.equal(payload.id, r.headers['webhook-id'], `${secret === NEW ? 'new' : 'old'} secret verifies`);
    assert.throws(() => new Webhook(secret).verify(r.body.replace('"data"', '"dat4"'), swHeaders(r)));
  }
  assert.throws(() => new Webhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw').verify(r.body, swHeaders(r)), 'an unrelated secret fails');

  await passTime(rot.json.secret_previous_until);
  r = await deliverTo('/hmac');
  assert.equal(r.headers['webhook-signature'].split(' ').length, 1);
  assert.equal(new Webhook(NEW).verify(r.body, swHeaders(r)).id, r.headers['webhook-id']);
  assert.throws(() => new Webhook(OLD).verify(r.body, swHeaders(r)), 'the old secret no longer verifies');
});

test('an Ed25519 endpoint signs v1a that Node crypto verifies with its whpk_ key, across a rotation', async () => {
  await setup();
  const ep = await api(serve, 'POST', '/v1/endpoints', { url: `http://127.0.0.1:${mockPort}/ed`, signing: 'ed25519' });
  assert.equal(ep.status, 201);
  const { secret, public_key: pub } = ep.json;
  // The "whsk_" secret is the seed then the public key (libsodium's layout):
  // Node derives the same public key from the seed.
  const pair = Buffer.from(secret.slice('whsk_'.length), 'base64');
  assert.equal(pair.length, 64);
  const priv = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), pair.subarray(0, 32)]), format: 'der', type: 'pkcs8' });
  const derived = createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(12);
  assert.equal(`whpk_${derived.toString('base64')}`, pub);
  assert.deepEqual(pair.subarray(32), derived);

  const oldKey = publicKey(pub);
  let r = await deliverTo('/ed');
  assert.match(r.headers['webhook-signature'], /^v1a,[A-Za-z0-9+/]{86}==$/);
  assert.equal(v1aVerifies(r, oldKey), true, 'v1a verifies with crypto.verify');
  assert.equal(v1aVerifies(r, oldKey, r.body + ' '), false, 'a changed body fails');
  assert.equal(r.headers['x-pixelpatrol-signature'], undefined);
  assert.throws(() => new Webhook(OLD).verify(r.body, swHeaders(r)), 'no v1 entry to match');

  const rot = await api(serve, 'POST', `/v1/endpoints/${ep.json.id}/secret/rotate`);
  assert.equal(rot.status, 200);
  const newKey = publicKey(rot.json.public_key);
  r = await deliverTo('/ed');
  assert.equal(r.headers['webhook-signature'].split(' ').length, 2);
  assert.equal(v1aVerifies(r, newKey), true, 'the new key verifies during the overlap');
  assert.equal(v1aVerifies(r, oldKey), true, 'the old key verifies during the overlap');

  await passTime(rot.json.secret_previous_until);
  r = await deliverTo('/ed');
  assert.equal(r.headers['webhook-signature'].split(' ').length, 1);
  assert.equal(v1aVerifies(r, newKey), true, 'the new key verifies after the overlap');
  assert.equal(v1aVerifies(r, oldKey), false, 'the old key no longer verifies');
});
