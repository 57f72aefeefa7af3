import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNatsBus, Subjects, type NatsEventBus } from '@llmgw/events';
import { callUnary, dial } from '@llmgw/grpc';
import { meshCredentials, startNatsServer, startRedisServer, startServiceProcesses, type LocalServer, type ServiceProcesses } from '@llmgw/local-infra';
import { silentLogger } from '@llmgw/logging';
import { QuotaDecision, QuotaServiceClient, type ReserveQuotaResponse } from '@llmgw/proto/quota';
import { UsageRecorded } from '@llmgw/proto/v1';
import { TEST_CONFIG } from '../src/harness.js';

// Two quota service processes sharing one Redis and one NATS, as two replicas behind a balancer.
let redis: LocalServer;
let nats: LocalServer;
let replicas: ServiceProcesses[];
let clients: QuotaServiceClient[];
let bus: NatsEventBus;

beforeAll(async () => {
  const creds = meshCredentials();
  [redis, nats] = await Promise.all([startRedisServer({ users: creds.redisUsers }), startNatsServer({ users: creds.natsUsers })]);
  // What is tested is exactness across replicas with Redis up. On a loaded CI machine a cold
  // burst of 600 scripts can take longer than the default 100 ms command timeout, and a timeout
  // means "Redis down": rates then fail open by design (degraded decisions, one more per replica).
  const env = { GATEWAY_CONFIG: TEST_CONFIG, SIMULATOR_URL: 'http://127.0.0.1:9', LOG_LEVEL: 'warn', QUOTA_REDIS_TIMEOUT_MS: '5000' };
  const serviceEnv = creds.serviceEnv({ redis, nats });
  replicas = await Promise.all([0, 1].map(async (i) => startServiceProcesses({ env, serviceEnv, services: ['quota'], logDir: mkdtempSync(join(tmpdir(), `llmgw-quota-${i}-`)) })));
  clients = replicas.map((r) => dial(QuotaServiceClient, r.addrs.quota));
  bus = await connectNatsBus({ url: nats.url, name: 'quota-replicas-test', logger: silentLogger() });
}, 60_000);

afterAll(async () => {
  for (const c of clients ?? []) c.close();
  await bus?.close();
  await Promise.all((replicas ?? []).map((r) => r.stop()));
  await Promise.all([redis?.stop(), nats?.stop()]);
});

const reserve = (i: number, tenantId: string, requestId: string, estimatedCostMicros = 0): Promise<ReserveQuotaResponse> => {
  const client = clients[i % 2]!;
  return callUnary(
    client.reserveQuota.bind(client),
    { requestId, tenantId, tier: '', route: 'chat', model: 'small-fast', estimatedTokens: 100, estimatedCostMicros },
    { timeoutMs: 10_000 },
  );
};

describe('two quota replicas on one Redis', () => {
  it('admit exactly 100 of 600 concurrent requests against 100 per minute', async () => {
    const results = await Promise.all(Array.from({ length: 600 }, (_, i) => reserve(i, 'hundred', `rpm-${i}`)));
    expect(results.filter((r) => r.degraded)).toHaveLength(0);
    const allowed = results.filter((r) => r.decision === QuotaDecision.QUOTA_DECISION_ALLOWED);
    expect(allowed).toHaveLength(100);
    const denied = results.filter((r) => r.decision === QuotaDecision.QUOTA_DECISION_DENIED);
    expect(denied).toHaveLength(500);
    expect(denied.every((d) => d.limit === 'tenant:requests_per_minute' && d.retryAfterMs > 0 && d.retryAfterMs <= 60_000)).toBe(true);
  });

  it('never let actual spend pass a dollar budget by more than the largest reservation in flight', async () => {
    const budget = 1_000_000;
    const estimate = 30_000;
    let spent = 0;
    let largestInFlight = 0;
    // Waves of concurrent requests; each admitted one "costs" between half and all of its estimate,
    // reported through a usage event on NATS that the replicas reconcile.
    for (let wave = 0; wave < 12; wave++) {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => reserve(i, 'dollar', `usd-${wave}-${i}`, estimate)));
      largestInFlight = Math.max(largestInFlight, estimate);
      await Promise.all(
        results.map(async (r, i) => {
          if (r.decision !== QuotaDecision.QUOTA_DECISION_ALLOWED) return;
          const actual = estimate / 2 + ((wave * 7 + i * 13) % (estimate / 2));
          spent += actual;
          const id = `usd-${wave}-${i}`;
          const ev = UsageRecorded.fromPartial({ eventId: id, requestId: id, tenantId: 'dollar', route: 'chat', model: 'small-fast', inputTokens: 50, outputTokens: 50, costMicros: actual, success: true });
          await bus.publish(Subjects.usageRecorded, UsageRecorded.encode(ev).finish(), id);
        }),
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(spent).toBeGreaterThan(budget * 0.8);
    expect(spent).toBeLessThanOrEqual(budget + largestInFlight);
  });
});
