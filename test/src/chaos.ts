import { Redis } from 'ioredis';
import { expect } from 'vitest';
import { UsageServiceClient } from '@llmgw/proto/v1';
import type { SimulatorBill } from '@llmgw/provider-simulator';
import { METRICS_PORT_OFFSET } from '@llmgw/runtime';
import { eventually, getUsage, type TestMesh } from './harness.js';

/** Micro-dollars per token of each upstream model of test/fixtures/chaos.test.yaml. */
export const CHAOS_PRICES: Record<string, { input: number; output: number }> = {
  'chaos-fast': { input: 1, output: 2 },
  'chaos-slow-2000': { input: 3, output: 5 },
  'chaos-stalled-slow-4000': { input: 7, output: 11 },
};

export const CHAOS_KEYS = { tenant: 'sk-chaos-tenant-000000000000', admin: 'sk-chaos-admin-0000000000000' } as const;
export const CHAOS_TENANT = 'chaos-co';

export interface Totals {
  requests: number;
  inputTokens: number;
  outputTokens: number;
  costMicros: number;
}

export async function simulatorBill(mesh: TestMesh): Promise<SimulatorBill> {
  const res = await fetch(`${mesh.simulator.url}/_simulator/bill`);
  return (await res.json()) as SimulatorBill;
}

/** The provider's bill, priced at the fixture's prices. */
export function pricedBill(bill: SimulatorBill): Totals {
  const t: Totals = { requests: 0, inputTokens: 0, outputTokens: 0, costMicros: 0 };
  for (const [model, line] of Object.entries(bill.models)) {
    const price = CHAOS_PRICES[model];
    if (!price) throw new Error(`the simulator billed a model the chaos fixture does not price: ${model}`);
    t.requests += line.requests;
    t.inputTokens += line.input_tokens;
    t.outputTokens += line.output_tokens;
    t.costMicros += line.input_tokens * price.input + line.output_tokens * price.output;
  }
  return t;
}

/** Asked of the accountant itself: some scenarios kill the edge. */
async function accountantTotals(mesh: TestMesh): Promise<Totals | undefined> {
  const client = mesh.dial(UsageServiceClient, 'usage-accountant');
  try {
    const r = await getUsage(client, CHAOS_KEYS.admin, { tenantId: CHAOS_TENANT });
    if (!r.ok || !r.value.total) return undefined;
    const { requests, inputTokens, outputTokens, costMicros } = r.value.total;
    return { requests, inputTokens, outputTokens, costMicros };
  } finally {
    client.close();
  }
}

/** Everything quota still holds for the tenant: reservation records still open, leases, and the day's dollar counter. */
export async function quotaLeftovers(redis: Redis): Promise<{ openReservations: number; leases: number; usdToday: number }> {
  const tag = `llmgw:quota:{${CHAOS_TENANT}}`;
  let openReservations = 0;
  for (const key of await redis.keys(`${tag}:r:*`)) {
    const raw = await redis.get(key);
    if (raw && (JSON.parse(raw) as { s?: string }).s === 'A') openReservations++;
  }
  let leases = 0;
  for (const key of await redis.keys(`${tag}:c:*:conc`)) leases += await redis.zcard(key);
  let usdToday = 0;
  for (const key of await redis.keys(`${tag}:c:tenant:usdd:*`)) usdToday += Number((await redis.get(key)) ?? 0);
  return { openReservations, leases, usdToday };
}

/** A Prometheus sample of a service of the mesh (started with `{ metrics: true }`), or undefined. */
export async function metricValue(mesh: TestMesh, service: keyof typeof METRICS_PORT_OFFSET, metric: string): Promise<number | undefined> {
  const res = await fetch(`http://127.0.0.1:${mesh.metricsBase! + METRICS_PORT_OFFSET[service]}/metrics`);
  const line = (await res.text()).split('\n').find((l) => l.startsWith(`${metric} `) || l.startsWith(`${metric}{`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/**
 * How every chaos scenario ends: the accountant's totals equal the provider's bill exactly, it
 * counted `requests` requests (one event each, no duplicate), and quota holds no open reservation,
 * no lease, and exactly the billed dollars in its budget counter. Returns the settled totals.
 */
export async function expectSettled(mesh: TestMesh, requests: number, timeoutMs = 20_000): Promise<Totals> {
  const billed = pricedBill(await eventually(() => simulatorBill(mesh), (b) => b.total.requests >= requests, timeoutMs));
  const counted = await eventually(
    () => accountantTotals(mesh),
    (t) => t !== undefined && t.requests >= billed.requests && t.costMicros >= billed.costMicros,
    timeoutMs,
  );
  expect(counted).toEqual(billed);
  expect(billed.requests).toBe(requests);
  const redis = new Redis(mesh.redis.url, { lazyConnect: true });
  try {
    await redis.connect();
    const left = await eventually(
      () => quotaLeftovers(redis),
      (l) => l.openReservations === 0 && l.leases === 0 && l.usdToday === billed.costMicros,
      timeoutMs,
    );
    expect(left).toEqual({ openReservations: 0, leases: 0, usdToday: billed.costMicros });
  } finally {
    redis.disconnect();
  }
  return billed;
}
