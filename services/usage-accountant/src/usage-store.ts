import type { Redis } from '@llmgw/redis';
import { COUNTER_NAMES, COUNTER_PROPS, factCounters, hourStartMs, rfc3339, type CounterName, type UsageCell, type UsageFact } from './buckets.js';

export interface CellQuery {
  /** Undefined means every tenant. */
  tenants?: readonly string[];
  /** Hour buckets whose start is in [fromMs, toMs). */
  fromMs: number;
  toMs: number;
}

/** Aggregates in Redis (microservices mode) or in memory (monolithic mode); same contract. */
export interface UsageStore {
  /** Adds the event to its bucket unless its event id was already counted. True when counted. */
  record(fact: UsageFact): Promise<boolean>;
  cells(q: CellQuery): Promise<UsageCell[]>;
}

/**
 * How long a counted event id is remembered: the bus's redelivery horizon (dedupeHorizonMs of
 * the topology, ~42 min by default), so the dedupe keys are bounded by rps × horizon (~1.3 M
 * at 500 events/s). A copy of an event delivered later than that is counted again; replay
 * (`npm run usage:replay -- --check`) dedupes over the whole stream and shows it.
 */
export interface DedupeOptions {
  dedupeTtlMs: number;
}

/**
 * Every Redis key the accountant uses. `{tenant}` is a cluster hash tag, so one event's dedupe
 * key, bucket and hour index share a slot and one Lua script may touch them all.
 */
export const UsageKeys = {
  tenants: 'usage:tenants',
  hours: (tenant: string) => `usage:{${tenant}}:hours`,
  bucket: (tenant: string, hourIso: string) => `usage:{${tenant}}:${hourIso}`,
  dedupe: (tenant: string, eventId: string) => `usage:{${tenant}}:dedupe:${eventId}`,
} as const;

/** `<route>|<model>|<counter>` */
export function cellField(route: string, model: string, counter: CounterName): string {
  return `${route}|${model}|${counter}`;
}

function parseField(field: string): { route: string; model: string; counter: CounterName } | undefined {
  const first = field.indexOf('|');
  const last = field.lastIndexOf('|');
  if (first < 0 || last <= first) return undefined;
  const counter = field.slice(last + 1) as CounterName;
  if (!COUNTER_NAMES.includes(counter)) return undefined;
  return { route: field.slice(0, first), model: field.slice(first + 1, last), counter };
}

function cellsFromHash(tenantId: string, hourMs: number, hash: Record<string, string>): UsageCell[] {
  const cells = new Map<string, UsageCell>();
  for (const [field, value] of Object.entries(hash)) {
    const f = parseField(field);
    if (!f) continue;
    const k = `${f.route}|${f.model}`;
    let cell = cells.get(k);
    if (!cell) {
      cell = { tenantId, hourMs, route: f.route, model: f.model, requests: 0, failedRequests: 0, inputTokens: 0, outputTokens: 0, costMicros: 0 };
      cells.set(k, cell);
    }
    cell[COUNTER_PROPS[f.counter]] += Number(value);
  }
  return [...cells.values()];
}

/**
 * KEYS: dedupe, bucket, hours index. ARGV: ttl s, field prefix, failed, in, out, cost, hour ms, hour iso.
 * The dedupe SET NX comes first; only a first sighting touches the counters.
 */
