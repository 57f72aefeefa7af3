/** A breaker opening (healthy = false) or closing again (healthy = true) for one key (model). */
export interface BreakerChange {
  key: string;
  healthy: boolean;
  /** When opening: how long the breaker refuses before letting a probe through. 0 when closing. */
  unhealthyForMs: number;
  /** Why it opened; empty when closing. */
  reason: string;
  /** The breaker's clock at the change. */
  at: number;
}

export interface CircuitBreakerOptions {
  /** Consecutive retriable failures that open the breaker. */
  failureThreshold: number;
  /** How long an open breaker refuses before letting one probe through. */
  openMs: number;
  now: () => number;
  /**
   * Called synchronously on every transition to open (from closed or from half-open) and back to
   * closed. Not called when an already-open breaker is pushed further out by late failures.
   */
  onChange?: (change: BreakerChange) => void;
}

export const DEFAULT_BREAKER: Omit<CircuitBreakerOptions, 'now' | 'onChange'> = { failureThreshold: 5, openMs: 10_000 };

interface State {
  failures: number;
  /** 0 = closed; otherwise when the breaker may let a probe through. */
  openUntil: number;
  probing: boolean;
}

/**
 * Per-replica circuit breaker per model: closed → open after N consecutive retriable failures →
 * after openMs half-open (one probe at a time) → closed on success, open again on failure.
 */
export class CircuitBreaker {
  private readonly states = new Map<string, State>();

  constructor(private readonly opts: CircuitBreakerOptions) {}

  /** True when a call to this model may go ahead (claims the probe slot when half-open). */
  allow(key: string): boolean {
    const s = this.states.get(key);
    if (!s || s.openUntil === 0) return true;
    if (this.opts.now() < s.openUntil || s.probing) return false;
    s.probing = true;
    return true;
  }

  success(key: string): void {
    const s = this.states.get(key);
    if (s) {
      const wasOpen = s.openUntil !== 0;
      s.failures = 0;
      s.openUntil = 0;
      s.probing = false;
      if (wasOpen) this.opts.onChange?.({ key, healthy: true, unhealthyForMs: 0, reason: '', at: this.opts.now() });
    }
  }

  /**
   * Records a retriable failure (timeouts, 5xx, 429, connection errors); `cause` (the attempt's
   * failure reason, e.g. `http_5xx`) only feeds the reason reported through onChange.
   */
  failure(key: string, cause = 'retriable failure'): void {
    let s = this.states.get(key);
    if (!s) {
      s = { failures: 0, openUntil: 0, probing: false };
      this.states.set(key, s);
    }
    s.failures++;
    const probeFailed = s.probing;
    if (probeFailed || s.failures >= this.opts.failureThreshold) {
      const now = this.opts.now();
      // Closed, or half-open (probe running or due): this failure (re)opens the breaker.
      const opening = s.openUntil === 0 || probeFailed || now >= s.openUntil;
      s.openUntil = now + this.opts.openMs;
      s.probing = false;
      if (opening) {
        this.opts.onChange?.({
          key,
          healthy: false,
          unhealthyForMs: this.opts.openMs,
          reason: probeFailed ? `probe failed (${cause})` : `${s.failures} consecutive retriable failures (last: ${cause})`,
          at: now,
        });
      }
    }
  }

  /** A call that ended without a verdict on health (e.g. cancelled) releases a probe slot. */
  release(key: string): void {
    const s = this.states.get(key);
    if (s) s.probing = false;
  }

  isOpen(key: string): boolean {
    const s = this.states.get(key);
    return s !== undefined && s.openUntil !== 0 && this.opts.now() < s.openUntil;
  }
}
