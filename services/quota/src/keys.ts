/**
 * Every Redis key of the quota service, in one place. All keys of one tenant carry the hash tag
 * `{tenant}`, so they share one Redis Cluster slot and one Lua script can touch all of them.
 *
 *   llmgw:quota:{t}:c:<scope>:rpm          ZSET  sliding-window log, member "<request id>|<amount>", score = admitted at (ms)
 *   llmgw:quota:{t}:c:<scope>:rpm:sum      STRING sum of the amounts in the ZSET (kept in step by the scripts)
 *   llmgw:quota:{t}:c:<scope>:tpm(+:sum)   same, amount = tokens
 *   llmgw:quota:{t}:c:<scope>:tpd:<day>    STRING tokens reserved/used in the UTC day, TTL = end of day + grace
 *   llmgw:quota:{t}:c:<scope>:usdd:<day>   STRING micro-dollars in the UTC day
 *   llmgw:quota:{t}:c:<scope>:usdm:<month> STRING micro-dollars in the UTC month
 *   llmgw:quota:{t}:c:<scope>:conc         ZSET  concurrency leases, member = request id, score = lease expiry (ms)
 *   llmgw:quota:{t}:a:<scope>:<kind>:<period> STRING highest budget alert threshold already raised (80|100)
 *   llmgw:quota:{t}:r:<request id>         STRING JSON reservation record (state, decision, counters and amounts,
 *                                          expiry x); lives reservation_ttl_ms + late-event horizon. Also a
 *                                          release tombstone or a usage event's dedupe marker (no counters)
 *
 * <scope> is "tenant", "route:<route>" or "model:<model>".
 */
import type { LimitKind } from './limits.js';

export const KEY_PREFIX = 'llmgw:quota';

const SHORT: Record<LimitKind, string> = {
  requests_per_minute: 'rpm',
  tokens_per_minute: 'tpm',
  tokens_per_day: 'tpd',
  usd_per_day: 'usdd',
  usd_per_month: 'usdm',
  concurrent_requests: 'conc',
};

export function tenantTag(tenantId: string): string {
  return `${KEY_PREFIX}:{${tenantId}}`;
}

/** Pattern matching every counter and alert marker of a tenant (ResetQuota). */
export function tenantCounterPatterns(tenantId: string): string[] {
  return [`${tenantTag(tenantId)}:c:*`, `${tenantTag(tenantId)}:a:*`];
}

export function windowKey(tenantId: string, scope: string, kind: LimitKind): string {
  return `${tenantTag(tenantId)}:c:${scope}:${SHORT[kind]}`;
}

export function windowSumKey(tenantId: string, scope: string, kind: LimitKind): string {
  return `${windowKey(tenantId, scope, kind)}:sum`;
}

export function budgetKey(tenantId: string, scope: string, kind: LimitKind, periodId: string): string {
  return `${tenantTag(tenantId)}:c:${scope}:${SHORT[kind]}:${periodId}`;
}

export function alertKey(tenantId: string, scope: string, kind: LimitKind, periodId: string): string {
  return `${tenantTag(tenantId)}:a:${scope}:${SHORT[kind]}:${periodId}`;
}

export function leaseKey(tenantId: string, scope: string): string {
  return `${tenantTag(tenantId)}:c:${scope}:conc`;
}

export function reservationKey(tenantId: string, requestId: string): string {
  return `${tenantTag(tenantId)}:r:${requestId}`;
}
