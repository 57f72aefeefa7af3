import type { EventBus } from '@llmgw/events';
import { Subjects } from '@llmgw/events';
import type { Logger } from '@llmgw/logging';
import { BudgetAlertRaised } from '@llmgw/proto/quota';
import type { BudgetAlert } from './store.js';

/**
 * Publishes budget alerts the store reported. The store reports each (budget, period, threshold)
 * once across replicas; the msgId makes a retried publish a no-op on JetStream as well.
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
      try {
        await this.bus.publish(Subjects.budgetAlert, BudgetAlertRaised.encode(msg).finish(), msgId);
      } catch (err) {
        this.logger.error({ err, msgId }, 'budget alert not published');
      }
    }
  }
}

export function alertMsgId(tenantId: string, a: BudgetAlert): string {
  return `${tenantId}:${a.limit}:${a.period}:${a.thresholdPercent}`;
}
