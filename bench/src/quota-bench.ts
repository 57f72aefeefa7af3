import { pathToFileURL } from 'node:url';
import { startRedisServer } from '@llmgw/local-infra';
import { silentLogger } from '@llmgw/logging';
import { RedisQuotaStore, type ResolvedLimit } from '@llmgw/quota';
import { createRedis } from '@llmgw/redis';
import { closedLoop, summarise, table, type Summary } from './stats.js';

/**
 * Quota reserve against a local redis-server, without gRPC: one Lua script (EVALSHA) per check,
 * five limits per request (requests/min, tokens/min, tokens/day, $/day, concurrency), spread
 * over 50 tenants. Open loop at a target rate (latency as a caller would see it at that load),
 * then closed loop with 64 in flight for the maximum rate.
 */
const TENANTS = 50;
const LIMITS: ResolvedLimit[] = [
  { name: 'tenant:requests_per_minute', scope: 'tenant', kind: 'requests_per_minute', value: 10_000_000 },
  { name: 'tenant:tokens_per_minute', scope: 'tenant', kind: 'tokens_per_minute', value: 2_000_000_000 },
  { name: 'tenant:tokens_per_day', scope: 'tenant', kind: 'tokens_per_day', value: 1_000_000_000_000 },
  { name: 'tenant:usd_per_day', scope: 'tenant', kind: 'usd_per_day', value: 1_000_000_000_000 },
  { name: 'tenant:concurrent_requests', scope: 'tenant', kind: 'concurrent_requests', value: 10_000_000 },
];

export async function runQuotaBench(opts: { targetRps?: number; seconds?: number } = {}): Promise<string> {
  const targetRps = opts.targetRps ?? 2_000;
  const seconds = opts.seconds ?? 5;
  const server = await startRedisServer();
  const redis = createRedis(server.url, { logger: silentLogger(), commandTimeoutMs: 100 });
  try {
    await redis.connect();
    const store = new RedisQuotaStore(redis, { leaseTtlMs: 120_000, reservationTtlMs: 600_000, now: Date.now, useRedisTime: true });
    let seq = 0;
    let denied = 0;
    const check = async () => {
      const n = seq++;
      const d = await store.reserve({ requestId: `bench-${n}`, tenantId: `t${n % TENANTS}`, limits: LIMITS, estimatedTokens: 1_500, estimatedCostMicros: 2_400 });
      if (!d.allowed) denied++;
    };
    await closedLoop(2_000, 16, check); // warm-up: JIT, script cache
    const open = await openLoop(targetRps, seconds * 1_000, check);
    const max = await closedLoop(20_000, 64, check);
    const rows = [row(`target ${targetRps}/s (open loop)`, open), row('unthrottled (64 in flight)', summarise(max.latencies, max.elapsedMs))];
    if (denied > 0) throw new Error(`bench misconfigured: ${denied} checks denied`);
    return table(['load', 'checks/s', 'p50 ms', 'p95 ms', 'p99 ms'], rows);
  } finally {
    redis.disconnect();
    await server.stop();
  }
}

function row(name: string, s: Summary): (string | number)[] {
  return [name, Math.round(s.rps), round3(s.p50), round3(s.p95), round3(s.p99)];
}

function round3(v: number): string {
  return v.toFixed(3);
}

/** Starts calls on schedule (targetRps) whatever the latency, so queueing shows in the figures. */
async function openLoop(targetRps: number, durationMs: number, fn: () => Promise<void>): Promise<Summary> {
  const latencies: number[] = [];
  const inFlight = new Set<Promise<void>>();
  const t0 = performance.now();
  let sent = 0;
  while (performance.now() - t0 < durationMs) {
    const due = Math.floor(((performance.now() - t0) / 1_000) * targetRps);
    for (; sent < due; sent++) {
      const t = performance.now();
      const p: Promise<void> = fn().then(() => {
        latencies.push(performance.now() - t);
        inFlight.delete(p);
      });
      inFlight.add(p);
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(inFlight);
  return summarise(latencies, performance.now() - t0);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(`${await runQuotaBench()}\n`);
}
