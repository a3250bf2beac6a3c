// Takes the inspector screenshots in docs/screenshots/ (run by hand, not part of the suite):
//   HOOKD_BIN=build-test/hookd node tests/ui/screenshots.mjs
// Starts the real `hookd serve` and `hookd mock`s, sends some traffic (one receiver answers 200,
// one fails its first request per event, one always answers 500), then captures the dashboard,
// the endpoints list, one endpoint, the deliveries list, one delivery with its attempts and the
// dead-letter queue. Every figure on them comes from that server.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, login, makeRun, settle, waitFor, watchedPage } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', '..', 'docs', 'screenshots');
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
