import { UsageGroupBy, UsageOrderBy, UsageRow, type GetUsageResponse } from '@llmgw/proto/v1';
import { dayStartMs, LATENCY_PROPS, latencyP95Ms, rfc3339, type LatencyCounterProp, type UsageCell, type UsageDims } from './buckets.js';

type Histogram = Record<LatencyCounterProp, number>;

/** Adds a cell's counters to a row, and its latency histogram to the row's. */
function add(row: UsageRow, latency: Histogram, c: UsageCell): void {
  for (const p of LATENCY_PROPS) latency[p] += c[p];
  row.fallbackRequests += c.fallbackRequests;
  row.cacheHits += c.cacheHits;
  row.cacheSavedCostMicros += c.cacheSavedCostMicros;
  row.requests += c.requests;
  row.failedRequests += c.failedRequests;
  row.inputTokens += c.inputTokens;
  row.outputTokens += c.outputTokens;
  row.cachedInputTokens += c.cachedInputTokens;
  row.cacheWriteInputTokens += c.cacheWriteInputTokens;
  row.reasoningTokens += c.reasoningTokens;
  row.costMicros += c.costMicros;
}

/** The dimension each group_by value keeps, in the rows' sort order after the time bucket. */
const GROUPS: [UsageGroupBy, 'tenantId' | keyof UsageDims][] = [
  [UsageGroupBy.USAGE_GROUP_BY_TENANT, 'tenantId'],
  [UsageGroupBy.USAGE_GROUP_BY_ROUTE, 'route'],
  [UsageGroupBy.USAGE_GROUP_BY_MODEL, 'model'],
  [UsageGroupBy.USAGE_GROUP_BY_PROVIDER, 'provider'],
  [UsageGroupBy.USAGE_GROUP_BY_KEY, 'keyId'],
  [UsageGroupBy.USAGE_GROUP_BY_USER, 'user'],
  [UsageGroupBy.USAGE_GROUP_BY_PROMPT_VERSION, 'promptVersion'],
  [UsageGroupBy.USAGE_GROUP_BY_FEATURE, 'feature'],
  [UsageGroupBy.USAGE_GROUP_BY_INTENT, 'intent'],
];

export interface SummaryOptions {
  orderBy?: UsageOrderBy;
  /** At most this many rows; 0 or unset: all. */
  limit?: number;
}

/**
 * Sums cells into one row per group (the dimensions in `groupBy`; none gives one row) and a total
 * over every group. Grouping by HOUR and DAY together groups by hour. Rows are sorted by their
 * group key, or by cost (dearest first, ties by group key); a limit keeps the first rows.
 */
export function summarize(cells: readonly UsageCell[], groupBy: readonly UsageGroupBy[], opts: SummaryOptions = {}): GetUsageResponse {
  const by = new Set(groupBy);
  const byHour = by.has(UsageGroupBy.USAGE_GROUP_BY_HOUR);
  const byDay = !byHour && by.has(UsageGroupBy.USAGE_GROUP_BY_DAY);
  const kept = GROUPS.filter(([g]) => by.has(g)).map(([, dim]) => dim);

  const rows = new Map<string, UsageRow>();
  const total = UsageRow.fromPartial({});
  const latencies = new Map<UsageRow, Histogram>();
  const latencyOf = (row: UsageRow): Histogram => {
    let h = latencies.get(row);
    if (!h) latencies.set(row, (h = Object.fromEntries(LATENCY_PROPS.map((p) => [p, 0])) as Histogram));
    return h;
  };
  for (const c of cells) {
    const group: Partial<UsageRow> = { bucket: byHour ? rfc3339(c.startMs) : byDay ? rfc3339(dayStartMs(c.startMs)) : '' };
    for (const dim of kept) group[dim] = c[dim];
    const key = JSON.stringify([group.bucket, ...kept.map((d) => c[d])]);
    let row = rows.get(key);
    if (!row) rows.set(key, (row = UsageRow.fromPartial(group)));
    add(row, latencyOf(row), c);
    add(total, latencyOf(total), c);
  }
  if (rows.size === 0 && by.size === 0) rows.set('', UsageRow.fromPartial({}));
  let sorted = [...rows.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r);
  // Array.prototype.sort is stable: equal costs keep the group-key order.
  if (opts.orderBy === UsageOrderBy.USAGE_ORDER_BY_COST_DESC) sorted.sort((a, b) => b.costMicros - a.costMicros);
  const all = sorted.length;
  if (opts.limit) sorted = sorted.slice(0, opts.limit);
  for (const r of [...sorted, total]) {
    r.costUsd = r.costMicros / 1e6;
    r.latencyP95Ms = latencies.has(r) ? latencyP95Ms(latencyOf(r)) : 0;
  }
  return { rows: sorted, total, rowsOmitted: all - sorted.length };
}
