/** Latencies kept per model: enough for a p95 that follows a backend's recent behaviour. */
const WINDOW = 200;
/** Below this many samples a p95 says little: the caller's fixed default applies. */
const MIN_SAMPLES = 20;

/** What the stats window covers by default: the last minute, in 5 s buckets. */
export const STATS_WINDOW_MS = 60_000;
export const STATS_BUCKET_MS = 5_000;

/**
 * Latency histogram bins grow by 5%: bin i holds latencies in (GROWTH^(i-1), GROWTH^i] ms, so a
 * p95 read from the bins is at most 5% above the true one, in ~300 bins from 1 ms to 10 minutes,
 * whatever the traffic.
 */
const GROWTH = 1.05;
const LOG_GROWTH = Math.log(GROWTH);

function binOf(ms: number): number {
  return ms <= 1 ? 0 : Math.ceil(Math.log(ms) / LOG_GROWTH);
}

function upperBoundOf(bin: number): number {
  return bin === 0 ? 1 : GROWTH ** bin;
}

/** One model's calls in one time bucket. */
interface Bucket {
  /** Start of the bucket (a multiple of the bucket width); -1: never used. */
  start: number;
  calls: number;
  errors: number;
  /** Latency bin → answered calls. */
  latencies: Map<number, number>;
}

interface ModelWindow {
  ring: number[];
  next: number;
  p95?: number;
  since: number;
  buckets: Bucket[];
}

/** One model's calls over the stats window (see `LatencyWindow.stats`). */
export interface ModelCallStats {
  model: string;
  calls: number;
  errors: number;
  /** 95th percentile latency of the window's answered calls, ms (within 5%); 0 when none answered. */
  p95Ms: number;
}

export interface LatencyWindowOptions {
  now: () => number;
  /** Length of the stats window; a multiple of bucketMs. */
  windowMs?: number;
  bucketMs?: number;
}

/**
 * Recent provider calls per model, on this replica, for two readers:
 * - hedging after the measured p95: a ring of the last WINDOW successful latencies; the p95 is
 *   recomputed at most every 16 samples, so a hedged request costs a lookup, not a sort;
 * - the backend stats broadcast (routing by measured health): over the last `windowMs`, in
 *   buckets of `bucketMs`, the calls that ended with a verdict, the backend's errors among them,
 *   and a histogram of answered calls' latencies. A bucket older than the window is dropped
 *   (reused), so the window slides by one bucket width and never holds more than its buckets.
 */
export class LatencyWindow {
  readonly windowMs: number;
  private readonly bucketMs: number;
  private readonly now: () => number;
  private readonly models = new Map<string, ModelWindow>();

  constructor(opts: LatencyWindowOptions = { now: Date.now }) {
    this.now = opts.now;
    this.bucketMs = opts.bucketMs ?? STATS_BUCKET_MS;
    this.windowMs = Math.max(this.bucketMs, Math.round((opts.windowMs ?? STATS_WINDOW_MS) / this.bucketMs) * this.bucketMs);
  }

  /** A good answer after `ms`: feeds the hedging p95 and counts a call of the stats window. */
  observe(model: string, ms: number): void {
    const m = this.model(model);
    if (m.ring.length < WINDOW) m.ring.push(ms);
    else m.ring[m.next] = ms;
    m.next = (m.next + 1) % WINDOW;
    m.since++;
    const b = this.bucket(m);
    b.calls++;
    const bin = binOf(Math.max(0, ms));
    b.latencies.set(bin, (b.latencies.get(bin) ?? 0) + 1);
  }

  /**
   * Any other call that ended with a verdict: `error` when it is the backend's failure (5xx, 429,
   * timeout, connection error, broken answer), else a call only (the caller's 4xx, a refusal, a
   * schema mismatch). Cancelled calls and hedge losers are not counted at all.
   */
  call(model: string, error: boolean): void {
    const b = this.bucket(this.model(model));
    b.calls++;
    if (error) b.errors++;
  }

  /** A backend failure of a call already counted (a stream that broke after its first delta). */
  error(model: string): void {
    this.bucket(this.model(model)).errors++;
  }

  /** The model's hedging p95 latency in ms, or undefined before MIN_SAMPLES. */
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

  /** Every model with calls in the stats window, sorted by name. */
  stats(): ModelCallStats[] {
    const oldest = this.currentStart() - this.windowMs + this.bucketMs;
    const out: ModelCallStats[] = [];
    for (const [model, m] of this.models) {
      let calls = 0;
      let errors = 0;
      const latencies = new Map<number, number>();
      for (const b of m.buckets) {
        if (b.start < oldest) continue;
        calls += b.calls;
        errors += b.errors;
        for (const [bin, n] of b.latencies) latencies.set(bin, (latencies.get(bin) ?? 0) + n);
      }
      // An error of a stream whose call has slid out of the window: never more errors than calls.
      if (calls > 0) out.push({ model, calls, errors: Math.min(errors, calls), p95Ms: p95OfBins(latencies) });
    }
    return out.sort((a, b) => (a.model < b.model ? -1 : a.model > b.model ? 1 : 0));
  }

  private model(name: string): ModelWindow {
    let m = this.models.get(name);
    if (!m) {
      const count = this.windowMs / this.bucketMs;
      m = { ring: [], next: 0, since: 0, buckets: Array.from({ length: count }, () => ({ start: -1, calls: 0, errors: 0, latencies: new Map() })) };
      this.models.set(name, m);
    }
    return m;
  }

  private currentStart(): number {
    return Math.floor(this.now() / this.bucketMs) * this.bucketMs;
  }

  /** The bucket of now, emptied first when it still holds a bucket width of a previous turn. */
  private bucket(m: ModelWindow): Bucket {
    const start = this.currentStart();
    const b = m.buckets[(start / this.bucketMs) % m.buckets.length] as Bucket;
    if (b.start !== start) {
      b.start = start;
      b.calls = 0;
      b.errors = 0;
      b.latencies.clear();
    }
    return b;
  }
}

function p95OfBins(bins: ReadonlyMap<number, number>): number {
  let total = 0;
  for (const n of bins.values()) total += n;
  if (total === 0) return 0;
  const rank = Math.ceil(0.95 * total);
  let seen = 0;
  for (const bin of [...bins.keys()].sort((a, b) => a - b)) {
    seen += bins.get(bin) as number;
    if (seen >= rank) return Math.round(upperBoundOf(bin));
  }
  return 0;
}
