// The inspector (/ui/) in a real browser: headless Debian chromium driven by playwright-core,
// against the real `hookd serve`, `hookd mock` (one answering 200, one 500) and a small receiver
// of this test's own whose answer carries XSS payloads in its body and a header.
// The parts that need routes not on every server yet (GET /v1/stats, GET /v1/events, attempt
// timings) are tested in dashboard.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { ADMIN_KEY, api, login, makeRun, settle, waitFor, watchedPage } from './lib.mjs';

const run = makeRun();
const db = `sqlite:${join(run.dir, 'hookd.db')}`;
// Routes a server without the monitoring work answers 404/405; the page says "not available".
const PENDING_ROUTES = [/\/v1\/stats/, /\/v1\/events(\?|$)/];
let port;
let okUrl;
let badUrl;
let xssUrl;
let ingestKey;
let receiver;
let context;

const XSS = {
  img: '<img src=x onerror=alert(1)>',
  script: '</script><script>alert(1)</script>',
  svg: '<svg onload=alert(1)><a href="javascript:alert(1)">x</a>',
};
const XSS_BODY = '<img src=x onerror=alert(2)><script>alert(2)</script>';
const XSS_HEADER = '<script>alert(3)</script><img src=x onerror=alert(3)>';

before(async () => {
  const ok = await run.start(['mock', '--listen', '127.0.0.1:0', '--quiet'], 'mock');
  const bad = await run.start(['mock', '--listen', '127.0.0.1:0', '--quiet', '--status', '500'], 'mock 500');
  okUrl = `http://127.0.0.1:${ok.port}/hooks`;
  badUrl = `http://127.0.0.1:${bad.port}/hooks`;
  receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/html', 'x-evil': XSS_HEADER });
      res.end(XSS_BODY);
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  xssUrl = `http://127.0.0.1:${receiver.address().port}/hooks`;
  ({ port } = await run.start(['serve', '--listen', '127.0.0.1:0', '--db', db, '--api-key', ADMIN_KEY,
    '--allow-http', '--allow-private-networks', '--retry-schedule', '0'], 'serve'));
  ingestKey = run.createKey(db, 'ingest');
  context = await run.browser();
});

after(async () => {
  if (receiver) receiver.close();
  await run.stop();
});

async function createEndpoint(body) {
  const r = await api(port, 'POST', '/v1/endpoints', body);
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return r.json;
}

async function ingest(event, data) {
  const r = await api(port, 'POST', '/v1/events', { event, data });
  assert.equal(r.status, 202, JSON.stringify(r.json));
  return r.json;
}

async function deliveryStatus(id, want) {
  return waitFor(`delivery ${id} ${want}`, async () => {
    const r = await api(port, 'GET', `/v1/deliveries/${id}`);
    return r.json.status === want && r.json;
  });
}

async function show(page, hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await settle(page);
}

test('the /ui/ files need no key and carry the CSP, nosniff and no-referrer headers', async () => {
  const base = `http://127.0.0.1:${port}`;
  const redirect = await fetch(`${base}/ui`, { redirect: 'manual' });
  assert.equal(redirect.status, 301);
  assert.equal(redirect.headers.get('location'), '/ui/');
  const want = [['/ui/', /^text\/html/], ['/ui/app.js', /^text\/javascript/], ['/ui/app.css', /^text\/css/],
    ['/ui/no-such-file.js', /^application\/json/]];
  for (const [path, type] of want) {
    const r = await fetch(base + path);
    assert.equal(r.status, path.includes('no-such') ? 404 : 200, path);
    assert.match(r.headers.get('content-type'), type, path);
    const csp = r.headers.get('content-security-policy') || '';
    for (const d of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
      "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"]) {
      assert.ok(csp.includes(d), `${path}: CSP has ${d}: ${csp}`);
    }
    assert.ok(!/unsafe-inline|unsafe-eval/.test(csp), `${path}: no unsafe-* in the CSP`);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer', path);
    assert.equal(r.headers.get('set-cookie'), null, path);
  }
  const page = await fetch(`${base}/ui/`);
  const etag = page.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]+"$/);
  assert.equal((await fetch(`${base}/ui/`, { headers: { 'if-none-match': etag } })).status, 304);
  // The data still needs a key.
  assert.equal((await fetch(`${base}/v1/endpoints`)).status, 401);
});

