export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

export function hourStartMs(ms: number): number {
  return Math.floor(ms / HOUR_MS) * HOUR_MS;
}

export function dayStartMs(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

/** RFC 3339 UTC without fractions, e.g. 2025-03-01T14:00:00Z. */
export function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * What a request's cost is broken down by. route, model, provider, key and intent come from the
 * config (bounded by it); user, prompt version and feature from callers, each bounded per tenant and UTC
 * day to MAX_LABEL_VALUES distinct values, the rest counted as OTHER_LABEL.
 */
export interface UsageDims {
  route: string;
  model: string;
  provider: string;
  keyId: string;
  /** The intent the route's classifier gave the request; '' when none. */
  intent: string;
  user: string;
  promptVersion: string;
  feature: string;
}

export const DIM_NAMES = ['route', 'model', 'provider', 'keyId', 'intent', 'user', 'promptVersion', 'feature'] as const satisfies readonly (keyof UsageDims)[];

/** Only the dimensions of a fact or a cell. */
export function dimsOf(d: UsageDims): UsageDims {
  return { route: d.route, model: d.model, provider: d.provider, keyId: d.keyId, intent: d.intent, user: d.user, promptVersion: d.promptVersion, feature: d.feature };
}

/** The caller-given dimensions, whose distinct values are bounded. */
export const LABEL_DIMS = ['user', 'promptVersion', 'feature'] as const satisfies readonly (keyof UsageDims)[];
export type LabelDim = (typeof LABEL_DIMS)[number];

/** Distinct values of one label a tenant's usage keeps apart per UTC day. */
export const MAX_LABEL_VALUES = 1_000;
/** What the values beyond MAX_LABEL_VALUES are counted as. */
export const OTHER_LABEL = '~other';

/** What one usage event adds to its buckets. */
export interface UsageFact extends UsageDims {
  eventId: string;
  tenantId: string;
  occurredAtMs: number;
  success: boolean;
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens: number;
  cacheWriteInputTokens: number;
  reasoningTokens: number;
  costMicros: number;
  /** The request moved past its first model. */
  fallbackUsed: boolean;
  /** Answered from the response cache. */
  cacheHit: boolean;
  /** A cache hit: what the cached answer cost when it was made. */
  cacheSavedCostMicros: number;
  /** From the request's arrival at the executor to its end. */
  latencyMs: number;
}

/**
 * Upper bounds, in ms, of the latency histogram every cell keeps (one counter per bucket, so a
 * p95 over any cells is a sum and a scan); slower requests count in a last bucket above them.
 */
export const LATENCY_BOUNDS_MS = [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 120_000] as const;
type LatencyBound = (typeof LATENCY_BOUNDS_MS)[number];
export type LatencyCounterProp = `latencyLe${LatencyBound}Ms` | 'latencyAboveMs';
/** The histogram's counters in bucket order, the last above every bound. */
export const LATENCY_PROPS: readonly LatencyCounterProp[] = [...LATENCY_BOUNDS_MS.map((b) => `latencyLe${b}Ms` as const), 'latencyAboveMs'];

export interface UsageCounters extends Record<LatencyCounterProp, number> {
  requests: number;
  failedRequests: number;
  inputTokens: number;
  outputTokens: number;
  /** Part of inputTokens read from prompt caches. */
  cachedInputTokens: number;
  /** Part of inputTokens written to prompt caches. */
  cacheWriteInputTokens: number;
  /** Part of outputTokens spent reasoning. */
  reasoningTokens: number;
  costMicros: number;
  /** Requests that moved past their first model. */
  fallbackRequests: number;
  /** Requests answered from the response cache, and what their answers cost when made. */
  cacheHits: number;
  cacheSavedCostMicros: number;
}

/** The sums of one tenant, time bucket and set of dimensions. */
export interface UsageCell extends UsageCounters, UsageDims {
  tenantId: string;
  /** Start of the cell's UTC hour, or of its UTC day for a day rollup, epoch ms. */
  startMs: number;
}

export const COUNTER_NAMES = [
  'requests',
  'failed_requests',
  'input_tokens',
  'output_tokens',
  'cached_input_tokens',
  'cache_write_input_tokens',
  'reasoning_tokens',
  'cost_micros',
  'fallback_requests',
  'cache_hits',
  'cache_saved_cost_micros',
  ...LATENCY_BOUNDS_MS.map((b) => `latency_le_${b}_ms` as const),
  'latency_above_ms',
] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];

