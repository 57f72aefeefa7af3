import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeGenericClientConstructor, credentials, Server, ServerCredentials, status as grpcStatus, type Client, type ServiceError } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { callUnary, dial } from '@llmgw/grpc';
import { MemoryEventBus, Subjects } from '@llmgw/events';
import { startRedisServer, type LocalServer } from '@llmgw/local-infra';
import { silentLogger } from '@llmgw/logging';
import { AuthServiceService, type AuthServiceServer } from '@llmgw/proto/auth';
import { BudgetAlertRaised, QuotaDecision, QuotaServiceClient } from '@llmgw/proto/quota';
import { UsageRecorded } from '@llmgw/proto/v1';
import { createRedis, type RedisClient } from '@llmgw/redis';
import { addrsFromEnv, type RunningService } from '@llmgw/runtime';
import { QUOTA_SERVICE_NAME, startQuota } from './index.js';
import { testConfig, testConfigYaml } from './test-support.js';

const EXTRA = `
quota:
  on_store_down: { rates: fail_open, budgets: fail_closed, concurrency: fail_open }
  lease_ttl_ms: 60000
  reservation_ttl_ms: 600000
`;
const CONFIG = testConfig(EXTRA);

// Auth is another service: here a stand-in that knows three keys, so the admin view's checks can be tested alone.
const KEYS: Record<string, { tenantId: string; admin: boolean }> = {
  'admin-key': { tenantId: 'ops', admin: true },
  'acme-key': { tenantId: 'acme', admin: false },
};
async function startFakeAuth(): Promise<{ addr: string; stop(): void }> {
  const server = new Server();
  const impl: Pick<AuthServiceServer, 'authenticate'> = {
    authenticate: (call, cb) => {
      const k = KEYS[call.request.apiKey];
      if (!k) return cb({ code: grpcStatus.UNAUTHENTICATED, details: 'invalid API key' }, null);
      cb(null, { principal: { ...k, keyId: call.request.apiKey, tier: 'startup', scopes: [] }, cacheTtlMs: 1_000 });
    },
  };
  server.addService(AuthServiceService, { ...impl, createKey: () => undefined, revokeKey: () => undefined });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { addr: `127.0.0.1:${port}`, stop: () => server.forceShutdown() };
}
const as = (key: string) => ({ timeoutMs: 2_000, metadata: { authorization: `Bearer ${key}` } });

interface HealthClient extends Client {
  check(req: { service: string }, cb: (err: ServiceError | null, res: { status: string | number }) => void): void;
}
const HealthCtor = makeGenericClientConstructor(healthService, 'Health') as unknown as new (addr: string, creds: ReturnType<typeof credentials.createInsecure>) => HealthClient;

