import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { status } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from 'nats';
import { connectNatsBus, natsConnectOptions, Subjects } from '@llmgw/events';
import { programArgs, REPO_ROOT } from '@llmgw/local-infra';
import { silentLogger } from '@llmgw/logging';
import { UsageRecorded, TokenSource } from '@llmgw/proto/v1';
import { CHAOS_KEYS, expectSettled, metricValue } from '../src/chaos.js';
import { startTcpProxy } from '../src/tcp-proxy.js';
import { chat, chatStream, eventually, startTestMesh, userChat, type TestMesh } from '../src/harness.js';

/*
 * Faults with real processes, a real Redis and a real NATS. Each scenario ends the same way
 * (expectSettled): the accountant's totals equal the provider simulator's bill exactly, one event
 * per request, and quota holds no open reservation, no lease, and exactly the billed dollars.
 */

const FIXTURE = fileURLToPath(new URL('../fixtures/chaos.test.yaml', import.meta.url));

let mesh: TestMesh | undefined;
afterEach(async () => {
  await mesh?.stop();
  mesh = undefined;
});

async function startChaosMesh(env: Record<string, string> = {}): Promise<TestMesh> {
  const outbox = join(mkdtempSync(join(tmpdir(), 'llmgw-chaos-')), 'usage.journal');
  mesh = await startTestMesh(FIXTURE, {
    USAGE_OUTBOX_PATH: outbox,
    USAGE_ACK_WAIT_MS: '1000',
    LOG_LEVEL: 'warn',
    ...env,
  }, { metrics: true });
  return mesh;
}

/** The executor's journal holds nothing that still has to be published. */
async function expectOutboxDrained(m: TestMesh): Promise<void> {
  const pending = await eventually(() => metricValue(m, 'provider-executor', OUTBOX_PENDING), (v) => v === 0, 15_000);
  expect(pending).toBe(0);
}

const OUTBOX_PENDING = 'llmgw_usage_outbox_pending';

/**
 * How many deliveries to a durable consumer of USAGE were redeliveries: every delivery takes a
 * consumer sequence, each stored event one stream sequence (USAGE holds only usage events).
 */
async function redeliveries(m: TestMesh, durable: string): Promise<number> {
  const nc = await connect(natsConnectOptions(m.nats.url));
  try {
    const info = await (await nc.jetstreamManager()).consumers.info('USAGE', durable);
    return info.delivered.consumer_seq - info.delivered.stream_seq;
  } finally {
    await nc.close();
  }
}

const accountantRedeliveries = (m: TestMesh) => redeliveries(m, 'usage-accountant');

/** Every usage event in the stream, decoded (duplicates included, if the stream kept any). */
async function streamEvents(m: TestMesh): Promise<UsageRecorded[]> {
  const bus = await connectNatsBus({ url: m.nats.url, name: 'chaos-test', logger: silentLogger() });
  try {
    const out: UsageRecorded[] = [];
    await bus.readAll(Subjects.usageRecorded, (data) => out.push(UsageRecorded.decode(data)));
    return out;
  } finally {
    await bus.close();
  }
}

/** `npm run usage:replay -- --check` against the mesh: the aggregates rebuilt from the stream equal the live ones. */
async function expectReplayIdentical(m: TestMesh): Promise<void> {
  const run = spawnSync(process.execPath, [...programArgs('services/usage-accountant/src/replay-main.ts'), '--check'], {
    cwd: REPO_ROOT,
    env: { ...process.env, NATS_URL: m.nats.url, REDIS_URL: m.redis.url, GATEWAY_CONFIG: FIXTURE, SIMULATOR_URL: m.simulator.url },
    encoding: 'utf8',
    timeout: 30_000,
  });
  expect(run.stdout).toMatch(/identical: \d+ cells/);
  expect(run.status).toBe(0);
}

