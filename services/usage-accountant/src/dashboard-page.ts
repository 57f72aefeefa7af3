/*
 * The dashboard page: plain HTML, one script and one style sheet served beside it (the page's
 * content security policy allows nothing else), no framework and nothing fetched from elsewhere.
 * The script renders with textContent and DOM nodes only, never innerHTML, so no tenant, route or
 * model name can inject markup.
 */

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>LLM gateway usage</title>
<link rel="stylesheet" href="/dashboard/style.css">
</head>
<body>
<header>
  <h1>LLM gateway usage</h1>
  <form id="key-form">
    <label>API key <input id="key" type="password" autocomplete="off" placeholder="admin or tenant key"></label>
    <label>Window <select id="hours"><option value="24">24 h</option><option value="168">7 days</option><option value="720">30 days</option><option value="1">1 h</option></select></label>
    <button type="submit">Show</button>
  </form>
</header>
<main>
  <p id="status" role="status">Enter a key: an admin key shows every tenant, a tenant key its own usage.</p>
  <section id="summary" hidden>
    <div class="card"><h2>Cost</h2><p id="total-cost"></p></div>
    <div class="card"><h2>Tokens</h2><p id="total-tokens"></p></div>
    <div class="card"><h2>Requests</h2><p id="total-requests"></p></div>
    <div class="card"><h2>Failed</h2><p id="total-failed"></p></div>
  </section>
  <section id="charts" hidden>
    <h2>Cost per hour by tenant</h2><div id="cost-chart" class="chart"></div>
    <h2>Tokens per hour by route</h2><div id="tokens-chart" class="chart"></div>
  </section>
  <section id="tables" hidden>
    <h2>By tenant</h2><table id="by-tenant"></table>
    <h2>By route</h2><table id="by-route"></table>
    <h2>Chosen model (backend)</h2><table id="by-model"></table>
    <h2>Budget burn today (UTC)</h2><table id="budgets"></table>
  </section>
</main>
<script src="/dashboard/app.js"></script>
</body>
</html>
`;

export const DASHBOARD_CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 1rem; padding: .75rem 1.5rem; background: #1d2330; color: #fff; }
header h1 { font-size: 1.1rem; margin: 0; }
form { display: flex; gap: .75rem; align-items: center; }
input, select, button { font: inherit; padding: .25rem .5rem; }
main { padding: 1rem 1.5rem; }
#summary { display: flex; gap: 1rem; flex-wrap: wrap; }
.card { background: #fff; border-radius: 6px; padding: .5rem 1rem; min-width: 10rem; box-shadow: 0 1px 2px #0002; }
.card h2 { font-size: .8rem; text-transform: uppercase; color: #5b6475; margin: 0; }
.card p { font-size: 1.5rem; margin: .25rem 0; }
h2 { font-size: 1rem; margin: 1.25rem 0 .5rem; }
table { border-collapse: collapse; background: #fff; min-width: 40rem; box-shadow: 0 1px 2px #0002; }
th, td { padding: .3rem .75rem; text-align: right; border-bottom: 1px solid #e3e6eb; }
th:first-child, td:first-child { text-align: left; }
th { background: #eef0f4; }
.chart svg { background: #fff; box-shadow: 0 1px 2px #0002; }
.bar-over { fill: #c0392b; }
#status.error { color: #c0392b; }
`;

