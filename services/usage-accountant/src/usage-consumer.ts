import type { Logger } from '@llmgw/logging';
import { UsageRecorded } from '@llmgw/proto/v1';
import type { UsageFact } from './buckets.js';
import type { UsageStore } from './usage-store.js';

/** The fact an event contributes, or undefined when it cannot be counted (logged and dropped). */
export function factOf(ev: UsageRecorded, receivedAtMs: number): UsageFact | undefined {
  if (!ev.eventId || !ev.tenantId) return undefined;
  return {
    eventId: ev.eventId,
    tenantId: ev.tenantId,
    route: ev.route,
    model: ev.model,
    occurredAtMs: ev.occurredAt ? ev.occurredAt.getTime() : receivedAtMs,
    success: ev.success,
    inputTokens: ev.inputTokens,
    outputTokens: ev.outputTokens,
    costMicros: ev.costMicros,
  };
}

/**
 * The JetStream handler: decode, count once. A store failure throws, so the event is redelivered;
 * an event that can never be counted (undecodable, no ids) is acknowledged and logged once.
 */
export function usageEventHandler(store: UsageStore, logger: Logger, now: () => number = Date.now) {
  return async (data: Uint8Array): Promise<void> => {
    let ev: UsageRecorded;
    try {
      ev = UsageRecorded.decode(data);
    } catch (err) {
      logger.warn({ err: err instanceof Error ? err.message : String(err), bytes: data.length }, 'dropping undecodable usage event');
      return;
    }
    const fact = factOf(ev, now());
    if (!fact) {
      logger.warn({ eventId: ev.eventId, tenantId: ev.tenantId }, 'dropping usage event without event_id or tenant_id');
      return;
    }
    const counted = await store.record(fact);
    if (!counted && logger.isLevelEnabled('debug')) logger.debug({ eventId: fact.eventId }, 'duplicate usage event ignored');
  };
}
