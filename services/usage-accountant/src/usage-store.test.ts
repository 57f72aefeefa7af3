import { beforeEach, describe, expect, it, vi } from 'vitest';
import { REDIS_KINDS, useRedis } from '@llmgw/local-infra/vitest';
import { masters } from '@llmgw/redis';
import { LATENCY_PROPS, MAX_LABEL_VALUES, OTHER_LABEL, type UsageFact } from './buckets.js';
import { usageFact } from './test-facts.js';
import { cellField, MemoryUsageStore, readPlan, RedisUsageStore, UsageKeys, type UsageStore } from './usage-store.js';

const H = 3_600_000;
const T0 = Date.UTC(2025, 5, 1, 10, 0, 0);
const TTL_MS = 2_520_000; // 42 min, the default dedupe horizon

const D = 24 * H;
const DAY0 = Date.UTC(2025, 5, 1);

function fact(p: Partial<UsageFact>): UsageFact {
  return usageFact({ occurredAtMs: T0 + 60_000, inputTokens: 10, outputTokens: 4, costMicros: 70, ...p });
}

const NO_LABELS = { provider: '', keyId: '', intent: '', user: '', promptVersion: '', feature: '' };
/** The counters a test fact leaves at 0, but for its latency (0 ms) in the first histogram bucket. */
const NO_PARTS = { cachedInputTokens: 0, cacheWriteInputTokens: 0, reasoningTokens: 0, fallbackRequests: 0, cacheHits: 0, cacheSavedCostMicros: 0, ...Object.fromEntries(LATENCY_PROPS.map((p) => [p, 0])), latencyLe100Ms: 1 };

