import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '@llmgw/logging';
import { afterEach, describe, expect, it } from 'vitest';
import type { WebhookConfig } from '@llmgw/config';
import { MemoryAlertMarks } from './alerts.js';
import { signature, WebhookNotifier, type AlertPayload } from './webhooks.js';

const SECRET = 'whsec-0123456789abcdef';
const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** A webhook receiver that answers each request with the next status of `statuses` (then 200). */
async function receiver(statuses: number[] = []): Promise<{ url: string; got: { headers: IncomingHttpHeaders; body: string }[] }> {
  const got: { headers: IncomingHttpHeaders; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      got.push({ headers: req.headers, body });
      res.writeHead(statuses.shift() ?? 200).end();
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got };
}

const hook = (name: string, url: string, extra: Partial<WebhookConfig> = {}): WebhookConfig => ({ name, url, secret: SECRET, events: ['budget', 'token_growth'], timeout_ms: 2_000, ...extra });
const ALERT: AlertPayload = { kind: 'budget', id: 'budget:acme:tenant:usd_per_day:2026-12-02:80', tenant_id: 'acme', used: 80, limit_value: 100 };

function notifier(hooks: WebhookConfig[], marks = new MemoryAlertMarks(Date.now)) {
  return new WebhookNotifier({ webhooks: () => hooks, marks, fetch, logger: silentLogger(), now: Date.now, sleep: async () => undefined });
}

describe('WebhookNotifier', () => {
  it('posts the alert as JSON, signed with the webhook\'s secret over the timestamp and body', async () => {
    const r = await receiver();
    await notifier([hook('ops', r.url)]).deliver(ALERT);
    expect(r.got).toHaveLength(1);
    const { headers, body } = r.got[0]!;
    expect(JSON.parse(body)).toEqual(ALERT);
    expect(headers['content-type']).toBe('application/json');
    expect(headers['x-llmgw-alert-id']).toBe(ALERT.id);
    const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(headers['x-llmgw-signature'])) ?? [];
    expect(v1).toBe(createHmac('sha256', SECRET).update(`${t}.${body}`).digest('hex'));
    expect(signature(SECRET, Number(t), body)).toBe(headers['x-llmgw-signature']);
  });

  it('tries again after a refusal, and delivers once', async () => {
    const r = await receiver([500, 503]);
    await notifier([hook('ops', r.url)]).deliver(ALERT);
    expect(r.got).toHaveLength(3);
    expect(new Set(r.got.map((g) => g.body)).size).toBe(1);
  });

  it('throws when a webhook still fails, and on the next delivery sends only to the webhooks that missed it', async () => {
    const good = await receiver();
    const bad = await receiver([500, 500, 500]);
    const marks = new MemoryAlertMarks(Date.now);
    const n = notifier([hook('good', good.url), hook('bad', bad.url)], marks);
    await expect(n.deliver(ALERT)).rejects.toThrow(/webhook\(s\) bad/);
    await n.deliver(ALERT);
    expect(good.got).toHaveLength(1);
    expect(bad.got).toHaveLength(4);
    await n.deliver(ALERT); // a redelivered alert is not sent again
    expect(good.got.length + bad.got.length).toBe(5);
  });

  it('sends a webhook only the kinds it subscribed to', async () => {
    const r = await receiver();
    await notifier([hook('growth-only', r.url, { events: ['token_growth'] })]).deliver(ALERT);
    expect(r.got).toHaveLength(0);
  });

  it('never names the URL or the secret in what it throws', async () => {
    const n = notifier([hook('gone', `http://127.0.0.1:1/secret-path-token`)]);
    const err = (await n.deliver(ALERT).then(() => new Error('delivered'), (e: unknown) => e)) as Error;
    expect(err.message).toContain('gone');
    expect(err.message).not.toMatch(/secret-path-token|whsec/);
  });
});
