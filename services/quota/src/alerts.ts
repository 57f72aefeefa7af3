import type { EventBus } from '@llmgw/events';
import { Subjects } from '@llmgw/events';
import type { Logger } from '@llmgw/logging';
import { BudgetAlertRaised } from '@llmgw/proto/quota';
import type { BudgetAlert } from './store.js';

/** Retries of an alert the bus did not take (NATS down, a JetStream leader election): 1 s doubling to 30 s, about 4 min in all. */
const RETRIES = 12;
const retryDelayMs = (retry: number) => Math.min(30_000, 1_000 * 2 ** retry);

/**
 * Publishes budget alerts the store reported. The store reports each (budget, period, threshold)
 * once across replicas, so one the bus refuses is retried in the background (well inside the
 * stream's duplicate window: the msgId makes a retry of a stored one a no-op); a quota restart
 * meanwhile loses it, as alerts are notifications, not money.
 */
export class AlertPublisher {
  constructor(
    private readonly bus: EventBus,
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {}

  async publish(tenantId: string, alerts: BudgetAlert[]): Promise<void> {
    for (const a of alerts) {
      const msg = BudgetAlertRaised.fromPartial({
        tenantId,
        limit: a.limit,
        thresholdPercent: a.thresholdPercent,
        limitValue: a.limitValue,
        used: a.used,
        period: a.period,
        occurredAt: new Date(this.now()),
      });
      const msgId = alertMsgId(tenantId, a);
      this.logger.warn({ tenantId, limit: a.limit, thresholdPercent: a.thresholdPercent, used: a.used, limitValue: a.limitValue, period: a.period }, 'budget alert');
      await this.send(BudgetAlertRaised.encode(msg).finish(), msgId, 0);
    }
  }

  private async send(data: Uint8Array, msgId: string, retry: number): Promise<void> {
    try {
      await this.bus.publish(Subjects.budgetAlert, data, msgId);
    } catch (err) {
      if (retry === RETRIES) return this.logger.error({ err, msgId }, 'budget alert not published');
      if (retry === 0) this.logger.warn({ err, msgId }, 'budget alert not published yet; retrying');
      setTimeout(() => void this.send(data, msgId, retry + 1), retryDelayMs(retry)).unref();
    }
  }
}

export function alertMsgId(tenantId: string, a: BudgetAlert): string {
  return `${tenantId}:${a.limit}:${a.period}:${a.thresholdPercent}`;
}
