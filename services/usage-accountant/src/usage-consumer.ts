import { PoisonEventError, type DeliveryInfo } from '@llmgw/events';
import type { Logger } from '@llmgw/logging';
import type { AccountantMetrics } from '@llmgw/metrics';
import { UsageRecorded } from '@llmgw/proto/v1';
import type { UsageFact } from './buckets.js';
import type { UsageStore } from './usage-store.js';

/** The configured tenant ids; undefined accepts any (a hand-built config without the file). */
export type TenantIds = ReadonlySet<string> | undefined;

/**
 * The fact an event contributes. An event that must never be counted (no event id, no or an
 * unknown tenant, negative tokens or cost) is a PoisonEventError: the bus dead-letters it.
 * `storedAtMs` (when the bus stored it) dates an event without occurred_at, the same in a replay.
 */
export function factOf(ev: UsageRecorded, storedAtMs: number, tenants: TenantIds): UsageFact {
  if (!ev.eventId) throw new PoisonEventError('missing_event_id', 'usage event without event_id');
  if (!ev.tenantId) throw new PoisonEventError('missing_tenant_id', `usage event ${ev.eventId} without tenant_id`);
  if (tenants && !tenants.has(ev.tenantId)) throw new PoisonEventError('unknown_tenant', `usage event ${ev.eventId} of unknown tenant ${ev.tenantId}`);
  if ([ev.inputTokens, ev.outputTokens, ev.cachedInputTokens, ev.cacheWriteInputTokens, ev.reasoningTokens].some((n) => n < 0)) throw new PoisonEventError('negative_tokens', `usage event ${ev.eventId} with negative tokens`);
  if (ev.costMicros < 0) throw new PoisonEventError('negative_cost', `usage event ${ev.eventId} with negative cost`);
  return {
    eventId: ev.eventId,
    tenantId: ev.tenantId,
    route: ev.route,
    model: ev.model,
    provider: ev.provider,
    keyId: ev.keyId,
    intent: ev.intent,
    user: ev.user,
    promptVersion: ev.promptVersion,
    feature: ev.feature,
    occurredAtMs: ev.occurredAt ? ev.occurredAt.getTime() : storedAtMs,
    success: ev.success,
    inputTokens: ev.inputTokens,
    outputTokens: ev.outputTokens,
    cachedInputTokens: ev.cachedInputTokens,
    cacheWriteInputTokens: ev.cacheWriteInputTokens,
    reasoningTokens: ev.reasoningTokens,
    costMicros: ev.costMicros,
    fallbackUsed: ev.fallbackUsed,
    cacheHit: ev.cacheHit,
    cacheSavedCostMicros: ev.cacheSavedCostMicros,
    latencyMs: ev.latencyMs,
  };
}

/** Decodes and validates one event as it arrives on the bus, live or in a replay. */
export function decodeFact(data: Uint8Array, storedAtMs: number, tenants: TenantIds): UsageFact {
  let ev: UsageRecorded;
  try {
    ev = UsageRecorded.decode(data);
  } catch (err) {
    throw new PoisonEventError('undecodable', `undecodable usage event (${data.length} bytes): ${err instanceof Error ? err.message : String(err)}`);
  }
  return factOf(ev, storedAtMs, tenants);
}

export interface UsageHandlerOptions {
  logger: Logger;
  tenants: () => TenantIds;
  metrics?: AccountantMetrics;
}

/**
 * The JetStream handler: validate, count once. A store failure throws, so the event is
 * redelivered; an event that can never be counted is refused (counted by reason) and the bus
 * dead-letters it (the bus logs it).
 */
export function usageEventHandler(store: UsageStore, opts: UsageHandlerOptions) {
  return async (data: Uint8Array, info: DeliveryInfo): Promise<void> => {
    let fact: UsageFact;
    try {
      fact = decodeFact(data, info.storedAtMs, opts.tenants());
    } catch (err) {
      if (err instanceof PoisonEventError) opts.metrics?.refused(err.reason);
      throw err;
    }
    const counted = await store.record(fact);
    if (!counted && opts.logger.isLevelEnabled('debug')) opts.logger.debug({ eventId: fact.eventId }, 'duplicate usage event ignored');
  };
}
