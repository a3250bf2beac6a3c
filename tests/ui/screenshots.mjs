// Takes the inspector screenshots in docs/screenshots/ (run by hand, not part of the suite):
//   HOOKD_BIN=build-test/hookd node tests/ui/screenshots.mjs [--sample]
// Starts the real `hookd serve` and `hookd mock`s, sends some traffic (one receiver answers 200,
// one fails its first request per event, one always answers 500), then captures the dashboard,
// the endpoints list, one endpoint, the deliveries list, one delivery with its attempts and the
// dead-letter queue.
//
// --sample: for a server that does not have GET /v1/stats or attempt timings yet, the browser is
// given contract-shaped sample figures for those two (docs/api.md) so the pictures show the
// finished page. Run it again without --sample on a server that has them.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, login, makeRun, settle, waitFor, watchedPage } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', '..', 'docs', 'screenshots');
const sample = process.argv.includes('--sample');
mkdirSync(out, { recursive: true });

const run = makeRun();
try {
  const ok = await run.start(['mock', '--listen', '127.0.0.1:0', '--quiet', '--latency', '12'], 'mock');
  const flaky = await run.start(['mock', '--listen', '127.0.0.1:0', '--quiet', '--fail-first', '3', '--status', '503'], 'flaky mock');
  const bad = await run.start(['mock', '--listen', '127.0.0.1:0', '--quiet', '--status', '500'], 'failing mock');
  const { port } = await run.start(['serve', '--listen', '127.0.0.1:0', '--db', `sqlite:${join(run.dir, 'hookd.db')}`,
    '--api-key', 'ui-test-admin-key', '--allow-http', '--allow-private-networks', '--retry-schedule', '0,1s,1s', '--breaker-failures', '0'], 'serve');
  const mk = async (body) => (await api(port, 'POST', '/v1/endpoints', body)).json;
  const orders = await mk({ url: `http://127.0.0.1:${ok.port}/webhooks/orders`, description: 'Order service',
    events: ['order.created', 'order.paid', 'order.shipped'], rate_limit: 50, max_in_flight: 8 });
  const billing = await mk({ url: `http://127.0.0.1:${flaky.port}/hooks/billing`, description: 'Billing (flaky)',
    events: ['invoice.paid', 'order.paid'] });
  const crm = await mk({ url: `http://127.0.0.1:${bad.port}/crm/sync`, description: 'CRM sync (down)',
    events: ['customer.updated'] });
  const types = ['order.created', 'order.paid', 'order.shipped', 'invoice.paid', 'customer.updated'];
  for (let i = 0; i < 24; i++) {
    const event = types[i % types.length];
    await api(port, 'POST', '/v1/events', { event, data: { id: `${event.split('.')[0]}_${1000 + i}`,
      amount: { value: 1999 + i * 100, currency: 'EUR' }, customer: { id: `cus_${40 + (i % 7)}`, email: `buyer${i}@example.com` },
      note: i === 3 ? '<img src=x onerror=alert(1)> stays text' : null } });
  }
  await waitFor('the traffic to settle', async () => {
    const p = await api(port, 'GET', '/v1/deliveries?status=pending');
    return p.json.data.length === 0;
  }, 30000);

  const context = await run.browser();
  // Routes a server may lack (then the page says "not available") are expected to fail.
  const page = await watchedPage(context, [/\/v1\/stats/, /\/v1\/events(\?|$)/]);
  await page.setViewportSize({ width: 1280, height: 600 });
  if (sample) await addSamples(page, [orders, billing, crm]);
  await login(page, port);
  await page.waitForSelector('#nav:not(.hidden)');
  const shot = async (hash, name, fullPage = true) => {
    await page.evaluate((h) => { location.hash = h; }, hash);
    await settle(page);
    await page.waitForTimeout(200);
    await page.screenshot({ path: join(out, name), fullPage });
    console.log('wrote', join('docs', 'screenshots', name));
  };
  await shot('#/dashboard', 'dashboard.png');
  await shot('#/endpoints', 'endpoints.png');
  await shot(`#/endpoints/${orders.id}`, 'endpoint.png');
  await page.setViewportSize({ width: 1280, height: 900 });
  await shot('#/deliveries', 'deliveries.png', false);
  await page.setViewportSize({ width: 1280, height: 600 });
  const billed = (await api(port, 'GET', `/v1/deliveries?endpoint_id=${billing.id}&status=succeeded`)).json.data;
  const retried = billed.find((d) => d.attempt_count > 1) || billed[0];
  await shot(`#/deliveries/${retried.id}`, 'delivery.png');
  await shot('#/dlq', 'dlq.png');
  await page.assertClean();
} finally {
  await run.stop();
}

