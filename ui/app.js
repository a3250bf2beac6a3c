// hookd inspector: a single-page view of the hookd API, served by hookd at /ui/.
//
// Security rules kept throughout this file:
// - every value that comes from the API (payloads, headers, response bodies, URLs, ids) reaches
//   the page as text: el() and text nodes only, never innerHTML, never a data-made href;
// - the only links are the page's own "#/..." routes, built with encodeURIComponent;
// - the API key lives in sessionStorage and goes out as "Authorization: Bearer"; no cookies.

const KEY_NAME = 'hookd.apiKey';
const POLL_MS = 700; // follow mode: a new delivery shows within a second
const DASH_REFRESH_MS = 5000;
const SVGNS = 'http://www.w3.org/2000/svg';

const main = document.getElementById('main');
const flashBox = document.getElementById('flash');
const nav = document.getElementById('nav');
const logoutBtn = document.getElementById('logout');

let generation = 0; // bumped on every route change: stale async work checks it
let timers = [];
let loginMessage = '';

// ---------- DOM helpers (text only) ----------

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  append(e, kids);
  return e;
}

function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.setAttribute('class', v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(e, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

function svg(tag, attrs, ...kids) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  append(e, kids);
  return e;
}

// A link to one of the page's own routes.
function link(route, ...kids) {
  return el('a', { href: '#/' + route }, ...kids);
}

function idLink(kind, id) {
  if (!id) return '–';
  return el('a', { href: '#/' + kind + '/' + encodeURIComponent(id), class: 'mono' }, id);
}

function flash(message, isError) {
  flashBox.textContent = message;
  flashBox.className = isError ? 'flash error' : 'flash';
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { flashBox.className = 'flash hidden'; }, 6000);
}

// ---------- formatting ----------

const dash = '–';
function fmtTime(s) { return s ? String(s).replace('T', ' ').replace(/Z$/, '') : dash; }
function fmtNum(n) { return n === null || n === undefined ? dash : Number(n).toLocaleString('en-US'); }
function fmtMs(n) {
  if (n === null || n === undefined) return dash;
  return (n >= 100 ? Math.round(n) : Math.round(n * 10) / 10) + ' ms';
}
function fmtPct(r) { return r === null || r === undefined ? dash : (Math.round(r * 1000) / 10) + '%'; }
function fmtAge(s) {
  if (s === null || s === undefined) return dash;
  if (s < 60) return (Math.round(s * 10) / 10) + ' s';
  if (s < 3600) return Math.round(s / 60) + ' min';
  return (Math.round(s / 360) / 10) + ' h';
}
function pretty(value) { return JSON.stringify(value, null, 2); }
function prettyBody(text) {
  if (text === null || text === undefined) return '';
  try { return pretty(JSON.parse(text)); } catch { return String(text); }
}
// "2026-12-06T10:00" (datetime-local, local time) -> RFC 3339 UTC, or '' when empty.
function toRfc3339(local) {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}
function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function statusBadge(status) {
  const cls = { succeeded: 'ok', dead: 'bad', pending: 'warn' }[status] || '';
  return el('span', { class: 'badge ' + cls }, status || dash);
}
function httpBadge(code, error) {
  if (code === null || code === undefined) return el('span', { class: 'badge bad' }, error || 'no response');
  return el('span', { class: 'badge ' + (code >= 200 && code < 300 ? 'ok' : 'bad') }, String(code));
}
function endpointState(e) {
  const out = [];
  if (!e.enabled) out.push(el('span', { class: 'badge bad' }, e.disabled_reason ? 'disabled' : 'paused'));
  else out.push(el('span', { class: 'badge ok' }, 'enabled'));
  if (e.paused_until) out.push(' ', el('span', { class: 'badge warn', title: 'the receiver asked to wait until ' + e.paused_until }, 'waiting'));
  return out;
}
function circuitBadge(c) {
  const cls = { closed: 'ok', open: 'bad', half_open: 'warn' }[c] || '';
  return el('span', { class: 'badge ' + cls }, c || dash);
}

// ---------- the API ----------

class ApiError extends Error {
  constructor(status, body, message) {
    super(message || (body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.field = body && body.error ? body.error.field : null;
  }
  // The route is not on this server (an older hookd): 404 "no such route" or 405.
  get unavailable() {
    return this.status === 405 ||
      (this.status === 404 && (!this.body || !this.body.error || /no such route/.test(this.body.error.message || '')));
  }
}
class Handled extends Error {} // already shown (e.g. the login page came back)

function apiKey() { return sessionStorage.getItem(KEY_NAME) || ''; }

function query(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== null && v !== undefined) u.set(k, v);
  const s = u.toString();
  return s ? '?' + s : '';
}

async function api(method, path, body) {
  const headers = { authorization: 'Bearer ' + apiKey() };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store', credentials: 'omit', redirect: 'error' });
  } catch {
    throw new ApiError(0, null, 'the server did not answer (network error)');
  }
  const text = await res.text();
  let json = null;
  if (text) { try { json = JSON.parse(text); } catch { json = null; } }
  if (res.status === 401) {
    logout('The server refused this key (401): log in again.');
    throw new Handled();
  }
  if (res.status === 403 && json && json.error && json.error.code === 'insufficient_scope') {
    logout(cannotRead);
    throw new Handled();
  }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

const cannotRead = 'This key cannot read: use an admin key. (An ingest key may only send events.)';

// Shows an error in box (a view's container); "not available" for a route this server lacks.
function showError(box, err, what) {
  if (err instanceof Handled) return;
  if (err instanceof ApiError && err.unavailable) {
    box.replaceChildren(el('div', { class: 'notice' }, `${what} is not available on this server.`));
    return;
  }
  box.replaceChildren(el('div', { class: 'error-box' }, `${what}: ${err.message}`));
}

// ---------- routing ----------

function parseHash() {
  const h = location.hash.replace(/^#\/?/, '');
  const [path, qs] = h.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), q: new URLSearchParams(qs || '') };
}

function go(route, params) { location.hash = '#/' + route + query(params || {}); }

