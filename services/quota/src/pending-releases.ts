import type { Logger } from '@llmgw/logging';
import { StoreUnavailableError } from './redis-store.js';
import type { QuotaStore } from './store.js';

/** More pending releases than this during an outage: new ones are dropped (their reservations expire on their own). */
export const MAX_PENDING_RELEASES = 10_000;
const FIRST_RETRY_MS = 50;
const MAX_RETRY_MS = 2_000;
/** One warning per this many dropped releases, so an outage does not flood the log. */
const DROP_LOG_EVERY = 1_000;

export interface PendingReleasesOptions {
  logger: Logger;
  /** A release older than this is dropped: the reservation record it would release is gone by then. */
  horizonMs: () => number;
  /** Told whenever a release reaches the store (true) or finds it unreachable (false). */
  onStoreHealth?: (up: boolean) => void;
  maxPending?: number;
  firstRetryMs?: number;
  maxRetryMs?: number;
  now?: () => number;
}

interface Pending {
  tenantId: string;
  requestId: string;
  since: number;
  attempt: number;
  timer?: NodeJS.Timeout;
}

/**
 * Releases by request id that must happen once the store answers again. A reserve that timed
 * out at the client may still run in Redis (queued behind a CLIENT PAUSE, a slow script, a
 * failover): its estimate and concurrency lease would stay until they expire. Releasing it by
 * request id gives them back, and if the release runs first its tombstone makes the late reserve
 * reserve nothing. Retried with exponential backoff; bounded in count and in age.
 */
export class PendingReleases {
  private readonly pending = new Map<string, Pending>();
  private dropped = 0;
  private stopped = false;

  constructor(
    private readonly store: Pick<QuotaStore, 'release'>,
    private readonly opts: PendingReleasesOptions,
  ) {}

  get size(): number {
    return this.pending.size;
  }

  schedule(tenantId: string, requestId: string): void {
    const key = `${tenantId}\u0000${requestId}`;
    if (this.stopped || this.pending.has(key)) return;
    if (this.pending.size >= (this.opts.maxPending ?? MAX_PENDING_RELEASES)) {
      this.drop({ tenantId, requestId }, 'too many pending releases');
      return;
    }
    const p: Pending = { tenantId, requestId, since: this.now(), attempt: 0 };
    this.pending.set(key, p);
    void this.attempt(key, p);
  }

  /** Cancels every pending retry (service shutdown). */
  stop(): void {
    this.stopped = true;
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
  }

  private async attempt(key: string, p: Pending): Promise<void> {
    try {
      const outcome = await this.store.release(p.tenantId, p.requestId);
      this.opts.onStoreHealth?.(true);
      this.pending.delete(key);
      this.opts.logger.debug({ tenantId: p.tenantId, requestId: p.requestId, outcome, attempts: p.attempt + 1 }, 'timed-out reserve released by request id');
    } catch (err) {
      if (this.stopped) return;
      if (!(err instanceof StoreUnavailableError)) {
        this.pending.delete(key);
        this.opts.logger.error({ err, tenantId: p.tenantId, requestId: p.requestId }, 'release of a timed-out reserve failed');
        return;
      }
      this.opts.onStoreHealth?.(false);
      if (this.now() - p.since >= this.opts.horizonMs()) {
        this.pending.delete(key);
        this.drop(p, 'store unreachable past the reservation record horizon');
        return;
      }
      const delay = Math.min((this.opts.firstRetryMs ?? FIRST_RETRY_MS) * 2 ** p.attempt++, this.opts.maxRetryMs ?? MAX_RETRY_MS);
      p.timer = setTimeout(() => void this.attempt(key, p), delay);
      p.timer.unref();
    }
  }

  private drop(p: Pick<Pending, 'tenantId' | 'requestId'>, reason: string): void {
    if (this.dropped++ % DROP_LOG_EVERY === 0) {
      this.opts.logger.warn({ tenantId: p.tenantId, requestId: p.requestId, reason, dropped: this.dropped }, 'release of a timed-out reserve dropped; its reservation expires on its own');
    }
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }
}
