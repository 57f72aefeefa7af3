import type { RedisClient } from '@llmgw/redis';
import {
  COUNTER_NAMES,
  COUNTER_PROPS,
  DAY_MS,
  DIM_NAMES,
  HOUR_MS,
  LABEL_DIMS,
  MAX_LABEL_VALUES,
  OTHER_LABEL,
  dayStartMs,
  dimsOf,
  zeroCounters,
  factCounters,
  hourStartMs,
  rfc3339,
  type CounterName,
  type LabelDim,
  type UsageCell,
  type UsageDims,
  type UsageFact,
} from './buckets.js';

export interface CellQuery {
  /** Undefined means every tenant. */
  tenants?: readonly string[] | undefined;
  /** Hour buckets whose start is in [fromMs, toMs). */
  fromMs: number;
  toMs: number;
  /**
   * 'day': the whole UTC days of the range are read from day rollups (one read per tenant-day,
   * cells dated by the day's start) and only the hours at its ends from hour buckets. Default
   * 'hour': hour cells only.
   */
  grain?: 'hour' | 'day';
}

/** Aggregates in Redis (microservices mode) or in memory (monolithic mode); same contract. */
export interface UsageStore {
  /** Adds the event to its buckets unless its event id was already counted. True when counted. */
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

/** A day's label values are kept until the day is over (and its late events are in). */
const LABEL_TTL_SECONDS = 2 * 24 * 3600;

/**
 * Every Redis key the accountant uses. `{tenant}` is a cluster hash tag, so one event's dedupe
 * key, buckets, indexes and label sets share a slot and one Lua script may touch them all. Keys
 * hold tenant ids, times and label names only; label values (users, prompt versions, features)
 * are in hash fields and set members, never in key names.
 */
export const UsageKeys = {
  tenants: 'usage:tenants',
  hours: (tenant: string) => `usage:{${tenant}}:hours`,
  bucket: (tenant: string, hourIso: string) => `usage:{${tenant}}:${hourIso}`,
  days: (tenant: string) => `usage:{${tenant}}:days`,
  dayBucket: (tenant: string, dayIso: string) => `usage:{${tenant}}:day:${dayIso}`,
  /** The distinct values of a label seen on a day (bounded to MAX_LABEL_VALUES). */
  labels: (tenant: string, dayIso: string, dim: LabelDim) => `usage:{${tenant}}:labels:${dayIso}:${dim}`,
  dedupe: (tenant: string, eventId: string) => `usage:{${tenant}}:dedupe:${eventId}`,
} as const;

/** '|' separates a field's parts; '%' and '|' inside a value are escaped. */
const escapePart = (v: string) => v.replace(/[%|]/g, (c) => (c === '%' ? '%25' : '%7C'));
const unescapePart = (v: string) => v.replace(/%(25|7C)/g, (_, hex: string) => (hex === '25' ? '%' : '|'));

/** `<route>|<model>|<provider>|<key>|<intent>|<user>|<prompt version>|<feature>|<counter>`, each part escaped. */
export function cellField(d: UsageDims, counter: CounterName): string {
  return `${DIM_NAMES.map((n) => escapePart(d[n])).join('|')}|${counter}`;
}

const NO_DIMS: UsageDims = { route: '', model: '', provider: '', keyId: '', intent: '', user: '', promptVersion: '', feature: '' };

/** The dimensions of fields written before intent was one. */
const DIMS_BEFORE_INTENT = DIM_NAMES.filter((n) => n !== 'intent');

function parseField(field: string): { dims: UsageDims; counter: CounterName } | undefined {
  const parts = field.split('|');
  const counter = parts.pop() as CounterName;
  if (!COUNTER_NAMES.includes(counter)) return undefined;
  // Buckets written before the other dimensions existed: `<route>|<model>|<counter>`.
  if (parts.length === 2) return { dims: { ...NO_DIMS, route: parts[0]!, model: parts[1]! }, counter };
  const names = parts.length === DIMS_BEFORE_INTENT.length ? DIMS_BEFORE_INTENT : DIM_NAMES;
  if (parts.length !== names.length) return undefined;
  const dims = { ...NO_DIMS };
  names.forEach((n, i) => (dims[n] = unescapePart(parts[i]!)));
  return { dims, counter };
}

function cellsFromHash(tenantId: string, startMs: number, hash: Record<string, string>): UsageCell[] {
  const cells = new Map<string, UsageCell>();
  for (const [field, value] of Object.entries(hash)) {
    const f = parseField(field);
    if (!f) continue;
    // By the dimensions, not the field text: a legacy field and a new one of the same dimensions are one cell.
    const k = JSON.stringify(DIM_NAMES.map((n) => f.dims[n]));
    let cell = cells.get(k);
    if (!cell) {
      cell = { tenantId, startMs, ...f.dims, ...zeroCounters() };
      cells.set(k, cell);
    }
    cell[COUNTER_PROPS[f.counter]] += Number(value);
  }
  return [...cells.values()];
}

/** A counter is written when it is not 0, except requests, which every cell has. */
const written = (name: CounterName, v: number) => v !== 0 || name === 'requests';

/** Start times, [from, to) each, to read at each grain: see CellQuery.grain. */
export function readPlan(q: Pick<CellQuery, 'fromMs' | 'toMs' | 'grain'>): { hours: [number, number][]; days?: [number, number] } {
  const ceil = (ms: number, unit: number) => Math.ceil(ms / unit) * unit;
  // The hour starts in [fromMs, toMs) are exactly those in [hFrom, hTo).
  const hFrom = ceil(q.fromMs, HOUR_MS);
  const hTo = ceil(q.toMs, HOUR_MS);
  if (hTo <= hFrom) return { hours: [] };
  if (q.grain !== 'day') return { hours: [[hFrom, hTo]] };
  const dFrom = ceil(hFrom, DAY_MS);
  const dTo = dayStartMs(hTo);
  if (dTo <= dFrom) return { hours: [[hFrom, hTo]] };
  return { hours: [[hFrom, dFrom], [dTo, hTo]].filter(([a, b]) => b! > a!) as [number, number][], days: [dFrom, dTo] };
}

/**
 * KEYS: dedupe, hour bucket, hours index, day bucket, days index, label sets (user, prompt
 * version, feature). ARGV: dedupe ttl s, field prefix (route|model|provider|key|intent|), user, prompt
 * version, feature (escaped), label bound, label ttl s, hour ms, hour iso, day ms, day iso, then
 * the counters in COUNTER_NAMES order. The dedupe SET NX comes first; only a first sighting
 * touches the counters. A label value beyond the day's bound is counted as OTHER_LABEL.
 */
const RECORD_LUA = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) then return 0 end
local bound = tonumber(ARGV[6])
local ttl = tonumber(ARGV[7])
local function label(key, v)
  if v == '' or redis.call('SISMEMBER', key, v) == 1 then return v end
  if redis.call('SCARD', key) >= bound then return '${OTHER_LABEL}' end
  redis.call('SADD', key, v)
  redis.call('EXPIRE', key, ttl)
  return v