function every(ms, fn) {
  const my = generation;
  let stopped = false;
  const tick = async () => {
    if (stopped || my !== generation) return;
    try { await fn(); } catch (e) { if (!(e instanceof Handled)) console.warn(e); }
    if (!stopped && my === generation) timers.push(setTimeout(tick, ms));
  };
  timers.push(setTimeout(tick, ms));
  return () => { stopped = true; };
}

function clearTimers() { for (const t of timers) clearTimeout(t); timers = []; }

const views = {
  dashboard: viewDashboard,
  endpoints: (p, q) => (p[1] ? viewEndpoint(p[1]) : viewEndpoints(q)),
  deliveries: (p, q) => (p[1] ? viewDelivery(p[1]) : viewDeliveries(q)),
  events: (p, q) => (p[1] ? viewEvent(p[1]) : viewEvents(q)),
  dlq: (p, q) => viewDlq(q),
};

function render() {
  generation++;
  clearTimers();
  if (!apiKey()) { showLogin(); return; }
  const { parts, q } = parseHash();
  const name = views[parts[0]] ? parts[0] : 'dashboard';
  nav.classList.remove('hidden');
  logoutBtn.classList.remove('hidden');
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', a.dataset.view === name);
  main.replaceChildren();
  const r = views[name](parts, q, parts);
  if (r && r.catch) r.catch((e) => showError(main, e, 'This page'));
}

function alive(my) { return my === generation; }

// ---------- login ----------

function logout(message) {
  sessionStorage.removeItem(KEY_NAME);
  loginMessage = message || '';
  render();
}

function showLogin() {
  nav.classList.add('hidden');
  logoutBtn.classList.add('hidden');
  const input = el('input', { type: 'password', id: 'api-key', name: 'api-key', autocomplete: 'off',
    placeholder: 'hk_… or your --api-key', required: true });
  const msg = el('div', { id: 'login-message', class: loginMessage ? 'error-box' : 'hidden' }, loginMessage);
  const button = el('button', { class: 'btn', type: 'submit' }, 'Log in');
  const form = el('form', { onsubmit: (ev) => { ev.preventDefault(); login(input.value.trim(), msg, button); } },
    el('label', { for: 'api-key' }, 'API key'), input, button);
  main.replaceChildren(el('div', { class: 'panel login' },
    el('h1', {}, 'Log in'),
    el('p', {}, 'Paste an admin API key. It is kept in this tab only (sessionStorage) and sent as a bearer token.'),
    msg, form));
  input.focus();
}

async function login(key, msg, button) {
  if (!key) return;
  button.disabled = true;
  const show = (text) => { msg.textContent = text; msg.className = 'error-box'; button.disabled = false; };
  let res;
  try {
    res = await fetch('/v1/endpoints?limit=1', { headers: { authorization: 'Bearer ' + key },
      cache: 'no-store', credentials: 'omit' });
  } catch {
    show('The server did not answer.');
    return;
  }
  let body = null;
  try { body = await res.json(); } catch { body = null; }
  if (res.status === 401) { show('This key was refused (401): check it and try again.'); return; }
  if (res.status === 403 && body && body.error && body.error.code === 'insufficient_scope') { show(cannotRead); return; }
  if (!res.ok) { show(`The server answered ${res.status}: ${(body && body.error && body.error.message) || ''}`); return; }
  sessionStorage.setItem(KEY_NAME, key);
  loginMessage = '';
  if (!parseHash().parts.length) location.hash = '#/dashboard';
  render();
}

// ---------- charts (inline SVG) ----------

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
function hhmm(t) { return t ? String(t).slice(11, 16) : ''; }

const CH = { w: 640, h: 190, l: 44, r: 10, t: 10, b: 24 };

function chartFrame(points, max, fmt) {
  const g = svg('g', {});
  const ih = CH.h - CH.t - CH.b;
  for (const f of [0, 0.5, 1]) {
    const y = CH.t + ih - f * ih;
    g.append(svg('line', { class: 'grid', x1: CH.l, x2: CH.w - CH.r, y1: y, y2: y }),
      svg('text', { class: 'axis', x: CH.l - 6, y: y + 3, 'text-anchor': 'end' }, fmt(max * f)));
  }
  const n = points.length;
  const iw = CH.w - CH.l - CH.r;
  for (const i of n ? [0, Math.floor((n - 1) / 2), n - 1] : []) {
    const x = CH.l + (i + 0.5) * (iw / n);
    g.append(svg('text', { class: 'axis', x, y: CH.h - 6, 'text-anchor': 'middle' }, hhmm(points[i].t)));
  }
  return g;
}

// Stacked bars: succeeded and failed attempts per step.
function attemptsChart(points) {
  const root = svg('svg', { class: 'chart', viewBox: `0 0 ${CH.w} ${CH.h}`, role: 'img', 'data-chart': 'attempts' });
  const max = niceMax(Math.max(0, ...points.map((p) => (p.succeeded || 0) + (p.failed || 0))));
  root.append(svg('title', {}, 'Attempts per step: succeeded and failed'));
  root.append(chartFrame(points, max, (v) => String(Math.round(v))));
  const ih = CH.h - CH.t - CH.b;
  const bw = (CH.w - CH.l - CH.r) / Math.max(points.length, 1);
  points.forEach((p, i) => {
    const x = CH.l + i * bw + bw * 0.15;
    const w = Math.max(bw * 0.7, 1);
    const ok = ((p.succeeded || 0) / max) * ih;
    const bad = ((p.failed || 0) / max) * ih;
    const base = CH.t + ih;
    const g = svg('g', {}, svg('title', {}, `${fmtTime(p.t)}: ${p.succeeded || 0} succeeded, ${p.failed || 0} failed`));
    if (ok > 0) g.append(svg('rect', { class: 'bar-ok', x, y: base - ok, width: w, height: ok }));
    if (bad > 0) g.append(svg('rect', { class: 'bar-bad', x, y: base - ok - bad, width: w, height: bad }));
    root.append(g);
  });
  return el('div', {}, root, el('div', { class: 'legend' },
    el('span', { class: 'k-ok' }, 'succeeded'), el('span', { class: 'k-bad' }, 'failed')));
}

