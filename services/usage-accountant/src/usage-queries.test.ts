import { describe, expect, it } from 'vitest';
import type { Principal } from '@llmgw/proto/auth';
import { GetUsageRequest, UsageGroupBy } from '@llmgw/proto/v1';
import { UsageQueries } from './usage-queries.js';
import { MemoryUsageStore } from './usage-store.js';

const H = 3_600_000;
const T0 = Date.UTC(2025, 5, 1, 10, 0, 0);
const tenant: Principal = { tenantId: 'acme', keyId: 'k', tier: 'startup', scopes: [], admin: false };
const admin: Principal = { tenantId: 'ops', keyId: 'a', tier: 'enterprise', scopes: [], admin: true };

async function setup() {
  const store = new MemoryUsageStore({ now: () => T0, dedupeTtlMs: 60_000 });
  const base = { route: 'chat', model: 'small', success: true, inputTokens: 10, outputTokens: 2, costMicros: 1_000 };
  await store.record({ ...base, eventId: '1', tenantId: 'acme', occurredAtMs: T0 });
  await store.record({ ...base, eventId: '2', tenantId: 'acme', occurredAtMs: T0 + H, model: 'big', costMicros: 9_000 });
  await store.record({ ...base, eventId: '3', tenantId: 'globex', occurredAtMs: T0, route: 'embed' });
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
});
