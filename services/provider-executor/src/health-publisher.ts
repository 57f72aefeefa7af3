import { Subjects, type EventBus } from '@llmgw/events';
import type { Logger } from '@llmgw/logging';
import { BackendHealthChanged } from '@llmgw/proto/executor';
import type { BreakerChange } from './circuit-breaker.js';

export interface HealthPublisherDeps {
  bus: Pick<EventBus, 'broadcast'>;
  /** The provider a model was last planned on (the router owns models; plans tell us). */
  providerOf: (model: string) => string;
  /** Random per process: lets a router clear exactly what this replica said before. */
  replicaId: string;
  logger: Logger;
}

/**
 * Builds the breaker's onChange callback: each transition becomes one `BackendHealthChanged`
 * broadcast on core NATS (best effort; a failed broadcast is logged and never reaches the call
 * that tripped the breaker).
 */
export function healthPublisher(deps: HealthPublisherDeps): (change: BreakerChange) => void {
  return (change) => {
    const event = BackendHealthChanged.fromPartial({
      model: change.key,
      provider: deps.providerOf(change.key),
      healthy: change.healthy,
      replicaId: deps.replicaId,
      unhealthyForMs: change.healthy ? 0 : Math.max(0, Math.round(change.unhealthyForMs)),
      reason: change.reason,
      occurredAt: new Date(change.at),
    });
    const log = { model: event.model, provider: event.provider, healthy: event.healthy, unhealthyForMs: event.unhealthyForMs, reason: event.reason };
    try {
      deps.bus.broadcast(Subjects.backendHealth, BackendHealthChanged.encode(event).finish());
      deps.logger.info(log, event.healthy ? 'circuit breaker closed: backend healthy again' : 'circuit breaker opened: backend unhealthy');
    } catch (err) {
      deps.logger.warn({ ...log, err: err instanceof Error ? err.message : String(err) }, 'could not broadcast backend health');
    }
  };
}
