import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, makeGenericClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNatsBus, PoisonEventError, Subjects, type NatsEventBus } from '@llmgw/events';
import { startNatsServer, startRedisServer, type LocalServer } from '@llmgw/local-infra';
import { silentLogger } from '@llmgw/logging';
import { createMetrics, type Metrics } from '@llmgw/metrics';
import { UsageRecorded } from '@llmgw/proto/v1';
import { connectRedis, type RedisClient } from '@llmgw/redis';
import { addrsFromEnv, type RunningService } from '@llmgw/runtime';
import { factOf, RedisUsageStore, runReplay, startUsageAccountant, UsageKeys, USAGE_SERVICE_NAME } from './index.js';

const T0 = Date.UTC(2025, 6, 1, 9, 0, 0);
const TENANTS = new Set(['acme', 'globex']);

function ev(p: Partial<UsageRecorded>): UsageRecorded {
  return UsageRecorded.fromPartial({ eventId: 'e1', tenantId: 'acme', route: 'chat', model: 'small', inputTokens: 100, outputTokens: 20, costMicros: 1_500, success: true, occurredAt: new Date(T0 + 60_000), ...p });
}
const encode = (p: Partial<UsageRecorded>) => UsageRecorded.encode(ev(p)).finish();

async function until(fn: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('usage event validation', () => {
  it.each([
    ['missing_event_id', { eventId: '' }],
    ['missing_tenant_id', { tenantId: '' }],
    ['unknown_tenant', { tenantId: 'initech' }],
    ['negative_tokens', { inputTokens: -1 }],
    ['negative_tokens', { outputTokens: -5 }],
    ['negative_cost', { costMicros: -1 }],
  ])('refuses an event as poison: %s', (reason, p) => {
    let err: unknown;
    try {
      factOf(ev(p), T0, TENANTS);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PoisonEventError);
    expect((err as PoisonEventError).reason).toBe(reason);
  });

  it('dates an event without occurred_at by when the bus stored it', () => {
    expect(factOf(ev({ occurredAt: undefined }), T0 + 5, TENANTS).occurredAtMs).toBe(T0 + 5);
    expect(factOf(ev({ tenantId: 'initech' }), T0, undefined).tenantId).toBe('initech');
  });
});

function healthCheck(port: number): Promise<string> {
  const Client = makeGenericClientConstructor(healthService, 'Health');
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as {
    Check: (req: object, opts: object, cb: (err: ServiceError | null, res: { status: string }) => void) => void;
    close(): void;
  };
  return new Promise((resolve, reject) => {
    client.Check({ service: USAGE_SERVICE_NAME }, { deadline: Date.now() + 3_000 }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res.status);
    });
  });
}

