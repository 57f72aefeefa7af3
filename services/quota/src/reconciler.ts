import { Consumers, type DeliveryInfo, type EventBus } from '@llmgw/events';
import type { Logger } from '@llmgw/logging';
import { UsageRecorded } from '@llmgw/proto/v1';
import type { QuotaManager } from './quota-manager.js';

/**
 * Consumes UsageRecorded (at least once) and reconciles each reservation with actual usage.
 * Idempotency lives in the store (reservation record / dedupe marker per request id), so a
 * redelivered or duplicated event changes nothing. A store outage throws: the bus redelivers.
 */
export function startReconciler(
  bus: EventBus,
  manager: QuotaManager,
  logger: Logger,
  onConsuming: (consuming: boolean) => void = () => undefined,
): Promise<() => Promise<void>> {
  const log = logger.child({ component: 'reconciler' });
  const handler = async (data: Uint8Array, info: DeliveryInfo) => {
    let ev: UsageRecorded;
    try {
      ev = UsageRecorded.decode(data);
    } catch (err) {
      log.warn({ err }, 'undecodable usage event dropped');
      return;
    }
    if (!ev.requestId || !ev.tenantId) {
      log.warn({ eventId: ev.eventId }, 'usage event without request or tenant id dropped');
      return;
    }
    const r = await manager.reconcile({
      requestId: ev.requestId,
      tenantId: ev.tenantId,
      route: ev.route,
      model: ev.model,
      tokens: ev.inputTokens + ev.outputTokens,
      costMicros: ev.costMicros,
    });
    if (!r) log.warn({ requestId: ev.requestId, tenantId: ev.tenantId }, 'usage event for unknown tenant dropped');
    else log.debug({ requestId: ev.requestId, tenantId: ev.tenantId, outcome: r.outcome, redelivered: info.redelivered }, 'usage reconciled');
  };
  return bus.consume(Consumers.quotaReconciler.subject, Consumers.quotaReconciler.durable, handler, {
    onStateChange: (state) => {
      if (state !== 'stopped') onConsuming(state === 'consuming');
    },
  });
}