end
local p = ARGV[2] .. label(KEYS[6], ARGV[3]) .. '|' .. label(KEYS[7], ARGV[4]) .. '|' .. label(KEYS[8], ARGV[5]) .. '|'
local names = { ${COUNTER_NAMES.map((n) => `'${n}'`).join(', ')} }
for i, name in ipairs(names) do
  -- The argument as given: a Lua number would reach Redis as a float beyond 1e17.
  local v = ARGV[11 + i]
  if v ~= '0' or name == 'requests' then
    redis.call('HINCRBY', KEYS[2], p .. name, v)
    redis.call('HINCRBY', KEYS[4], p .. name, v)
  end
end
redis.call('ZADD', KEYS[3], ARGV[8], ARGV[9])
redis.call('ZADD', KEYS[5], ARGV[10], ARGV[11])
return 1
`;

type RedisWithRecord = RedisClient & {
  usageRecord(...keysThenArgs: (string | number)[]): Promise<number>;
};

/** How long a tenant written to the tenants index is not written again by this process. */
const TENANT_INDEX_REFRESH_MS = 60_000;

export class RedisUsageStore implements UsageStore {
  private readonly redis: RedisWithRecord;

  private readonly dedupeTtlSeconds: number;

  /** Tenant → when this process last added it to the tenants index. */
  private readonly indexed = new Map<string, number>();

  constructor(
    redis: RedisClient,
    opts: DedupeOptions,
    private readonly now: () => number = Date.now,
  ) {
    if (!('usageRecord' in redis)) redis.defineCommand('usageRecord', { numberOfKeys: 8, lua: RECORD_LUA });
    this.redis = redis as RedisWithRecord;
    this.dedupeTtlSeconds = Math.ceil(opts.dedupeTtlMs / 1000);
  }

  async record(f: UsageFact): Promise<boolean> {
    const hourMs = hourStartMs(f.occurredAtMs);
    const hourIso = rfc3339(hourMs);
    const dayMs = dayStartMs(f.occurredAtMs);
    const dayIso = rfc3339(dayMs);
    const c = factCounters(f);
    await this.index(f.tenantId);
    const counted = await this.redis.usageRecord(
      UsageKeys.dedupe(f.tenantId, f.eventId),
      UsageKeys.bucket(f.tenantId, hourIso),
      UsageKeys.hours(f.tenantId),
      UsageKeys.dayBucket(f.tenantId, dayIso),
      UsageKeys.days(f.tenantId),
      ...LABEL_DIMS.map((d) => UsageKeys.labels(f.tenantId, dayIso, d)),
      this.dedupeTtlSeconds,
      [f.route, f.model, f.provider, f.keyId, f.intent].map(escapePart).join('|') + '|',
      ...LABEL_DIMS.map((d) => escapePart(f[d])),
      MAX_LABEL_VALUES,
      LABEL_TTL_SECONDS,
      hourMs,
      hourIso,
      dayMs,
      dayIso,
      ...COUNTER_NAMES.map((n) => c[COUNTER_PROPS[n]]),
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
    const plan = readPlan(q);
    const ranges: { index: (t: string) => string; bucket: (t: string, iso: string) => string; from: number; to: number }[] = [
      ...plan.hours.map(([from, to]) => ({ index: UsageKeys.hours, bucket: UsageKeys.bucket, from, to })),
      ...(plan.days ? [{ index: UsageKeys.days, bucket: UsageKeys.dayBucket, from: plan.days[0], to: plan.days[1] }] : []),
    ];
    const lists = await Promise.all(
      tenants.flatMap((tenant) =>
        ranges.map(async (r) => {
          const list = await this.redis.zrangebyscore(r.index(tenant), r.from, `(${r.to}`, 'WITHSCORES');
          const found: { key: string; tenant: string; startMs: number }[] = [];
          for (let j = 0; j + 1 < list.length; j += 2) found.push({ key: r.bucket(tenant, list[j]!), tenant, startMs: Number(list[j + 1]) });
          return found;
        }),
      ),
    );
    const wanted = lists.flat();
    const hashes = await Promise.all(wanted.map((w) => this.redis.hgetall(w.key)));
    return wanted.flatMap((w, i) => cellsFromHash(w.tenant, w.startMs, hashes[i] ?? {}));
  }

  /**
   * Replaces every hour bucket from `fromMs` (a UTC day start) on by the hour cells `cells` (a
   * replay's), and every day rollup from that day on by their sums: buckets of those hours and
   * days that `cells` lacks are deleted. One transaction per tenant, since a tenant's keys share
   * its slot and two tenants' need not (Redis Cluster); the tenants index, in no tenant's slot,
   * takes every tenant written first, an idempotent add. Dedupe keys and label sets stay.
   */
  async replaceCells(cells: readonly UsageCell[], fromMs: number): Promise<void> {
    const byTenant = new Map<string, UsageCell[]>((await this.redis.smembers(UsageKeys.tenants)).map((t) => [t, []]));
    for (const c of cells) {
      const list = byTenant.get(c.tenantId);
      if (list) list.push(c);
      else byTenant.set(c.tenantId, [c]);
    }
    if (cells.length > 0) await this.redis.sadd(UsageKeys.tenants, ...new Set(cells.map((c) => c.tenantId)));
    for (const [t, tenantCells] of byTenant) {
      const tx = this.redis.multi();
      for (const [index, bucket] of [[UsageKeys.hours, UsageKeys.bucket], [UsageKeys.days, UsageKeys.dayBucket]] as const) {
        for (const iso of await this.redis.zrangebyscore(index(t), fromMs, '+inf')) tx.del(bucket(t, iso));
        tx.zremrangebyscore(index(t), fromMs, '+inf');
      }
      for (const c of tenantCells) {
        const hourIso = rfc3339(c.startMs);
        const dayMs = dayStartMs(c.startMs);
        const dayIso = rfc3339(dayMs);
        tx.zadd(UsageKeys.hours(t), c.startMs, hourIso);
        tx.zadd(UsageKeys.days(t), dayMs, dayIso);
        for (const name of COUNTER_NAMES) {
          const v = c[COUNTER_PROPS[name]];
          if (!written(name, v)) continue;
          tx.hset(UsageKeys.bucket(t, hourIso), cellField(c, name), v);
          tx.hincrby(UsageKeys.dayBucket(t, dayIso), cellField(c, name), v);
        }
      }
      await tx.exec();
    }
  }
}

export class MemoryUsageStore implements UsageStore {
  private readonly seen = new Map<string, number>();
  /** tenant → grain → start ms → field → value */
  private readonly buckets = new Map<string, Record<'hour' | 'day', Map<number, Map<string, number>>>>();
  /** tenant, day, label → the day's distinct values, and when one was last added (they expire as in Redis). */
  private readonly labelValues = new Map<string, { values: Set<string>; addedAt: number }>();
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
    const dayMs = dayStartMs(f.occurredAtMs);
    const dims = dimsOf(f);
    for (const d of LABEL_DIMS) dims[d] = this.label(f.tenantId, dayMs, d, f[d], now);
    let grains = this.buckets.get(f.tenantId);
    if (!grains) this.buckets.set(f.tenantId, (grains = { hour: new Map(), day: new Map() }));
    for (const [grain, startMs] of [['hour', hourStartMs(f.occurredAtMs)], ['day', dayMs]] as const) {
      let bucket = grains[grain].get(startMs);
      if (!bucket) grains[grain].set(startMs, (bucket = new Map()));
      for (const name of COUNTER_NAMES) {
        const v = c[COUNTER_PROPS[name]];
        if (!written(name, v)) continue;
        const field = cellField(dims, name);
        bucket.set(field, (bucket.get(field) ?? 0) + v);
      }
    }
    return true;
  }

  /** The value as counted: itself while the day has room for it, else OTHER_LABEL. */
  private label(tenantId: string, dayMs: number, dim: LabelDim, value: string, now: number): string {
    if (value === '') return value;
    const key = `${tenantId}\u0000${dayMs}\u0000${dim}`;
    let set = this.labelValues.get(key);
    if (!set) this.labelValues.set(key, (set = { values: new Set(), addedAt: now }));
    if (set.values.has(value)) return value;
    if (set.values.size >= MAX_LABEL_VALUES) return OTHER_LABEL;
    set.values.add(value);
    set.addedAt = now;
    return value;
  }

  async cells(q: CellQuery): Promise<UsageCell[]> {
    const plan = readPlan(q);
    const out: UsageCell[] = [];
    const read = (tenant: string, grain: 'hour' | 'day', [from, to]: [number, number]) => {
      for (const [startMs, bucket] of this.buckets.get(tenant)?.[grain] ?? []) {
        if (startMs < from || startMs >= to) continue;
        out.push(...cellsFromHash(tenant, startMs, Object.fromEntries([...bucket].map(([k, v]) => [k, String(v)]))));
      }
    };
    for (const tenant of q.tenants ?? [...this.buckets.keys()]) {
      for (const range of plan.hours) read(tenant, 'hour', range);
      if (plan.days) read(tenant, 'day', plan.days);
    }
    return out;
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < 60_000) return;
    this.lastSweep = now;
    for (const [k, until] of this.seen) if (until <= now) this.seen.delete(k);
    for (const [k, set] of this.labelValues) if (set.addedAt + LABEL_TTL_SECONDS * 1000 <= now) this.labelValues.delete(k);
  }
}
