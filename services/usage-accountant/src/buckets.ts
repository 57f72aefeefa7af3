const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

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

/** What one usage event adds to its bucket. */
export interface UsageFact {
  eventId: string;
  tenantId: string;
  route: string;
  model: string;
  occurredAtMs: number;
  success: boolean;
  inputTokens: number;
  outputTokens: number;
  costMicros: number;
}

export interface UsageCounters {
  requests: number;
  failedRequests: number;
  inputTokens: number;
  outputTokens: number;
  costMicros: number;
}

/** The sums of one tenant, hour, route and model. */
export interface UsageCell extends UsageCounters {
  tenantId: string;
  /** Start of the UTC hour, epoch ms. */
  hourMs: number;
  route: string;
  model: string;
}

export const COUNTER_NAMES = ['requests', 'failed_requests', 'input_tokens', 'output_tokens', 'cost_micros'] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];

export const COUNTER_PROPS: Record<CounterName, keyof UsageCounters> = {
  requests: 'requests',
  failed_requests: 'failedRequests',
  input_tokens: 'inputTokens',
  output_tokens: 'outputTokens',
  cost_micros: 'costMicros',
};

export function zeroCounters(): UsageCounters {
  return { requests: 0, failedRequests: 0, inputTokens: 0, outputTokens: 0, costMicros: 0 };
}

/** What one event adds: one request, one failure if it failed, its tokens and cost. */
export function factCounters(f: UsageFact): UsageCounters {
  return {
    requests: 1,
    failedRequests: f.success ? 0 : 1,
    inputTokens: Math.max(0, Math.trunc(f.inputTokens)),
    outputTokens: Math.max(0, Math.trunc(f.outputTokens)),
    costMicros: Math.max(0, Math.trunc(f.costMicros)),
  };
}
