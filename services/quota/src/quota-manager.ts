import type { QuotaSections } from '@llmgw/config';
import { AppError, quoted } from '@llmgw/errors';
import type { Logger } from '@llmgw/logging';
import type { QuotaMetrics } from '@llmgw/metrics';
import type { AlertPublisher } from './alerts.js';
import { allTenantLimits, isKnownTenant, limitClass, resolveLimits, type LimitClass, type ResolvedLimit } from './limits.js';
import type { LocalRateLimiter } from './local-limiter.js';
import { PendingReleases } from './pending-releases.js';
import { StoreUnavailableError } from './redis-store.js';
import { recordLifeMs, type LimitUsage, type QuotaStore, type ReconcileResult, type ReleaseOutcome, type ReserveDecision } from './store.js';

export const STORE_UNAVAILABLE_LIMIT = 'store_unavailable';
/** How long a caller denied because the store is down should wait before trying again. */
export const STORE_DOWN_RETRY_MS = 1_000;

export interface ReserveRequest {
  requestId: string;
  tenantId: string;
  route: string;
  model: string;
  estimatedTokens: number;
  estimatedCostMicros: number;
}

/** Where the current sections are read from: a ConfigWatcher (hot reload) or a fixed value. */
export interface QuotaPolicySource {
  readonly current: QuotaSections;
}

export interface QuotaManagerDeps {
  /** Read on every call, so a reloaded file applies to the next request. */
  policy: QuotaPolicySource;
  store: QuotaStore;
  /** Present with a shared store: what rates fall back to while it is unreachable. */
  localLimiter?: LocalRateLimiter;
  alerts: AlertPublisher;
  logger: Logger;
  /** Told whenever a store call succeeds (true) or finds the store unreachable (false). */
  onStoreHealth?: (up: boolean) => void;
  /**
   * Whether usage events are arriving (the reconciler consumes). A lease ends when its request's
   * event is reconciled, so while they cannot arrive concurrency cannot be counted: it follows
   * `quota.on_store_down.concurrency` then. Absent: always arriving.
   */
  usageArriving?: () => boolean;
  metrics?: QuotaMetrics;
}

/** The quota logic behind the gRPC surface: validation, limit resolution, store-down policy. */
export class QuotaManager {
  /** Reserves and releases that timed out (they may still run in Redis), released by request id once it answers. */
  readonly pendingReleases: PendingReleases;

  constructor(private readonly deps: QuotaManagerDeps) {
    this.pendingReleases = new PendingReleases(deps.store, {
      logger: deps.logger,
      horizonMs: () => {
        const q = deps.policy.current.quota;
        return recordLifeMs({ reservationTtlMs: q.reservation_ttl_ms, lateEventHorizonMs: q.late_event_horizon_ms });
      },
      onStoreHealth: deps.onStoreHealth,
    });
  }

  /** Stops retrying pending releases (shutdown). */
  stop(): void {
    this.pendingReleases.stop();
  }

  async reserve(req: ReserveRequest): Promise<ReserveDecision> {
    if (!req.requestId) throw new AppError('invalid_argument', 'request_id is required');
    if (!Number.isSafeInteger(req.estimatedTokens) || req.estimatedTokens < 0) throw new AppError('invalid_argument', 'estimated_tokens must be a non-negative integer');
    if (!Number.isSafeInteger(req.estimatedCostMicros) || req.estimatedCostMicros < 0) {
      throw new AppError('invalid_argument', 'estimated_cost_micros must be a non-negative integer');
    }
    let limits = this.limitsFor(req.tenantId, req.route, req.model);
    const uncountable = this.deps.usageArriving?.() === false ? limits.filter((l) => limitClass(l.kind) === 'concurrency') : [];
    if (uncountable.length > 0) {
      if (this.deps.policy.current.quota.on_store_down.concurrency === 'fail_closed') return this.storeDownDenial(req, ['concurrency']);
      limits = limits.filter((l) => !uncountable.includes(l));
    }
    let d: ReserveDecision;
    try {
      d = await this.deps.store.reserve({ ...req, limits });
      this.deps.onStoreHealth?.(true);
      if (d.alerts.length > 0) void this.deps.alerts.publish(req.tenantId, d.alerts);
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err;
      this.deps.onStoreHealth?.(false);
      this.deps.metrics?.storeDegraded();
      // The reserve may have reached Redis and run after the timeout: give it back by id.
      if (err.mayHaveRun) this.pendingReleases.schedule(req.tenantId, req.requestId);
      d = await this.reserveWithoutStore(req, limits);
    }
    if (uncountable.length > 0) d = { ...d, degraded: true };
    // Limit names come from config ("tenant:…", "route:<route>:…"): bounded, never a tenant id.
    this.deps.metrics?.decision(d.allowed ? 'allowed' : 'denied', d.allowed ? '' : d.limit);
    return d;
  }

