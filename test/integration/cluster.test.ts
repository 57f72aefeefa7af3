import { fileURLToPath } from 'node:url';
import { status } from '@grpc/grpc-js';
import { connect, type JetStreamManager, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { natsConnectOptions } from '@llmgw/events';
import { redisUrl } from '@llmgw/local-infra';
import { silentLogger } from '@llmgw/logging';
import { connectRedis } from '@llmgw/redis';
import { UsageGroupBy, type ChatResponse } from '@llmgw/proto/v1';
import { chat, eventually, getUsage, userChat, type CallResult } from '../src/harness.js';
import { CLUSTER_REPLICAS, startClusterMesh, type ClusterMesh } from '../src/cluster-mesh.js';

/*
 * Past one machine: a 3-master Redis Cluster, a 3-node JetStream cluster (streams at R3), two
 * edges, two routers, three quota replicas, two executors and two accountants on one durable
 * consumer. Limits hold across the quota replicas, money survives the loss of a Redis master and
 * of a NATS node mid-load, and calls spread over every replica.
 */
const FIXTURE = fileURLToPath(new URL('../fixtures/cluster.test.yaml', import.meta.url));
const KEYS = { limited: 'sk-cluster-limited-00000000000', thrifty: 'sk-cluster-thrifty-00000000000', load: 'sk-cluster-load-000000000000000', admin: 'sk-cluster-admin-0000000000000' };
/** usd_per_day of tier `budget`, in micro-dollars. */
const BUDGET_MICROS = 2_000;

let mesh: ClusterMesh;
let nats: NatsConnection;
let jsm: JetStreamManager;
beforeAll(async () => {
  mesh = await startClusterMesh(FIXTURE);
  nats = await connect({ ...natsConnectOptions(mesh.nats.url), maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  jsm = await nats.jetstreamManager();
}, 120_000);
afterAll(async () => {
  await nats?.close();
  await mesh?.stop();
});

/** Runs `total` calls, at most `concurrency` at a time, `before(i)` awaited before call i starts. */
async function inWaves<T>(total: number, concurrency: number, call: (i: number) => Promise<T>, before: (i: number) => Promise<void> = async () => undefined): Promise<T[]> {
  const out: T[] = new Array(total);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < total; i = next++) {
      await before(i);
      out[i] = await call(i);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return out;
}

const ok = (rs: CallResult<ChatResponse>[]) => rs.filter((r) => r.ok).length;
const codes = (rs: CallResult<ChatResponse>[]) => rs.filter((r) => !r.ok).map((r) => (r.ok ? 0 : r.error.code));

/** Each process's share of a service's calls of `method` since `before`. */
async function shares(service: keyof typeof CLUSTER_REPLICAS, method: string, before: number[]): Promise<number[]> {
  const now = await mesh.metricPerProcess(service, 'grpc_server_handled_total', { method });
  const delta = now.map((n, i) => n - (before[i] ?? 0));
  const sum = delta.reduce((a, b) => a + b, 0);
  return delta.map((d) => d / sum);
}

async function usageOf(tenant: string) {
  const r = await getUsage(mesh.usage, KEYS.admin, { tenantId: tenant, groupBy: [UsageGroupBy.USAGE_GROUP_BY_TENANT] });
  if (!r.ok) throw r.error;
  return r.value.total;
}

describe('the mesh on clusters, with replicas of every service', () => {
  it('admits exactly 100 of 1,000 concurrent requests against 100 a minute, decided by three quota replicas', async () => {
    // Until every edge has a connection to every replica: its streams are placed on ready ones only.
    const start = await mesh.metricPerProcess('quota', 'grpc_server_handled_total', { method: 'ReserveQuota' });
    await eventually(
      async () => {
        await Promise.all(Array.from({ length: 12 }, (_, i) => chat(mesh.gateway, KEYS.admin, userChat(`warm up ${i}`))));
        return mesh.metricPerProcess('quota', 'grpc_server_handled_total', { method: 'ReserveQuota' });
      },
      (now) => now.every((n, i) => n > (start[i] ?? 0)),
      20_000,
    );
    const before = await mesh.metricPerProcess('quota', 'grpc_server_handled_total', { method: 'ReserveQuota' });
    const results = await Promise.all(Array.from({ length: 1_000 }, (_, i) => chat(mesh.gateway, KEYS.limited, userChat(`hello ${i}`), 60_000)));
    const refusals = codes(results).reduce<Record<string, number>>((m, c) => ({ ...m, [status[c] ?? c]: (m[status[c] ?? c] ?? 0) + 1 }), {});
    expect(ok(results), JSON.stringify(refusals)).toBe(100);
    expect(refusals).toEqual({ RESOURCE_EXHAUSTED: 900 });
    const quotaShares = await shares('quota', 'ReserveQuota', before);
    expect(quotaShares).toHaveLength(3);
    for (const s of quotaShares) expect(s).toBeGreaterThan(0.1);
  }, 90_000);

  it('holds a dollar budget across the replicas: never over it, and short of it by less than two reservations', async () => {
    const spent: number[] = [];
    let reservation = 0;
    const ask = async (label: string): Promise<boolean> => {
      const r = await chat(mesh.gateway, KEYS.thrifty, userChat(`budget ${label}`), 30_000);
      if (!r.ok) {
        expect(r.error.code).toBe(status.RESOURCE_EXHAUSTED);
        return false;
      }
      spent.push(r.value.usage?.costMicros ?? 0);
      // What a request reserves: its prompt and all of max_tokens (16) at 1 and 2 micro-dollars a token.
      reservation = Math.max(reservation, (r.value.usage?.inputTokens ?? 0) + 16 * 2);
      return true;
    };
    // Four callers at once until each is refused; then, once quota has reconciled what they spent, one at a time.
    await Promise.all([0, 1, 2, 3].map(async (w) => {
      for (let i = 0; await ask(`${w}-${i}`); i++);
    }));
    const sum = () => spent.reduce((a, b) => a + b, 0);
    await eventually(async () => (await usageOf('thrifty'))?.costMicros ?? 0, (c) => c === sum(), 30_000);
    await new Promise((r) => setTimeout(r, 500));
    for (let i = 0; await ask(`after-${i}`); i++) await new Promise((r) => setTimeout(r, 500));
    expect(spent.length).toBeGreaterThan(10);
    expect(sum()).toBeLessThanOrEqual(BUDGET_MICROS);
    expect(BUDGET_MICROS - sum()).toBeLessThan(2 * reservation);
    const total = await eventually(async () => usageOf('thrifty'), (t) => t?.costMicros === sum(), 30_000);
    expect(total?.costMicros).toBe(sum());
  }, 90_000);

  it('counts 2,000 requests exactly as the provider billed them while a Redis master and a NATS node die, and spreads them over every replica', async () => {
    // The master holding tenant "load"'s slot, and the node leading the usage stream: the hardest of each.
    const admin = await connectRedis(redisUrl('admin', mesh.credentials.redisUsers.admin, mesh.redis.ports[0] as number), { logger: silentLogger() });
    const slot = Number(await admin.call('CLUSTER', 'KEYSLOT', '{load}'));
    const ranges = (await admin.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
    admin.disconnect();
    const owner = ranges.find(([from, to]) => slot >= from && slot <= to)?.[2][1];
    const master = mesh.redis.ports.indexOf(owner as number);
    const leader = (await jsm.streams.info('USAGE')).cluster?.leader ?? '';
    const node = mesh.nats.names.indexOf(leader);
    expect(master).toBeGreaterThanOrEqual(0);
    expect(node).toBeGreaterThanOrEqual(0);

    mesh.simulator.resetBill();
    const methods = { edge: 'Chat', router: 'PlanRoute', quota: 'ReserveQuota', 'provider-executor': 'ExecuteChat' } as const;
    const before = Object.fromEntries(await Promise.all(Object.entries(methods).map(async ([s, m]) => [s, await mesh.metricPerProcess(s as keyof typeof methods, 'grpc_server_handled_total', { method: m })])));
    const faults = async (i: number) => {
      if (i === 400) await mesh.redis.kill(master);
      if (i === 700) await mesh.nats.killNode(node);
      if (i === 1_300) await Promise.all([mesh.redis.restart(master), mesh.nats.restartNode(node)]);
    };
    const results = await inWaves(2_000, 40, (i) => chat(mesh.gateway, KEYS.load, userChat(`load ${i}`), 30_000), faults);
    // A request refused while its quota store was down reached no provider and is billed nothing; most are answered.
    expect(ok(results)).toBeGreaterThan(1_000);

    const bill = mesh.simulator.bill().total;
    const total = await eventually(async () => usageOf('load'), (t) => t?.inputTokens === bill.input_tokens && t.outputTokens === bill.output_tokens, 90_000);
    expect({ requests: total?.requests, input: total?.inputTokens, output: total?.outputTokens }).toEqual({ requests: bill.requests, input: bill.input_tokens, output: bill.output_tokens });
    // At 1 and 2 micro-dollars a token every cost is exact: the money is the bill's tokens priced.
    expect(total?.costMicros).toBe(bill.input_tokens + 2 * bill.output_tokens);

    for (const [service, method] of Object.entries(methods) as [keyof typeof methods, string][]) {
      const s = await shares(service, method, before[service] as number[]);
      expect(s, service).toHaveLength(CLUSTER_REPLICAS[service]);
      // Each replica within 40% of an even share: 30–70% of two, 20–47% of three.
      for (const share of s) expect(share, `${service} ${JSON.stringify(s)}`).toBeGreaterThan(0.6 / s.length);
      for (const share of s) expect(share, `${service} ${JSON.stringify(s)}`).toBeLessThan(1.4 / s.length);
    }
  }, 240_000);
});
