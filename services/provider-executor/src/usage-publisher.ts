import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Subjects, type EventBus } from '@llmgw/events';
import type { Logger } from '@llmgw/logging';
import type { UsageMetrics } from '@llmgw/metrics';
import { UsageRecorded } from '@llmgw/proto/v1';

export interface UsagePublisherOptions {
  /** File that keeps unpublished events across restarts; none keeps them in memory only. */
  outboxPath?: string;
  retryIntervalMs?: number;
  metrics?: UsageMetrics;
}

/**
 * Publishes one usage event per request without holding up the response. An event that cannot
 * be published goes to the outbox and is retried until the bus takes it: the message id is the
 * request id, so a retry that raced a late success is dropped by the bus, not counted twice.
 */
export class UsagePublisher {
  private readonly outbox = new Map<string, Uint8Array>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly timer: NodeJS.Timeout;
  private retrying: Promise<void> | undefined;
  private readonly stopGauge: (() => void) | undefined;

  constructor(
    private readonly bus: EventBus,
    private readonly logger: Logger,
    private readonly opts: UsagePublisherOptions = {},
  ) {
    this.loadOutbox();
    this.stopGauge = opts.metrics?.observeOutbox(() => this.outbox.size);
    this.timer = setInterval(() => void this.retry(), opts.retryIntervalMs ?? 1_000);
    this.timer.unref();
  }

  /** Queues the event; it is sent after the current response has been written. */
  publish(event: UsageRecorded): void {
    this.opts.metrics?.request(event.route, event.success ? 'ok' : event.errorCode.toLowerCase());
    const p = new Promise<void>((resolve) => setImmediate(() => this.send(event).then(resolve)));
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private send(event: UsageRecorded): Promise<void> {
    const bytes = UsageRecorded.encode(event).finish();
    return this.bus.publish(Subjects.usageRecorded, bytes, event.eventId).then(
      () => this.opts.metrics?.usageEventPublished(),
      (err: unknown) => {
        this.logger.warn({ err, requestId: event.requestId }, 'usage event not published; kept in the outbox');
        this.keep(event.eventId, bytes);
      },
    );
  }

  /** Events waiting in the outbox. */
  pending(): number {
    return this.outbox.size;
  }

  /** Waits for publishes under way and tries the outbox once more. */
  async flush(): Promise<void> {
    await Promise.all(this.inFlight);
    await this.retry();
  }

  async close(): Promise<void> {
    await this.flush();
    clearInterval(this.timer);
    this.stopGauge?.();
    if (this.outbox.size > 0) this.logger.warn({ pending: this.outbox.size }, 'usage events left in the outbox for the next start');
  }

  private keep(id: string, bytes: Uint8Array): void {
    this.outbox.set(id, bytes);
    if (this.opts.outboxPath) appendFileSync(this.opts.outboxPath, `${Buffer.from(bytes).toString('base64')}\n`);
  }

  /** One retry at a time; a caller that asks while one runs waits for it. */
  private retry(): Promise<void> {
    if (this.retrying) return this.retrying;
    if (this.outbox.size === 0) return Promise.resolve();
    this.retrying = this.drainOutbox().finally(() => {
      this.retrying = undefined;
    });
    return this.retrying;
  }

  private async drainOutbox(): Promise<void> {
    try {
      for (const [id, bytes] of this.outbox) {
        await this.bus.publish(Subjects.usageRecorded, bytes, id);
        this.outbox.delete(id);
        this.opts.metrics?.usageEventPublished();
      }
      this.logger.info('usage outbox drained');
    } catch {
      // Still down: keep everything and try again on the next tick.
    } finally {
      this.rewriteOutbox();
    }
  }

  private loadOutbox(): void {
    const path = this.opts.outboxPath;
    if (!path || !existsSync(path)) return;
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      if (!line) continue;
      const bytes = new Uint8Array(Buffer.from(line, 'base64'));
      this.outbox.set(UsageRecorded.decode(bytes).eventId, bytes);
    }
    if (this.outbox.size > 0) this.logger.info({ pending: this.outbox.size }, 'usage outbox loaded');
  }

  private rewriteOutbox(): void {
    const path = this.opts.outboxPath;
    if (!path) return;
    const lines = [...this.outbox.values()].map((b) => `${Buffer.from(b).toString('base64')}\n`);
    writeFileSync(path, lines.join(''));
  }
}