// Contract-shaped figures (see the file comment), drawn from a fixed pseudo-random sequence.
async function addSamples(page, eps) {
  let seed = 7;
  const rnd = () => { seed = (seed * 16807) % 2147483647; return seed / 2147483647; };
  const now = Date.now();
  const stats = (win, epId) => {
    const step = win === '24h' ? 900 : 60;
    const n = win === '5m' ? 5 : win === '1h' ? 60 : 96;
    const points = [];
    for (let i = 0; i < n; i++) {
      const att = Math.round(30 + 25 * Math.sin(i / 6) + rnd() * 12);
      const failed = rnd() < 0.15 ? Math.round(rnd() * 6) : 0;
      const p50 = 9 + rnd() * 5;
      points.push({ t: new Date(now - (n - i) * step * 1000).toISOString().replace(/\.\d+Z$/, 'Z'), events: Math.round(att / 2),
        deliveries: att, attempts: att + failed, succeeded: att, failed, attempt_p50_ms: +p50.toFixed(1),
        attempt_p95_ms: +(p50 * (2.2 + rnd())).toFixed(1) });
    }
    const total = points.reduce((a, p) => a + p.attempts, 0);
    const failed = points.reduce((a, p) => a + p.failed, 0);
    return {
      window: win, window_seconds: n * step, from: points[0].t, to: new Date(now).toISOString(),
      started_at: new Date(now - 86400e3).toISOString(), endpoint_id: epId || null,
      events: { ingested: epId ? null : Math.round(total / 2) },
      deliveries: { created: total - failed, succeeded: total - failed - 3, dead: 3, success_rate: 0.9981, error_rate: 0.0019 },
      attempts: { total, succeeded: total - failed, failed, success_rate: (total - failed) / total, error_rate: failed / total,
        by_outcome: { '2xx': total - failed, '3xx': 0, '4xx': 2, '5xx': failed - 3, timeout: 1, connection_refused: 0, dns: 0,
          tls_error: 0, connection: 0, response_too_large: 0, blocked_destination: 0, internal: 0 } },
      latency: { attempt_ms: { count: total, avg: 14.2, p50: 10.8, p95: 31.5, p99: 72.4 },
        ingest_to_delivered_ms: { count: total - failed, avg: 19.9, p50: 13.1, p95: 44.0, p99: 118.6 } },
      queue: { pending: 4, due: 1, scheduled: 2, waiting: 1, in_flight: 1, dead: 3, oldest_pending_age_seconds: 0.4 },
      endpoints: eps.filter((e) => !epId || e.id === epId).map((e, i) => ({ id: e.id, url: e.url, enabled: true,
        paused_until: null, circuit: i === 2 ? 'open' : 'closed', in_flight: i === 0 ? 1 : 0, attempts: Math.round(total / 3),
        success_rate: i === 2 ? 0 : 0.99 - i * 0.02, attempt_p95_ms: 28 + i * 9, pending: i === 2 ? 3 : 0, dead: i === 2 ? 3 : 0 })),
      series: { step_seconds: step, points },
    };
  };
  await page.route(/\/v1\/stats(\?|$)/, async (route) => {
    const u = new URL(route.request().url());
    await route.fulfill({ status: 200, contentType: 'application/json',
      body: JSON.stringify(stats(u.searchParams.get('window') || '1h', u.searchParams.get('endpoint_id'))) });
  });
  await page.route(/\/v1\/deliveries\/dlv_[^/?]+$/, async (route) => {
    const res = await route.fetch();
    const d = await res.json();
    for (const a of d.attempts || []) {
      if (a.timings) continue;
      const reused = a.attempt > 1;
      a.timings = { dns_ms: reused ? null : 0.4, connect_ms: reused ? null : 0.3, tls_ms: null,
        ttfb_ms: Math.max(1, (a.duration_ms || 2) - 0.5), total_ms: Math.max(1.5, a.duration_ms || 2) };
      a.remote_ip = '127.0.0.1';
      a.connection_reused = reused;
    }
    await route.fulfill({ response: res, body: JSON.stringify(d) });
  });
}