// Lines for p50 and p95 attempt latency; a step with no sample leaves a gap.
function latencyChart(points) {
  const root = svg('svg', { class: 'chart', viewBox: `0 0 ${CH.w} ${CH.h}`, role: 'img', 'data-chart': 'latency' });
  const vals = points.flatMap((p) => [p.attempt_p50_ms, p.attempt_p95_ms]).filter((v) => typeof v === 'number');
  const max = niceMax(Math.max(0, ...vals));
  root.append(svg('title', {}, 'Attempt latency per step: p50 and p95 (ms)'));
  root.append(chartFrame(points, max, (v) => (v >= 10 ? Math.round(v) : Math.round(v * 10) / 10) + ''));
  const ih = CH.h - CH.t - CH.b;
  const bw = (CH.w - CH.l - CH.r) / Math.max(points.length, 1);
  for (const [key, cls] of [['attempt_p50_ms', 'p50'], ['attempt_p95_ms', 'p95']]) {
    let d = '';
    let pen = false;
    points.forEach((p, i) => {
      const v = p[key];
      if (typeof v !== 'number') { pen = false; return; }
      const x = CH.l + (i + 0.5) * bw;
      const y = CH.t + ih - (v / max) * ih;
      d += `${pen ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)} `;
      pen = true;
      root.append(svg('circle', { class: 'dot-' + cls, cx: x.toFixed(1), cy: y.toFixed(1), r: 2.2 },
        svg('title', {}, `${fmtTime(p.t)}: ${cls} ${fmtMs(v)}`)));
    });
    if (d) root.insertBefore(svg('path', { class: 'line-' + cls, d }), root.children[2] || null);
  }
  return el('div', {}, root, el('div', { class: 'legend' },
    el('span', { class: 'k-p50' }, 'p50'), el('span', { class: 'k-p95' }, 'p95')));
}

// One attempt's phases as a horizontal bar. timings: dns_ms, connect_ms, tls_ms (each its own
// phase), ttfb_ms and total_ms (from the start of the request); null where a phase did not happen.
function timingBar(t) {
  const n = (v) => (typeof v === 'number' && v > 0 ? v : 0);
  const total = n(t.total_ms);
  // Each field is its own phase's duration (docs/api.md): the rest of total_ms is reading the
  // response.
  const setup = n(t.dns_ms) + n(t.connect_ms) + n(t.tls_ms);
  const wait = n(t.ttfb_ms);
  const rest = Math.max(0, total - setup - wait);
  const parts = [['dns', n(t.dns_ms)], ['connect', n(t.connect_ms)], ['tls', n(t.tls_ms)], ['wait', wait], ['rest', rest]];
  const sum = parts.reduce((a, [, v]) => a + v, 0) || 1;
  const W = 600;
  const root = svg('svg', { class: 'chart', viewBox: `0 0 ${W} 18`, role: 'img', 'data-chart': 'timings' });
  let x = 0;
  for (const [name, v] of parts) {
    if (v <= 0) continue;
    const w = (v / sum) * W;
    root.append(svg('rect', { class: 't-' + name, x: x.toFixed(1), y: 0, width: Math.max(w, 1).toFixed(1), height: 18 },
      svg('title', {}, `${name}: ${fmtMs(v)}`)));
    x += w;
  }
  return el('div', {}, root, el('div', { class: 'legend' },
    el('span', { class: 'k-dns' }, 'DNS'), el('span', { class: 'k-connect' }, 'connect'),
    el('span', { class: 'k-tls' }, 'TLS'), el('span', { class: 'k-wait' }, 'waiting for the first byte'),
    el('span', { class: 'k-rest' }, 'reading the response')));
}

// ---------- shared pieces ----------

function card(label, value, sub, figure) {
  return el('div', { class: 'card' }, el('div', { class: 'label' }, label),
    el('div', { class: 'value', 'data-figure': figure || null }, value), sub ? el('div', { class: 'sub' }, sub) : null);
}

