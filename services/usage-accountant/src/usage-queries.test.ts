import { describe, expect, it, vi } from 'vitest';
import type { Principal } from '@llmgw/proto/auth';
import { GetUsageRequest, UsageGroupBy, UsageOrderBy } from '@llmgw/proto/v1';
import { UsageQueries } from './usage-queries.js';
import { MemoryUsageStore } from './usage-store.js';
import { usageFact } from './test-facts.js';

const H = 3_600_000;
const T0 = Date.UTC(2025, 5, 1, 10, 0, 0);
const tenant: Principal = { tenantId: 'acme', keyId: 'k', tier: 'startup', scopes: [], admin: false };
const admin: Principal = { tenantId: 'ops', keyId: 'a', tier: 'enterprise', scopes: [], admin: true };

async function setup() {
  const store = new MemoryUsageStore({ now: () => T0, dedupeTtlMs: 60_000 });
  const base = { route: 'chat', model: 'small', success: true, inputTokens: 10, outputTokens: 2, costMicros: 1_000 };
  await store.record(usageFact({ ...base, eventId: '1', tenantId: 'acme', occurredAtMs: T0 }));
  await store.record(usageFact({ ...base, eventId: '2', tenantId: 'acme', occurredAtMs: T0 + H, model: 'big', costMicros: 9_000 }));
  await store.record(usageFact({ ...base, eventId: '3', tenantId: 'globex', occurredAtMs: T0, route: 'embed' }));
  return new UsageQueries(store, () => T0 + 5 * H);
}

const q = (p: Partial<GetUsageRequest>) => GetUsageRequest.fromPartial(p);

describe('UsageQueries', () => {
  it('a tenant key sees only its own tenant', async () => {
    const u = await setup();
    expect((await u.getUsage(q({}), tenant)).total?.requests).toBe(2);
    expect((await u.getUsage(q({ tenantId: 'acme' }), tenant)).total?.requests).toBe(2);
    await expect(u.getUsage(q({ tenantId: 'globex' }), tenant)).rejects.toMatchObject({ kind: 'permission_denied' });
  });

  it('refuses a key without the usage:read scope', async () => {
    const u = await setup();
    await expect(u.getUsage(q({}), { ...tenant, scopes: ['chat'] })).rejects.toMatchObject({ kind: 'permission_denied', message: 'this key lacks the scope "usage:read"' });
    expect((await u.getUsage(q({}), { ...tenant, scopes: ['usage:read'] })).total?.requests).toBe(2);
  });

  it('an admin sees all tenants or one', async () => {
    const u = await setup();
    const all = await u.getUsage(q({ groupBy: [UsageGroupBy.USAGE_GROUP_BY_TENANT] }), admin);
    expect(all.rows.map((r) => [r.tenantId, r.requests])).toEqual([['acme', 2], ['globex', 1]]);
    expect((await u.getUsage(q({ tenantId: 'globex' }), admin)).total?.requests).toBe(1);
  });

  it.each([
    ['route', q({ route: 'embed' }), 1, 1_000],
    ['model', q({ model: 'big' }), 1, 9_000],
    ['start', q({ startTime: new Date(T0 + 1) }), 1, 9_000],
    ['end (exclusive)', q({ endTime: new Date(T0 + H) }), 2, 2_000],
    ['empty range', q({ startTime: new Date(T0), endTime: new Date(T0) }), 0, 0],
  ])('filters by %s', async (_n, req, requests, cost) => {
    const res = await (await setup()).getUsage(req, admin);
    expect(res.total?.requests).toBe(requests);
    expect(res.total?.costMicros).toBe(cost);
    expect(res.total?.costUsd).toBe(cost / 1e6);
  });

  it('refuses an end before the start', async () => {
    await expect((await setup()).getUsage(q({ startTime: new Date(T0 + H), endTime: new Date(T0) }), admin)).rejects.toMatchObject({
      kind: 'invalid_argument',
      message: 'end_time is before start_time',
    });
  });

  it('filters and groups by user, prompt version, feature, key and provider; top spenders by cost with a limit', async () => {
    const store = new MemoryUsageStore({ now: () => T0, dedupeTtlMs: 60_000 });
    const spend = [
      ['ann', 'v1', 'search', 'k1', 'oa', 300],
      ['bob', 'v1', 'search', 'k1', 'an', 900],
      ['ann', 'v2', 'chat', 'k2', 'oa', 200],
      ['cy', 'v2', '', 'k2', 'oa', 50],
    ] as const;
    for (const [i, [user, promptVersion, feature, keyId, provider, costMicros]] of spend.entries()) {
      await store.record(usageFact({ eventId: `s${i}`, occurredAtMs: T0 + i * H, user, promptVersion, feature, keyId, provider, costMicros }));
    }
    const u = new UsageQueries(store, () => T0 + 40 * 24 * H);
    const cost = async (p: Partial<GetUsageRequest>) => (await u.getUsage(q(p), admin)).total?.costMicros;
    expect([await cost({ user: 'ann' }), await cost({ promptVersion: 'v2' }), await cost({ feature: 'search' }), await cost({ keyId: 'k2' }), await cost({ provider: 'an' })]).toEqual([500, 250, 1200, 250, 900]);
    const top = await u.getUsage(q({ groupBy: [UsageGroupBy.USAGE_GROUP_BY_USER], orderBy: UsageOrderBy.USAGE_ORDER_BY_COST_DESC, limit: 2 }), admin);
    expect(top.rows.map((r) => [r.user, r.costMicros])).toEqual([['bob', 900], ['ann', 500]]);
    expect([top.rowsOmitted, top.total?.costMicros]).toEqual([1, 1450]);
    const byVersion = await u.getUsage(q({ groupBy: [UsageGroupBy.USAGE_GROUP_BY_PROMPT_VERSION, UsageGroupBy.USAGE_GROUP_BY_FEATURE], user: 'ann' }), admin);
    expect(byVersion.rows.map((r) => [r.promptVersion, r.feature, r.costMicros])).toEqual([['v1', 'search', 300], ['v2', 'chat', 200]]);
  });

  it('answers whole days from day rollups and hourly rows from hours, with the same totals', async () => {
    const u = await setup();
    const cells = vi.spyOn(MemoryUsageStore.prototype, 'cells');
    const daily = await u.getUsage(q({}), admin);
    const hourly = await u.getUsage(q({ groupBy: [UsageGroupBy.USAGE_GROUP_BY_HOUR] }), admin);
    expect(cells.mock.calls.map(([c]) => c.grain)).toEqual(['day', 'hour']);
    cells.mockRestore();
    expect(daily.total).toEqual(hourly.total);
  });
});