/** One contract, two stores: what monolithic mode and microservices mode both promise. */
function conformance(name: string, make: () => Promise<UsageStore>) {
  describe(`${name} usage store`, () => {
    it('counts an event id once', async () => {
      const s = await make();
      expect(await s.record(fact({}))).toBe(true);
      expect(await s.record(fact({}))).toBe(false);
      expect(await s.record(fact({ inputTokens: 999 }))).toBe(false);
      expect(await s.cells({ fromMs: 0, toMs: T0 + 10 * H })).toEqual([
        { tenantId: 'acme', startMs: T0, route: 'chat', model: 'small', ...NO_LABELS, requests: 1, failedRequests: 0, inputTokens: 10, outputTokens: 4, ...NO_PARTS, costMicros: 70 },
      ]);
    });

    it('counts cache hits and what they saved beside the requests, with no tokens or cost', async () => {
      const s = await make();
      await s.record(fact({ eventId: 'miss' }));
      await s.record(fact({ eventId: 'hit-1', inputTokens: 0, outputTokens: 0, costMicros: 0, cacheHit: true, cacheSavedCostMicros: 70 }));
      await s.record(fact({ eventId: 'hit-2', inputTokens: 0, outputTokens: 0, costMicros: 0, cacheHit: true, cacheSavedCostMicros: 70 }));
      const [cell] = await s.cells({ fromMs: 0, toMs: T0 + 10 * H });
      expect(cell).toMatchObject({ requests: 3, cacheHits: 2, cacheSavedCostMicros: 140, inputTokens: 10, costMicros: 70 });
    });

    it('sums by tenant, route, model and hour, failures included', async () => {
      const s = await make();
      await s.record(fact({ eventId: 'a' }));
      await s.record(fact({ eventId: 'b', success: false, inputTokens: 5, outputTokens: 0, costMicros: 3 }));
      await s.record(fact({ eventId: 'c', model: 'big' }));
      await s.record(fact({ eventId: 'd', occurredAtMs: T0 + H + 1 }));
      await s.record(fact({ eventId: 'e', tenantId: 'globex', route: 'embed' }));
      const cells = await s.cells({ fromMs: 0, toMs: T0 + 10 * H });
      const key = (c: { tenantId: string; startMs: number; route: string; model: string }) => `${c.tenantId}/${c.startMs - T0}/${c.route}/${c.model}`;
      const byKey = Object.fromEntries(cells.map((c) => [key(c), [c.requests, c.failedRequests, c.inputTokens, c.outputTokens, c.costMicros]]));
      expect(byKey).toEqual({
        'acme/0/chat/small': [2, 1, 15, 4, 73],
        'acme/0/chat/big': [1, 0, 10, 4, 70],
        [`acme/${H}/chat/small`]: [1, 0, 10, 4, 70],
        'globex/0/embed/small': [1, 0, 10, 4, 70],
      });
    });

    it('selects hours whose start is in [from, to) and the given tenants', async () => {
      const s = await make();
      for (let i = 0; i < 4; i++) await s.record(fact({ eventId: `h${i}`, occurredAtMs: T0 + i * H + 5 }));
      await s.record(fact({ eventId: 'g', tenantId: 'globex' }));
      const hours = async (fromMs: number, toMs: number, tenants?: string[]) =>
        (await s.cells({ fromMs, toMs, tenants })).map((c) => `${c.tenantId}@${(c.startMs - T0) / H}`).sort();
      expect(await hours(T0 + H, T0 + 3 * H, ['acme'])).toEqual(['acme@1', 'acme@2']);
      expect(await hours(T0 + 1, T0 + 3 * H + 1, ['acme'])).toEqual(['acme@1', 'acme@2', 'acme@3']);
      expect(await hours(T0, T0 + 1)).toEqual(['acme@0', 'globex@0']);
      expect(await hours(T0, T0 + H, ['globex', 'nobody'])).toEqual(['globex@0']);
      expect(await hours(T0, T0)).toEqual([]);
    });

    it('keeps every dimension apart: provider, key, user, prompt version, feature; with cache and reasoning parts', async () => {
      const s = await make();
      const labelled = { provider: 'oa', keyId: 'k1', user: 'ann|x%y', promptVersion: 'v1', feature: 'search' };
      await s.record(fact({ eventId: 'a', ...labelled, cachedInputTokens: 6, reasoningTokens: 2 }));
      await s.record(fact({ eventId: 'b', ...labelled, cacheWriteInputTokens: 3 }));
      await s.record(fact({ eventId: 'c', ...labelled, user: 'bob' }));
      await s.record(fact({ eventId: 'd', ...labelled, keyId: 'k2', promptVersion: 'v2', feature: '' }));
      const cells = await s.cells({ fromMs: 0, toMs: T0 + H });
      const rows = cells.map((c) => [c.provider, c.keyId, c.user, c.promptVersion, c.feature, c.requests, c.cachedInputTokens, c.cacheWriteInputTokens, c.reasoningTokens]).sort();
      expect(rows).toEqual([
        ['oa', 'k1', 'ann|x%y', 'v1', 'search', 2, 6, 3, 2],
        ['oa', 'k1', 'bob', 'v1', 'search', 1, 0, 0, 0],
        ['oa', 'k2', 'ann|x%y', 'v2', '', 1, 0, 0, 0],
      ]);
    });

    it('answers whole days from day rollups with the same sums as their hours, and the hours at the ends from hour buckets', async () => {
      const s = await make();
      // Every 5 hours over 12 days, from DAY0 22:00.
      for (let i = 0; i < 58; i++) await s.record(fact({ eventId: `m${i}`, occurredAtMs: DAY0 + 22 * H + i * 5 * H + 7, costMicros: i + 1 }));
      const fromMs = DAY0 + 20 * H + 30;
      const toMs = DAY0 + 10 * D + 13 * H;
      const sum = (cells: { requests: number; costMicros: number }[]) => cells.reduce((a, c) => [a[0]! + c.requests, a[1]! + c.costMicros], [0, 0]);
      const hourly = await s.cells({ fromMs, toMs });
      const daily = await s.cells({ fromMs, toMs, grain: 'day' });
      expect(sum(daily)).toEqual(sum(hourly));
      expect(sum(hourly)[0]).toBeGreaterThan(40);
      // Day cells start on a day: the 9 whole days from DAY0 + 1 day; the rest are hours of DAY0 and of day 10.
      const starts = daily.map((c) => c.startMs);
      expect(starts.filter((t) => t % D === 0 && t >= DAY0 + D && t < DAY0 + 10 * D).length).toBeGreaterThanOrEqual(9);
      expect(starts.every((t) => t >= DAY0 + 21 * H && t < toMs)).toBe(true);
    });

    it(`counts the values of a label beyond ${MAX_LABEL_VALUES} distinct per tenant and day as "${OTHER_LABEL}", the next day afresh`, async () => {
      const s = await make();
      for (let i = 0; i <= MAX_LABEL_VALUES; i++) await s.record(fact({ eventId: `u${i}`, user: `user-${i}` }));
      await s.record(fact({ eventId: 'again', user: 'user-0' }));
      await s.record(fact({ eventId: 'other-tenant', tenantId: 'globex', user: `user-${MAX_LABEL_VALUES}` }));
      await s.record(fact({ eventId: 'next-day', user: `user-${MAX_LABEL_VALUES}`, occurredAtMs: T0 + D }));
      const users = (cells: { tenantId: string; user: string; requests: number; startMs: number }[], tenant = 'acme', day = DAY0) =>
        new Map(cells.filter((c) => c.tenantId === tenant && c.startMs >= day && c.startMs < day + D).map((c) => [c.user, c.requests]));
      const cells = await s.cells({ fromMs: 0, toMs: T0 + 2 * D });
      expect(users(cells).size).toBe(MAX_LABEL_VALUES + 1);
      expect(users(cells).get(OTHER_LABEL)).toBe(1);
      expect(users(cells).get('user-0')).toBe(2);
      expect(users(cells, 'globex').get(`user-${MAX_LABEL_VALUES}`)).toBe(1);
      expect(users(cells, 'acme', DAY0 + D).get(`user-${MAX_LABEL_VALUES}`)).toBe(1);
    }, 30_000);
  });
}