describe('usage-accountant with real NATS and Redis', () => {
  let storeDir: string;
  let configDir: string;
  let nats: LocalServer;
  let redisServer: LocalServer;
  let redis: RedisClient;
  let bus: NatsEventBus;
  let metrics: Metrics;
  let accountant: RunningService;

  beforeAll(async () => {
    storeDir = mkdtempSync(join(tmpdir(), 'llmgw-acct-nats-'));
    configDir = mkdtempSync(join(tmpdir(), 'llmgw-acct-cfg-'));
    writeFileSync(join(configDir, 'g.yaml'), 'tenants: { acme: { tier: startup }, globex: { tier: startup } }\n');
    [nats, redisServer] = await Promise.all([startNatsServer({ storeDir }), startRedisServer()]);
    redis = await connectRedis(redisServer.url, { logger: silentLogger() });
    bus = await connectNatsBus({ url: nats.url, name: 'accountant-test', logger: silentLogger() });
    metrics = createMetrics('usage-accountant', { defaultMetrics: false });
    accountant = await startUsageAccountant({
      config: { sections: { tenants: { acme: { tier: 't', limits: {} }, globex: { tier: 't', limits: {} } }, tiers: {}, alerts: { webhooks: [] } }, pollMs: 100 },
      configPath: join(configDir, 'g.yaml'),
      logger: silentLogger(),
      listenAddr: '127.0.0.1:0',
      addrs: addrsFromEnv({}),
      redis,
      bus,
      drainMs: 0,
      env: {},
      metrics,
    });
  });

  afterAll(async () => {
    await accountant?.close();
    await bus?.close();
    redis?.disconnect();
    await Promise.all([nats?.stop(), redisServer?.stop()]);
    rmSync(storeDir, { recursive: true, force: true });
    rmSync(configDir, { recursive: true, force: true });
  });

  const store = () => new RedisUsageStore(redis, { dedupeTtlMs: 60_000 });
  const total = async (tenant: string) => (await store().cells({ tenants: [tenant], fromMs: 0, toMs: Number.MAX_SAFE_INTEGER })).reduce((a, c) => a + c.requests, 0);
  const metric = async (name: string) => (await metrics.registry.getSingleMetric(name)?.get())?.values ?? [];

  it('counts valid events and sends refused ones to the dead letter, counted, never aggregated', async () => {
    await bus.publish(Subjects.usageRecorded, encode({ eventId: 'a1' }), 'a1');
    await bus.publish(Subjects.usageRecorded, encode({ eventId: 'bad-tenant', tenantId: 'initech' }), 'bad-tenant');
    await bus.publish(Subjects.usageRecorded, encode({ eventId: 'bad-cost', costMicros: -10 }), 'bad-cost');
    await bus.publish(Subjects.usageRecorded, encode({ eventId: 'g1', tenantId: 'globex' }), 'g1');
    await until(async () => (await total('globex')) === 1 && (await metric('llmgw_events_dead_lettered_total')).reduce((a, v) => a + v.value, 0) === 2);
    expect(await total('acme')).toBe(1);
    expect(await total('initech')).toBe(0);
    expect(await redis.smembers(UsageKeys.tenants)).not.toContain('initech');
    const refused = Object.fromEntries((await metric('llmgw_usage_events_refused_total')).map((v) => [v.labels.reason, v.value]));
    expect(refused).toEqual({ unknown_tenant: 1, negative_cost: 1 });
    expect((await metric('llmgw_events_dead_lettered_total'))[0]?.labels).toEqual({ stream: 'USAGE', consumer: 'usage-accountant', reason: 'poison' });
    const dead: string[] = [];
    await bus.readAll(Subjects.usageDeadLetter, (d) => void dead.push(UsageRecorded.decode(d).eventId));
    expect(dead.sort()).toEqual(['bad-cost', 'bad-tenant']);
  });

  it('a tenant added to the file is accepted without a restart', async () => {
    writeFileSync(join(configDir, 'g.yaml'), 'tenants: { acme: { tier: startup }, globex: { tier: startup }, hooli: { tier: startup } }\n');
    await new Promise((r) => setTimeout(r, 400));
    await bus.publish(Subjects.usageRecorded, encode({ eventId: 'h1', tenantId: 'hooli' }), 'h1');
    await until(async () => (await total('hooli')) === 1);
  });

  it('replay --check matches the live aggregates, reports a corrupted bucket, and --write repairs it', async () => {
    // A second copy under another msgId: the stream stores it, both paths count it once.
    await bus.publish(Subjects.usageRecorded, encode({ eventId: 'a1' }), 'a1-retry');
    await bus.publish(Subjects.usageRecorded, encode({ eventId: 'a2', occurredAt: new Date(T0 + 3_600_000), success: false }), 'a2');
    await until(async () => (await total('acme')) === 2);
    await new Promise((r) => setTimeout(r, 200));
    const lines: string[] = [];
    const replay = (mode: 'check' | 'write') => runReplay({ bus, store: store(), tenants: new Set(['acme', 'globex', 'hooli']), mode, out: (l) => lines.push(l) });

    expect(await replay('check')).toBe(0);
    expect(lines.at(-1)).toBe('identical: 4 cells');
    expect(lines.at(-2)).toMatch(/^replayed 7 events \(1 duplicates, refused: unknown_tenant=1 negative_cost=1\)/);

    // A field of the format before provider, key and labels: still read, as the same cell.
    await redis.hincrby(UsageKeys.bucket('acme', '2025-07-01T09:00:00Z'), 'chat|small|cost_micros', 7);
    await redis.del(UsageKeys.bucket('globex', '2025-07-01T09:00:00Z'));
    lines.length = 0;
    expect(await replay('check')).toBe(1);
    const table = lines.at(-1)!.split('\n');
    expect(table[0]).toBe('6 differences:');
    expect(table[1]).toMatch(/^tenant\s+hour\s+route\s+model\s+provider\s+key\s+intent\s+user\s+prompt_version\s+feature\s+counter\s+live\s+replay$/);
    expect(table.slice(2).map((l) => l.split(/\s+/))).toEqual([
      ['acme', '2025-07-01T09:00:00Z', 'chat', 'small', 'cost_micros', '1507', '1500'],
      ['globex', '2025-07-01T09:00:00Z', 'chat', 'small', 'cost_micros', '0', '1500'],
      ['globex', '2025-07-01T09:00:00Z', 'chat', 'small', 'input_tokens', '0', '100'],
      ['globex', '2025-07-01T09:00:00Z', 'chat', 'small', 'latency_le_100_ms', '0', '1'],
      ['globex', '2025-07-01T09:00:00Z', 'chat', 'small', 'output_tokens', '0', '20'],
      ['globex', '2025-07-01T09:00:00Z', 'chat', 'small', 'requests', '0', '1'],
    ]);

    expect(await replay('write')).toBe(0);
    lines.length = 0;
    expect(await replay('check')).toBe(0);
    expect(lines.at(-1)).toBe('identical: 4 cells');
  });

  it('reports NOT_SERVING while NATS is down and SERVING once consumption resumes', async () => {
    const port = (accountant as RunningService).port;
    expect(await healthCheck(port)).toBe('SERVING');
    await nats.stop();
    await until(async () => (await healthCheck(port)) === 'NOT_SERVING');
    expect((await metric('llmgw_event_consumer_up'))[0]?.value).toBe(0);
    nats = await startNatsServer({ port: nats.port, storeDir });
    await until(async () => (await healthCheck(port)) === 'SERVING');
    await until(() => bus.isUp);
    await bus.publish(Subjects.usageRecorded, encode({ eventId: 'g2', tenantId: 'globex' }), 'g2');
    await until(async () => (await total('globex')) === 2);
    expect((await metric('llmgw_event_consumer_up'))[0]?.value).toBe(1);
  });
});
