import { AppError } from '@llmgw/errors';
import { Subjects, type EventBus } from '@llmgw/events';
import type { Logger } from '@llmgw/logging';
import type { UsageMetrics } from '@llmgw/metrics';
import { UsageRecorded } from '@llmgw/proto/v1';
import { DEFAULT_OUTBOX_MAX_BYTES } from './config.js';
import type { UsageSink } from './execute.js';
import { spentRequest } from './spend.js';
import { JournalFullError, UsageJournal } from './usage-journal.js';

export interface UsagePublisherOptions {
  /** File of the usage journal; none keeps it in memory only. */
  outboxPath?: string | undefined;
  /** Live bytes the journal may hold before new requests are refused. */
  outboxMaxBytes?: number;
  /** 0: a note is fsynced before the provider call; N: written before it and fsynced within N ms. */
  outboxSyncMs?: number;
  retryIntervalMs?: number;
  metrics?: UsageMetrics | undefined;
  /** For tests: journal file size from which compaction may run. */
  compactMinBytes?: number;
}

/**
 * Publishes one usage event per request without holding up the response, through the usage
 * journal: before each provider call the executor notes what the request costs if the process
 * dies then, and the final event replaces that note once the request ends. The final event is
 * sent once it is on disk and leaves the journal when the bus acknowledges it; until then it is
 * retried, and a restart publishes what the journal holds (notes as estimated events). The
 * message id is the request id, so a retry that raced a late success is dropped by the bus.
 */
export class UsagePublisher implements UsageSink {
  /** Events on disk that the bus has not taken yet, to send (again). */
  private readonly waiting = new Map<string, Uint8Array>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly timer: NodeJS.Timeout;
  private retrying: Promise<void> | undefined;
  private readonly stopGauges: (() => void)[];

  private constructor(
    private readonly bus: EventBus,
    private readonly logger: Logger,
    private readonly journal: UsageJournal,
    private readonly opts: UsagePublisherOptions,
  ) {
    let notes = 0;
    for (const [id, entry] of journal.entries()) {
      this.waiting.set(id, entry.payload);
      if (entry.kind === 'note') notes++;
    }
    if (this.waiting.size > 0) this.logger.info({ pending: this.waiting.size, interrupted: notes }, 'usage journal loaded: publishing what the last run left');
    const m = opts.metrics;
    this.stopGauges = m ? [m.observeOutbox(() => journal.records), m.observeOutboxBytes(() => journal.bytes)] : [];
    this.timer = setInterval(() => void this.retry(), opts.retryIntervalMs ?? 1_000);
    this.timer.unref();
    void this.retry();
  }

  /** Opens the journal (recovering a previous run's) and starts publishing what it holds. */
  static async open(bus: EventBus, logger: Logger, opts: UsagePublisherOptions = {}): Promise<UsagePublisher> {
    const journal = await UsageJournal.open({
      path: opts.outboxPath,
      maxLiveBytes: opts.outboxMaxBytes ?? DEFAULT_OUTBOX_MAX_BYTES,
      logger,
      compactMinBytes: opts.compactMinBytes,
      syncDelayMs: opts.outboxSyncMs,
    });
    return new UsagePublisher(bus, logger, journal, opts);
  }

  async note(event: UsageRecorded): Promise<void> {
    try {
      await this.journal.append('note', event.eventId, UsageRecorded.encode(event).finish(), this.opts.outboxSyncMs ? 'written' : 'synced');
    } catch (err) {
      // Refused before the provider is called: no money is spent that could not be recorded.
      if (err instanceof JournalFullError) {
        this.opts.metrics?.outboxRefused();
        throw new AppError('unavailable', 'usage outbox full');
      }
      throw new AppError('unavailable', 'usage outbox not writable', { cause: err });
    }
  }

  /** Records the request's final event; it is sent after the current response has been written. */
  publish(event: UsageRecorded): void {
    this.opts.metrics?.request(event.route, event.success ? 'ok' : event.errorCode.toLowerCase());
    this.opts.metrics?.spent(spentRequest(event));
    const id = event.eventId;
    const bytes = UsageRecorded.encode(event).finish();
    const p = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.journal.append('final', id, bytes))
      .then(
        () => this.send(id, bytes),
        // Only a request that never reached a provider (it has no note) is refused: it cost
        // nothing, so it is sent once, not kept.
        () => this.send(id, bytes, false),
      );
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private send(id: string, bytes: Uint8Array, keep = true): Promise<void> {
    return this.bus.publish(Subjects.usageRecorded, bytes, id).then(
      () => this.acknowledged(id),
      (err: unknown) => {
        this.logger.warn({ err, requestId: id, kept: keep }, keep ? 'usage event not published; kept in the outbox' : 'usage event of a request that cost nothing not published');
        if (keep) this.waiting.set(id, bytes);
      },
    );
  }

  private acknowledged(id: string): void {
    this.waiting.delete(id);
    this.journal.published(id);
    this.opts.metrics?.usageEventPublished();
  }

  /** Records in the outbox: notes of requests under way and events the bus has not taken. */
  pending(): number {
    return this.journal.records;
  }

  /** Waits for publishes under way and tries the outbox once more. */
  async flush(): Promise<void> {
    await Promise.all(this.inFlight);
    await this.retry();
  }

  async close(): Promise<void> {
    await this.flush();
    clearInterval(this.timer);
    for (const stop of this.stopGauges) stop();
    await this.journal.close();
    if (this.journal.records > 0) this.logger.warn({ pending: this.journal.records }, 'usage events left in the outbox for the next start');
  }

  /** One retry at a time; a caller that asks while one runs waits for it. */
  private retry(): Promise<void> {
    if (this.retrying) return this.retrying;
    if (this.waiting.size === 0) return Promise.resolve();
    this.retrying = this.drainOutbox().finally(() => {
      this.retrying = undefined;
    });
    return this.retrying;
  }

  private async drainOutbox(): Promise<void> {
    try {
      for (const [id, bytes] of this.waiting) {
        await this.bus.publish(Subjects.usageRecorded, bytes, id);
        this.acknowledged(id);
      }
      this.logger.info('usage outbox drained');
    } catch {
      // Still down: keep everything and try again on the next tick.
    }
  }
}