export const COUNTER_PROPS: Record<CounterName, keyof UsageCounters> = {
  requests: 'requests',
  failed_requests: 'failedRequests',
  input_tokens: 'inputTokens',
  output_tokens: 'outputTokens',
  cached_input_tokens: 'cachedInputTokens',
  cache_write_input_tokens: 'cacheWriteInputTokens',
  reasoning_tokens: 'reasoningTokens',
  cost_micros: 'costMicros',
  fallback_requests: 'fallbackRequests',
  cache_hits: 'cacheHits',
  cache_saved_cost_micros: 'cacheSavedCostMicros',
  ...(Object.fromEntries(LATENCY_BOUNDS_MS.map((b) => [`latency_le_${b}_ms`, `latencyLe${b}Ms`])) as Record<`latency_le_${LatencyBound}_ms`, LatencyCounterProp>),
  latency_above_ms: 'latencyAboveMs',
};

const zeroLatency = () => Object.fromEntries(LATENCY_PROPS.map((p) => [p, 0])) as Record<LatencyCounterProp, number>;

export function zeroCounters(): UsageCounters {
  return { requests: 0, failedRequests: 0, inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteInputTokens: 0, reasoningTokens: 0, costMicros: 0, fallbackRequests: 0, cacheHits: 0, cacheSavedCostMicros: 0, ...zeroLatency() };
}

/** The histogram bucket of a latency: the first bound at or above it. */
export function latencyProp(ms: number): LatencyCounterProp {
  const i = LATENCY_BOUNDS_MS.findIndex((b) => ms <= b);
  return LATENCY_PROPS[i === -1 ? LATENCY_BOUNDS_MS.length : i] as LatencyCounterProp;
}

/**
 * The latency at or below which 95% of the histogram's requests ended, as the upper bound of its
 * bucket (the last bound for the bucket above all of them); 0 for no requests.
 */
export function latencyP95Ms(c: Record<LatencyCounterProp, number>): number {
  const counts = LATENCY_PROPS.map((p) => c[p]);
  const n = counts.reduce((a, b) => a + b, 0);
  if (n === 0) return 0;
  const rank = Math.ceil(0.95 * n);
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i] as number;
    if (seen >= rank) return LATENCY_BOUNDS_MS[Math.min(i, LATENCY_BOUNDS_MS.length - 1)] as number;
  }
  return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1] as number;
}

const count = (n: number) => Math.max(0, Math.trunc(n));

/** What one event adds: one request, one failure if it failed, its tokens and cost. */
export function factCounters(f: UsageFact): UsageCounters {
  return {
    ...zeroLatency(),
    [latencyProp(f.latencyMs)]: 1,
    fallbackRequests: f.fallbackUsed ? 1 : 0,
    cacheHits: f.cacheHit ? 1 : 0,
    cacheSavedCostMicros: f.cacheHit ? count(f.cacheSavedCostMicros) : 0,
    requests: 1,
    failedRequests: f.success ? 0 : 1,
    inputTokens: count(f.inputTokens),
    outputTokens: count(f.outputTokens),
    cachedInputTokens: count(f.cachedInputTokens),
    cacheWriteInputTokens: count(f.cacheWriteInputTokens),
    reasoningTokens: count(f.reasoningTokens),
    costMicros: count(f.costMicros),
  };
}
