export interface CircuitBreakerOptions {
  /** Consecutive retriable failures that open the breaker. */
  failureThreshold: number;
  /** How long an open breaker refuses before letting one probe through. */
  openMs: number;
  now: () => number;
}

export const DEFAULT_BREAKER: Omit<CircuitBreakerOptions, 'now'> = { failureThreshold: 5, openMs: 10_000 };

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
      s.failures = 0;
      s.openUntil = 0;
      s.probing = false;
    }
  }

  /** Records a retriable failure (timeouts, 5xx, 429, connection errors). */
  failure(key: string): void {
    let s = this.states.get(key);
    if (!s) {
      s = { failures: 0, openUntil: 0, probing: false };
      this.states.set(key, s);
    }
    s.failures++;
    if (s.probing || s.failures >= this.opts.failureThreshold) {
      s.openUntil = this.opts.now() + this.opts.openMs;
      s.probing = false;
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