describe('readPlan', () => {
  it.each([
    ['hours only', { fromMs: T0 + 1, toMs: T0 + 3 * H + 1, grain: 'hour' as const }, { hours: [[T0 + H, T0 + 4 * H]] }],
    ['a range inside one day', { fromMs: DAY0 + H, toMs: DAY0 + 5 * H, grain: 'day' as const }, { hours: [[DAY0 + H, DAY0 + 5 * H]] }],
    ['whole days between partial ones', { fromMs: DAY0 + 22 * H, toMs: DAY0 + 40 * D + 2 * H, grain: 'day' as const }, { hours: [[DAY0 + 22 * H, DAY0 + D], [DAY0 + 40 * D, DAY0 + 40 * D + 2 * H]], days: [DAY0 + D, DAY0 + 40 * D] }],
    ['exact days', { fromMs: DAY0, toMs: DAY0 + 90 * D, grain: 'day' as const }, { hours: [], days: [DAY0, DAY0 + 90 * D] }],
    ['an end 1 ms into the last hour of a day takes that hour: the whole day', { fromMs: DAY0, toMs: DAY0 + D - H + 1, grain: 'day' as const }, { hours: [], days: [DAY0, DAY0 + D] }],
    ['an end at the last hour of a day leaves it out: hours', { fromMs: DAY0, toMs: DAY0 + D - H, grain: 'day' as const }, { hours: [[DAY0, DAY0 + D - H]] }],
    ['empty', { fromMs: T0, toMs: T0, grain: 'day' as const }, { hours: [] }],
  ])('%s', (_name, q, want) => expect(readPlan(q)).toEqual(want));
});

conformance('memory', async () => new MemoryUsageStore({ now: () => T0, dedupeTtlMs: TTL_MS }));

describe('memory dedupe window', () => {
  it('forgets an event id after the dedupe horizon', async () => {
    let now = T0;
    const s = new MemoryUsageStore({ now: () => now, dedupeTtlMs: TTL_MS });
    expect(await s.record(fact({}))).toBe(true);
    now += TTL_MS - 1;
    expect(await s.record(fact({}))).toBe(false);
    now += 2;
    expect(await s.record(fact({}))).toBe(true);
  });
});