describe('quota gRPC service (real Redis, memory bus)', () => {
  let redisServer: LocalServer;
  let redis: RedisClient;
  let bus: MemoryEventBus;
  let svc: RunningService;
  let client: QuotaServiceClient;
  let health: HealthClient;
  let auth: { addr: string; stop(): void };
  let seq = 0;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'llmgw-quota-svc-'));
    const configPath = join(dir, 'gateway.yaml');
    writeFileSync(configPath, testConfigYaml(EXTRA));
    redisServer = await startRedisServer();
    redis = createRedis(redisServer.url, { logger: silentLogger() });
    await redis.connect();
    bus = new MemoryEventBus({ redeliverDelayMs: 50 });
    auth = await startFakeAuth();
    svc = await startQuota({
      config: { sections: CONFIG, redisTimeoutMs: 80, pollMs: 500 },
      configPath,
      logger: silentLogger(),
      listenAddr: '127.0.0.1:0',
      addrs: addrsFromEnv({ AUTH_ADDR: auth.addr }),
      redis,
      bus,
      drainMs: 0,
      env: {},
    });
    client = dial(QuotaServiceClient, `127.0.0.1:${svc.port}`);
    health = new HealthCtor(`127.0.0.1:${svc.port}`, credentials.createInsecure());
  });
  afterEach(async () => {
    if (redis.status === 'ready') await redis.flushall();
  });
  afterAll(async () => {
    client.close();
    health.close();
    await svc.close();
    auth.stop();
    redis.disconnect();
    await bus.close();
    await redisServer.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const reserve = (over: Partial<{ requestId: string; tenantId: string; route: string; model: string; estimatedTokens: number; estimatedCostMicros: number }> = {}) =>
    callUnary(
      client.reserveQuota.bind(client),
      { requestId: `g${++seq}`, tenantId: 'acme', tier: 'startup', route: 'support-chat', model: 'small-fast', estimatedTokens: 100, estimatedCostMicros: 1_000, ...over },
      { timeoutMs: 2_000 },
    );
  const status = async (tenantId = 'acme') =>
    Object.fromEntries((await callUnary(client.getQuotaStatus.bind(client), { tenantId }, as('admin-key'))).limits.map((l) => [l.limit, l.used]));
  const healthOf = () =>
    new Promise<string>((resolve, reject) =>
      health.check({ service: QUOTA_SERVICE_NAME }, (err, res) => (err ? reject(err) : resolve(String(res.status)))),
    );
  const publishUsage = (requestId: string, inputTokens: number, outputTokens: number, costMicros: number, msgId = requestId) =>
    bus.publish(
      Subjects.usageRecorded,
      UsageRecorded.encode(UsageRecorded.fromPartial({ eventId: requestId, requestId, tenantId: 'acme', route: 'support-chat', model: 'small-fast', inputTokens, outputTokens, costMicros, success: true })).finish(),
      msgId,
    );
  const until = async (cond: () => Promise<boolean>, ms = 5_000) => {
    const end = Date.now() + ms;
    while (!(await cond())) {
      if (Date.now() > end) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  it('reserves, denies as a response with the limit named, and reconciles from a usage event', async () => {
    const ok = await reserve({ requestId: 'e1', estimatedTokens: 4_000, estimatedCostMicros: 50_000 });
    expect(ok.decision).toBe(QuotaDecision.QUOTA_DECISION_ALLOWED);
    const denied = await reserve({ estimatedTokens: 2_000 });
    expect(denied).toMatchObject({ decision: QuotaDecision.QUOTA_DECISION_DENIED, limit: 'route:support-chat:tokens_per_day', limitValue: 5_000, remaining: 1_000 });
    expect(denied.retryAfterMs).toBeGreaterThan(0);
    await publishUsage('e1', 300, 200, 7_000);
    await until(async () => (await status())['route:support-chat:tokens_per_day'] === 500);
    expect(await status()).toMatchObject({ 'tenant:tokens_per_day': 500, 'tenant:usd_per_day': 7_000, 'tenant:concurrent_requests': 0, 'tenant:requests_per_minute': 1 }); // a denial is not counted
  });

  it('redelivered and out-of-order usage events count once', async () => {
    // The event arrives before the reservation is made (or after it expired), then again.
    await publishUsage('o1', 100, 50, 2_000, 'o1-a');
    await publishUsage('o1', 100, 50, 2_000, 'o1-b');
    await until(async () => (await status())['tenant:tokens_per_day'] === 150);
    const late = await reserve({ requestId: 'o1', estimatedTokens: 1_000, estimatedCostMicros: 9_000 });
    expect(late.decision).toBe(QuotaDecision.QUOTA_DECISION_ALLOWED);
    // A normal reservation whose event is delivered twice.
    await reserve({ requestId: 'o2', estimatedTokens: 1_000, estimatedCostMicros: 9_000 });
    await publishUsage('o2', 10, 10, 100, 'o2-a');
    await publishUsage('o2', 10, 10, 100, 'o2-b');
    await until(async () => (await status())['tenant:tokens_per_day'] === 170);
    await new Promise((r) => setTimeout(r, 100));
    expect(await status()).toMatchObject({ 'tenant:tokens_per_day': 170, 'tenant:usd_per_day': 2_100, 'tenant:requests_per_minute': 1 });
  });

  it('release is idempotent; unknown tenants are NOT_FOUND; reset clears the tenant', async () => {
    await reserve({ requestId: 'rel', estimatedTokens: 1_000, estimatedCostMicros: 9_000 });
    for (let i = 0; i < 2; i++) await callUnary(client.releaseQuota.bind(client), { requestId: 'rel', tenantId: 'acme' }, { timeoutMs: 2_000 });
    expect(await status()).toMatchObject({ 'tenant:tokens_per_day': 0, 'tenant:usd_per_day': 0, 'tenant:requests_per_minute': 1 });
    await expect(reserve({ tenantId: 'nobody' })).rejects.toMatchObject({ kind: 'not_found' });
    await callUnary(client.resetQuota.bind(client), { tenantId: 'acme' }, as('admin-key'));
    expect(await status()).toMatchObject({ 'tenant:requests_per_minute': 0 });
  });

  it('admin view: a tenant reads only its own status, only an admin resets, a key is required', async () => {
    await reserve({ requestId: 'view' });
    const own = await callUnary(client.getQuotaStatus.bind(client), { tenantId: '' }, as('acme-key'));
    expect(own.limits.find((l) => l.limit === 'tenant:requests_per_minute')).toMatchObject({ used: 1, limitValue: expect.any(Number) });
    await expect(callUnary(client.getQuotaStatus.bind(client), { tenantId: 'ratesonly' }, as('acme-key'))).rejects.toMatchObject({ kind: 'permission_denied' });
    await expect(callUnary(client.resetQuota.bind(client), { tenantId: 'acme' }, as('acme-key'))).rejects.toMatchObject({ kind: 'permission_denied' });
    await expect(callUnary(client.resetQuota.bind(client), { tenantId: 'acme' }, { timeoutMs: 2_000 })).rejects.toMatchObject({ kind: 'unauthenticated' });
    await expect(callUnary(client.getQuotaStatus.bind(client), { tenantId: 'acme' }, as('stolen-key'))).rejects.toMatchObject({ kind: 'unauthenticated' });
    expect(await status()).toMatchObject({ 'tenant:requests_per_minute': 1 });
  });

  it('publishes a budget alert once when 80% of a dollar budget is crossed', async () => {
    const alerts: BudgetAlertRaised[] = [];
    await bus.consume(Subjects.budgetAlert, 'test-alerts', async (data) => {
      const a = BudgetAlertRaised.decode(data);
      if (a.limit.startsWith('model:')) alerts.push(a); // earlier tests raised route alerts
    });
    await reserve({ model: 'large-reasoning', estimatedCostMicros: 850_000 });
    await reserve({ model: 'large-reasoning', estimatedCostMicros: 10_000 });
    await until(async () => alerts.length >= 1);
    await new Promise((r) => setTimeout(r, 50));
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ tenantId: 'acme', limit: 'model:large-reasoning:usd_per_day', thresholdPercent: 80, limitValue: 1_000_000, used: 850_000 });
  });

  it('Redis killed: budgets fail closed, rates fail open locally, health NOT_SERVING; recovers without restart', async () => {
    expect(await healthOf()).toBe('SERVING');
    await reserve({ requestId: 'before-crash' });
    const port = redisServer.port;
    await redisServer.stop();

    // acme has budgets: denied, fast, with the documented limit name.
    const started = Date.now();
    const closed = await reserve();
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(closed).toMatchObject({ decision: QuotaDecision.QUOTA_DECISION_DENIED, limit: 'store_unavailable', degraded: true, retryAfterMs: 1_000 });
    await until(async () => (await healthOf()) === 'NOT_SERVING');

    // ratesonly has only a request rate (2/min): the local limiter decides.
    const local = [await reserve({ tenantId: 'ratesonly' }), await reserve({ tenantId: 'ratesonly' }), await reserve({ tenantId: 'ratesonly' })];
    expect(local.map((d) => d.decision)).toEqual([QuotaDecision.QUOTA_DECISION_ALLOWED, QuotaDecision.QUOTA_DECISION_ALLOWED, QuotaDecision.QUOTA_DECISION_DENIED]);
    expect(local.every((d) => d.degraded)).toBe(true);
    expect(local[2]!.limit).toBe('tenant:requests_per_minute');
    // A usage event while Redis is down is redelivered later, not lost.
    await publishUsage('during-outage', 40, 2, 0);
    await expect(callUnary(client.getQuotaStatus.bind(client), { tenantId: 'acme' }, as('admin-key'))).rejects.toMatchObject({ kind: 'unavailable' });

    redisServer = await startRedisServer({ port });
    await until(async () => (await healthOf()) === 'SERVING', 10_000);
    const after = await reserve();
    expect(after).toMatchObject({ decision: QuotaDecision.QUOTA_DECISION_ALLOWED, degraded: false });
    await until(async () => (await status())['tenant:tokens_per_day'] === 142, 5_000);
  });
});
