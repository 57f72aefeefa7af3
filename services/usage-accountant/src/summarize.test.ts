import { describe, expect, it } from 'vitest';
import { UsageGroupBy, UsageOrderBy } from '@llmgw/proto/v1';
import { dayStartMs, factCounters, hourStartMs, latencyP95Ms, rfc3339, zeroCounters, type UsageCell } from './buckets.js';
import { summarize } from './summarize.js';
import { usageFact } from './test-facts.js';

const H = 3_600_000;
const T0 = Date.UTC(2025, 2, 1, 22, 0, 0); // 2025-03-01T22:00Z

function cell(p: Partial<UsageCell>): UsageCell {
  return {
    tenantId: 'acme',
    startMs: T0,
    route: 'chat',
    model: 'small',
    provider: 'oa',
    keyId: 'k1',
    intent: '',
    user: 'ann',
    promptVersion: 'v1',
    feature: 'search',
    ...zeroCounters(),
    latencyLe250Ms: 1,
    requests: 1,
    failedRequests: 0,
    inputTokens: 10,
    outputTokens: 5,
    cachedInputTokens: 4,
    cacheWriteInputTokens: 0,
    reasoningTokens: 1,
    costMicros: 100,
    ...p,
  };
}

const cells = [
  cell({}),
  cell({ startMs: T0 + H, model: 'big', provider: 'an', user: 'bob', promptVersion: 'v2', requests: 2, inputTokens: 20, outputTokens: 7, costMicros: 2_500_000 }),
  cell({ startMs: T0 + 2 * H, tenantId: 'globex', keyId: 'k2', user: 'cy', feature: '', failedRequests: 1, costMicros: 1 }), // next day 00:00
  cell({ startMs: T0 + 2 * H, tenantId: 'globex', keyId: 'k2', user: '', route: 'embed', model: 'e', inputTokens: 3, outputTokens: 0, cachedInputTokens: 0, reasoningTokens: 0, costMicros: 0 }),
];

describe('bucket math', () => {
  it.each([
    [Date.UTC(2025, 2, 1, 14, 59, 59, 999), '2025-03-01T14:00:00Z'],
    [Date.UTC(2025, 2, 1, 15, 0, 0, 0), '2025-03-01T15:00:00Z'],
  ])('hour of %i is %s', (ms, iso) => expect(rfc3339(hourStartMs(ms))).toBe(iso));
  it('day start', () => expect(rfc3339(dayStartMs(T0 + 3 * H))).toBe('2025-03-02T00:00:00Z'));
  it.each([
    [true, { requests: 1, failedRequests: 0, inputTokens: 7, outputTokens: 3, cachedInputTokens: 2, cacheWriteInputTokens: 1, reasoningTokens: 2, costMicros: 42 }],
    [false, { requests: 1, failedRequests: 1, inputTokens: 7, outputTokens: 3, cachedInputTokens: 2, cacheWriteInputTokens: 1, reasoningTokens: 2, costMicros: 42 }],
  ])('success=%s counts', (success, want) => {
    expect(factCounters(usageFact({ success, inputTokens: 7, outputTokens: 3, cachedInputTokens: 2, cacheWriteInputTokens: 1, reasoningTokens: 2, costMicros: 42, latencyMs: 300 }))).toEqual({
      ...zeroCounters(),
      ...want,
      latencyLe500Ms: 1,
    });
  });

  it('counts a fallback, and the latency in the first bucket whose bound it does not exceed', () => {
    expect(factCounters(usageFact({ fallbackUsed: true, latencyMs: 250 }))).toMatchObject({ fallbackRequests: 1, latencyLe250Ms: 1, latencyLe500Ms: 0 });
    expect(factCounters(usageFact({ latencyMs: 0 })).latencyLe100Ms).toBe(1);
    expect(factCounters(usageFact({ latencyMs: 120_001 })).latencyAboveMs).toBe(1);
  });

  it.each([
    ['no requests', {}, 0],
    ['all in one bucket', { latencyLe250Ms: 20 }, 250],
    ['the 95th of 20 in the second bucket', { latencyLe100Ms: 18, latencyLe1000Ms: 2 }, 1_000],
    ['the 95th of 100 still in the first', { latencyLe100Ms: 95, latencyLe30000Ms: 5 }, 100],
    ['above every bound: the last bound', { latencyLe100Ms: 1, latencyAboveMs: 99 }, 120_000],
  ])('p95 of a latency histogram: %s', (_name, counts, p95) => {
    expect(latencyP95Ms({ ...zeroCounters(), ...counts })).toBe(p95);
  });
});

