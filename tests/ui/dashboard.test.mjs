// The inspector's parts that read routes added by the monitoring work (issue 11): the dashboard
// from GET /v1/stats, the events list from GET /v1/events, the delivery filters event_type /
// since / until, and each attempt's timings, remote_ip and connection_reused. Written against
// the contract (docs/api.md); it fails on a server without those routes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ADMIN_KEY, api, login, makeRun, settle, waitFor, watchedPage } from './lib.mjs';

const run = makeRun();
let port;
let ep;
let page;
const accepted = [];

before(async () => {
  const ok = await run.start(['mock', '--listen', '127.0.0.1:0', '--quiet'], 'mock');
  ({ port } = await run.start(['serve', '--listen', '127.0.0.1:0', '--db', `sqlite:${join(run.dir, 'hookd.db')}`,
    '--api-key', ADMIN_KEY, '--allow-http', '--allow-private-networks'], 'serve'));
  ep = (await api(port, 'POST', '/v1/endpoints', { url: `http://127.0.0.1:${ok.port}/hooks` })).json;
  for (const [event, n] of [['order.paid', 3], ['order.shipped', 2]]) {
    for (let i = 0; i < n; i++) {
      const r = await api(port, 'POST', '/v1/events', { event, data: { n: i } });
      assert.equal(r.status, 202);
      accepted.push(r.json);
    }
  }
  await waitFor('every delivery succeeded', async () => {
    const r = await api(port, 'GET', `/v1/deliveries?endpoint_id=${ep.id}&status=succeeded`);
    return r.json.data.length === accepted.length;
  });
  page = await watchedPage(await run.browser());
  await login(page, port);
  await page.waitForSelector('#nav:not(.hidden)');
});

after(() => run.stop());

async function show(hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await settle(page);
}

const figure = (name) => page.textContent(`[data-figure="${name}"]`);

test('the dashboard shows the /v1/stats figures and draws the series', async () => {
  const s = (await api(port, 'GET', '/v1/stats?window=5m')).json;
  assert.equal(s.events.ingested, accepted.length);
  await show('#/dashboard?window=5m');
  await page.waitForSelector('[data-figure="events.ingested"]');
  assert.equal(await figure('events.ingested'), String(accepted.length));
  assert.equal(await figure('deliveries.created'), String(s.deliveries.created));
  assert.equal(await figure('queue.dead'), String(s.queue.dead));
  assert.equal(await figure('attempts.success_rate'), '100%');
  // One bar per step with attempts; a latency line.
  const bars = await page.$$eval('svg[data-chart="attempts"] rect.bar-ok', (r) => r.length);
  assert.ok(bars >= 1, 'the attempts chart has bars');
  assert.equal(await page.$$eval('svg[data-chart="latency"] path.line-p50', (p) => p.length), 1);
  assert.ok((await page.textContent('main')).includes(ep.id), 'the endpoint is listed');
  await page.assertClean();
});

test('the dashboard for one endpoint shows its figures', async () => {
  const s = (await api(port, 'GET', `/v1/stats?window=1h&endpoint_id=${ep.id}`)).json;
  await show(`#/dashboard?window=1h&endpoint=${ep.id}`);
  await page.waitForSelector('[data-figure="deliveries.created"]');
  assert.equal(await figure('deliveries.created'), String(s.deliveries.created));
  assert.equal(await page.$('[data-figure="events.ingested"]'), null, 'events ingested is an overall figure');
  await page.assertClean();
});

test('the events page lists events newest first and filters by type', async () => {
  await show('#/events');
  const ids = await page.$$eval('#events tbody tr[data-id]', (rows) => rows.map((r) => r.dataset.id));
  assert.deepEqual(ids, accepted.map((a) => a.id).reverse());
  await show('#/events?type=order.shipped');
  const shipped = await page.$$eval('#events tbody tr[data-id]', (rows) => rows.map((r) => r.dataset.id));
  assert.deepEqual(shipped, accepted.filter((a) => a.event === 'order.shipped').map((a) => a.id).reverse());
  await page.assertClean();
});

test('the deliveries page filters by event type on the server', async () => {
  const r = await api(port, 'GET', '/v1/deliveries?event_type=order.paid');
  assert.equal(r.json.data.length, 3, 'the server filters by event_type');
  await show('#/deliveries?event=order.paid');
  const rows = await page.$$eval('#deliveries tbody tr[data-id]', (r) => r.length);
  assert.equal(rows, 3);
  assert.equal(await page.isVisible('.notice'), false, 'the server applied the filter');
  await page.assertClean();
});

test('a delivery shows each attempt\'s timing breakdown, remote IP and connection reuse', async () => {
  const dlv = accepted[0].deliveries[0].id;
  await show(`#/deliveries/${dlv}`);
  await page.waitForSelector('.attempt[data-attempt="1"] svg[data-chart="timings"]');
  const total = await page.textContent('.attempt[data-attempt="1"] [data-timing="total"]');
  assert.match(total, /ms$/);
  const text = await page.textContent('.attempt[data-attempt="1"]');
  assert.match(text, /Remote IP\s*127\.0\.0\.1/);
  assert.match(text, /Connection\s*(new|reused)/);
  await page.assertClean();
});