const RECORD_LUA = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) then return 0 end
local p = ARGV[2]
redis.call('HINCRBY', KEYS[2], p .. 'requests', 1)
if tonumber(ARGV[3]) > 0 then redis.call('HINCRBY', KEYS[2], p .. 'failed_requests', ARGV[3]) end
redis.call('HINCRBY', KEYS[2], p .. 'input_tokens', ARGV[4])
redis.call('HINCRBY', KEYS[2], p .. 'output_tokens', ARGV[5])
redis.call('HINCRBY', KEYS[2], p .. 'cost_micros', ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[7], ARGV[8])
return 1
`;

type RedisWithRecord = Redis & {
  usageRecord(dedupe: string, bucket: string, hours: string, ...args: (string | number)[]): Promise<number>;
};

/** How long a tenant written to the tenants index is not written again by this process. */
const TENANT_INDEX_REFRESH_MS = 60_000;

export class RedisUsageStore implements UsageStore {
  private readonly redis: RedisWithRecord;

  private readonly dedupeTtlSeconds: number;

  /** Tenant → when this process last added it to the tenants index. */
  private readonly indexed = new Map<string, number>();

  constructor(
    redis: Redis,
    opts: DedupeOptions,
    private readonly now: () => number = Date.now,
  ) {
    if (!('usageRecord' in redis)) redis.defineCommand('usageRecord', { numberOfKeys: 3, lua: RECORD_LUA });
    this.redis = redis as RedisWithRecord;
    this.dedupeTtlSeconds = Math.ceil(opts.dedupeTtlMs / 1000);
  }

  async record(f: UsageFact): Promise<boolean> {
    const hourMs = hourStartMs(f.occurredAtMs);
    const hourIso = rfc3339(hourMs);
    const c = factCounters(f);
    await this.index(f.tenantId);
    const counted = await this.redis.usageRecord(
      UsageKeys.dedupe(f.tenantId, f.eventId),
      UsageKeys.bucket(f.tenantId, hourIso),
      UsageKeys.hours(f.tenantId),
      this.dedupeTtlSeconds,
      `${f.route}|${f.model}|`,
      c.failedRequests,
      c.inputTokens,
      c.outputTokens,
      c.costMicros,
      hourMs,
      hourIso,
    );
    return counted === 1;
  }

  /**
   * Adds the tenant to the tenants index, at most once a minute per tenant: every event would
   * otherwise pay a second Redis command for a set that barely changes (tenants are bounded by the
   * config). Idempotent, so it may run outside the exactly-once script (and in another cluster
   * slot); an index deleted under a running accountant is back within the minute.
   */
  private async index(tenantId: string): Promise<void> {
    const at = this.now();
    if (at - (this.indexed.get(tenantId) ?? -Infinity) < TENANT_INDEX_REFRESH_MS) return;
    await this.redis.sadd(UsageKeys.tenants, tenantId);
    this.indexed.set(tenantId, at);
  }

  async cells(q: CellQuery): Promise<UsageCell[]> {
    const tenants = q.tenants ?? (await this.redis.smembers(UsageKeys.tenants));
    if (q.toMs <= q.fromMs || tenants.length === 0) return [];
    const hourLists = await Promise.all(
      tenants.map((t) => this.redis.zrangebyscore(UsageKeys.hours(t), q.fromMs, `(${q.toMs}`, 'WITHSCORES')),
    );
    const wanted: { tenant: string; hourIso: string; hourMs: number }[] = [];
    tenants.forEach((tenant, i) => {
      const list = hourLists[i] ?? [];
      for (let j = 0; j + 1 < list.length; j += 2) wanted.push({ tenant, hourIso: list[j]!, hourMs: Number(list[j + 1]) });
    });
    const hashes = await Promise.all(wanted.map((w) => this.redis.hgetall(UsageKeys.bucket(w.tenant, w.hourIso))));
    return wanted.flatMap((w, i) => cellsFromHash(w.tenant, w.hourMs, hashes[i] ?? {}));
  }

  /**
   * Replaces every bucket of the hours from `fromMs` on by `cells` (a replay's), in one
   * transaction: buckets of those hours that `cells` lacks are deleted. Dedupe keys stay.
   */
  async replaceCells(cells: readonly UsageCell[], fromMs: number): Promise<void> {
    const tenants = new Set([...(await this.redis.smembers(UsageKeys.tenants)), ...cells.map((c) => c.tenantId)]);
    const tx = this.redis.multi();
    for (const t of tenants) {
      const hours = await this.redis.zrangebyscore(UsageKeys.hours(t), fromMs, '+inf');
      for (const h of hours) tx.del(UsageKeys.bucket(t, h));
      tx.zremrangebyscore(UsageKeys.hours(t), fromMs, '+inf');
    }
    for (const c of cells) {
      const hourIso = rfc3339(c.hourMs);
      tx.sadd(UsageKeys.tenants, c.tenantId);
      tx.zadd(UsageKeys.hours(c.tenantId), c.hourMs, hourIso);
      for (const name of COUNTER_NAMES) {
        const v = c[COUNTER_PROPS[name]];
        // The live script writes failed_requests only when non-zero; the same here keeps buckets comparable field by field.
        if (v !== 0 || name !== 'failed_requests') tx.hset(UsageKeys.bucket(c.tenantId, hourIso), cellField(c.route, c.model, name), v);
      }
    }
    await tx.exec();
  }
}

export class MemoryUsageStore implements UsageStore {
  private readonly seen = new Map<string, number>();
  /** tenant → hour ms → field → value */
  private readonly buckets = new Map<string, Map<number, Map<string, number>>>();
  private lastSweep = 0;

  private readonly now: () => number;
  private readonly dedupeTtlMs: number;

  /** dedupeTtlMs Infinity: every event id for ever (a replay's). */
  constructor(opts: DedupeOptions & { now?: () => number }) {
    this.now = opts.now ?? Date.now;
    this.dedupeTtlMs = opts.dedupeTtlMs;
  }

  async record(f: UsageFact): Promise<boolean> {
    const now = this.now();
    this.sweep(now);
    const dedupe = `${f.tenantId}\u0000${f.eventId}`;
    const until = this.seen.get(dedupe);
    if (until !== undefined && until > now) return false;
    this.seen.set(dedupe, now + this.dedupeTtlMs);
    const c = factCounters(f);
    const hourMs = hourStartMs(f.occurredAtMs);
    let hours = this.buckets.get(f.tenantId);
    if (!hours) this.buckets.set(f.tenantId, (hours = new Map()));
    let bucket = hours.get(hourMs);
    if (!bucket) hours.set(hourMs, (bucket = new Map()));
    for (const name of COUNTER_NAMES) {
      const field = cellField(f.route, f.model, name);
      bucket.set(field, (bucket.get(field) ?? 0) + c[COUNTER_PROPS[name]]);
    }
    return true;
  }

  async cells(q: CellQuery): Promise<UsageCell[]> {
    const out: UsageCell[] = [];
    for (const tenant of q.tenants ?? [...this.buckets.keys()]) {
      for (const [hourMs, bucket] of this.buckets.get(tenant) ?? []) {
        if (hourMs < q.fromMs || hourMs >= q.toMs) continue;
        const hash = Object.fromEntries([...bucket].map(([k, v]) => [k, String(v)]));
        out.push(...cellsFromHash(tenant, hourMs, hash));
      }
    }
    return out;
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < 60_000) return;
    this.lastSweep = now;
    for (const [k, until] of this.seen) if (until <= now) this.seen.delete(k);
  }
}