describe('summarize', () => {
  it('no group_by: one row equal to the total', () => {
    const res = summarize(cells, []);
    expect(res.rows).toHaveLength(1);
    expect(res.rows[0]).toEqual(res.total);
    expect(res.total).toMatchObject({ requests: 5, failedRequests: 1, inputTokens: 43, outputTokens: 17, costMicros: 2_500_101, tenantId: '', bucket: '' });
    expect(res.total?.costUsd).toBeCloseTo(2.500101, 9);
  });

  it('no data, no group_by: one zero row', () => {
    expect(summarize([], [])).toMatchObject({ rows: [{ requests: 0, costUsd: 0 }], total: { requests: 0 } });
  });

  it('no data, grouped: no rows', () => {
    expect(summarize([], [UsageGroupBy.USAGE_GROUP_BY_TENANT]).rows).toEqual([]);
  });

  it.each([
    [[UsageGroupBy.USAGE_GROUP_BY_TENANT], [['acme', '', '', '', 3], ['globex', '', '', '', 2]]],
    [[UsageGroupBy.USAGE_GROUP_BY_ROUTE], [['', 'chat', '', '', 4], ['', 'embed', '', '', 1]]],
    [[UsageGroupBy.USAGE_GROUP_BY_MODEL], [['', '', 'big', '', 2], ['', '', 'e', '', 1], ['', '', 'small', '', 2]]],
    [[UsageGroupBy.USAGE_GROUP_BY_DAY], [['', '', '', '2025-03-01T00:00:00Z', 3], ['', '', '', '2025-03-02T00:00:00Z', 2]]],
    [
      [UsageGroupBy.USAGE_GROUP_BY_HOUR],
      [['', '', '', '2025-03-01T22:00:00Z', 1], ['', '', '', '2025-03-01T23:00:00Z', 2], ['', '', '', '2025-03-02T00:00:00Z', 2]],
    ],
    [
      [UsageGroupBy.USAGE_GROUP_BY_TENANT, UsageGroupBy.USAGE_GROUP_BY_MODEL],
      [['acme', '', 'big', '', 2], ['acme', '', 'small', '', 1], ['globex', '', 'e', '', 1], ['globex', '', 'small', '', 1]],
    ],
    [
      [UsageGroupBy.USAGE_GROUP_BY_DAY, UsageGroupBy.USAGE_GROUP_BY_HOUR],
      [['', '', '', '2025-03-01T22:00:00Z', 1], ['', '', '', '2025-03-01T23:00:00Z', 2], ['', '', '', '2025-03-02T00:00:00Z', 2]],
    ],
  ])('group by %j', (groupBy, want) => {
    const res = summarize(cells, groupBy);
    expect(res.rows.map((r) => [r.tenantId, r.route, r.model, r.bucket, r.requests])).toEqual(want);
    expect(res.total?.requests).toBe(5);
    const sum = res.rows.reduce((a, r) => a + r.costMicros, 0);
    expect(sum).toBe(res.total?.costMicros);
    for (const r of res.rows) expect(r.costUsd).toBe(r.costMicros / 1e6);
  });

  it.each([
    [UsageGroupBy.USAGE_GROUP_BY_PROVIDER, 'provider', [['an', 2], ['oa', 3]]],
    [UsageGroupBy.USAGE_GROUP_BY_KEY, 'keyId', [['k1', 3], ['k2', 2]]],
    [UsageGroupBy.USAGE_GROUP_BY_USER, 'user', [['', 1], ['ann', 1], ['bob', 2], ['cy', 1]]],
    [UsageGroupBy.USAGE_GROUP_BY_PROMPT_VERSION, 'promptVersion', [['v1', 3], ['v2', 2]]],
    [UsageGroupBy.USAGE_GROUP_BY_FEATURE, 'feature', [['', 1], ['search', 4]]],
  ] as const)('group by %s sets only that dimension', (groupBy, field, want) => {
    const res = summarize(cells, [groupBy]);
    expect(res.rows.map((r) => [r[field], r.requests])).toEqual(want);
    for (const r of res.rows) expect([r.tenantId, r.route, r.model, r.bucket, r.provider, r.keyId, r.user, r.promptVersion, r.feature].filter((v) => v !== '')).toEqual(r[field] ? [r[field]] : []);
  });

  it('sums cached, cache-write and reasoning tokens as the parts they are, never into input or output', () => {
    expect(summarize(cells, []).total).toMatchObject({ inputTokens: 43, cachedInputTokens: 12, cacheWriteInputTokens: 0, outputTokens: 17, reasoningTokens: 3 });
  });

  it('top spenders: dearest first, ties by group key, cut at the limit with the total over all and the rest counted', () => {
    const spenders = [cell({ user: 'a', costMicros: 5 }), cell({ user: 'b', costMicros: 9 }), cell({ user: 'c', costMicros: 5 }), cell({ user: 'd', costMicros: 1 }), cell({ user: 'b', costMicros: 2 })];
    const res = summarize(spenders, [UsageGroupBy.USAGE_GROUP_BY_USER], { orderBy: UsageOrderBy.USAGE_ORDER_BY_COST_DESC, limit: 3 });
    expect(res.rows.map((r) => [r.user, r.costMicros])).toEqual([['b', 11], ['a', 5], ['c', 5]]);
    expect(res.rowsOmitted).toBe(1);
    expect(res.total?.costMicros).toBe(22);
    expect(summarize(spenders, [UsageGroupBy.USAGE_GROUP_BY_USER]).rows.map((r) => r.user)).toEqual(['a', 'b', 'c', 'd']);
    expect(summarize(spenders, [UsageGroupBy.USAGE_GROUP_BY_USER], { limit: 0 }).rowsOmitted).toBe(0);
  });
});
