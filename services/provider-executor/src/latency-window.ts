/** Latencies kept per model: enough for a p95 that follows a backend's recent behaviour. */
const WINDOW = 200;
/** Below this many samples a p95 says little: the caller's fixed default applies. */
const MIN_SAMPLES = 20;

/**
 * Recent successful call latencies per model, on this replica, for hedging after the measured
 * p95. A ring of the last WINDOW samples; the p95 is recomputed at most every 16 samples, so a
 * hedged request costs a lookup, not a sort.
 */
export class LatencyWindow {
  private readonly models = new Map<string, { ring: number[]; next: number; p95?: number; since: number }>();

  observe(model: string, ms: number): void {
    let m = this.models.get(model);
    if (!m) this.models.set(model, (m = { ring: [], next: 0, since: 0 }));
    if (m.ring.length < WINDOW) m.ring.push(ms);
    else m.ring[m.next] = ms;
    m.next = (m.next + 1) % WINDOW;
    m.since++;
  }

  /** The model's p95 latency in ms, or undefined before MIN_SAMPLES. */
  p95(model: string): number | undefined {
    const m = this.models.get(model);
    if (!m || m.ring.length < MIN_SAMPLES) return undefined;
    if (m.p95 === undefined || m.since >= 16) {
      const sorted = [...m.ring].sort((a, b) => a - b);
      m.p95 = sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)] as number;
      m.since = 0;
    }
    return m.p95;
  }
}