/** Starts `total` requests evenly over `durationMs`; resolves with their status codes. */
async function paced(m: TestMesh, total: number, durationMs: number): Promise<number[]> {
  const calls: Promise<number>[] = [];
  const started = Date.now();
  for (let i = 0; i < total; i++) {
    const due = started + (i * durationMs) / total;
    if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
    calls.push(ask(m, i).then((r) => (r.ok ? status.OK : r.error.code)));
  }
  return Promise.all(calls);
}

const ask = (m: TestMesh, i: number, route = 'fast') => chat(m.gateway, CHAOS_KEYS.tenant, userChat(`chaos request ${i}`, { route }));

/** Runs `total` requests `concurrency` at a time; resolves with their status codes. */
async function load(m: TestMesh, total: number, concurrency: number, route = 'fast'): Promise<number[]> {
  const codes: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const r = await ask(m, next++, route);
        codes.push(r.ok ? status.OK : r.error.code);
      }
    }),
  );
  return codes;
}

describe('chaos', () => {
  it('NATS killed for 10 s during 2,000 requests: nothing lost, nothing counted twice, outbox drained', async () => {
    // This scenario is NATS's: on a starved 2-core runner quota's 100 ms Redis deadline would add
    // store_unavailable refusals, a different fault (services/quota/src/store-pause.test.ts).
    const m = await startChaosMesh({ QUOTA_REDIS_TIMEOUT_MS: '1000' });
    const run = paced(m, 2_000, 14_000);
    await new Promise((r) => setTimeout(r, 1_500));
    let held = 0;
    const sampler = setInterval(() => {
      void metricValue(m, 'provider-executor', OUTBOX_PENDING).then((v) => (held = Math.max(held, v ?? 0)));
    }, 250);
    await m.natsOutage(10_000);
    clearInterval(sampler);
    const codes = await run;
    // The outage was real: the executor's outbox held the events NATS could not take.
    expect(held).toBeGreaterThan(500);
    expect(codes.filter((c) => c !== status.OK)).toEqual([]);
    await expectSettled(m, 2_000, 40_000);
    await expectOutboxDrained(m);
    await expectReplayIdentical(m);
  }, 120_000);

  it('the accountant and quota SIGKILLed between their Redis writes and their acks, redelivered after the reservations expired: counted once', async () => {
    const m = await startChaosMesh();
    const accountantLink = await startTcpProxy(m.nats.port);
    const quotaLink = await startTcpProxy(m.nats.port);
    try {
      await m.services.restart('usage-accountant', { NATS_URL: accountantLink.url('nats') });
      await m.services.restart('quota', { NATS_URL: quotaLink.url('nats') });
      expect((await load(m, 20, 5)).every((c) => c === status.OK)).toBe(true);
      await expectSettled(m, 20);
      // From here both hear JetStream but JetStream never hears them: writes land, acks do not.
      accountantLink.freeze();
      quotaLink.freeze();
      expect((await load(m, 200, 20)).every((c) => c === status.OK)).toBe(true);
      await expectSettled(m, 220);
      await Promise.all([m.services.stopOne('usage-accountant', 'SIGKILL'), m.services.stopOne('quota', 'SIGKILL')]);
      accountantLink.thaw({ drop: true });
      quotaLink.thaw({ drop: true });
    } finally {
      await Promise.all([accountantLink.close(), quotaLink.close()]);
    }
    // Past reservation_ttl_ms (2 s): the redeliveries find expired reservations.
    await new Promise((r) => setTimeout(r, 2_500));
    await Promise.all([m.services.restart('usage-accountant'), m.services.restart('quota')]);
    await eventually(() => accountantRedeliveries(m), (n) => n >= 200, 15_000);
    expect(await accountantRedeliveries(m)).toBeGreaterThanOrEqual(200);
    expect(await redeliveries(m, 'quota-reconciler')).toBeGreaterThanOrEqual(200);
    await expectSettled(m, 220);
    await expectReplayIdentical(m);
  }, 90_000);

  it('two accountant replicas, AckWait 1 s, one of them slowed on a tenth of its Redis traffic: counted once', async () => {
    const m = await startChaosMesh();
    const slowRedis = await startTcpProxy(m.redis.port);
    try {
      slowRedis.delayClientChunks(() => (Math.random() < 0.1 ? 1_500 : 0));
      await m.services.addReplica('usage-accountant', { REDIS_URL: m.credentials.redisUrlOf('usage-accountant', slowRedis.port) });
      expect((await load(m, 1_000, 20)).every((c) => c === status.OK)).toBe(true);
      expect(await accountantRedeliveries(m)).toBeGreaterThan(0);
      // The link heals; events it made fail wait out their redelivery backoff (at most 60 s).
      slowRedis.delayClientChunks(() => 0);
      await expectSettled(m, 1_000, 90_000);
    } finally {
      await slowRedis.close();
    }
  }, 180_000);

  it('the executor SIGKILLed with streams waiting for a slow provider: estimated events on restart, equal to the bill', async () => {
    const m = await startChaosMesh();
    const streams = Array.from({ length: 20 }, (_, i) => chatStream(m.gateway, CHAOS_KEYS.tenant, userChat(`stalled ${i}`, { route: 'stalled' })));
    await eventually(async () => m.simulator.stats().openRequests, (open) => open >= 20, 10_000);
    await m.services.stopOne('provider-executor', 'SIGKILL');
    for (const s of await Promise.all(streams)) expect(s.error?.code).toBe(status.UNAVAILABLE);
    await m.services.restart('provider-executor');
    await expectSettled(m, 20);
    await expectOutboxDrained(m);
    const events = await streamEvents(m);
    expect(new Set(events.map((e) => e.requestId)).size).toBe(20);
    for (const e of events) {
      expect(e.tokenSource).toBe(TokenSource.TOKEN_SOURCE_ESTIMATED);
      expect(e.attempts.map((a) => a.reason)).toEqual(['executor_restarted']);
    }
  }, 60_000);

  it('the edge SIGKILLed with requests at a slow provider: every billed request is accounted for', async () => {
    const m = await startChaosMesh();
    const calls = Array.from({ length: 30 }, (_, i) => ask(m, i, 'slow'));
    await eventually(async () => m.simulator.stats().openRequests, (open) => open >= 30, 10_000);
    await m.services.stopOne('edge', 'SIGKILL');
    expect((await Promise.all(calls)).every((r) => !r.ok)).toBe(true);
    await expectSettled(m, 30);
  }, 60_000);

  it('Redis paused for 2 s: decisions within their timeout, then nothing left behind', async () => {
    const m = await startChaosMesh();
    expect((await load(m, 50, 10)).every((c) => c === status.OK)).toBe(true);
    const admin = new Redis(m.redis.url);
    try {
      await admin.call('CLIENT', 'PAUSE', '2000', 'ALL');
      const started = Date.now();
      const during = await Promise.all(
        Array.from({ length: 40 }, async (_, i) => {
          const t0 = Date.now();
          const r = await ask(m, 1000 + i);
          return { ms: Date.now() - t0, code: r.ok ? status.OK : r.error.code, limit: r.ok ? '' : r.error.metadata.get('x-ratelimit-name')[0] };
        }),
      );
      expect(Date.now() - started).toBeLessThan(2_000);
      // The dollar budget fails closed while its store does not answer: refused, quickly, naming why.
      for (const d of during) {
        expect(d.code).toBe(status.RESOURCE_EXHAUSTED);
        expect(d.ms).toBeLessThan(1_500);
      }
    } finally {
      admin.disconnect();
    }
    await new Promise((r) => setTimeout(r, 2_000));
    expect((await load(m, 50, 10)).every((c) => c === status.OK)).toBe(true);
    await expectSettled(m, 100);
  }, 60_000);
});