  async release(tenantId: string, requestId: string): Promise<ReleaseOutcome> {
    if (!requestId) throw new AppError('invalid_argument', 'request_id is required');
    this.requireTenant(tenantId);
    try {
      return await this.storeCall(() => this.deps.store.release(tenantId, requestId));
    } catch (err) {
      // The caller is told (it may retry); the release is retried here in any case.
      if (err instanceof AppError && err.kind === 'unavailable') this.pendingReleases.schedule(tenantId, requestId);
      throw err;
    }
  }

  async status(tenantId: string): Promise<LimitUsage[]> {
    const limits = allTenantLimits(this.deps.policy.current, tenantId);
    if (!limits) throw unknownTenant(tenantId);
    return this.storeCall(() => this.deps.store.status(tenantId, limits));
  }

  async reset(tenantId: string): Promise<void> {
    this.requireTenant(tenantId);
    await this.storeCall(() => this.deps.store.reset(tenantId));
    await this.deps.localLimiter?.reset(tenantId);
    this.deps.logger.info({ tenantId }, 'quota reset');
  }

  /**
   * Replaces a reservation's estimate by actual usage; per-model limits are charged to the model
   * that served (ev.model), the reserved model's given back. An unknown tenant yields undefined (the
   * event is acknowledged and dropped). A store outage throws, so the event is redelivered.
   */
  async reconcile(ev: { requestId: string; tenantId: string; route: string; model: string; tokens: number; costMicros: number }): Promise<ReconcileResult | undefined> {
    const limits = resolveLimits(this.deps.policy.current, ev.tenantId, ev.route, ev.model);
    if (!limits) return undefined;
    const r = await this.deps.store.reconcile({
      requestId: ev.requestId,
      tenantId: ev.tenantId,
      actualTokens: ev.tokens,
      actualCostMicros: ev.costMicros,
      servedModel: ev.model,
      limits,
    });
    if (r.alerts.length > 0) await this.deps.alerts.publish(ev.tenantId, r.alerts);
    return r;
  }

  /**
   * The documented store-down policy (config `quota.on_store_down`), per class of the limits
   * that apply:
   *  - budgets fail_closed (default): DENIED with limit "store_unavailable": nobody can spend
   *    money we cannot count;
   *  - rates fail_open (default): the in-process sliding window decides (per replica);
   *  - concurrency fail_open (default): admitted without a lease;
   *  - any class set to fail_closed: DENIED "store_unavailable" while the store is down.
   * Every such decision is marked degraded.
   */
  private async reserveWithoutStore(req: ReserveRequest, limits: ResolvedLimit[]): Promise<ReserveDecision> {
    const policy = this.deps.policy.current.quota.on_store_down;
    const classes = new Set<LimitClass>(limits.map((l) => limitClass(l.kind)));
    const closed = [...classes].filter((c) => policy[c] === 'fail_closed');
    if (closed.length > 0) return this.storeDownDenial(req, closed);
    if (classes.has('rates') && this.deps.localLimiter) {
      return this.deps.localLimiter.reserve(req.tenantId, req.requestId, limits, req.estimatedTokens);
    }
    return { allowed: true, limit: '', retryAfterMs: 0, limitValue: 0, remaining: 0, resetMs: 0, duplicate: false, degraded: true, alerts: [] };
  }

  private storeDownDenial(req: ReserveRequest, classes: LimitClass[]): ReserveDecision {
    this.deps.logger.warn({ tenantId: req.tenantId, classes }, 'quota cannot count: denying (fail closed)');
    return {
      allowed: false,
      limit: STORE_UNAVAILABLE_LIMIT,
      retryAfterMs: STORE_DOWN_RETRY_MS,
      limitValue: 0,
      remaining: 0,
      resetMs: STORE_DOWN_RETRY_MS,
      duplicate: false,
      degraded: true,
      alerts: [],
    };
  }

  private limitsFor(tenantId: string, route: string, model: string): ResolvedLimit[] {
    const limits = resolveLimits(this.deps.policy.current, tenantId, route, model);
    if (!limits) throw unknownTenant(tenantId);
    return limits;
  }

  private requireTenant(tenantId: string): void {
    if (!isKnownTenant(this.deps.policy.current, tenantId)) throw unknownTenant(tenantId);
  }

  private async storeCall<T>(fn: () => Promise<T>): Promise<T> {
    try {
      const r = await fn();
      this.deps.onStoreHealth?.(true);
      return r;
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err;
      this.deps.onStoreHealth?.(false);
      throw new AppError('unavailable', 'quota store unavailable; try again', { retryAfterMs: STORE_DOWN_RETRY_MS, cause: err });
    }
  }
}

function unknownTenant(tenantId: string): AppError {
  return tenantId ? new AppError('not_found', `unknown tenant ${quoted(tenantId)}`) : new AppError('invalid_argument', 'tenant_id is required');
}