function table(headers, rows, emptyText) {
  const head = el('tr', {}, headers.map((h) => el('th', { class: h.endsWith('#') ? 'num' : null }, h.replace(/#$/, ''))));
  const body = el('tbody', {});
  if (!rows.length) body.append(el('tr', {}, el('td', { colspan: headers.length, class: 'empty' }, emptyText || 'Nothing here yet.')));
  for (const r of rows) body.append(r);
  return el('table', {}, el('thead', {}, head), body);
}

let endpointCache = null; // [{id, url}] for pickers, refreshed on each list view
async function endpointsForPicker() {
  if (!endpointCache) {
    const res = await api('GET', '/v1/endpoints?limit=1000');
    endpointCache = res.data.map((e) => ({ id: e.id, url: e.url }));
  }
  return endpointCache;
}

function endpointPicker(selected, label, onchange) {
  const select = el('select', { name: 'endpoint', onchange }, el('option', { value: '' }, label || 'All endpoints'));
  endpointsForPicker().then((eps) => {
    for (const e of eps) {
      const o = el('option', { value: e.id }, `${e.id} · ${e.url}`);
      if (e.id === selected) o.selected = true;
      select.append(o);
    }
  }).catch(() => {});
  return select;
}

function field(label, input) { return el('label', {}, label, input); }

function section(title, ...kids) { return el('section', { class: 'panel' }, el('h2', {}, title), ...kids); }

// ---------- dashboard ----------

function viewDashboard(parts, q) {
  const win = ['5m', '1h', '24h'].includes(q.get('window')) ? q.get('window') : '1h';
  const ep = q.get('endpoint') || '';
  const my = generation;
  const winSel = el('select', { name: 'window', onchange: () => go('dashboard', { window: winSel.value, endpoint: epSel.value }) },
    ['5m', '1h', '24h'].map((w) => el('option', { value: w, selected: w === win }, 'last ' + w)));
  const epSel = endpointPicker(ep, 'All endpoints', () => go('dashboard', { window: winSel.value, endpoint: epSel.value }));
  const body = el('div', { id: 'dashboard-body' }, el('div', { class: 'muted' }, 'Loading…'));
  main.append(el('h1', {}, 'Health'), el('div', { class: 'toolbar' }, field('Window', winSel), field('Endpoint', epSel),
    el('div', { class: 'spacer' }), el('span', { class: 'muted', id: 'updated' }, '')), body);
  const range = (s) => `${fmtTime(s.from)} → ${fmtTime(s.to)} UTC · counters since ${fmtTime(s.started_at)}`;
  const load = async () => {
    try {
      const s = await api('GET', '/v1/stats' + query({ window: win, endpoint_id: ep }));
      if (!alive(my)) return;
      body.replaceChildren(...statsBlocks(s, !ep));
      const u = document.getElementById('updated');
      if (u) u.textContent = range(s);
    } catch (e) {
      if (alive(my)) showError(body, e, 'Health figures (GET /v1/stats)');
      throw e;
    }
  };
  load().then(() => every(DASH_REFRESH_MS, load), () => {});
}

function statsBlocks(s, overall) {
  const a = s.attempts || {};
  const d = s.deliveries || {};
  const lat = (s.latency && s.latency.attempt_ms) || {};
  const i2d = (s.latency && s.latency.ingest_to_delivered_ms) || {};
  const qd = s.queue || {};
  const pts = (s.series && s.series.points) || [];
  const cards = el('div', { class: 'cards wide' },
    overall ? card('Events ingested', fmtNum(s.events && s.events.ingested), null, 'events.ingested') : null,
    card('Deliveries created', fmtNum(d.created), `${fmtNum(d.succeeded)} succeeded · ${fmtNum(d.dead)} dead`, 'deliveries.created'),
    card('Attempt success', fmtPct(a.success_rate), `${fmtNum(a.total)} attempts · error ${fmtPct(a.error_rate)}`, 'attempts.success_rate'),
    card('Delivery success', fmtPct(d.success_rate), `error ${fmtPct(d.error_rate)}`, 'deliveries.success_rate'),
    card('Attempt latency p50', fmtMs(lat.p50), `p95 ${fmtMs(lat.p95)} · p99 ${fmtMs(lat.p99)}`, 'latency.attempt_ms.p50'),
    card('Ingest → delivered p50', fmtMs(i2d.p50), `p95 ${fmtMs(i2d.p95)} · p99 ${fmtMs(i2d.p99)}`, 'latency.ingest_to_delivered_ms.p50'),
    card('Pending', fmtNum(qd.pending), `${fmtNum(qd.due)} due · ${fmtNum(qd.scheduled)} scheduled · ${fmtNum(qd.waiting)} waiting`, 'queue.pending'),
    card('In flight', fmtNum(qd.in_flight), `avg attempt ${fmtMs(lat.avg)}`, 'queue.in_flight'),
    card('Dead letters', fmtNum(qd.dead), 'in the DLQ now', 'queue.dead'),
    card('Oldest due', fmtAge(qd.oldest_pending_age_seconds), 'how late delivery is', 'queue.oldest_pending_age_seconds'));
  const charts = el('div', { class: 'row' },
    section('Attempts', attemptsChart(pts)), section('Attempt latency', latencyChart(pts)));
  const outcomes = Object.entries(a.by_outcome || {}).filter(([, n]) => n > 0)
    .map(([k, n]) => el('tr', {}, el('td', { class: 'mono' }, k), el('td', { class: 'num' }, fmtNum(n))));
  const epRows = (s.endpoints || []).map((e) => el('tr', {},
    el('td', {}, idLink('endpoints', e.id), el('div', { class: 'muted wrap' }, e.url)),
    el('td', {}, endpointState(e)), el('td', {}, circuitBadge(e.circuit)),
    el('td', { class: 'num' }, fmtNum(e.in_flight)), el('td', { class: 'num' }, fmtNum(e.attempts)),
    el('td', { class: 'num' }, fmtPct(e.success_rate)), el('td', { class: 'num' }, fmtMs(e.attempt_p95_ms)),
    el('td', { class: 'num' }, fmtNum(e.pending)), el('td', { class: 'num' }, fmtNum(e.dead))));
  const outcomePanel = section('Outcomes', table(['outcome', 'attempts#'], outcomes, 'No attempts in this window.'));
  outcomePanel.classList.add('narrow');
  return [
    cards, charts,
    el('div', { class: 'row' }, outcomePanel,
      section('Endpoints', table(['endpoint', 'state', 'circuit', 'in flight#', 'attempts#', 'success#', 'p95#', 'pending#', 'dead#'], epRows))),
  ];
}

// ---------- endpoints ----------

async function viewEndpoints() {
  const my = generation;
  endpointCache = null;
  const box = el('div', { class: 'panel' }, el('div', { class: 'muted' }, 'Loading…'));
  main.append(el('h1', {}, 'Endpoints'), box);
  let inFlight = null;
  const stats = api('GET', '/v1/stats?window=5m').then((s) => {
    inFlight = new Map((s.endpoints || []).map((e) => [e.id, e.in_flight]));
  }, () => {});
  let res;
  try {
    res = await api('GET', '/v1/endpoints?limit=1000');
  } catch (e) { showError(box, e, 'Endpoints'); return; }
  await stats;
  if (!alive(my)) return;
  const rows = res.data.map((e) => el('tr', { 'data-id': e.id },
    el('td', {}, idLink('endpoints', e.id), el('div', { class: 'wrap' }, e.url),
      e.description ? el('div', { class: 'muted' }, e.description) : null),
    el('td', { class: 'mono' }, (e.events || []).join(', ')),
    el('td', {}, endpointState(e)),
    el('td', {}, circuitBadge(e.circuit)),
    el('td', { class: 'num' }, e.rate_limit ? e.rate_limit + '/s' : 'none'),
    el('td', { class: 'num' }, `${inFlight && inFlight.has(e.id) ? fmtNum(inFlight.get(e.id)) : dash} / ${e.max_in_flight}`)));
  box.replaceChildren(table(['endpoint', 'events', 'state', 'circuit', 'rate limit#', 'in flight / max#'], rows, 'No endpoints yet.'));
  if (res.next_cursor) box.append(el('div', { class: 'muted' }, 'Showing the first 1000 endpoints.'));
}

async function viewEndpoint(id) {
  const my = generation;
  const e = await api('GET', '/v1/endpoints/' + encodeURIComponent(id));
  if (!alive(my)) return;
  const busy = (btn, fn) => async () => {
    btn.disabled = true;
    try { await fn(); } catch (err) { if (!(err instanceof Handled)) flash(err.message, true); }
    btn.disabled = false;
  };
  const testBtn = el('button', { class: 'btn', type: 'button', id: 'send-test' }, 'Send test event');
  testBtn.addEventListener('click', busy(testBtn, async () => {
    const r = await api('POST', `/v1/endpoints/${encodeURIComponent(id)}/test`);
    flash(`Test event ${r.id} sent (delivery ${(r.deliveries[0] || {}).id || dash}).`);
    if (alive(my)) loadRecent();
  }));
  const pauseBtn = el('button', { class: 'btn ghost', type: 'button', id: 'pause' }, e.enabled ? 'Pause' : 'Resume');
  pauseBtn.addEventListener('click', busy(pauseBtn, async () => {
    await api('PATCH', '/v1/endpoints/' + encodeURIComponent(id), { enabled: !e.enabled });
    flash(e.enabled ? 'Paused: new deliveries wait until you resume.' : 'Resumed.');
    render();
  }));
  const rotateBtn = el('button', { class: 'btn danger', type: 'button', id: 'rotate' }, 'Rotate secret');
  let armed = false;
  rotateBtn.addEventListener('click', busy(rotateBtn, async () => {
    if (!armed) { armed = true; rotateBtn.textContent = 'Click again to rotate'; return; }
    await api('POST', `/v1/endpoints/${encodeURIComponent(id)}/secret/rotate`, {});
    flash('Secret rotated: the previous one keeps signing beside it for the overlap period.');
    render();
  }));
  main.append(el('div', { class: 'actions detail-head' }, el('h1', { class: 'mono' }, e.id), endpointState(e), el('div', { class: 'spacer' }),
    testBtn, pauseBtn, rotateBtn));
  const recent = el('div', {}, el('div', { class: 'muted' }, 'Loading…'));
  const statsBox = el('div', {}, el('div', { class: 'muted' }, 'Loading…'));
  main.append(el('div', { class: 'row' }, section('Configuration', endpointConfig(e)),
    el('div', { class: 'panel' }, el('h2', {}, 'Health, last hour'), statsBox)));
  main.append(section('Replay a time window', replayForm(id)));
  main.append(section('Recent deliveries', recent,
    el('div', { class: 'actions' }, link('deliveries?endpoint=' + encodeURIComponent(id), 'All deliveries'),
      link('dlq?endpoint=' + encodeURIComponent(id), 'Dead letters'))));
  const loadRecent = async () => {
    try {
      const r = await api('GET', '/v1/deliveries' + query({ endpoint_id: id, limit: 10 }));
      if (alive(my)) recent.replaceChildren(deliveryTable(r.data, new Set(), false));
    } catch (err) { if (alive(my)) showError(recent, err, 'Deliveries'); }
  };
  loadRecent();
  api('GET', '/v1/stats' + query({ window: '1h', endpoint_id: id })).then((s) => {
    if (!alive(my)) return;
    const a = s.attempts || {};
    const lat = (s.latency && s.latency.attempt_ms) || {};
    const qd = s.queue || {};
    statsBox.replaceChildren(el('div', { class: 'cards' },
      card('Attempts', fmtNum(a.total), `error ${fmtPct(a.error_rate)}`, 'attempts.total'),
      card('Success', fmtPct(a.success_rate), null, 'attempts.success_rate'),
      card('p95', fmtMs(lat.p95), `p50 ${fmtMs(lat.p50)}`, 'latency.attempt_ms.p95'),
      card('Pending', fmtNum(qd.pending), `${fmtNum(qd.in_flight)} in flight`, 'queue.pending'),
      card('Dead', fmtNum(qd.dead), null, 'queue.dead')),
    attemptsChart((s.series && s.series.points) || []));
  }, (err) => { if (alive(my)) showError(statsBox, err, 'Health figures (GET /v1/stats)'); });
}

function endpointConfig(e) {
  const secretValue = e.secret || null;
  const masked = '••••••••••••••••';
  const secretText = el('span', { class: 'mono', id: 'secret' }, secretValue ? masked : 'not shown by the API');
  const headerVals = [];
  const reveal = el('button', { class: 'btn small ghost', type: 'button', id: 'reveal' }, 'Reveal');
  let shown = false;
  reveal.addEventListener('click', () => {
    shown = !shown;
    secretText.textContent = shown ? secretValue : masked;
    for (const [span, v] of headerVals) span.textContent = shown ? v : masked;
    reveal.textContent = shown ? 'Hide' : 'Reveal';
  });
  const headers = Object.entries(e.headers || {}).map(([k, v]) => {
    const span = el('span', { class: 'mono' }, masked);
    headerVals.push([span, v]);
    return el('div', {}, el('span', { class: 'mono' }, k + ': '), span);
  });
  const kv = [
    ['URL', el('span', { class: 'mono' }, e.url)],
    ['Description', e.description || dash],
    ['Events', el('span', { class: 'mono' }, (e.events || []).join(', '))],
    ['State', endpointState(e)],
    ['Disabled because', e.disabled_reason || dash],
    ['Retry-After until', fmtTime(e.paused_until)],
    ['Circuit', [circuitBadge(e.circuit), e.next_probe_at ? ` next probe ${fmtTime(e.next_probe_at)}` : '']],
    ['Rate limit', e.rate_limit ? e.rate_limit + ' requests/s' : 'none'],
    ['Max in flight', String(e.max_in_flight)],
    ['Batch', e.batch ? `${e.batch.max_events} events / ${e.batch.max_wait_ms} ms` : 'off'],
    ['Signing', e.signing || 'hmac'],
    ['Secret', secretValue ? [secretText, ' ', reveal] : secretText],
    e.public_key ? ['Public key', el('span', { class: 'mono' }, e.public_key)] : null,
    ['Previous secret until', fmtTime(e.secret_previous_until)],
    ['Filters', e.filters ? el('pre', {}, pretty(e.filters)) : 'none'],
    ['Custom headers', headers.length ? headers : 'none'],
    ['Created', fmtTime(e.created_at)],
    ['Updated', fmtTime(e.updated_at)],
  ].filter(Boolean);
  if (!secretValue && headers.length) kv.find((r) => r[0] === 'Custom headers')[1].push(reveal);
  return el('dl', { class: 'kv' }, kv.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

function replayForm(id) {
  const since = el('input', { type: 'datetime-local', name: 'since', required: true,
    value: toLocalInput(new Date(Date.now() - 3600e3).toISOString()) });
  const until = el('input', { type: 'datetime-local', name: 'until' });
  const out = el('span', { class: 'muted', id: 'replay-result' }, '');
  const btn = el('button', { class: 'btn ghost', type: 'button', id: 'replay' }, 'Replay');
  btn.addEventListener('click', async () => {
    const body = { since: toRfc3339(since.value) };
    if (!body.since) { out.textContent = 'Choose when the window starts.'; return; }
    if (until.value) body.until = toRfc3339(until.value);
    btn.disabled = true;
    try {
      const r = await api('POST', `/v1/endpoints/${encodeURIComponent(id)}/replay`, body);
      out.textContent = `Replayed ${r.replayed} event(s).`;
    } catch (err) { if (!(err instanceof Handled)) out.textContent = err.message; }
    btn.disabled = false;
  });
  return el('div', {}, el('p', { class: 'muted' },
    'Sends again every event this endpoint had a delivery of, created in the window (until: empty for now).'),
  el('div', { class: 'toolbar' }, field('Since', since), field('Until', until), btn, out));
}

// ---------- deliveries ----------

function deliveryTable(items, fresh, withEndpoint = true) {
  const rows = items.map((d) => el('tr', { class: fresh.has(d.id) ? 'new' : null, 'data-id': d.id },
    el('td', {}, idLink('deliveries', d.id)),
    el('td', { class: 'mono' }, d.event || dash),
    withEndpoint ? el('td', {}, idLink('endpoints', d.endpoint_id)) : null,
    el('td', {}, statusBadge(d.status)),
    el('td', { class: 'num' }, fmtNum(d.attempt_count)),
    el('td', {}, d.last_status !== null && d.last_status !== undefined ? httpBadge(d.last_status) : (d.last_error ? el('span', { class: 'badge bad' }, d.last_error) : dash)),
    el('td', { class: 'mono' }, fmtTime(d.created_at))));
  const heads = ['delivery', 'event', withEndpoint ? 'endpoint' : null, 'status', 'attempts#', 'last', 'created (UTC)'].filter(Boolean);
  return table(heads, rows, 'No deliveries match.');
}

// The client-side half of the filters, for a server that ignores event_type, since or until.
function matches(d, f) {
  if (f.event_type && d.event !== f.event_type) return false;
  if (f.since && d.created_at < f.since) return false;
  if (f.until && d.created_at >= f.until) return false;
  return true;
}

let following = false;

function viewDeliveries(q) {
  const my = generation;
  const f = { status: q.get('status') || '', endpoint_id: q.get('endpoint') || '', event_type: q.get('event') || '',
    since: q.get('since') || '', until: q.get('until') || '' };
  const status = el('select', { name: 'status' }, ['', 'pending', 'succeeded', 'dead'].map((s) =>
    el('option', { value: s, selected: s === f.status }, s || 'Any status')));
  const ep = endpointPicker(f.endpoint_id);
  const evt = el('input', { name: 'event', placeholder: 'e.g. invoice.paid', value: f.event_type });
  const since = el('input', { type: 'datetime-local', name: 'since', value: toLocalInput(f.since) });
  const until = el('input', { type: 'datetime-local', name: 'until', value: toLocalInput(f.until) });
  const apply = el('button', { class: 'btn', type: 'button' }, 'Apply');
  apply.addEventListener('click', () => go('deliveries', { status: status.value, endpoint: ep.value, event: evt.value.trim(),
    since: toRfc3339(since.value), until: toRfc3339(until.value) }));
  const follow = el('button', { class: 'btn ghost', type: 'button', id: 'follow', 'aria-pressed': 'false' }, 'Follow live');
  const box = el('div', { class: 'panel', id: 'deliveries' }, el('div', { class: 'muted' }, 'Loading…'));
  const more = el('button', { class: 'btn ghost hidden', type: 'button' }, 'Next page');
  const note = el('div', { class: 'notice hidden' }, '');
  main.append(el('div', { class: 'actions detail-head' }, el('h1', {}, 'Deliveries'), el('div', { class: 'spacer' }), follow),
    el('div', { class: 'toolbar' }, field('Status', status), field('Endpoint', ep),
      field('Event type', evt), field('Created since', since), field('Until', until), apply),
    note, box, more);

  const seen = new Set();
  let first = true;
  let cursor = null;
  let serverFilters = true;
  const fetchPage = async (cur) => {
    const params = { limit: 50, status: f.status, endpoint_id: f.endpoint_id, cursor: cur };
    if (serverFilters) Object.assign(params, { event_type: f.event_type, since: f.since, until: f.until });
    try {
      return await api('GET', '/v1/deliveries' + query(params));
    } catch (e) {
      if (serverFilters && e instanceof ApiError && e.status === 400 && ['event_type', 'since', 'until'].includes(e.field)) {
        serverFilters = false;
        note.textContent = `This server cannot filter deliveries by ${e.field}: the filter applies to the page shown only.`;
        note.classList.remove('hidden');
        return fetchPage(cur);
      }
      throw e;
    }
  };
  const load = async () => {
    const res = await fetchPage(null);
    if (!alive(my)) return;
    const items = res.data.filter((d) => matches(d, f));
    const fresh = new Set(first ? [] : items.filter((d) => !seen.has(d.id)).map((d) => d.id));
    for (const d of items) seen.add(d.id);
    first = false;
    box.replaceChildren(deliveryTable(items, fresh));
    cursor = res.next_cursor;
    more.classList.toggle('hidden', !cursor || following);
  };
  more.addEventListener('click', async () => {
    try {
      const res = await fetchPage(cursor);
      if (!alive(my)) return;
      const items = res.data.filter((d) => matches(d, f));
      box.querySelector('tbody').append(...deliveryTable(items, new Set()).querySelectorAll('tbody tr'));
      cursor = res.next_cursor;
      more.classList.toggle('hidden', !cursor);
    } catch (e) { showError(box, e, 'Deliveries'); }
  });
  let stop = null;
  const setFollow = (on) => {
    following = on;
    follow.textContent = on ? 'Following…' : 'Follow live';
    follow.className = on ? 'btn on' : 'btn ghost';
    follow.setAttribute('aria-pressed', String(on));
    if (stop) { stop(); stop = null; }
    if (on) stop = every(POLL_MS, load);
  };
  follow.addEventListener('click', () => setFollow(!following));
  load().then(() => { if (alive(my)) setFollow(following); }, (e) => showError(box, e, 'Deliveries'));
}

// One delivery; while it is pending the view redraws itself every second (in one swap, so the
// page does not jump), and so shows a retry's outcome without a reload.
async function viewDelivery(id) {
  const my = generation;
  const draw = async () => {
    const d = await api('GET', '/v1/deliveries/' + encodeURIComponent(id));
    const ev = await api('GET', '/v1/events/' + encodeURIComponent(d.event_id)).catch((e) => e);
    if (!alive(my)) return;
    main.replaceChildren(...deliveryNodes(d, ev));
    if (d.status === 'pending') {
      timers.push(setTimeout(() => {
        if (alive(my)) draw().catch((e) => { if (alive(my)) showError(main, e, 'This delivery'); });
      }, 1000));
    }
  };
  await draw();
}

// The delivery page's content: d (with attempts) and ev, its event or the error reading it.
function deliveryNodes(d, ev) {
  const retry = el('button', { class: 'btn', type: 'button', id: 'retry' }, 'Retry');
  retry.addEventListener('click', async () => {
    retry.disabled = true;
    try { await api('POST', `/v1/dlq/${encodeURIComponent(d.id)}/retry`); flash('Sent back to the queue.'); render(); } catch (e) {
      if (!(e instanceof Handled)) flash(e.message, true);
      retry.disabled = false;
    }
  });
  const payload = el('div', {});
  if (ev instanceof Error) showError(payload, ev, 'The event');
  else payload.append(el('pre', { id: 'payload' }, pretty(ev.data)));
  const attempts = d.attempts || [];
  return [
    el('div', { class: 'actions detail-head' }, el('h1', { class: 'mono' }, d.id), statusBadge(d.status),
      el('div', { class: 'spacer' }), d.status === 'dead' ? retry : null),
    el('div', { class: 'row' },
      section('Delivery', el('dl', { class: 'kv', id: 'delivery-summary' }, [
        ['Status', statusBadge(d.status)], ['Event', [el('span', { class: 'mono' }, d.event || dash), ' ', idLink('events', d.event_id)]],
        ['Endpoint', idLink('endpoints', d.endpoint_id)], ['Attempts', String(d.attempt_count)],
        ['Next attempt', fmtTime(d.next_attempt_at)], ['Last status', d.last_status === null ? dash : String(d.last_status)],
        ['Last error', d.last_error || dash], ['Batch', d.batch_id || dash],
        ['Created', fmtTime(d.created_at)], ['Updated', fmtTime(d.updated_at)],
      ].map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]))),
      section('Payload', payload)),
    section(`Attempts (${attempts.length})`, attempts.length ? attempts.map(attemptCard)
      : el('div', { class: 'muted' }, 'No attempt yet.')),
  ];
}

function timingTable(t) {
  const cols = [['DNS', t.dns_ms], ['connect', t.connect_ms], ['TLS', t.tls_ms], ['first byte', t.ttfb_ms], ['total', t.total_ms]];
  return el('table', { class: 'timings' },
    el('thead', {}, el('tr', {}, cols.map(([k]) => el('th', { class: 'num' }, k)))),
    el('tbody', {}, el('tr', {}, cols.map(([k, v]) => el('td', { class: 'num', 'data-timing': k }, fmtMs(v))))));
}

function attemptCard(a) {
  const err = a.error || null;
  const t = a.timings;
  const timing = t && typeof t === 'object'
    ? [timingBar(t), timingTable(t)]
    : el('div', { class: 'muted' }, 'Timing breakdown: not available on this server.');
  const conn = [];
  if ('remote_ip' in a) conn.push(['Remote IP', el('span', { class: 'mono' }, a.remote_ip || dash)]);
  if ('connection_reused' in a) conn.push(['Connection', a.connection_reused === null || a.connection_reused === undefined ? dash : (a.connection_reused ? 'reused' : 'new')]);
  const headers = Object.entries(a.headers || {});
  return el('div', { class: 'attempt', 'data-attempt': a.attempt },
    el('div', { class: 'attempt-head' }, el('strong', {}, `#${a.attempt}`), httpBadge(a.status, err && err.code),
      el('span', { class: 'mono muted' }, fmtTime(a.at)), el('span', { class: 'muted' }, fmtMs(a.duration_ms)),
      el('span', { class: 'mono wrap' }, a.url || '')),
    err ? el('div', { class: 'error-box' }, `${err.code}: ${err.message}`) : null,
    el('div', { class: 'attempt-grid' },
      el('div', {}, el('div', { class: 'sub-title' }, 'Timing'), timing,
        conn.length ? el('dl', { class: 'kv' }, conn.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])) : null,
        el('div', { class: 'sub-title' }, 'Response headers'),
        headers.length ? el('table', { class: 'headers' }, el('tbody', {}, headers.map(([k, v]) =>
          el('tr', {}, el('td', { class: 'mono' }, k), el('td', { class: 'mono wrap' }, Array.isArray(v) ? v.join(', ') : String(v))))))
          : el('div', { class: 'muted' }, 'none')),
      el('div', {}, el('div', { class: 'sub-title' }, 'Response body'),
        a.response_body === null || a.response_body === undefined ? el('div', { class: 'muted' }, 'none')
          : el('pre', { class: 'response-body' }, prettyBody(a.response_body)))));
}

// ---------- events ----------

async function viewEvents(q) {
  const my = generation;
  const f = { type: q.get('type') || '', endpoint_id: q.get('endpoint') || '', since: q.get('since') || '', until: q.get('until') || '' };
  const type = el('input', { name: 'type', placeholder: 'e.g. invoice.paid', value: f.type });
  const ep = endpointPicker(f.endpoint_id);
  const since = el('input', { type: 'datetime-local', name: 'since', value: toLocalInput(f.since) });
  const until = el('input', { type: 'datetime-local', name: 'until', value: toLocalInput(f.until) });
  const apply = el('button', { class: 'btn', type: 'button' }, 'Apply');
  apply.addEventListener('click', () => go('events', { type: type.value.trim(), endpoint: ep.value,
    since: toRfc3339(since.value), until: toRfc3339(until.value) }));
  const openId = el('input', { name: 'event-id', placeholder: 'evt_…' });
  const open = el('button', { class: 'btn ghost', type: 'button' }, 'Open');
  open.addEventListener('click', () => { if (openId.value.trim()) go('events/' + encodeURIComponent(openId.value.trim())); });
  const box = el('div', { class: 'panel', id: 'events' }, el('div', { class: 'muted' }, 'Loading…'));
  main.append(el('h1', {}, 'Events'), el('div', { class: 'toolbar' }, field('Type', type), field('Endpoint', ep),
    field('Since', since), field('Until', until), apply, el('div', { class: 'spacer' }), field('Event id', openId), open), box);
  let res;
  try {
    res = await api('GET', '/v1/events' + query({ limit: 50, type: f.type, endpoint_id: f.endpoint_id, since: f.since, until: f.until }));
  } catch (e) { if (alive(my)) showError(box, e, 'The events list (GET /v1/events)'); return; }
  if (!alive(my)) return;
  const rows = res.data.map((e) => el('tr', { 'data-id': e.id }, el('td', {}, idLink('events', e.id)),
    el('td', { class: 'mono' }, e.event), el('td', { class: 'mono' }, fmtTime(e.created_at)),
    el('td', { class: 'mono wrap' }, JSON.stringify(e.data === undefined ? null : e.data).slice(0, 120))));
  box.replaceChildren(table(['event', 'type', 'created (UTC)', 'data'], rows, 'No events match.'));
}

async function viewEvent(id) {
  const my = generation;
  const ev = await api('GET', '/v1/events/' + encodeURIComponent(id));
  if (!alive(my)) return;
  const replay = el('button', { class: 'btn ghost', type: 'button', id: 'replay-event' }, 'Replay');
  replay.addEventListener('click', async () => {
    replay.disabled = true;
    try {
      const r = await api('POST', `/v1/events/${encodeURIComponent(id)}/replay`);
      flash(`Replayed as ${r.deliveries.length} new deliver${r.deliveries.length === 1 ? 'y' : 'ies'}.`);
      render();
    } catch (e) { if (!(e instanceof Handled)) flash(e.message, true); replay.disabled = false; }
  });
  main.append(el('div', { class: 'actions detail-head' }, el('h1', { class: 'mono' }, ev.id), el('span', { class: 'badge info' }, ev.event),
    el('div', { class: 'spacer' }), replay));
  main.append(el('div', { class: 'muted' }, 'Created ' + fmtTime(ev.created_at) + ' UTC'), el('div', { class: 'gap' }));
  main.append(section('Data', el('pre', { id: 'payload' }, pretty(ev.data))));
  main.append(section('Deliveries', deliveryTable(ev.deliveries || [], new Set())));
}

// ---------- dead letters ----------

async function viewDlq(q) {
  const my = generation;
  const epId = q.get('endpoint') || '';
  const ep = endpointPicker(epId, 'All endpoints', () => go('dlq', { endpoint: ep.value }));
  const all = el('button', { class: 'btn', type: 'button', id: 'retry-all', disabled: !epId }, 'Retry all for this endpoint');
  all.addEventListener('click', async () => {
    all.disabled = true;
    try {
      const r = await api('POST', '/v1/dlq/retry', { endpoint_id: epId });
      flash(`Retried ${r.retried} dead letter(s).`);
      render();
    } catch (e) { if (!(e instanceof Handled)) flash(e.message, true); all.disabled = false; }
  });
  const box = el('div', { class: 'panel', id: 'dlq' }, el('div', { class: 'muted' }, 'Loading…'));
  main.append(el('h1', {}, 'Dead letters'), el('div', { class: 'toolbar' }, field('Endpoint', ep), all,
    el('div', { class: 'spacer' }), el('span', { class: 'muted' }, 'Deliveries whose every attempt failed.')), box);
  let res;
  try {
    res = await api('GET', '/v1/dlq' + query({ limit: 200, endpoint_id: epId }));
  } catch (e) { if (alive(my)) showError(box, e, 'Dead letters'); return; }
  if (!alive(my)) return;
  const rows = res.data.map((d) => {
    const btn = el('button', { class: 'btn small', type: 'button', 'data-retry': d.id }, 'Retry');
    const cell = el('td', {}, btn);
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      try {
        await api('POST', `/v1/dlq/${encodeURIComponent(d.id)}/retry`);
        cell.replaceChildren(el('span', { class: 'badge info' }, 'retried'), ' ', idLink('deliveries', d.id));
      } catch (e) { if (!(e instanceof Handled)) flash(e.message, true); btn.disabled = false; }
    });
    return el('tr', { 'data-id': d.id }, el('td', {}, idLink('deliveries', d.id)), el('td', { class: 'mono' }, d.event || dash),
      el('td', {}, idLink('endpoints', d.endpoint_id)), el('td', { class: 'num' }, fmtNum(d.attempt_count)),
      el('td', {}, d.last_status !== null && d.last_status !== undefined ? httpBadge(d.last_status) : el('span', { class: 'badge bad' }, d.last_error || dash)),
      el('td', { class: 'mono' }, fmtTime(d.updated_at)), cell);
  });
  box.replaceChildren(table(['delivery', 'event', 'endpoint', 'attempts#', 'last', 'died (UTC)', ''], rows, 'The dead-letter queue is empty.'));
  if (res.next_cursor) box.append(el('div', { class: 'muted' }, 'Showing the newest 200.'));
}

// ---------- start ----------

logoutBtn.addEventListener('click', () => logout(''));
window.addEventListener('hashchange', render);
render();
