import type { BackendHealthChanged } from '@llmgw/proto/executor';
import type { MeasuredHealth } from './backend-stats.js';

/** What the planner asks about health. */
export interface HealthView {
  /** True while at least one executor replica reports the model's breaker open. */
  isUnhealthy(model: string): boolean;
  /** What the executors measured of the model over their windows (BackendStats); undefined: nothing known. */
  measured?(model: string): MeasuredHealth | undefined;
}

/** Longest time one report may mark a model unhealthy, whatever the sender says. */
export const MAX_UNHEALTHY_MS = 5 * 60_000;

/**
 * The router's view of backend health, fed by `BackendHealthChanged` broadcasts from executor
 * replicas: model → replica → unhealthy-until (by this router's clock, from receipt, so clock skew
 * between hosts does not matter). A model is unhealthy while any replica's entry is in the future
 * (the max over replicas); a healthy report clears only its own replica's entry. Entries expire on
 * their own, so a lost "healthy" message or a dead replica costs at most one open period.
 */
export class BackendHealth implements HealthView {
  private readonly until = new Map<string, Map<string, number>>();

  constructor(private readonly now: () => number) {}

  apply(ev: Pick<BackendHealthChanged, 'model' | 'healthy' | 'replicaId' | 'unhealthyForMs'>): void {
    if (!ev.model) return;
    const replicas = this.until.get(ev.model);
    if (ev.healthy) {
      replicas?.delete(ev.replicaId);
      if (replicas?.size === 0) this.until.delete(ev.model);
      return;
    }
    const forMs = Math.min(Math.max(0, ev.unhealthyForMs), MAX_UNHEALTHY_MS);
    if (forMs === 0) return;
    const until = this.now() + forMs;
    if (replicas) replicas.set(ev.replicaId, until);
    else this.until.set(ev.model, new Map([[ev.replicaId, until]]));
  }

  isUnhealthy(model: string): boolean {
    return this.unhealthyUntil(model) > this.now();
  }

  /** When the model turns healthy again by what is known now (0: it is healthy). Prunes expired entries. */
  unhealthyUntil(model: string): number {
    const replicas = this.until.get(model);
    if (!replicas) return 0;
    const now = this.now();
    let max = 0;
    for (const [replica, until] of replicas) {
      if (until <= now) replicas.delete(replica);
      else if (until > max) max = until;
    }
    if (replicas.size === 0) this.until.delete(model);
    return max;
  }
}
