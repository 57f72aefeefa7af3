import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNatsBus, Subjects, type NatsEventBus } from '@llmgw/events';
import { silentLogger } from '@llmgw/logging';
import { UsageRecorded } from '@llmgw/proto/v1';
import { chat, eventually, startTestMesh, userChat, type TestMesh } from '../src/harness.js';

/*
 * Alerts reach people: budget alerts from quota and token-growth alerts from the accountant
 * arrive at a configured webhook, signed, once each, even when the webhook fails at first.
 */

const FIXTURE = fileURLToPath(new URL('../fixtures/alerts.test.yaml', import.meta.url));
const SECRET = 'whsec-alerts-test-0123456789';
const KEYS = { growth: 'sk-alerts-growth-00000000000', budget: 'sk-alerts-budget-00000000000' };
const HOUR = 3_600_000;

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  alert: { kind: string; id: string; tenant_id: string; [k: string]: unknown };
}

let mesh: TestMesh;
let hook: Server;
let bus: NatsEventBus;
const received: Received[] = [];
/** The webhook refuses the first request of every alert once: deliveries must be retried. */
const refusedOnce = new Set<string>();

beforeAll(async () => {
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const alert = JSON.parse(body) as Received['alert'];
      if (!refusedOnce.has(alert.id)) {
        refusedOnce.add(alert.id);
        res.writeHead(503).end();
        return;
      }
      received.push({ headers: req.headers, body, alert });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/alerts`;
  mesh = await startTestMesh(FIXTURE, { ALERT_WEBHOOK_URL: url, ALERT_WEBHOOK_SECRET: SECRET, ALERT_CHECK_MS: '300' });
  bus = await connectNatsBus({ url: mesh.nats.url, name: 'alerts-test', logger: silentLogger() });
}, 60_000);
afterAll(async () => {
  await bus?.close();
  await mesh?.stop();
  await new Promise((r) => hook?.close(r));
});

const alertsOf = (kind: string, tenant: string) => received.filter((r) => r.alert.kind === kind && r.alert.tenant_id === tenant);

function expectSigned(r: Received): void {
  const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(r.headers['x-llmgw-signature'])) ?? [];
  expect(v1).toBe(createHmac('sha256', SECRET).update(`${t}.${r.body}`).digest('hex'));
  expect(Math.abs(Number(t) - Date.now() / 1000)).toBeLessThan(60);
  expect(r.headers['x-llmgw-alert-id']).toBe(r.alert.id);
}

describe('alerts through the mesh to a webhook', () => {
  it('a sudden spike of one route\'s tokens against its quiet day reaches the webhook once, signed', async () => {
    // A quiet day: 10 tokens an hour for the 24 hours before this one, as the executor would have recorded them.
    const thisHour = Math.floor(Date.now() / HOUR) * HOUR;
    for (let h = 1; h <= 24; h++) {
      const ev = UsageRecorded.fromPartial({ eventId: `quiet-${h}`, requestId: `quiet-${h}`, tenantId: 'growth-co', route: 'chat', model: 'small', inputTokens: 10, success: true, operation: 'chat', occurredAt: new Date(thisHour - h * HOUR + 60_000) });
      await bus.publish(Subjects.usageRecorded, UsageRecorded.encode(ev).finish(), ev.eventId);
    }
    for (let i = 0; i < 8; i++) {
      const res = await chat(mesh.gateway, KEYS.growth, userChat(`summarise ticket number ${i} for the weekly report`));
      if (!res.ok) throw res.error;
    }
    await eventually(async () => alertsOf('token_growth', 'growth-co').length, (n) => n > 0, 15_000);
    // Several checks later, still one: an alert is raised once per route and hour, and delivered once.
    await new Promise((r) => setTimeout(r, 1_500));
    const growth = alertsOf('token_growth', 'growth-co');
    expect(growth).toHaveLength(1);
    expect(growth[0]!.alert).toMatchObject({ route: 'chat', factor: 3, baseline_tokens_per_hour: 10 });
    expect(Number(growth[0]!.alert.tokens)).toBeGreaterThan(50);
    expectSigned(growth[0]!);
  }, 40_000);

  it('a budget crossing 80% reaches the webhook once per threshold and period, signed', async () => {
    for (let i = 0; i < 8; i++) await chat(mesh.gateway, KEYS.budget, userChat(`draft reply number ${i} to the customer`));
    await eventually(async () => alertsOf('budget', 'budget-co').length, (n) => n > 0, 15_000);
    await new Promise((r) => setTimeout(r, 1_500));
    const budget = alertsOf('budget', 'budget-co');
    expect(budget.map((b) => b.alert.threshold_percent)).toContain(80);
    expect(new Set(budget.map((b) => b.alert.id)).size).toBe(budget.length); // none twice
    for (const b of budget) {
      expect(b.alert).toMatchObject({ limit: 'tenant:usd_per_day', limit_value: 200 });
      expectSigned(b);
    }
  }, 40_000);
});
