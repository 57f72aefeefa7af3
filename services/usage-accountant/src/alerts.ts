import { PoisonEventError, type EventHandler } from '@llmgw/events';
import type { RedisClient } from '@llmgw/redis';
import { BudgetAlertRaised } from '@llmgw/proto/quota';
import { TokenGrowthAlertRaised } from '@llmgw/proto/v1';
import { tokenGrowthAlertId } from './token-growth.js';
import type { AlertPayload, DeliveryMarks, WebhookNotifier } from './webhooks.js';

/** How long a delivered or raised alert is remembered: longer than the ALERTS stream keeps it (a day). */
const REMEMBER_MS = 2 * 24 * 3_600_000;

export function budgetAlertPayload(ev: BudgetAlertRaised): AlertPayload {
  return {
    kind: 'budget',
    id: `budget:${ev.tenantId}:${ev.limit}:${ev.period}:${ev.thresholdPercent}`,
    tenant_id: ev.tenantId,
    limit: ev.limit,
    threshold_percent: ev.thresholdPercent,
    limit_value: ev.limitValue,
    used: ev.used,
    period: ev.period,
    occurred_at: ev.occurredAt?.toISOString() ?? null,
  };
}

export function tokenGrowthAlertPayload(ev: TokenGrowthAlertRaised): AlertPayload {
  return {
    kind: 'token_growth',
    id: tokenGrowthAlertId(ev),
    tenant_id: ev.tenantId,
    route: ev.route,
    hour: ev.hour,
    tokens: ev.tokens,
    baseline_tokens_per_hour: ev.baselineTokensPerHour,
    factor: ev.factor,
    occurred_at: ev.occurredAt?.toISOString() ?? null,
  };
}

/** The bus handler of one alert subject: decode, deliver to the webhooks (throws to be delivered again). */
export function alertHandler<T>(decode: (data: Uint8Array) => T, payload: (ev: T) => AlertPayload, notifier: WebhookNotifier): EventHandler {
  return async (data) => {
    let ev: T;
    try {
      ev = decode(data);
    } catch (err) {
      throw new PoisonEventError('undecodable', `undecodable alert (${data.length} bytes): ${err instanceof Error ? err.message : String(err)}`);
    }
    await notifier.deliver(payload(ev));
  };
}

export const decodeBudgetAlert = (data: Uint8Array) => BudgetAlertRaised.decode(data);
export const decodeTokenGrowthAlert = (data: Uint8Array) => TokenGrowthAlertRaised.decode(data);

/** Alert claims and delivery marks, shared by the replicas. */
export class RedisAlertMarks implements DeliveryMarks {
  constructor(private readonly redis: RedisClient) {}

  async claim(key: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(`usage:alerts:raised:${key}`, '1', 'PX', ttlMs, 'NX')) === 'OK';
  }

  async release(key: string): Promise<void> {
    await this.redis.del(`usage:alerts:raised:${key}`);
  }

  async delivered(key: string): Promise<boolean> {
    return (await this.redis.exists(`usage:alerts:delivered:${key}`)) === 1;
  }

  async markDelivered(key: string): Promise<void> {
    await this.redis.set(`usage:alerts:delivered:${key}`, '1', 'PX', REMEMBER_MS);
  }
}

/** The same in one process (monolithic mode, tests). */
export class MemoryAlertMarks implements DeliveryMarks {
  private readonly raised = new Map<string, number>();
  private readonly sent = new Map<string, number>();

  constructor(private readonly now: () => number) {}

  async claim(key: string, ttlMs: number): Promise<boolean> {
    const until = this.raised.get(key);
    if (until !== undefined && until > this.now()) return false;
    this.raised.set(key, this.now() + ttlMs);
    return true;
  }

  async release(key: string): Promise<void> {
    this.raised.delete(key);
  }

  async delivered(key: string): Promise<boolean> {
    return (this.sent.get(key) ?? 0) > this.now();
  }

  async markDelivered(key: string): Promise<void> {
    this.sent.set(key, this.now() + REMEMBER_MS);
  }
}
