import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { REDIS_KINDS } from '@llmgw/local-infra/vitest';
import { RedisQuotaStore } from './redis-store.js';
import { FakeClock, limit, redisHarness, type RedisHarness } from './test-support.js';

/** Redis-only behaviour: replicas racing on one Redis (or one cluster), real TTLs on the Redis clock. */
describe.each(REDIS_KINDS)('RedisQuotaStore with replicas (%s)', (kind) => {
  let h: RedisHarness;

  beforeAll(async () => {
    h = await redisHarness(kind);
  });
  afterAll(async () => {
    await h.close();
  });
  beforeEach(async () => {
    await h.clear();
  });

  it('two replicas, 600 concurrent reserves against 100/min admit exactly 100', async () => {
    const opts = { leaseTtlMs: 60_000, reservationTtlMs: 600_000, now: Date.now, useRedisTime: true };
    const a = new RedisQuotaStore(await h.client(), opts);
    const b = new RedisQuotaStore(await h.client(), opts);
    const limits = [limit('requests_per_minute', 100), limit('tokens_per_day', 10_000_000)];
    const results = await Promise.all(
      Array.from({ length: 600 }, (_, i) =>
        (i % 2 === 0 ? a : b).reserve({ requestId: `r${i}`, tenantId: 'acme', limits, estimatedTokens: 10, estimatedCostMicros: 0 }),
      ),
    );
    const allowed = results.filter((r) => r.allowed);
    expect(allowed).toHaveLength(100);
    const denied = results.filter((r) => !r.allowed);
    expect(denied.every((d) => d.limit === 'tenant:requests_per_minute' && d.retryAfterMs > 59_000 && d.retryAfterMs <= 60_000)).toBe(true);
    const st = await a.status('acme', limits);
    expect(st.map((s) => s.used)).toEqual([100, 1_000]);
  });

  it('concurrent reserves with reconciliation never let actual spend exceed a dollar budget by more than one reservation', async () => {
    const clock = new FakeClock();
    const opts = { leaseTtlMs: 60_000, reservationTtlMs: 600_000, now: clock.now };
    const replicas = [new RedisQuotaStore(await h.client(), opts), new RedisQuotaStore(await h.client(), opts)];
    const budget = 2_000_000;
    const limits = [limit('usd_per_day', budget)];
    let actualSpend = 0;
    let maxEstimate = 0;
    let seq = 0;
    // Deterministic pseudo-random amounts.
    let x = 42;
    const rnd = () => ((x = (x * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const worker = async (w: number) => {
      for (let i = 0; i < 40; i++) {
        const store = replicas[(w + i) % 2]!;
        const id = `w${w}-${seq++}`;
        const estimate = 10_000 + Math.floor(rnd() * 90_000);
        maxEstimate = Math.max(maxEstimate, estimate);
        const d = await store.reserve({ requestId: id, tenantId: 'acme', limits, estimatedTokens: 0, estimatedCostMicros: estimate });
        if (!d.allowed) continue;
        await new Promise((r) => setTimeout(r, Math.floor(rnd() * 3)));
        const actual = Math.floor(estimate * rnd()); // the estimate is an upper bound (max output tokens)
        actualSpend += actual;
        await replicas[(w + i + 1) % 2]!.reconcile({ requestId: id, tenantId: 'acme', actualTokens: 0, actualCostMicros: actual, limits });
      }
    };
    await Promise.all(Array.from({ length: 20 }, (_, w) => worker(w)));
    expect(actualSpend).toBeLessThanOrEqual(budget + maxEstimate);
    expect(actualSpend).toBeGreaterThan(budget * 0.8); // the budget really was the constraint
    const [st] = await replicas[0]!.status('acme', limits);
    expect(st!.used).toBe(actualSpend); // every estimate was replaced by its actual
  });

  it('a lease of a killed edge is reclaimed after its TTL on the Redis clock', async () => {
    const store = new RedisQuotaStore(await h.client(), { leaseTtlMs: 300, reservationTtlMs: 600_000, now: Date.now, useRedisTime: true });
    const limits = [limit('concurrent_requests', 1)];
    expect((await store.reserve({ requestId: 'killed-edge', tenantId: 'acme', limits, estimatedTokens: 0, estimatedCostMicros: 0 })).allowed).toBe(true);
    const d = await store.reserve({ requestId: 'next', tenantId: 'acme', limits, estimatedTokens: 0, estimatedCostMicros: 0 });
    expect(d).toMatchObject({ allowed: false, limit: 'tenant:concurrent_requests' });
    expect(d.retryAfterMs).toBeLessThanOrEqual(300);
    await new Promise((r) => setTimeout(r, 350));
    expect((await store.reserve({ requestId: 'after-ttl', tenantId: 'acme', limits, estimatedTokens: 0, estimatedCostMicros: 0 })).allowed).toBe(true);
  });
});