export const DASHBOARD_JS = `'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const COLORS = ['#3b6fd4', '#e08a1e', '#2e9e6a', '#a64ac9', '#d0453e', '#1a9bb0', '#8a6d3b', '#5b6475'];
  const usd = (micros) => '$' + (micros / 1e6).toFixed(micros >= 1e6 ? 2 : 6);
  const int = (n) => Number(n).toLocaleString('en-US');
  const pct = (x) => (100 * x).toFixed(1) + '%';

  function table(el, head, rows) {
    el.replaceChildren();
    const tr = document.createElement('tr');
    for (const h of head) { const th = document.createElement('th'); th.textContent = h; tr.append(th); }
    el.append(tr);
    for (const r of rows) {
      const row = document.createElement('tr');
      for (const v of r) { const td = document.createElement('td'); td.textContent = v; row.append(td); }
      el.append(row);
    }
    if (rows.length === 0) { const row = document.createElement('tr'); const td = document.createElement('td'); td.colSpan = head.length; td.textContent = 'no usage in this window'; row.append(td); el.append(row); }
  }

  /** Every hour of the window, as the API names buckets (2026-12-02T21:00:00Z). */
  function hoursOf(d) {
    const out = [];
    const HOUR = 3600000;
    for (let t = Math.floor(Date.parse(d.from) / HOUR) * HOUR; t <= Date.parse(d.to); t += HOUR) out.push(new Date(t).toISOString().replace('.000Z', 'Z'));
    return out.slice(-168);
  }

  /** Stacked bars per hour of the window (the last 7 days of it at most): series key → value, drawn as SVG. */
  function chart(el, hours, points, keyOf, valueOf, format) {
    const NS = 'http://www.w3.org/2000/svg';
    const keys = [...new Set(points.map(keyOf))].sort();
    const stacks = hours.map((h) => keys.map((k) => points.filter((p) => p.hour === h && keyOf(p) === k).reduce((s, p) => s + valueOf(p), 0)));
    const max = Math.max(1, ...stacks.map((s) => s.reduce((a, b) => a + b, 0)));
    const W = 720, H = 180, pad = 30, bw = Math.max(2, (W - pad) / Math.max(1, hours.length) - 2);
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('width', String(W)); svg.setAttribute('height', String(H + 40)); svg.setAttribute('role', 'img');
    hours.forEach((h, i) => {
      let y = H;
      stacks[i].forEach((v, k) => {
        const r = document.createElementNS(NS, 'rect');
        const hgt = (v / max) * (H - 10);
        y -= hgt;
        r.setAttribute('x', String(pad + i * (bw + 2))); r.setAttribute('y', String(y)); r.setAttribute('width', String(bw)); r.setAttribute('height', String(hgt));
        r.setAttribute('fill', COLORS[k % COLORS.length]);
        const t = document.createElementNS(NS, 'title'); t.textContent = h + ' ' + keys[k] + ': ' + format(v); r.append(t);
        svg.append(r);
      });
    });
    [0, Math.floor(hours.length / 2), hours.length - 1].forEach((i) => {
      const t = document.createElementNS(NS, 'text');
      const last = i === hours.length - 1 && i > 0;
      t.setAttribute('x', String(pad + (last ? i + 1 : i) * (bw + 2))); t.setAttribute('y', String(H + 12)); t.setAttribute('font-size', '10');
      if (last) t.setAttribute('text-anchor', 'end');
      t.textContent = hours[i].slice(5, 13).replace('T', ' ') + 'h'; svg.append(t);
    });
    keys.forEach((k, i) => {
      const t = document.createElementNS(NS, 'text');
      t.setAttribute('x', String(pad + i * 140)); t.setAttribute('y', String(H + 30)); t.setAttribute('fill', COLORS[i % COLORS.length]);
      t.textContent = k; svg.append(t);
    });
    el.replaceChildren(svg);
  }

  function render(d) {
    $('total-cost').textContent = usd(d.total.costMicros);
    $('total-tokens').textContent = int(d.total.inputTokens + d.total.outputTokens);
    $('total-requests').textContent = int(d.total.requests);
    $('total-failed').textContent = int(d.total.failedRequests);
    table($('by-tenant'), ['tenant', 'requests', 'input tokens', 'output tokens', 'cost'], d.byTenant.map((r) => [r.tenant, int(r.requests), int(r.inputTokens), int(r.outputTokens), usd(r.costMicros)]));
    table($('by-route'), ['route', 'requests', 'failed', 'error rate', 'fallback rate', 'tokens', 'cost'], d.byRoute.map((r) => [r.route, int(r.requests), int(r.failedRequests), pct(r.errorRate), pct(r.fallbackRate), int(r.inputTokens + r.outputTokens), usd(r.costMicros)]));
    table($('by-model'), ['model', 'requests', 'share', 'p95 latency', 'cost'], d.byModel.map((r) => [r.model, int(r.requests), pct(r.share), '≤ ' + int(r.latencyP95Ms) + ' ms', usd(r.costMicros)]));
    table($('budgets'), ['tenant', 'spent today', 'budget per day', 'burn'], d.budgets.map((b) => [b.tenant, usd(b.spentMicros), usd(b.limitMicros), pct(b.burn)]));
    const hours = hoursOf(d);
    chart($('cost-chart'), hours, d.hourly, (p) => p.tenant, (p) => p.costMicros, usd);
    chart($('tokens-chart'), hours, d.hourly, (p) => p.route, (p) => p.inputTokens + p.outputTokens, int);
    for (const id of ['summary', 'charts', 'tables']) $(id).hidden = false;
    const status = $('status');
    status.className = '';
    status.textContent = (d.admin ? 'All tenants' : 'Tenant ' + d.tenant) + ', ' + d.from.slice(0, 16).replace('T', ' ') + ' to ' + d.to.slice(0, 16).replace('T', ' ') + ' UTC';
  }

  async function load() {
    const key = sessionStorage.getItem('llmgw-key');
    if (!key) return;
    const status = $('status');
    status.textContent = 'Loading…';
    try {
      const res = await fetch('/dashboard/data?hours=' + encodeURIComponent($('hours').value), { headers: { authorization: 'Bearer ' + key } });
      const body = await res.json();
      if (!res.ok) throw new Error(body.error || 'HTTP ' + res.status);
      render(body);
    } catch (err) {
      status.className = 'error';
      status.textContent = 'Cannot show usage: ' + err.message;
    }
  }

  const fromFragment = new URLSearchParams(location.hash.slice(1)).get('key');
  if (fromFragment) { sessionStorage.setItem('llmgw-key', fromFragment); history.replaceState(null, '', location.pathname + location.search); }
  $('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if ($('key').value) sessionStorage.setItem('llmgw-key', $('key').value.trim());
    $('key').value = '';
    void load();
  });
  void load();
})();
`;
