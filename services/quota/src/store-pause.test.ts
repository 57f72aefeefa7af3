import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callUnary, dial } from '@llmgw/grpc';
import { MemoryEventBus } from '@llmgw/events';
import { startRedisServer, type LocalServer } from '@llmgw/local-infra';
import { silentLogger } from '@llmgw/logging';
import { QuotaDecision, QuotaServiceClient } from '@llmgw/proto/quota';
import { createRedis, Redis, type RedisClient } from '@llmgw/redis';
import { addrsFromEnv, type RunningService } from '@llmgw/runtime';
import { startQuota } from './index.js';
import { leaseKey, tenantTag } from './keys.js';
import { testConfig, testConfigYaml } from './test-support.js';

const COMMAND_TIMEOUT_MS = 250;
const PAUSE_MS = 2_000;
const EXTRA = `
quota:
  on_store_down: { rates: fail_open, budgets: fail_closed, concurrency: fail_open }
  lease_ttl_ms: 600000
  reservation_ttl_ms: 600000
`;

/**
 * Redis alive but not answering (CLIENT PAUSE from another connection): the quota service decides
 * within its command timeout by the store-down policy, and the reserves that ran in Redis after
 * the pause leave nothing behind (released by request id).
 */
describe('quota service while Redis is paused (real Redis)', () => {
  let redisServer: LocalServer;
  let shared: Redis;
  let admin: RedisClient;
  let quotaRedis: Redis | undefined;
  let svc: RunningService;
  let client: QuotaServiceClient;
  let dir: string;
  let seq = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'llmgw-quota-pause-'));
    const configPath = join(dir, 'gateway.yaml');
    writeFileSync(configPath, testConfigYaml(EXTRA));
    redisServer = await startRedisServer();
    shared = singleServer(createRedis(redisServer.url, { logger: silentLogger() }));
    await shared.connect();
    admin = createRedis(redisServer.url, { logger: silentLogger(), commandTimeoutMs: 5_000 });
    await admin.connect();
    // The service opens its own connection with duplicate(): keep it, to look at its queues.
    const duplicate = shared.duplicate.bind(shared);
    shared.duplicate = (override) => (quotaRedis = duplicate(override));
    svc = await startQuota({
      config: { sections: testConfig(EXTRA), redisTimeoutMs: COMMAND_TIMEOUT_MS, pollMs: 60_000 },
      configPath,
      logger: silentLogger(),
      listenAddr: '127.0.0.1:0',
      addrs: addrsFromEnv({}),
      redis: shared,
      bus: new MemoryEventBus(),
      drainMs: 0,
      env: {},
    });
    client = dial(QuotaServiceClient, `127.0.0.1:${svc.port}`);
  });
  afterAll(async () => {
    client.close();
    await svc.close();
    shared.disconnect();
    admin.disconnect();
    await redisServer.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const reserve = async (tenantId: string) => {
    const requestId = `p${++seq}`;
    const started = Date.now();
    const d = await callUnary(
      client.reserveQuota.bind(client),
      { requestId, tenantId, tier: 'startup', route: 'support-chat', model: 'small-fast', estimatedTokens: 100, estimatedCostMicros: 1_000 },
      { timeoutMs: 5_000 },
    );
    return { requestId, d, ms: Date.now() - started };
  };
  const until = async (cond: () => Promise<boolean>, ms: number) => {
    const end = Date.now() + ms;
    while (!(await cond())) {
      if (Date.now() > end) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  /** Reservation records by request id. */
  const records = async (tenantId: string, except: string) => {
    const prefix = `${tenantTag(tenantId)}:r:`;
    const keys = (await admin.keys(`${prefix}*`)).filter((k) => k !== prefix + except);
    const values = keys.length > 0 ? await admin.mget(...keys) : [];
    return values.map((v) => JSON.parse(v ?? '{}') as { s: string });
  };

  it('decides within the command timeout by policy, queues stay bounded, and the late reserves are released by id', async () => {
    expect(quotaRedis).toBeDefined();
    const q = quotaRedis!;
    expect(q.options).toMatchObject({ enableOfflineQueue: false, commandTimeout: COMMAND_TIMEOUT_MS }); // nothing queues while disconnected
    const warm = await reserve('acme'); // scripts loaded, connection warm; holds 100 tokens, 1,000 µ$, a lease
    expect(warm.d.degraded).toBe(false);

    // CLIENT PAUSE answers at once; from then on Redis holds every client's commands, the service's included.
    await admin.call('CLIENT', 'PAUSE', String(PAUSE_MS), 'ALL');
    const pausedAt = Date.now();
    let peakQueue = 0;
    const sampler = setInterval(() => (peakQueue = Math.max(peakQueue, q.commandQueue.length)), 10);

    // Two waves, the second while the first's releases are being retried.
    const wave = () => Promise.all([...Array.from({ length: 20 }, () => reserve('acme')), reserve('ratesonly'), reserve('ratesonly')]);
    const first = await wave();
    await new Promise((r) => setTimeout(r, 500));
    const second = await wave();
    expect(Date.now() - pausedAt).toBeLessThan(PAUSE_MS); // every decision was taken while Redis was paused
    const all = [...first, ...second];

    for (const { d, ms } of all) {
      expect(ms).toBeLessThan(COMMAND_TIMEOUT_MS + 300);
      expect(d.degraded).toBe(true);
    }
    // acme has budgets: fail closed. ratesonly (2 requests/min) is admitted by the local limiter.
    for (const { d } of all.filter((_, i) => i % 22 < 20)) expect(d).toMatchObject({ decision: QuotaDecision.QUOTA_DECISION_DENIED, limit: 'store_unavailable' });
    expect(first.slice(20).map((r) => r.d.decision)).toEqual([QuotaDecision.QUOTA_DECISION_ALLOWED, QuotaDecision.QUOTA_DECISION_ALLOWED]);
    expect(second.slice(20).map((r) => r.d.decision)).toEqual([QuotaDecision.QUOTA_DECISION_DENIED, QuotaDecision.QUOTA_DECISION_DENIED]);

    // Once Redis answers again: every timed-out reserve that ran in Redis has been released by id.
    await until(async () => (await records('acme', warm.requestId)).every((r) => r.s !== 'A') && q.commandQueue.length === 0, 5_000);
    clearInterval(sampler);
    // Commands wait in the command queue only until Redis answers; retries back off, so the queue
    // holds a few commands per reserve, never an unbounded backlog.
    expect(peakQueue).toBeGreaterThan(0);
    expect(peakQueue).toBeLessThan(all.length * 8);

    const acme = await records('acme', warm.requestId);
    expect(acme.map((r) => r.s)).toEqual(Array.from({ length: 40 }, () => 'X')); // released, or a tombstone the late reserve found
    expect(await admin.zrange(leaseKey('acme', 'tenant'), 0, -1)).toEqual([warm.requestId]);
    const budgets = await admin.keys(`${tenantTag('acme')}:c:*:usdd:*`);
    expect(budgets.length).toBeGreaterThan(0);
    for (const k of budgets) expect(await admin.get(k)).toBe('1000'); // the warm-up's estimate only
    for (const k of await admin.keys(`${tenantTag('acme')}:c:*:tpd:*`)) expect(await admin.get(k)).toBe('100');
    // ratesonly's late reserves ran too: two admitted (then released), two denied by its 2/min.
    expect((await records('ratesonly', '')).map((r) => r.s).sort()).toEqual(['D', 'D', 'X', 'X']);
  });
});

/** This suite inspects one server connection's command queue. */
function singleServer(client: RedisClient): Redis {
  if (!(client instanceof Redis)) throw new Error('expected a client of one Redis server');
  return client;
}
