import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { REDIS_KINDS } from '@llmgw/local-infra/vitest';
import type { ResolvedLimit } from './limits.js';
import type { QuotaStore, ReserveDecision } from './store.js';
import { FakeClock, limit, memoryHarness, redisHarness, type StoreHarness } from './test-support.js';

/**
 * One suite, every implementation: the Redis store (Lua scripts on a real redis-server, and on a
 * three-master Redis Cluster) and the in-memory store of the monolithic mode must behave the same.
 */
const harnesses: [string, () => Promise<StoreHarness>][] = [
  ['memory', async () => memoryHarness()],
  ...REDIS_KINDS.map((kind): [string, () => Promise<StoreHarness>] => [`redis ${kind}`, () => redisHarness(kind)]),
];

describe.each(harnesses)('QuotaStore conformance: %s', (_name, makeHarness) => {
  let h: StoreHarness;
  let clock: FakeClock;
  let store: QuotaStore;
  let seq = 0;
  const opts = () => ({ leaseTtlMs: 30_000, reservationTtlMs: 600_000, now: clock.now });

  beforeAll(async () => {
    h = await makeHarness();
  });
  afterAll(async () => {
    await h.close();
  });
  beforeEach(async () => {
    await h.clear();
    clock = new FakeClock();
    store = await h.make(opts());
  });

  const reserve = (limits: ResolvedLimit[], tokens = 0, cost = 0, requestId = `req-${++seq}`, tenantId = 'acme'): Promise<ReserveDecision> =>
    store.reserve({ requestId, tenantId, limits, estimatedTokens: tokens, estimatedCostMicros: cost });

  const used = async (limits: ResolvedLimit[], tenantId = 'acme') => Object.fromEntries((await store.status(tenantId, limits)).map((s) => [s.limit, s.used]));

  it('admits N requests at once and refuses the N+1st, naming the limit', async () => {
    const rpm = [limit('requests_per_minute', 5)];
    const ds = await Promise.all(Array.from({ length: 5 }, () => reserve(rpm)));
    expect(ds.every((d) => d.allowed)).toBe(true);
    const d = await reserve(rpm);
    expect(d).toMatchObject({ allowed: false, limit: 'tenant:requests_per_minute', limitValue: 5, remaining: 0, retryAfterMs: 60_000, resetMs: 60_000 });
  });

  it('retry-after is exactly when the oldest counted entry leaves the window', async () => {
    const rpm = [limit('requests_per_minute', 3)];
    const t0 = clock.t;
    for (const dt of [0, 10_000, 20_000]) {
      clock.t = t0 + dt;
      expect((await reserve(rpm)).allowed).toBe(true);
    }
    clock.t = t0 + 30_000;
    expect(await reserve(rpm)).toMatchObject({ allowed: false, retryAfterMs: 30_000 });
    clock.t = t0 + 59_999;
    expect(await reserve(rpm)).toMatchObject({ allowed: false, retryAfterMs: 1 });
    clock.t = t0 + 60_000;
    expect((await reserve(rpm)).allowed).toBe(true);
    expect(await reserve(rpm)).toMatchObject({ allowed: false, retryAfterMs: 10_000 });
  });

  it('tokens per minute: retry-after frees enough tokens for this request', async () => {
    const tpm = [limit('tokens_per_minute', 1_000)];
    const t0 = clock.t;
    expect((await reserve(tpm, 400)).allowed).toBe(true);
    clock.t = t0 + 5_000;
    expect((await reserve(tpm, 400)).allowed).toBe(true);
    clock.t = t0 + 6_000;
    // 800 used, 700 needed: 500 must leave, i.e. both entries → the second one's exit.
    expect(await reserve(tpm, 700)).toMatchObject({ allowed: false, remaining: 200, retryAfterMs: 59_000 });
    // 300 needed: the first entry's exit suffices.
    expect(await reserve(tpm, 300)).toMatchObject({ allowed: false, retryAfterMs: 54_000 });
    expect((await reserve(tpm, 200)).allowed).toBe(true);
  });

  it('reserves against every limit or none', async () => {
    const limits = [limit('requests_per_minute', 10), limit('tokens_per_day', 100, 'route:support-chat'), limit('usd_per_day', 1_000, 'model:large-reasoning')];
    expect((await reserve(limits, 60, 100)).allowed).toBe(true);
    const d = await reserve(limits, 60, 100);
    expect(d).toMatchObject({ allowed: false, limit: 'route:support-chat:tokens_per_day', limitValue: 100, remaining: 40 });
    expect(await used(limits)).toEqual({ 'tenant:requests_per_minute': 1, 'route:support-chat:tokens_per_day': 60, 'model:large-reasoning:usd_per_day': 100 });
    const byModel = await reserve(limits, 10, 950);
    expect(byModel).toMatchObject({ allowed: false, limit: 'model:large-reasoning:usd_per_day', remaining: 900 });
    expect(await used(limits)).toEqual({ 'tenant:requests_per_minute': 1, 'route:support-chat:tokens_per_day': 60, 'model:large-reasoning:usd_per_day': 100 });
  });

  it('reports the denial with the longest wait when several limits refuse', async () => {
    const limits = [limit('requests_per_minute', 1), limit('tokens_per_day', 10)];
    expect((await reserve(limits, 10)).allowed).toBe(true);
    const d = await reserve(limits, 10);
    expect(d.limit).toBe('tenant:tokens_per_day');
    expect(d.retryAfterMs).toBe(12 * 3_600_000); // until 00:00 UTC
  });

  it('a repeated request id returns the same decision without reserving twice', async () => {
    const limits = [limit('requests_per_minute', 2), limit('tokens_per_day', 1_000)];
    const a = await reserve(limits, 100, 0, 'same');
    const b = await reserve(limits, 100, 0, 'same');
    expect(a.allowed && b.allowed).toBe(true);
    expect(b.duplicate).toBe(true);
    expect(b.remaining).toBe(a.remaining);
    expect(await used(limits)).toEqual({ 'tenant:requests_per_minute': 1, 'tenant:tokens_per_day': 100 });
    await reserve(limits, 1, 0, 'other');
    const denied = await reserve(limits, 1, 0, 'third');
    expect(denied.allowed).toBe(false);
    const again = await reserve(limits, 1, 0, 'third');
    expect(again).toMatchObject({ allowed: false, duplicate: true, limit: denied.limit, retryAfterMs: denied.retryAfterMs });
  });

  it('release gives back tokens, dollars and the lease but not the request count; idempotent', async () => {
    const limits = [limit('requests_per_minute', 10), limit('tokens_per_minute', 1_000), limit('tokens_per_day', 1_000), limit('usd_per_day', 5_000), limit('concurrent_requests', 1)];
    expect((await reserve(limits, 300, 2_000, 'r1')).allowed).toBe(true);
    expect(await reserve(limits, 1, 1, 'r2')).toMatchObject({ allowed: false, limit: 'tenant:concurrent_requests' });
    expect(await store.release('acme', 'r1')).toBe('released');
    expect(await used(limits)).toEqual({
      'tenant:requests_per_minute': 1,
      'tenant:tokens_per_minute': 0,
      'tenant:tokens_per_day': 0,
      'tenant:usd_per_day': 0,
      'tenant:concurrent_requests': 0,
    });
    expect(await store.release('acme', 'r1')).toBe('already_released');
    expect(await store.release('acme', 'never')).toBe('unknown');
    expect(await used(limits)).toMatchObject({ 'tenant:tokens_per_day': 0, 'tenant:requests_per_minute': 1 });
    expect((await reserve(limits, 1, 1, 'r3')).allowed).toBe(true);
  });

  it('reconcile replaces the estimate by actual usage on exactly the reserved counters, once', async () => {
    const limits = [limit('requests_per_minute', 10), limit('tokens_per_minute', 10_000), limit('tokens_per_day', 10_000), limit('usd_per_month', 90_000), limit('concurrent_requests', 3)];
    await reserve(limits, 1_000, 50_000, 'r1');
    const r = await store.reconcile({ requestId: 'r1', tenantId: 'acme', actualTokens: 250, actualCostMicros: 12_345, limits });
    expect(r.outcome).toBe('reconciled');
    const expected = {
      'tenant:requests_per_minute': 1,
      'tenant:tokens_per_minute': 250,
      'tenant:tokens_per_day': 250,
      'tenant:usd_per_month': 12_345,
      'tenant:concurrent_requests': 0,
    };
    expect(await used(limits)).toEqual(expected);
    // The event's limits (a different route/model) are not touched for a known reservation.
    const other = [limit('tokens_per_day', 10_000, 'route:batch')];
    expect((await store.reconcile({ requestId: 'r1', tenantId: 'acme', actualTokens: 250, actualCostMicros: 12_345, limits: other })).outcome).toBe('duplicate');
    expect(await used([...limits, ...other])).toEqual({ ...expected, 'route:batch:tokens_per_day': 0 });
    expect(await store.release('acme', 'r1')).toBe('already_reconciled');
    expect(await used(limits)).toEqual(expected);
  });

  describe('per-model limits are charged to the model that served', () => {
    const tenantAndRoute = [limit('tokens_per_day', 100_000), limit('usd_per_day', 10_000_000), limit('tokens_per_day', 50_000, 'route:support-chat')];
    const cheap = [limit('requests_per_minute', 10, 'model:cheap'), limit('tokens_per_minute', 5_000, 'model:cheap'), limit('usd_per_day', 100_000, 'model:cheap')];
    const pricey = [limit('tokens_per_minute', 10_000, 'model:pricey'), limit('tokens_per_day', 10_000, 'model:pricey'), limit('usd_per_day', 80_000, 'model:pricey')];
    const reserveFor = (model: string, limits: ResolvedLimit[], requestId: string) =>
      store.reserve({ requestId, tenantId: 'acme', model, limits, estimatedTokens: 1_000, estimatedCostMicros: 50_000 });

    it('fallback served: the reserved model gets 0, the served model the actual usage, tenant and route as reserved, once', async () => {
      expect((await reserveFor('cheap', [...tenantAndRoute, ...cheap], 'r1')).allowed).toBe(true);
      const r = await store.reconcile({
        requestId: 'r1',
        tenantId: 'acme',
        servedModel: 'pricey',
        actualTokens: 300,
        actualCostMicros: 70_000,
        limits: [...tenantAndRoute, ...pricey],
      });
      expect(r.outcome).toBe('reconciled');
      // the served model's dollar budget crossed 80% with this request
      expect(r.alerts).toEqual([{ limit: 'model:pricey:usd_per_day', thresholdPercent: 80, limitValue: 80_000, used: 70_000, period: '2026-11-21' }]);
      const expected = {
        'tenant:tokens_per_day': 300,
        'tenant:usd_per_day': 70_000,
        'route:support-chat:tokens_per_day': 300,
        'model:cheap:requests_per_minute': 1, // the request was made to it
        'model:cheap:tokens_per_minute': 0,
        'model:cheap:usd_per_day': 0,
        'model:pricey:tokens_per_minute': 300,
        'model:pricey:tokens_per_day': 300,
        'model:pricey:usd_per_day': 70_000,
      };
      const all = [...tenantAndRoute, ...cheap, ...pricey];
      expect(await used(all)).toEqual(expected);
      const again = await store.reconcile({ requestId: 'r1', tenantId: 'acme', servedModel: 'pricey', actualTokens: 300, actualCostMicros: 70_000, limits: [...tenantAndRoute, ...pricey] });
      expect(again.outcome).toBe('duplicate');
      expect(await used(all)).toEqual(expected);
      // The served model's budget now refuses what it cannot cover.
      expect(await reserveFor('pricey', [...tenantAndRoute, ...pricey], 'r2')).toMatchObject({ allowed: false, limit: 'model:pricey:usd_per_day', remaining: 10_000 });
    });

    it('a served model without per-model limits: the reserved model is given back, nothing else is charged', async () => {
      await reserveFor('cheap', [...tenantAndRoute, ...cheap], 'r1');
      await store.reconcile({ requestId: 'r1', tenantId: 'acme', servedModel: 'other', actualTokens: 200, actualCostMicros: 9_000, limits: tenantAndRoute });
      expect(await used([...tenantAndRoute, ...cheap])).toEqual({
        'tenant:tokens_per_day': 200,
        'tenant:usd_per_day': 9_000,
        'route:support-chat:tokens_per_day': 200,
        'model:cheap:requests_per_minute': 1,
        'model:cheap:tokens_per_minute': 0,
        'model:cheap:usd_per_day': 0,
      });
    });

    it('the reserved model served (or the event names none): its counters get the actual usage', async () => {
      await reserveFor('cheap', [...tenantAndRoute, ...cheap], 'same');
      await store.reconcile({ requestId: 'same', tenantId: 'acme', servedModel: 'cheap', actualTokens: 200, actualCostMicros: 9_000, limits: [...tenantAndRoute, ...cheap] });
      await reserveFor('cheap', [...tenantAndRoute, ...cheap], 'unnamed');
      await store.reconcile({ requestId: 'unnamed', tenantId: 'acme', actualTokens: 100, actualCostMicros: 1_000, limits: tenantAndRoute });
      expect(await used([...tenantAndRoute, ...cheap])).toMatchObject({
        'tenant:tokens_per_day': 300,
        'model:cheap:requests_per_minute': 2,
        'model:cheap:tokens_per_minute': 300,
        'model:cheap:usd_per_day': 10_000,
      });
    });

    it('an orphan event charges the served model as well', async () => {
      await store.reconcile({ requestId: 'ghost', tenantId: 'acme', servedModel: 'pricey', actualTokens: 400, actualCostMicros: 600, limits: [...tenantAndRoute, ...pricey] });
      expect(await used([...tenantAndRoute, ...pricey])).toMatchObject({ 'tenant:tokens_per_day': 400, 'model:pricey:tokens_per_day': 400, 'model:pricey:usd_per_day': 600 });
    });
  });

  it('an event after a release charges the actual usage once; an event for an unknown reservation adds it once', async () => {
    const limits = [limit('tokens_per_minute', 10_000), limit('tokens_per_day', 10_000), limit('usd_per_day', 1_000_000), limit('concurrent_requests', 5)];
    await reserve(limits, 500, 700, 'r1');
    expect(await store.release('acme', 'r1')).toBe('released');
    expect(await used(limits)).toEqual({ 'tenant:tokens_per_minute': 0, 'tenant:tokens_per_day': 0, 'tenant:usd_per_day': 0, 'tenant:concurrent_requests': 0 });
    // Money spent after a release (a degraded admission whose late reserve was released) is charged, once.
    expect((await store.reconcile({ requestId: 'r1', tenantId: 'acme', actualTokens: 400, actualCostMicros: 600, limits })).outcome).toBe('after_release');
    expect((await store.reconcile({ requestId: 'r1', tenantId: 'acme', actualTokens: 400, actualCostMicros: 600, limits })).outcome).toBe('duplicate');
    expect(await used(limits)).toEqual({ 'tenant:tokens_per_minute': 400, 'tenant:tokens_per_day': 400, 'tenant:usd_per_day': 600, 'tenant:concurrent_requests': 0 });
    expect(await store.release('acme', 'r1')).toBe('already_reconciled');
    for (let i = 0; i < 3; i++) await store.reconcile({ requestId: 'ghost', tenantId: 'acme', actualTokens: 400, actualCostMicros: 600, limits });
    expect(await used(limits)).toMatchObject({ 'tenant:tokens_per_day': 800, 'tenant:usd_per_day': 1_200 });
    // The reservation arriving after its event is not counted again.
    const late = await reserve(limits, 500, 700, 'ghost');
    expect(late).toMatchObject({ allowed: true, duplicate: true });
    expect(await used(limits)).toEqual({ 'tenant:tokens_per_minute': 800, 'tenant:tokens_per_day': 800, 'tenant:usd_per_day': 1_200, 'tenant:concurrent_requests': 0 });
  });

  it('a release before its reserve leaves a tombstone: the late reserve reserves nothing, its event is charged once', async () => {
    const limits = [limit('requests_per_minute', 10), limit('tokens_per_day', 10_000), limit('usd_per_day', 1_000_000), limit('concurrent_requests', 1)];
    expect(await store.release('acme', 'timed-out')).toBe('unknown');
    expect(await store.release('acme', 'timed-out')).toBe('already_released');
    const late = await reserve(limits, 500, 700, 'timed-out');
    expect(late).toMatchObject({ allowed: true, duplicate: true });
    expect(await used(limits)).toEqual({ 'tenant:requests_per_minute': 0, 'tenant:tokens_per_day': 0, 'tenant:usd_per_day': 0, 'tenant:concurrent_requests': 0 });
    expect((await reserve(limits, 1, 1, 'next')).allowed).toBe(true); // the lease was not taken
    expect((await store.reconcile({ requestId: 'timed-out', tenantId: 'acme', actualTokens: 30, actualCostMicros: 40, limits })).outcome).toBe('after_release');
    expect((await store.reconcile({ requestId: 'timed-out', tenantId: 'acme', actualTokens: 30, actualCostMicros: 40, limits })).outcome).toBe('duplicate');
    expect(await used(limits)).toEqual({ 'tenant:requests_per_minute': 1, 'tenant:tokens_per_day': 31, 'tenant:usd_per_day': 41, 'tenant:concurrent_requests': 1 });
  });

  describe('a usage event later than the reservation TTL', () => {
    const ttl = 30_000;
    const horizon = 120_000;
    const limits = [limit('tokens_per_minute', 10_000), limit('tokens_per_day', 10_000), limit('usd_per_day', 1_000_000), limit('concurrent_requests', 5)];
    const event = (requestId: string) => store.reconcile({ requestId, tenantId: 'acme', actualTokens: 100, actualCostMicros: 10, limits });

    beforeEach(async () => {
      store = await h.make({ ...opts(), leaseTtlMs: 600_000, reservationTtlMs: ttl, lateEventHorizonMs: horizon });
    });

    it('within the late-event horizon replaces the estimate (window, budgets, lease), once', async () => {
      await reserve(limits, 800, 900, 'r1');
      clock.advance(100_000); // r1: past its TTL, its token window entry has left the minute window
      await reserve(limits, 50, 0, 'r2');
      clock.advance(40_000); // r2: past its TTL, still in the minute window
      expect(await used(limits)).toEqual({ 'tenant:tokens_per_minute': 50, 'tenant:tokens_per_day': 850, 'tenant:usd_per_day': 900, 'tenant:concurrent_requests': 2 });
      expect((await event('r1')).outcome).toBe('reconciled');
      expect((await event('r1')).outcome).toBe('duplicate');
      expect(await used(limits)).toEqual({ 'tenant:tokens_per_minute': 50, 'tenant:tokens_per_day': 150, 'tenant:usd_per_day': 10, 'tenant:concurrent_requests': 1 });
      expect((await event('r2')).outcome).toBe('reconciled');
      expect(await used(limits)).toEqual({ 'tenant:tokens_per_minute': 100, 'tenant:tokens_per_day': 200, 'tenant:usd_per_day': 20, 'tenant:concurrent_requests': 0 });
    });

    it('within the horizon a release still gives the estimate back', async () => {
      await reserve(limits, 800, 900, 'r1');
      clock.advance(ttl + horizon - 1);
      expect(await store.release('acme', 'r1')).toBe('released');
      expect(await used(limits)).toEqual({ 'tenant:tokens_per_minute': 0, 'tenant:tokens_per_day': 0, 'tenant:usd_per_day': 0, 'tenant:concurrent_requests': 0 });
    });

    it('past the horizon the reservation stays at its estimate and an event is added as an orphan', async () => {
      await reserve(limits, 800, 900, 'r1');
      clock.advance(ttl + horizon);
      expect(await used(limits)).toMatchObject({ 'tenant:tokens_per_day': 800, 'tenant:usd_per_day': 900 });
      expect((await event('r1')).outcome).toBe('orphan_applied');
      expect((await event('r1')).outcome).toBe('duplicate');
      expect(await used(limits)).toMatchObject({ 'tenant:tokens_per_day': 900, 'tenant:usd_per_day': 910 });
      // a record past its life is gone: the id can be reserved afresh (unlike within the horizon)
      expect(await store.release('acme', 'other')).toBe('unknown');
      clock.advance(ttl + horizon);
      expect(await reserve(limits, 1, 1, 'other')).toMatchObject({ allowed: true, duplicate: false });
    });
  });

  it('day and month budgets reset at UTC boundaries', async () => {
    clock.t = Date.UTC(2026, 10, 30, 23, 59, 59, 0);
    const limits = [limit('tokens_per_day', 100), limit('usd_per_month', 1_000)];
    expect((await reserve(limits, 100, 10)).allowed).toBe(true);
    expect(await reserve(limits, 1, 10)).toMatchObject({ allowed: false, limit: 'tenant:tokens_per_day', retryAfterMs: 1_000, resetMs: 1_000 });
    clock.t = Date.UTC(2026, 11, 1, 0, 0, 0, 0);
    expect((await reserve(limits, 100, 990)).allowed).toBe(true);
    expect(await used(limits)).toEqual({ 'tenant:tokens_per_day': 100, 'tenant:usd_per_month': 990 });
    clock.t = Date.UTC(2026, 11, 2, 0, 0, 0, 0);
    expect(await reserve(limits, 1, 11)).toMatchObject({ allowed: false, limit: 'tenant:usd_per_month', retryAfterMs: Date.UTC(2027, 0, 1) - clock.t });
    expect((await reserve(limits, 1, 10)).allowed).toBe(true);
  });

  it('concurrency leases of a crashed edge are reclaimed after the lease TTL', async () => {
    const limits = [limit('concurrent_requests', 2)];
    await reserve(limits, 0, 0, 'a');
    clock.advance(10_000);
    await reserve(limits, 0, 0, 'b');
    const d = await reserve(limits, 0, 0, 'c');
    expect(d).toMatchObject({ allowed: false, limit: 'tenant:concurrent_requests', retryAfterMs: 1_000, resetMs: 20_000 });
    clock.advance(20_000); // lease 'a' (30 s TTL) has expired
    expect((await reserve(limits, 0, 0, 'd')).allowed).toBe(true);
    expect(await used(limits)).toEqual({ 'tenant:concurrent_requests': 2 });
  });

  it('raises each budget alert (80%, 100%) exactly once per period', async () => {
    const limits = [limit('usd_per_day', 1_000_000)];
    expect((await reserve(limits, 0, 700_000)).alerts).toEqual([]);
    const at80 = await reserve(limits, 0, 150_000);
    expect(at80.alerts).toEqual([{ limit: 'tenant:usd_per_day', thresholdPercent: 80, limitValue: 1_000_000, used: 850_000, period: '2026-11-21' }]);
    expect((await reserve(limits, 0, 50_000)).alerts).toEqual([]);
    expect((await reserve(limits, 0, 50_000, 'last')).alerts).toEqual([]);
    // actual spend overshoots the estimate: 100% crossed by reconciliation
    const r = await store.reconcile({ requestId: 'last', tenantId: 'acme', actualTokens: 0, actualCostMicros: 200_000, limits });
    expect(r.alerts.map((a) => a.thresholdPercent)).toEqual([100]);
    expect((await reserve(limits, 0, 0)).allowed).toBe(false);
    clock.t = Date.UTC(2026, 10, 22, 1);
    const next = await reserve(limits, 0, 900_000);
    expect(next.alerts).toEqual([{ limit: 'tenant:usd_per_day', thresholdPercent: 80, limitValue: 1_000_000, used: 900_000, period: '2026-11-22' }]);
  });

  it('status reports used, remaining and reset; reset clears the tenant only', async () => {
    const limits = [limit('requests_per_minute', 10), limit('tokens_per_day', 1_000)];
    await reserve(limits, 300);
    await reserve(limits, 300, 0, undefined, 'globex');
    clock.advance(1_000);
    const st = await store.status('acme', limits);
    expect(st).toEqual([
      { limit: 'tenant:requests_per_minute', limitValue: 10, used: 1, remaining: 9, resetMs: 59_000 },
      { limit: 'tenant:tokens_per_day', limitValue: 1_000, used: 300, remaining: 700, resetMs: 12 * 3_600_000 - 1_000 },
    ]);
    await store.reset('acme');
    expect(await used(limits)).toEqual({ 'tenant:requests_per_minute': 0, 'tenant:tokens_per_day': 0 });
    expect(await used(limits, 'globex')).toEqual({ 'tenant:requests_per_minute': 1, 'tenant:tokens_per_day': 300 });
  });

  it('property: the rate limit matches a reference sliding-window model for random arrivals', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 6 }),
        fc.array(fc.integer({ min: 0, max: 30_000 }), { minLength: 1, maxLength: 40 }),
        async (n, gaps) => {
          await h.clear();
          const c = new FakeClock();
          const s = await h.make({ leaseTtlMs: 1_000, reservationTtlMs: 600_000, now: c.now });
          const admitted: number[] = [];
          let i = 0;
          for (const gap of gaps) {
            c.advance(gap);
            const inWindow = admitted.filter((t) => t > c.t - 60_000);
            const expectAllowed = inWindow.length < n;
            const d = await s.reserve({ requestId: `p${i++}`, tenantId: 'prop', limits: [limit('requests_per_minute', n)], estimatedTokens: 0, estimatedCostMicros: 0 });
            if (d.allowed !== expectAllowed) return false;
            if (d.allowed) admitted.push(c.t);
            else if (d.retryAfterMs !== inWindow[inWindow.length - n]! + 60_000 - c.t) return false;
          }
          return true;
        },
      ),
      { numRuns: 60 },
    );
  });
});