/** On one Redis and on a cluster, logged in as the accountant's ACL user; the admin looks at the keys. */
describe.each(REDIS_KINDS)('redis %s', (kind) => {
  const redis = useRedis(kind, 'usage-accountant');
  beforeEach(() => redis.flush());
  /** Every key of every master (KEYS reaches one node of a cluster only). */
  const allKeys = async () => (await Promise.all(masters(redis.admin()).map((m) => m.keys('*')))).flat();

  conformance(`redis ${kind}`, async () => new RedisUsageStore(redis(), { dedupeTtlMs: TTL_MS }));

  it('reads a field written before intent was a dimension as the same cell without an intent', async () => {
    const store = new RedisUsageStore(redis(), { dedupeTtlMs: TTL_MS });
    await store.record(fact({ eventId: 'ev-new', provider: 'oa', keyId: 'k1', user: 'ann', promptVersion: 'v1', intent: 'billing' }));
    const hour = UsageKeys.bucket('acme', '2025-06-01T10:00:00Z');
    expect(await redis.admin().hget(hour, 'chat|small|oa|k1|billing|ann|v1||requests')).toBe('1');
    await redis.admin().hset(hour, 'chat|small|oa|k1|ann|v1||requests', '2');
    await redis.admin().zadd(UsageKeys.hours('acme'), Date.UTC(2025, 5, 1, 10), '2025-06-01T10:00:00Z');
    const cells = await store.cells({ fromMs: 0, toMs: Date.UTC(2026, 0, 1), grain: 'hour' });
    expect(cells.map((c) => [c.intent, c.user, c.requests]).sort()).toEqual([
      ['', 'ann', 2],
      ['billing', 'ann', 1],
    ]);
  });

  it('writes the documented keys with the dedupe horizon as TTL and index sets', async () => {
    await new RedisUsageStore(redis(), { dedupeTtlMs: TTL_MS }).record(fact({ eventId: 'ev-9', provider: 'oa', keyId: 'k1', user: 'ann', promptVersion: 'v1' }));
    const ttl = await redis.admin().ttl(UsageKeys.dedupe('acme', 'ev-9'));
    expect(ttl).toBeGreaterThan(TTL_MS / 1000 - 10);
    expect(ttl).toBeLessThanOrEqual(TTL_MS / 1000);
    expect(await redis.admin().smembers(UsageKeys.tenants)).toEqual(['acme']);
    expect(await redis.admin().zrange(UsageKeys.hours('acme'), 0, -1)).toEqual(['2025-06-01T10:00:00Z']);
    const fields = {
      'chat|small|oa|k1||ann|v1||requests': '1',
      'chat|small|oa|k1||ann|v1||input_tokens': '10',
      'chat|small|oa|k1||ann|v1||output_tokens': '4',
      'chat|small|oa|k1||ann|v1||cost_micros': '70',
      'chat|small|oa|k1||ann|v1||latency_le_100_ms': '1',
    };
    expect(await redis.admin().hgetall(UsageKeys.bucket('acme', '2025-06-01T10:00:00Z'))).toEqual(fields);
    expect(await redis.admin().zrange(UsageKeys.days('acme'), 0, -1)).toEqual(['2025-06-01T00:00:00Z']);
    expect(await redis.admin().hgetall(UsageKeys.dayBucket('acme', '2025-06-01T00:00:00Z'))).toEqual(fields);
    expect(await redis.admin().smembers(UsageKeys.labels('acme', '2025-06-01T00:00:00Z', 'user'))).toEqual(['ann']);
    expect(await redis.admin().ttl(UsageKeys.labels('acme', '2025-06-01T00:00:00Z', 'user'))).toBeGreaterThan(24 * 3600);
    // Label values are in fields and set members only, never in key names.
    expect((await allKeys()).filter((k) => k.includes('ann'))).toEqual([]);
  });

  it('adds counters beyond 1e17 exactly (the script passes them on as integers)', async () => {
    const s = new RedisUsageStore(redis(), { dedupeTtlMs: TTL_MS });
    await s.record(fact({ eventId: 'big-1', costMicros: 2e17 }));
    await s.record(fact({ eventId: 'big-2', costMicros: 3 }));
    expect((await s.cells({ fromMs: 0, toMs: T0 + H })).map((c) => c.costMicros)).toEqual([2e17 + 3]);
  });

  it('answers three months from one read per tenant-day, not one per tenant-hour', async () => {
    const s = new RedisUsageStore(redis(), { dedupeTtlMs: TTL_MS });
    for (let d = 0; d < 92; d++) {
      for (const h of [1, 9, 17]) await s.record(fact({ eventId: `q${d}-${h}`, occurredAtMs: DAY0 + d * D + h * H, costMicros: 10 }));
    }
    const reads = vi.spyOn(redis(), 'hgetall');
    const cells = await s.cells({ tenants: ['acme'], fromMs: DAY0, toMs: DAY0 + 92 * D, grain: 'day' });
    expect(reads).toHaveBeenCalledTimes(92);
    reads.mockRestore();
    expect(cells.reduce((a, c) => a + c.costMicros, 0)).toBe(92 * 3 * 10);
  }, 30_000);

  it('replaces the buckets from a day on by a replay\'s cells, every tenant\'s, and indexes the tenants written', async () => {
    const s = new RedisUsageStore(redis(), { dedupeTtlMs: TTL_MS });
    // Counted: acme on day 0 and day 1, globex on day 1 only.
    await s.record(fact({ eventId: 'a0', occurredAtMs: T0 }));
    await s.record(fact({ eventId: 'a1', occurredAtMs: T0 + D }));
    await s.record(fact({ eventId: 'g1', tenantId: 'globex', occurredAtMs: T0 + D }));
    // The replay from day 1 on: acme's cost differs, globex has nothing, initech is new.
    const replay = new MemoryUsageStore({ now: () => T0, dedupeTtlMs: TTL_MS });
    await replay.record(fact({ eventId: 'a1', occurredAtMs: T0 + D, costMicros: 5 }));
    await replay.record(fact({ eventId: 'i1', tenantId: 'initech', occurredAtMs: T0 + D + H }));
    await s.replaceCells(await replay.cells({ fromMs: DAY0 + D, toMs: DAY0 + 2 * D }), DAY0 + D);
    const costs = async (grain: 'hour' | 'day') =>
      (await s.cells({ fromMs: DAY0, toMs: DAY0 + 2 * D, grain })).map((c) => `${c.tenantId}@${(c.startMs - DAY0) / H}h:${c.costMicros}`).sort();
    expect(await costs('hour')).toEqual(['acme@10h:70', 'acme@34h:5', 'initech@35h:70']);
    expect(await costs('day')).toEqual(['acme@0h:70', 'acme@24h:5', 'initech@24h:70']);
    expect((await redis.admin().smembers(UsageKeys.tenants)).sort()).toEqual(['acme', 'globex', 'initech']);
  });

  it('writes a tenant to the tenants index at most once a minute, and again after that', async () => {
    let now = 0;
    const s = new RedisUsageStore(redis(), { dedupeTtlMs: TTL_MS }, () => now);
    await s.record(fact({ eventId: 'ev-1' }));
    await redis.admin().del(UsageKeys.tenants);
    now = 59_999;
    await s.record(fact({ eventId: 'ev-2' }));
    expect(await redis.admin().smembers(UsageKeys.tenants)).toEqual([]);
    now = 60_000;
    await s.record(fact({ eventId: 'ev-3' }));
    expect(await redis.admin().smembers(UsageKeys.tenants)).toEqual(['acme']);
    expect(await redis.admin().hget(UsageKeys.bucket('acme', '2025-06-01T10:00:00Z'), cellField(fact({}), 'requests'))).toBe('3');
  });
});
