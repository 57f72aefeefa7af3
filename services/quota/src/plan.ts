import { budgetKey, alertKey, leaseKey, windowKey, windowSumKey } from './keys.js';
import type { LimitKind, ResolvedLimit } from './limits.js';
import { periodOf } from './periods.js';

/** Sliding-window length of the per-minute rates. */
export const MINUTE_MS = 60_000;

/**
 * One limit turned into what a store does with it. Both stores execute the same plan, so the
 * Redis Lua script and the in-memory store cannot drift apart in what they count.
 *  - 'w' sliding-window log (rates): key1 = ZSET, key2 = running sum; param = window length ms
 *  - 'b' period budget: key1 = counter, key2 = alert marker; param = period end (ms since epoch)
 *  - 'c' concurrency leases: key1 = ZSET scored by lease expiry; param = lease TTL ms
 */
export interface LimitOp {
  limit: ResolvedLimit;
  type: 'w' | 'b' | 'c';
  /** What this request adds: 1 request, estimated tokens, estimated micro-dollars, 1 slot. */
  amount: number;
  /** What replaces the amount on reconciliation; 'none' = never adjusted (request counts, leases). */
  measure: 'tok' | 'usd' | 'none';
  param: number;
  /** Budget period id ('' for others). */
  period: string;
  key1: string;
  key2: string;
}

export interface Amounts {
  tokens: number;
  costMicros: number;
}

function measureOf(kind: LimitKind): LimitOp['measure'] {
  if (kind === 'tokens_per_minute' || kind === 'tokens_per_day') return 'tok';
  if (kind === 'usd_per_day' || kind === 'usd_per_month') return 'usd';
  return 'none';
}

export function planOps(tenantId: string, limits: ResolvedLimit[], amounts: Amounts, nowMs: number, leaseTtlMs: number): LimitOp[] {
  return limits.map((limit) => {
    const measure = measureOf(limit.kind);
    const amount = measure === 'tok' ? amounts.tokens : measure === 'usd' ? amounts.costMicros : 1;
    switch (limit.kind) {
      case 'requests_per_minute':
      case 'tokens_per_minute':
        return {
          limit, type: 'w', amount, measure, param: MINUTE_MS, period: '',
          key1: windowKey(tenantId, limit.scope, limit.kind), key2: windowSumKey(tenantId, limit.scope, limit.kind),
        };
      case 'concurrent_requests': {
        const k = leaseKey(tenantId, limit.scope);
        return { limit, type: 'c', amount: 1, measure, param: leaseTtlMs, period: '', key1: k, key2: k };
      }
      default: {
        const p = periodOf(limit.kind === 'usd_per_month' ? 'month' : 'day', nowMs);
        return {
          limit, type: 'b', amount, measure, param: p.endMs, period: p.id,
          key1: budgetKey(tenantId, limit.scope, limit.kind, p.id), key2: alertKey(tenantId, limit.scope, limit.kind, p.id),
        };
      }
    }
  });
}

/** Alert level a budget is at: 0, 80 (>= 80% used) or 100 (>= 100% used). */
export function alertLevel(used: number, limit: number): 0 | 80 | 100 {
  return used >= limit ? 100 : used * 5 >= limit * 4 ? 80 : 0;
}

/**
 * Thresholds to raise now: those above the highest one already raised this period (kept in the
 * alert marker) and at or below the current level. Exactly once per period per budget.
 */
export function thresholdsToRaise(raised: number, used: number, limit: number): (80 | 100)[] {
  const level = alertLevel(used, limit);
  return ([80, 100] as const).filter((t) => t > raised && t <= level);
}
