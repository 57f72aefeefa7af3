import type { ResolvedLimit } from './limits.js';

/** A budget crossing 80% or 100% in its period, reported exactly once by the store. */
export interface BudgetAlert {
  limit: string;
  thresholdPercent: 80 | 100;
  limitValue: number;
  used: number;
  /** "2026-11-21" or "2026-11". */
  period: string;
}

export interface ReserveInput {
  requestId: string;
  tenantId: string;
  /** The model reserved for (the plan's first attempt); kept so reconciliation can tell whether another served. */
  model?: string;
  /** Every limit that applies; the store reserves against all of them or none. */
  limits: ResolvedLimit[];
  estimatedTokens: number;
  estimatedCostMicros: number;
}

export interface ReserveDecision {
  allowed: boolean;
  /** Denied: the limit that stopped the request. Allowed: the tightest limit (for x-ratelimit-*), '' when none. */
  limit: string;
  retryAfterMs: number;
  limitValue: number;
  remaining: number;
  /** Time until the limit is back to full (window empty, budget period over), ms from now. */
  resetMs: number;
  /** True when this request id was seen before and the stored decision is returned. */
  duplicate: boolean;
  /** Decided without the shared store (fail-open/closed policy). */
  degraded: boolean;
  alerts: BudgetAlert[];
}

export type ReleaseOutcome = 'released' | 'unknown' | 'already_released' | 'already_reconciled' | 'denied';

export interface ReconcileInput {
  requestId: string;
  tenantId: string;
  actualTokens: number;
  actualCostMicros: number;
  /**
   * The model that served (or was tried last). When it differs from the reserved model, the
   * reserved model's token and dollar reservations are given back (actual 0) and the actual usage
   * is charged to this model's token and dollar limits in `limits`, in the same atomic step.
   * Empty or absent: the reserved model is taken to have served.
   */
  servedModel?: string;
  /**
   * Limits of the event's tenant/route/served model: all of them when the reservation is unknown
   * or expired; otherwise only the served model's, when it is not the reserved one.
   */
  limits: ResolvedLimit[];
}

/**
 * reconciled: the estimate was replaced by actual usage. orphan_applied: no reservation (unknown,
 * denied, or past its record life): the actual usage was added. after_release: the reservation
 * had been released (or a release came first): the actual usage was added, since it was spent.
 * duplicate: this request id was settled before; nothing changed.
 */
export type ReconcileOutcome = 'reconciled' | 'orphan_applied' | 'duplicate' | 'after_release';

export interface ReconcileResult {
  outcome: ReconcileOutcome;
  alerts: BudgetAlert[];
}

export interface LimitUsage {
  limit: string;
  limitValue: number;
  used: number;
  remaining: number;
  resetMs: number;
}

/**
 * The quota port. RedisQuotaStore (shared by replicas) and MemoryQuotaStore (monolithic mode)
 * implement it with the same semantics and pass the same conformance suite.
 */
export interface QuotaStore {
  reserve(input: ReserveInput): Promise<ReserveDecision>;
  /**
   * Gives back tokens, dollars and the concurrency lease; request counts stay. Idempotent. An
   * unknown request id leaves a tombstone: a reserve that arrives after its release (one that
   * timed out at the client but was still queued in Redis) reserves nothing.
   */
  release(tenantId: string, requestId: string): Promise<ReleaseOutcome>;
  /**
   * Replaces the reservation's estimate by actual usage, once per request id. After a release
   * (or on an unknown request id) the actual usage is charged to the event's limits, once.
   */
  reconcile(input: ReconcileInput): Promise<ReconcileResult>;
  status(tenantId: string, limits: ResolvedLimit[]): Promise<LimitUsage[]>;
  /** Clears a tenant's counters and alert markers. */
  reset(tenantId: string): Promise<void>;
}

/**
 * How much longer than reservation_ttl_ms a reservation record is kept, so that a usage event
 * redelivered or delayed past the reservation TTL still finds the record and replaces the
 * estimate (instead of adding to it as an orphan). Also how long a release tombstone and an
 * orphan's dedupe marker live. Memory: one record per request id lives reservationTtlMs + this,
 * i.e. records ≈ request rate × (reservation_ttl_ms + horizon): 1,000 req/s × 25 min ≈ 1.5 M,
 * most of them settled (reconciled or released), which drop their entries and keep only state
 * and decision.
 */
export const LATE_EVENT_HORIZON_MS = 15 * 60_000; // the config default of quota.late_event_horizon_ms

export interface StoreOptions {
  /** Concurrency lease TTL: a slot held by a crashed edge comes back after it. */
  leaseTtlMs: number;
  /**
   * How long a reservation waits for its usage event. Its record lives the late-event horizon
   * longer (see recordLifeMs); after that it stays at its reserved amount for good.
   */
  reservationTtlMs: number;
  /** `quota.late_event_horizon_ms`; default LATE_EVENT_HORIZON_MS. */
  lateEventHorizonMs?: number;
  /** Injected clock (ms since epoch). */
  now: () => number;
}

/**
 * How long a reservation record (and a release tombstone, an orphan's dedupe marker) lives:
 * within it, a usage event replaces the estimate, a release gives it back, and a reserve that
 * arrives after its release or its event reserves nothing.
 */
export function recordLifeMs(opts: Pick<StoreOptions, 'reservationTtlMs' | 'lateEventHorizonMs'>): number {
  return opts.reservationTtlMs + (opts.lateEventHorizonMs ?? LATE_EVENT_HORIZON_MS);
}

/** How long a budget counter outlives its period, so late reconciliations and releases still find it. */
export function budgetGraceMs(opts: StoreOptions): number {
  return recordLifeMs(opts) + 60_000;
}