test('log in, see an endpoint, follow a new delivery live and open its attempts', async () => {
  const page = await watchedPage(context, PENDING_ROUTES);
  await login(page, port);
  await page.waitForSelector('#nav:not(.hidden)');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('hookd.apiKey')), ADMIN_KEY);
  assert.deepEqual(await context.cookies(), [], 'no cookies');

  const ep = await createEndpoint({ url: okUrl, description: 'the good receiver' });
  await show(page, '#/endpoints');
  await page.waitForSelector(`tr[data-id="${ep.id}"]`);
  assert.match(await page.textContent(`tr[data-id="${ep.id}"]`), /enabled/);

  await show(page, '#/deliveries');
  await page.click('#follow');
  await page.waitForSelector('#follow[aria-pressed="true"]');
  const acc = await ingest('order.paid', { order: 1234 });
  const dlv = acc.deliveries[0].id;
  // Polled at least every second: the new row shows up without a reload.
  const t0 = Date.now();
  await page.waitForSelector(`tr[data-id="${dlv}"]`, { timeout: 5000 });
  assert.ok(Date.now() - t0 < 3000, `the delivery showed within ${Date.now() - t0} ms`);
  await deliveryStatus(dlv, 'succeeded');
  await page.waitForSelector(`tr[data-id="${dlv}"] .badge.ok`);
  await page.click(`tr[data-id="${dlv}"] a[href="#/deliveries/${dlv}"]`);
  await page.waitForSelector('.attempt[data-attempt="1"]');
  assert.match(await page.textContent('.attempt[data-attempt="1"] .attempt-head'), /200/);
  assert.match(await page.textContent('.attempt[data-attempt="1"]'), /"received": true/);
  await page.waitForSelector('#payload');
  assert.deepEqual(JSON.parse(await page.textContent('#payload')), { order: 1234 });
  await page.assertClean();

  await page.click('#logout');
  await page.waitForSelector('#api-key');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('hookd.apiKey')), null);
  await page.close();
});

test('the endpoint page pauses, resumes, sends a test event and hides the secret until asked', async () => {
  const ep = await createEndpoint({ url: okUrl, description: 'paused and resumed' });
  const page = await watchedPage(context, PENDING_ROUTES);
  await login(page, port);
  await page.waitForSelector('#nav:not(.hidden)');
  await show(page, `#/endpoints/${ep.id}`);
  assert.ok(!(await page.textContent('main')).includes(ep.secret), 'the secret is hidden');
  await page.click('#reveal');
  assert.equal(await page.textContent('#secret'), ep.secret);
  await page.click('#pause');
  await waitFor('paused', async () => (await api(port, 'GET', `/v1/endpoints/${ep.id}`)).json.enabled === false);
  await page.waitForSelector('#pause:text("Resume")');
  await page.click('#pause');
  await waitFor('resumed', async () => (await api(port, 'GET', `/v1/endpoints/${ep.id}`)).json.enabled === true);
  await page.waitForSelector('#pause:text("Pause")');
  await page.click('#send-test');
  const list = await waitFor('the test delivery', async () => {
    const r = await api(port, 'GET', `/v1/deliveries?endpoint_id=${ep.id}`);
    return r.json.data.length === 1 && r.json.data;
  });
  assert.equal(list[0].event, 'test.webhook');
  await page.waitForSelector(`tr[data-id="${list[0].id}"]`);
  await page.click('#replay');
  await page.waitForSelector('#replay-result:text("Replayed 1 event")');
  // Rotating asks for a second click.
  await page.click('#rotate');
  await page.waitForSelector('#rotate:text("Click again")');
  assert.equal((await api(port, 'GET', `/v1/endpoints/${ep.id}`)).json.secret, ep.secret, 'one click rotates nothing');
  await page.click('#rotate');
  const rotated = await waitFor('the new secret', async () => {
    const r = (await api(port, 'GET', `/v1/endpoints/${ep.id}`)).json;
    return r.secret !== ep.secret && r;
  });
  // The flash and the redraw's start (which removes the old page) come in one task.
  await page.waitForSelector('#flash:text("Secret rotated")');
  await page.click('#reveal');
  assert.equal(await page.textContent('#secret'), rotated.secret);
  await page.assertClean();
  await page.close();
});

test('a dead letter retried from the DLQ page is delivered', async () => {
  const ep = await createEndpoint({ url: badUrl, description: 'answers 500' });
  const acc = await ingest('order.failed', { order: 99 });
  const dlv = acc.deliveries.find((d) => d.endpoint_id === ep.id).id;
  await deliveryStatus(dlv, 'dead');
  const page = await watchedPage(context, PENDING_ROUTES);
  await login(page, port);
  await page.waitForSelector('#nav:not(.hidden)');
  await show(page, `#/dlq?endpoint=${ep.id}`);
  await page.waitForSelector(`tr[data-id="${dlv}"]`);
  // The receiver is fixed: the endpoint now points at one that answers 200.
  const fix = await api(port, 'PATCH', `/v1/endpoints/${ep.id}`, { url: okUrl });
  assert.equal(fix.status, 200);
  await page.click(`button[data-retry="${dlv}"]`);
  await page.waitForSelector(`tr[data-id="${dlv}"] .badge.info`);
  await show(page, `#/deliveries/${dlv}`);
  // The page refreshes a pending delivery every second until it settles.
  await page.waitForSelector('.attempt[data-attempt="2"]', { timeout: 15000 });
  assert.match(await page.textContent('.attempt[data-attempt="1"] .attempt-head'), /500/);
  assert.match(await page.textContent('.attempt[data-attempt="2"] .attempt-head'), /200/);
  assert.match(await page.textContent('#delivery-summary'), /succeeded/);
  assert.equal((await api(port, 'GET', `/v1/deliveries/${dlv}`)).json.status, 'succeeded');

  // Retry all for an endpoint.
  const ep2 = await createEndpoint({ url: badUrl, description: 'answers 500 too' });
  const d2 = (await ingest('order.failed', { order: 100 })).deliveries.find((d) => d.endpoint_id === ep2.id).id;
  await deliveryStatus(d2, 'dead');
  await api(port, 'PATCH', `/v1/endpoints/${ep2.id}`, { url: okUrl });
  await show(page, `#/dlq?endpoint=${ep2.id}`);
  await page.waitForSelector(`tr[data-id="${d2}"]`);
  await page.click('#retry-all');
  await deliveryStatus(d2, 'succeeded');
  await page.waitForSelector(`tr[data-id="${d2}"]`, { state: 'detached' });
  await page.assertClean();
  await page.close();
});

