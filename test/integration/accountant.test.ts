import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAuth } from '@llmgw/auth';
import { authSectionsSchema, parseSections } from '@llmgw/config';
import { connectNatsBus, Subjects, type NatsEventBus } from '@llmgw/events';
import { callUnary, dial } from '@llmgw/grpc';
import { startNatsServer, startRedisServer, type LocalServer } from '@llmgw/local-infra';
import { silentLogger } from '@llmgw/logging';
import { GetUsageRequest, UsageGroupBy, UsageRecorded, UsageServiceClient, type GetUsageResponse } from '@llmgw/proto/v1';
import { connectRedis, type RedisClient } from '@llmgw/redis';
import { addrsFromEnv, type RunningService } from '@llmgw/runtime';
import { startUsageAccountant } from '@llmgw/usage-accountant';

const ACME_KEY = 'sk-it-acme-0123456789abcdef';
const GLOBEX_KEY = 'sk-it-globex-0123456789abcdef';
const ADMIN_KEY = 'sk-it-admin-0123456789abcdef';

// Auth's sections; the accountant reads none.
const authSections = parseSections(
  authSectionsSchema,
  `
tenants: { acme: { tier: startup }, globex: { tier: startup }, ops: { tier: startup } }
api_keys:
  - { id: acme, tenant: acme, key: "${ACME_KEY}" }
  - { id: globex, tenant: globex, key: "${GLOBEX_KEY}" }
  - { id: admin, tenant: ops, key: "${ADMIN_KEY}", admin: true }
`,
  'accountant-it.yaml',
  {},
);

const T0 = Date.UTC(2025, 6, 1, 9, 0, 0);

function event(p: Partial<UsageRecorded>): Uint8Array {
  return UsageRecorded.encode(
    UsageRecorded.fromPartial({ route: 'chat', model: 'small', provider: 'p', inputTokens: 100, outputTokens: 20, costMicros: 1_500, success: true, occurredAt: new Date(T0 + 60_000), ...p }),
  ).finish();
}

describe('usage-accountant with real Redis and NATS', () => {
  let redisServer: LocalServer;
  let natsServer: LocalServer;
  let redis: RedisClient;
  let bus: NatsEventBus;
  let auth: RunningService;
  let accountant: RunningService;
  let client: UsageServiceClient;

  beforeAll(async () => {
    [redisServer, natsServer] = await Promise.all([startRedisServer(), startNatsServer()]);
    redis = await connectRedis(redisServer.url, { logger: silentLogger() });
    bus = await connectNatsBus({ url: natsServer.url, name: 'accountant-it', logger: silentLogger() });
    const base = { configPath: 'accountant-it.yaml', logger: silentLogger(), redis, bus, drainMs: 0, env: {} };
    auth = await startAuth({ ...base, config: { sections: authSections }, listenAddr: '127.0.0.1:0', addrs: addrsFromEnv({}) });
    accountant = await startUsageAccountant({
      ...base,
      config: { sections: { tenants: { acme: { tier: 't', limits: {} }, globex: { tier: 't', limits: {} }, ops: { tier: 't', limits: {} } }, tiers: {}, alerts: { webhooks: [] } } },
      listenAddr: '127.0.0.1:0',
      addrs: { ...addrsFromEnv({}), auth: `127.0.0.1:${auth.port}` },
    });
    client = dial(UsageServiceClient, `127.0.0.1:${accountant.port}`);
  });

  afterAll(async () => {
    client?.close();
    await accountant?.close();
    await auth?.close();
    await bus?.close();
    redis?.disconnect();
    await Promise.all([redisServer?.stop(), natsServer?.stop()]);
  });

  const getUsage = (key: string | undefined, req: Partial<GetUsageRequest>): Promise<GetUsageResponse> =>
    callUnary(client.getUsage.bind(client), GetUsageRequest.fromPartial(req), {
      timeoutMs: 3_000,
      metadata: key ? { authorization: `Bearer ${key}` } : {},
    });

  async function until(fn: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await fn())) {
      if (Date.now() > deadline) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('counts an event once however often it arrives, and scopes GetUsage by key', async () => {
    const dup = event({ eventId: 'req-1', requestId: 'req-1', tenantId: 'acme' });
    await bus.publish(Subjects.usageRecorded, dup, 'req-1');
    await bus.publish(Subjects.usageRecorded, dup, 'req-1'); // dropped by JetStream (same msgId)
    await bus.publish(Subjects.usageRecorded, dup, 'req-1-retry'); // stored twice; dropped by the Redis dedupe
    await bus.publish(Subjects.usageRecorded, event({ eventId: 'req-2', tenantId: 'acme', model: 'big', success: false, costMicros: 500 }), 'req-2');
    await bus.publish(Subjects.usageRecorded, event({ eventId: 'req-3', tenantId: 'globex', occurredAt: new Date(T0 + 3_600_000) }), 'req-3');
    // The durable consumer delivers in order: once the last event is counted, the duplicates were seen.
    await until(async () => (await getUsage(ADMIN_KEY, { tenantId: 'globex' })).total?.requests === 1);

    const mine = await getUsage(ACME_KEY, { groupBy: [UsageGroupBy.USAGE_GROUP_BY_MODEL] });
    expect(mine.rows.map((r) => [r.model, r.requests, r.failedRequests, r.inputTokens, r.outputTokens, r.costMicros])).toEqual([
      ['big', 1, 1, 100, 20, 500],
      ['small', 1, 0, 100, 20, 1_500],
    ]);
    expect(mine.total).toMatchObject({ requests: 2, costMicros: 2_000, costUsd: 0.002 });

    await expect(getUsage(ACME_KEY, { tenantId: 'globex' })).rejects.toMatchObject({ kind: 'permission_denied' });
    const theirs = await getUsage(GLOBEX_KEY, {});
    expect(theirs.rows).toHaveLength(1);
    expect(theirs.total).toMatchObject({ requests: 1, inputTokens: 100 });

    const all = await getUsage(ADMIN_KEY, { groupBy: [UsageGroupBy.USAGE_GROUP_BY_TENANT, UsageGroupBy.USAGE_GROUP_BY_HOUR] });
    expect(all.rows.map((r) => [r.tenantId, r.bucket, r.requests])).toEqual([
      ['acme', '2025-07-01T09:00:00Z', 2],
      ['globex', '2025-07-01T10:00:00Z', 1],
    ]);
    expect(all.total?.requests).toBe(3);

    const window = await getUsage(ADMIN_KEY, { startTime: new Date(T0 + 3_600_000), endTime: new Date(T0 + 7_200_000) });
    expect(window.total?.requests).toBe(1);
  });

  it('refuses missing and unknown keys and bad ranges', async () => {
    await expect(getUsage(undefined, {})).rejects.toMatchObject({ kind: 'unauthenticated', message: expect.stringMatching(/^missing API key/) });
    await expect(getUsage('sk-not-a-key', {})).rejects.toMatchObject({ kind: 'unauthenticated', message: 'invalid API key' });
    await expect(getUsage(ADMIN_KEY, { startTime: new Date(T0 + 1), endTime: new Date(T0) })).rejects.toMatchObject({ kind: 'invalid_argument' });
  });
});
