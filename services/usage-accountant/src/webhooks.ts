import { createHmac } from 'node:crypto';
import type { AlertKind, WebhookConfig } from '@llmgw/config';
import type { Logger } from '@llmgw/logging';

/** Header of the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the webhook's secret>`. */
export const SIGNATURE_HEADER = 'x-llmgw-signature';

/** The signature header's value for a body sent at `unixSeconds`. */
export function signature(secret: string, unixSeconds: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

/** Which (alert, webhook) pairs were delivered, shared by the accountant replicas (Redis). */
export interface DeliveryMarks {
  delivered(key: string): Promise<boolean>;
  markDelivered(key: string): Promise<void>;
}

export interface WebhookNotifierDeps {
  webhooks: () => readonly WebhookConfig[];
  marks: DeliveryMarks;
  fetch: typeof fetch;
  logger: Logger;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  /** Tries per webhook within one delivery of the alert (default 3). */
  tries?: number;
}

/** An alert as webhooks receive it: its kind, id and the event's fields in snake_case. */
export interface AlertPayload {
  kind: AlertKind;
  id: string;
  [field: string]: unknown;
}

/**
 * Delivers each alert to every webhook that subscribed to its kind: a signed JSON POST, tried a
 * few times with backoff. A webhook that answered 2xx is marked and never sent that alert again;
 * if any webhook still fails, `deliver` throws, so the bus delivers the alert again later (with
 * its backoff, until its dead letter) and only the webhooks still missing it are tried. Logs name
 * the webhook, never its URL or secret.
 */
export class WebhookNotifier {
  private readonly tries: number;

  constructor(private readonly deps: WebhookNotifierDeps) {
    this.tries = deps.tries ?? 3;
  }

  async deliver(alert: AlertPayload): Promise<void> {
    const failed: string[] = [];
    for (const hook of this.deps.webhooks()) {
      if (!hook.events.includes(alert.kind)) continue;
      const mark = `${alert.id}|${hook.name}`;
      if (await this.deps.marks.delivered(mark)) continue;
      if (await this.post(hook, alert)) await this.deps.marks.markDelivered(mark);
      else failed.push(hook.name);
    }
    if (failed.length > 0) throw new Error(`alert ${alert.id} not delivered to webhook(s) ${failed.join(', ')}`);
  }

  /** True once the webhook answered 2xx. */
  private async post(hook: WebhookConfig, alert: AlertPayload): Promise<boolean> {
    const body = JSON.stringify(alert);
    for (let attempt = 1; attempt <= this.tries; attempt++) {
      const sentAt = Math.floor(this.deps.now() / 1000);
      let status = 0;
      try {
        const res = await this.deps.fetch(hook.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'llmgw-alerts/1',
            'x-llmgw-alert-id': alert.id,
            'x-llmgw-alert-kind': alert.kind,
            [SIGNATURE_HEADER]: signature(hook.secret, sentAt, body),
          },
          body,
          signal: AbortSignal.timeout(hook.timeout_ms),
          redirect: 'error',
        });
        status = res.status;
        await res.body?.cancel();
        if (res.ok) {
          this.deps.logger.info({ webhook: hook.name, alertId: alert.id, attempt }, 'alert delivered to webhook');
          return true;
        }
      } catch (err) {
        this.deps.logger.warn({ webhook: hook.name, alertId: alert.id, attempt, err: err instanceof Error ? err.name : 'error' }, 'alert webhook unreachable');
      }
      if (status !== 0) this.deps.logger.warn({ webhook: hook.name, alertId: alert.id, attempt, status }, 'alert webhook refused the alert');
      if (attempt < this.tries) await this.deps.sleep(200 * 4 ** (attempt - 1));
    }
    return false;
  }
}
