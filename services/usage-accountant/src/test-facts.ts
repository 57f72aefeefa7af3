import type { UsageFact } from './buckets.js';

/** A usage fact for tests: one successful chat request of tenant acme, with no label set. */
export function usageFact(p: Partial<UsageFact>): UsageFact {
  return {
    eventId: 'e1',
    tenantId: 'acme',
    route: 'chat',
    model: 'small',
    provider: '',
    keyId: '',
    intent: '',
    user: '',
    promptVersion: '',
    feature: '',
    occurredAtMs: 0,
    success: true,
    inputTokens: 0,
    outputTokens: 0,
    cachedInputTokens: 0,
    cacheWriteInputTokens: 0,
    reasoningTokens: 0,
    costMicros: 0,
    fallbackUsed: false,
    cacheHit: false,
    cacheSavedCostMicros: 0,
    latencyMs: 0,
    ...p,
  };
}
