import type { AccountantSections } from '@llmgw/config';
import type { Principal } from '@llmgw/proto/auth';
import { GetUsageRequest, UsageGroupBy, type UsageRow } from '@llmgw/proto/v1';
import { dayStartMs } from './buckets.js';
import type { UsageQueries } from './usage-queries.js';

const HOUR_MS = 3_600_000;
export const MAX_DASHBOARD_HOURS = 31 * 24;

interface Row {
  requests: number;
  failedRequests: number;
  inputTokens: number;
  outputTokens: number;
  costMicros: number;
}

/** What the dashboard page shows, for one caller: all tenants for an admin key, its own for a tenant key. */
export interface DashboardData {
  tenant: string;
  admin: boolean;
  hours: number;
  from: string;
  to: string;
  total: Row;
  byTenant: (Row & { tenant: string })[];
  /** Per route: failed / requests, and requests that moved past their first model / requests. */
  byRoute: (Row & { route: string; errorRate: number; fallbackRate: number })[];
  /** Requests by the model that answered (the backend), its share of all requests and their p95 latency. */
  byModel: (Row & { model: string; share: number; latencyP95Ms: number })[];
  /** Cost and tokens per hour, tenant and route. */
  hourly: (Row & { hour: string; tenant: string; route: string })[];
  /** Today's (UTC) actual spend against each dollar budget per day. */
  budgets: { tenant: string; limitMicros: number; spentMicros: number; burn: number }[];
}

const rowOf = (r: UsageRow): Row => ({ requests: r.requests, failedRequests: r.failedRequests, inputTokens: r.inputTokens, outputTokens: r.outputTokens, costMicros: r.costMicros });

/**
 * The dashboard's numbers, all from GetUsage's queries (so the page sees exactly what the API
 * shows a key) and from the budgets of the config (the tenant's usd_per_day, else its tier's).
 */
export async function dashboardData(queries: UsageQueries, caller: Principal, sections: AccountantSections, hours: number, now: number): Promise<DashboardData> {
  const from = new Date(now - hours * HOUR_MS);
  const to = new Date(now);
  const ask = (groupBy: UsageGroupBy[], startTime = from) => queries.getUsage(GetUsageRequest.fromPartial({ startTime, endTime: to, groupBy }), caller);
  const G = UsageGroupBy;
  const [tenants, routes, models, hourly, today] = await Promise.all([
    ask([G.USAGE_GROUP_BY_TENANT]),
    ask([G.USAGE_GROUP_BY_ROUTE]),
    ask([G.USAGE_GROUP_BY_MODEL]),
    ask([G.USAGE_GROUP_BY_HOUR, G.USAGE_GROUP_BY_TENANT, G.USAGE_GROUP_BY_ROUTE]),
    ask([G.USAGE_GROUP_BY_TENANT], new Date(dayStartMs(now))),
  ]);
  const total = rowOf(tenants.total ?? ({} as UsageRow));
  const spentToday = new Map(today.rows.map((r) => [r.tenantId, r.costMicros]));
  const visible = caller.admin ? Object.keys(sections.tenants) : [caller.tenantId];
  const budgets = visible.flatMap((tenant) => {
    const usdPerDay = budgetOf(sections, tenant);
    if (usdPerDay === undefined) return [];
    const limitMicros = Math.round(usdPerDay * 1e6);
    const spentMicros = spentToday.get(tenant) ?? 0;
    return [{ tenant, limitMicros, spentMicros, burn: limitMicros > 0 ? spentMicros / limitMicros : 0 }];
  });
  return {
    tenant: caller.tenantId,
    admin: caller.admin,
    hours,
    from: from.toISOString(),
    to: to.toISOString(),
    total,
    byTenant: tenants.rows.map((r) => ({ tenant: r.tenantId, ...rowOf(r) })),
    byRoute: routes.rows.map((r) => ({ route: r.route, ...rowOf(r), errorRate: rate(r.failedRequests, r.requests), fallbackRate: rate(r.fallbackRequests, r.requests) })),
    byModel: models.rows
      .filter((r) => r.model !== '')
      .map((r) => ({ model: r.model, ...rowOf(r), share: rate(r.requests, total.requests), latencyP95Ms: r.latencyP95Ms }))
      .sort((a, b) => b.requests - a.requests),
    hourly: hourly.rows.map((r) => ({ hour: r.bucket, tenant: r.tenantId, route: r.route, ...rowOf(r) })),
    budgets,
  };
}

const rate = (part: number, whole: number) => (whole > 0 ? part / whole : 0);

function budgetOf(sections: AccountantSections, tenant: string): number | undefined {
  const t = sections.tenants[tenant];
  if (!t) return undefined;
  return t.limits?.usd_per_day ?? sections.tiers?.[t.tier ?? '']?.limits?.usd_per_day;
}