test('XSS payloads in event data, endpoint fields, response bodies and headers stay inert', async () => {
  const ep = await createEndpoint({ url: xssUrl, description: XSS.img, headers: { 'X-Note': XSS.img } });
  const acc = await ingest('xss.probe', { ...XSS, nested: { list: [XSS.script] } });
  const dlv = acc.deliveries.find((d) => d.endpoint_id === ep.id).id;
  await deliveryStatus(dlv, 'succeeded');
  const page = await watchedPage(context, PENDING_ROUTES);
  await login(page, port);
  await page.waitForSelector('#nav:not(.hidden)');
  const injected = () => page.evaluate(() => ({
    img: document.querySelectorAll('img').length,
    scripts: document.scripts.length,
    handlers: document.querySelectorAll('[onerror], [onload], [onclick]').length,
    js: [...document.querySelectorAll('a')].filter((a) => /^javascript:/i.test(a.getAttribute('href') || '')).length,
    foreignSvg: [...document.querySelectorAll('svg')].filter((s) => !s.classList.contains('chart')).length,
  }));
  const clean = { img: 0, scripts: 1, handlers: 0, js: 0, foreignSvg: 0 };
  for (const hash of ['#/endpoints', `#/endpoints/${ep.id}`, '#/deliveries', `#/deliveries/${dlv}`,
    `#/events/${acc.id}`, '#/dlq', '#/dashboard', '#/events']) {
    await show(page, hash);
    assert.deepEqual(await injected(), clean, `nothing injected on ${hash}`);
  }
  await show(page, `#/deliveries/${dlv}`);
  const payload = JSON.parse(await page.textContent('#payload'));
  assert.equal(payload.img, XSS.img, 'the payload is shown as text');
  assert.equal(payload.script, XSS.script);
  assert.equal(await page.textContent('.response-body'), XSS_BODY);
  assert.ok((await page.textContent('.attempt table.headers')).includes(XSS_HEADER), 'the header value is shown as text');
  await show(page, `#/endpoints/${ep.id}`);
  await page.click('#reveal');
  assert.ok((await page.textContent('main')).includes(XSS.img), 'the description and header value are text');
  assert.deepEqual(await injected(), clean);
  // Give an onerror that slipped through a moment to fire.
  await page.waitForTimeout(300);
  await page.assertClean();
  await page.close();
});

test('an ingest key is told it cannot read', async () => {
  const page = await watchedPage(context, [/\/v1\/endpoints/]);
  await login(page, port, ingestKey);
  await page.waitForSelector('#login-message.error-box');
  const msg = await page.textContent('#login-message');
  assert.match(msg, /cannot read/);
  assert.match(msg, /admin key/);
  assert.equal(await page.isVisible('#nav'), false);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('hookd.apiKey')), null);
  await page.assertClean();
  await page.close();
});

test('every page loads without console errors or CSP violations', async () => {
  const ep = await createEndpoint({ url: okUrl });
  const acc = await ingest('order.shipped', { order: 7 });
  const dlv = acc.deliveries.find((d) => d.endpoint_id === ep.id).id;
  await deliveryStatus(dlv, 'succeeded');
  const page = await watchedPage(context, PENDING_ROUTES);
  await login(page, port);
  await page.waitForSelector('#nav:not(.hidden)');
  for (const hash of ['#/dashboard', '#/dashboard?window=5m', '#/endpoints', `#/endpoints/${ep.id}`, '#/deliveries',
    '#/deliveries?status=succeeded', `#/deliveries/${dlv}`, '#/events', `#/events/${acc.id}`, '#/dlq']) {
    await show(page, hash);
    assert.equal(await page.isVisible('.error-box'), false, `no error shown on ${hash}`);
  }
  await page.assertClean();
  await page.close();
});
