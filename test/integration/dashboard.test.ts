import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer, { type Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageGroupBy, type GetUsageResponse } from '@llmgw/proto/v1';
import { chat, eventually, getUsage, KEYS, startTestMesh, userChat, type TestMesh } from '../src/harness.js';

/*
 * The usage dashboard in a real browser (Debian's chromium, headless): after known traffic the
 * page shows the accountant's totals, an admin key every tenant, a tenant key only its own.
 */

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
/** Where the screenshot goes (the README shows it); CI keeps it under .tmp. */
const SCREENSHOT = process.env.DASHBOARD_SCREENSHOT ?? fileURLToPath(new URL('../../.tmp/dashboard.png', import.meta.url));

let mesh: TestMesh;
let browser: Browser;
let expected: GetUsageResponse;

const usd = (micros: number) => `$${(micros / 1e6).toFixed(micros >= 1e6 ? 2 : 6)}`;

beforeAll(async () => {
  if (!CHROMIUM) throw new Error('chromium is not installed (apt-get install chromium)');
  [mesh, browser] = await Promise.all([
    startTestMesh(),
    puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] }),
  ]);
  // Known traffic: 5 requests of the startup tenant, 3 of the enterprise one, and 2 more of it on
  // a route whose dead primary falls back.
  for (let i = 0; i < 5; i++) if (!(await chat(mesh.gateway, KEYS.startup, userChat(`startup question ${i}`))).ok) throw new Error('chat failed');
  for (let i = 0; i < 3; i++) if (!(await chat(mesh.gateway, KEYS.enterprise, userChat(`enterprise question ${i}`))).ok) throw new Error('chat failed');
  for (let i = 0; i < 2; i++) if (!(await chat(mesh.gateway, KEYS.enterprise, userChat(`fallback question ${i}`, { route: 'fallback' }))).ok) throw new Error('chat failed');
  const counted = await eventually(
    () => getUsage(mesh.usage, KEYS.admin, { groupBy: [UsageGroupBy.USAGE_GROUP_BY_TENANT] }),
    (r) => r.ok && Number(r.value.total?.requests) === 10,
    15_000,
  );
  if (!counted.ok) throw counted.error;
  expected = counted.value;
}, 90_000);
afterAll(async () => {
  await browser?.close();
  await mesh?.stop();
});

async function open(key: string) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 1400 });
  await page.goto(`http://${mesh.services.dashboardAddr}/dashboard#key=${encodeURIComponent(key)}`);
  await page.waitForFunction("!document.getElementById('summary').hidden || document.getElementById('status').className === 'error'", { timeout: 15_000 });
  const text = (id: string) => page.$eval(`#${id}`, (el) => el.textContent ?? '');
  const rows = (id: string) => page.$$eval(`#${id} tr`, (trs) => trs.slice(1).map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
  return { page, text, rows };
}

describe('the usage dashboard in headless Chromium', () => {
  it('shows an admin the totals, every tenant, the chosen models with their p95 latency, error and fallback rates, and the budgets', async () => {
    const { page, text, rows } = await open(KEYS.admin);
    const total = expected.total!;
    expect(await text('total-cost')).toBe(usd(Number(total.costMicros)));
    expect(await text('total-requests')).toBe('10');
    expect(await text('total-tokens')).toBe((Number(total.inputTokens) + Number(total.outputTokens)).toLocaleString('en-US'));
    const tenants = await rows('by-tenant');
    expect(tenants.map((r) => [r[0], r[1], r[4]])).toEqual(expected.rows.map((r) => [r.tenantId, String(r.requests), usd(Number(r.costMicros))]));
    // Every answer came from small-fast, the fallback's two too; its p95 is what GetUsage says.
    const models = await rows('by-model');
    expect(models.map((r) => [r[0], r[1], r[2]])).toEqual([['small-fast', '10', '100.0%']]);
    const byModel = await getUsage(mesh.usage, KEYS.admin, { groupBy: [UsageGroupBy.USAGE_GROUP_BY_MODEL] });
    if (!byModel.ok) throw byModel.error;
    const p95 = byModel.value.rows.find((r) => r.model === 'small-fast')!.latencyP95Ms;
    expect(p95).toBeGreaterThan(0);
    expect(models[0]![3]).toBe(`≤ ${p95.toLocaleString('en-US')} ms`);
    // route, requests, failed, error rate, fallback rate
    expect((await rows('by-route')).map((r) => r.slice(0, 5))).toEqual([
      ['chat', '8', '0', '0.0%', '0.0%'],
      ['fallback', '2', '0', '0.0%', '100.0%'],
    ]);
    // The one tenant with a dollar budget (tier one-dollar) has spent nothing today.
    expect(await rows('budgets')).toEqual([['dollar', usd(0), usd(1_000_000), '0.0%']]);
    expect(await page.$$eval('#cost-chart rect', (r) => r.length)).toBeGreaterThan(0);
    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    await page.close();
  });

  it('shows a tenant key only its own tenant', async () => {
    const { page, text, rows } = await open(KEYS.startup);
    expect(await text('total-requests')).toBe('5');
    expect((await rows('by-tenant')).map((r) => r[0])).toEqual(['startup-co']);
    expect(await text('status')).toContain('Tenant startup-co');
    await page.close();
  });

  it('says why when the key is refused, and the data needs a key', async () => {
    const { page, text } = await open('sk-not-a-real-key-000000000');
    expect(await text('status')).toMatch(/Cannot show usage: .*key/i);
    await page.close();
    const res = await fetch(`http://${mesh.services.dashboardAddr}/dashboard/data`);
    expect(res.status).toBe(401);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
  });
});

