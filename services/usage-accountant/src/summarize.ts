import { UsageGroupBy, UsageRow, type GetUsageResponse } from '@llmgw/proto/v1';
import { dayStartMs, rfc3339, type UsageCell } from './buckets.js';

function emptyRow(): UsageRow {
  return UsageRow.fromPartial({});
}

function add(row: UsageRow, c: UsageCell): void {
  row.requests += c.requests;
  row.failedRequests += c.failedRequests;
  row.inputTokens += c.inputTokens;
  row.outputTokens += c.outputTokens;
  row.costMicros += c.costMicros;
}

/**
 * Sums cells into one row per group (the dimensions in `groupBy`; none gives one row) and a total.
 * Grouping by HOUR and DAY together groups by hour. Rows are sorted by their group key.
 */
export function summarize(cells: readonly UsageCell[], groupBy: readonly UsageGroupBy[]): GetUsageResponse {
  const by = new Set(groupBy);
  const byHour = by.has(UsageGroupBy.USAGE_GROUP_BY_HOUR);
  const byDay = !byHour && by.has(UsageGroupBy.USAGE_GROUP_BY_DAY);
  const byTenant = by.has(UsageGroupBy.USAGE_GROUP_BY_TENANT);
  const byRoute = by.has(UsageGroupBy.USAGE_GROUP_BY_ROUTE);
  const byModel = by.has(UsageGroupBy.USAGE_GROUP_BY_MODEL);

  const rows = new Map<string, UsageRow>();
  const total = emptyRow();
  for (const c of cells) {
    const bucket = byHour ? rfc3339(c.hourMs) : byDay ? rfc3339(dayStartMs(c.hourMs)) : '';
    const tenantId = byTenant ? c.tenantId : '';
    const route = byRoute ? c.route : '';
    const model = byModel ? c.model : '';
    const key = JSON.stringify([bucket, tenantId, route, model]);
    let row = rows.get(key);
    if (!row) rows.set(key, (row = { ...emptyRow(), tenantId, route, model, bucket }));
    add(row, c);
    add(total, c);
  }
  if (rows.size === 0 && by.size === 0) rows.set('', emptyRow());
  const sorted = [...rows.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r);
  for (const r of sorted) r.costUsd = r.costMicros / 1e6;
  total.costUsd = total.costMicros / 1e6;
  return { rows: sorted, total, rowsOmitted: 0 };
}
