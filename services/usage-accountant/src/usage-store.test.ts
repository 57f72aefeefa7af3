import { describe, expect, it } from 'vitest';
import { useRedis } from '@llmgw/local-infra/vitest';
import type { UsageFact } from './buckets.js';
import { MemoryUsageStore, RedisUsageStore, UsageKeys, type UsageStore } from './usage-store.js';

const H = 3_600_000;
const T0 = Date.UTC(2025, 5, 1, 10, 0, 0);
const TTL_MS = 2_520_000; // 42 min, the default dedupe horizon

function fact(p: Partial<UsageFact>): UsageFact {
  return { eventId: 'e1', tenantId: 'acme', route: 'chat', model: 'small', occurredAtMs: T0 + 60_000, success: true, inputTokens: 10, outputTokens: 4, costMicros: 70, ...p };
}

/** One contract, two stores: what monolithic mode and microservices mode both promise. */
function conformance(name: string, make: () => Promise<UsageStore>) {
  describe(`${name} usage store`, () => {
    it('counts an event id once', async () => {
      const s = await make();
      expect(await s.record(fact({}))).toBe(true);
      expect(await s.record(fact({}))).toBe(false);
      expect(await s.record(fact({ inputTokens: 999 }))).toBe(false);
      expect(await s.cells({ fromMs: 0, toMs: T0 + 10 * H })).toEqual([
        { tenantId: 'acme', hourMs: T0, route: 'chat', model: 'small', requests: 1, failedRequests: 0, inputTokens: 10, outputTokens: 4, costMicros: 70 },
      ]);
    });

    it('sums by tenant, route, model and hour, failures included', async () => {
      const s = await make();
      await s.record(fact({ eventId: 'a' }));
      await s.record(fact({ eventId: 'b', success: false, inputTokens: 5, outputTokens: 0, costMicros: 3 }));
      await s.record(fact({ eventId: 'c', model: 'big' }));
      await s.record(fact({ eventId: 'd', occurredAtMs: T0 + H + 1 }));
      await s.record(fact({ eventId: 'e', tenantId: 'globex', route: 'embed' }));
      const cells = await s.cells({ fromMs: 0, toMs: T0 + 10 * H });
      const key = (c: { tenantId: string; hourMs: number; route: string; model: string }) => `${c.tenantId}/${c.hourMs - T0}/${c.route}/${c.model}`;
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
        (await s.cells({ fromMs, toMs, tenants })).map((c) => `${c.tenantId}@${(c.hourMs - T0) / H}`).sort();
      expect(await hours(T0 + H, T0 + 3 * H, ['acme'])).toEqual(['acme@1', 'acme@2']);
      expect(await hours(T0 + 1, T0 + 3 * H + 1, ['acme'])).toEqual(['acme@1', 'acme@2', 'acme@3']);
      expect(await hours(T0, T0 + 1)).toEqual(['acme@0', 'globex@0']);
      expect(await hours(T0, T0 + H, ['globex', 'nobody'])).toEqual(['globex@0']);
      expect(await hours(T0, T0)).toEqual([]);
    });
  });
}

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

describe('redis', () => {
  const redis = useRedis();

  conformance('redis', async () => {
    await redis().flushdb();
    return new RedisUsageStore(redis(), { dedupeTtlMs: TTL_MS });
  });

  it('writes the documented keys with the dedupe horizon as TTL and index sets', async () => {
    await redis().flushdb();
    await new RedisUsageStore(redis(), { dedupeTtlMs: TTL_MS }).record(fact({ eventId: 'ev-9' }));
    const ttl = await redis().ttl(UsageKeys.dedupe('acme', 'ev-9'));
    expect(ttl).toBeGreaterThan(TTL_MS / 1000 - 10);
    expect(ttl).toBeLessThanOrEqual(TTL_MS / 1000);
    expect(await redis().smembers(UsageKeys.tenants)).toEqual(['acme']);
    expect(await redis().zrange(UsageKeys.hours('acme'), 0, -1)).toEqual(['2025-06-01T10:00:00Z']);
    expect(await redis().hgetall(UsageKeys.bucket('acme', '2025-06-01T10:00:00Z'))).toEqual({
      'chat|small|requests': '1',
      'chat|small|input_tokens': '10',
      'chat|small|output_tokens': '4',
      'chat|small|cost_micros': '70',
    });
  });

  it('writes a tenant to the tenants index at most once a minute, and again after that', async () => {
    await redis().flushdb();
    let now = 0;
    const s = new RedisUsageStore(redis(), { dedupeTtlMs: TTL_MS }, () => now);
    await s.record(fact({ eventId: 'ev-1' }));
    await redis().del(UsageKeys.tenants);
    now = 59_999;
    await s.record(fact({ eventId: 'ev-2' }));
    expect(await redis().smembers(UsageKeys.tenants)).toEqual([]);
    now = 60_000;
    await s.record(fact({ eventId: 'ev-3' }));
    expect(await redis().smembers(UsageKeys.tenants)).toEqual(['acme']);
    expect(await redis().hget(UsageKeys.bucket('acme', '2025-06-01T10:00:00Z'), 'chat|small|requests')).toBe('3');
  });
});
