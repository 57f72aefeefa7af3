import type { ResolvedLimit } from './limits.js';
import { MemoryQuotaStore } from './memory-store.js';
import type { ReserveDecision } from './store.js';

/**
 * The in-process stand-in for request and token rates while Redis is unreachable (policy
 * `rates: fail_open`). It runs the same sliding-window log as the stores, but per replica: with
 * R replicas a tenant may get up to R×N per minute during the outage. That is the documented
 * approximation; it still stops one runaway client from flooding a provider.
 */
export class LocalRateLimiter {
  private readonly store: MemoryQuotaStore;

  constructor(now: () => number) {
    // Nothing here is released or reconciled: records only dedupe, so no late-event horizon.
    this.store = new MemoryQuotaStore({ leaseTtlMs: 1, reservationTtlMs: 60_000, lateEventHorizonMs: 0, now });
  }

  /** Checks and counts only the rate limits (requests/min, tokens/min) among `limits`. */
  async reserve(tenantId: string, requestId: string, limits: ResolvedLimit[], estimatedTokens: number): Promise<ReserveDecision> {
    const rates = limits.filter((l) => l.kind === 'requests_per_minute' || l.kind === 'tokens_per_minute');
    const d = await this.store.reserve({ tenantId, requestId, limits: rates, estimatedTokens, estimatedCostMicros: 0 });
    return { ...d, degraded: true };
  }

  async reset(tenantId: string): Promise<void> {
    await this.store.reset(tenantId);
  }
}
