import { Operation, PlanRouteRequest, type Plan } from '@llmgw/proto/router';
import { AttemptOutcome, LatencyClass, Priority, QualityTier, TaskType, type Attempt } from '@llmgw/proto/v1';
import { describe, expect, it } from 'vitest';
import { PlanCache } from './plan-cache.js';
import { testPlan } from './test-config.js';

const skipped = (model: string, reason: string): Attempt => ({
  model,
  provider: 'sim-openai',
  outcome: AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED,
  error: '',
  latencyMs: 0,
  providerStatus: 0,
  reason,
  hedge: false,
});
/** A plan as the router returns it, holding for prompts of [min, max] tokens. */
const plan = (min = 0, max = 1_000, skips: Attempt[] = []): Plan =>
  testPlan('chat', ['small-fast'], { skipped: skips, promptTokensMin: min, promptTokensMax: max });
const request = (over: Partial<PlanRouteRequest> = {}): PlanRouteRequest =>
  PlanRouteRequest.fromPartial({
    tenantId: 'acme',
    tier: 'startup',
    route: 'chat',
    operation: Operation.OPERATION_CHAT,
    requiredCapabilities: ['streaming'],
    promptTokens: 100,
    ...over,
  });

function setup(ttlMs = 1_000, maxEntries?: number) {
  let t = 0;
  const cache = new PlanCache({ ttlMs, now: () => t, maxEntries });
  return { cache, advance: (ms: number) => (t += ms) };
}

describe('PlanCache', () => {
  it('hits for the same key fields, whatever the prompt size within the fitting range', () => {
    const { cache } = setup();
    const p = plan(0, 1_000);
    cache.set(request(), p);
    expect(cache.get(request())).toBe(p);
    expect(cache.get(request({ promptTokens: 999 }))).toBe(p);
  });

  it.each<[string, Partial<PlanRouteRequest>]>([
    ['tenant', { tenantId: 'other' }],
    ['tier', { tier: 'enterprise' }],
    ['route', { route: 'fallback' }],
    ['task type', { taskType: TaskType.TASK_TYPE_CODE }],
    ['quality tier', { qualityTier: QualityTier.QUALITY_TIER_PREMIUM }],
    ['latency class', { latencyClass: LatencyClass.LATENCY_CLASS_BATCH }],
    ['priority', { priority: Priority.PRIORITY_HIGH }],
    ['model', { model: 'large' }],
    ['operation', { operation: Operation.OPERATION_EMBED }],
    ['required capabilities', { requiredCapabilities: ['streaming', 'tools'] }],
  ])('misses when the %s differs', (_name, over) => {
    const { cache } = setup();
    cache.set(request(), plan());
    expect(cache.get(request(over))).toBeUndefined();
    expect(cache.get(request())).toBeDefined();
  });

  it('expires entries after ttlMs', () => {
    const { cache, advance } = setup(1_000);
    cache.set(request(), plan());
    advance(999);
    expect(cache.get(request())).toBeDefined();
    advance(1);
    expect(cache.get(request())).toBeUndefined();
    advance(-500);
    expect(cache.get(request())).toBeUndefined();
  });

  it('is disabled with ttlMs 0', () => {
    const { cache } = setup(0);
    expect(cache.enabled).toBe(false);
    cache.set(request(), plan());
    expect(cache.get(request())).toBeUndefined();
  });

  it('evicts the oldest entry at maxEntries', () => {
    const { cache } = setup(10_000, 2);
    cache.set(request({ tenantId: 'a' }), plan());
    cache.set(request({ tenantId: 'b' }), plan());
    cache.set(request({ tenantId: 'c' }), plan());
    expect(cache.get(request({ tenantId: 'a' }))).toBeUndefined();
    expect(cache.get(request({ tenantId: 'b' }))).toBeDefined();
    expect(cache.get(request({ tenantId: 'c' }))).toBeDefined();
  });

  it('is reused only within the prompt range the router gave: up to the smallest planned context', () => {
    const { cache } = setup();
    cache.set(request({ promptTokens: 100 }), plan(0, 1_000));
    expect(cache.get(request({ promptTokens: 0 }))).toBeDefined();
    expect(cache.get(request({ promptTokens: 1_000 }))).toBeDefined();
    expect(cache.get(request({ promptTokens: 1_001 }))).toBeUndefined();
  });

  it('is not reused for a prompt that would now fit a model skipped as context_too_small', () => {
    const { cache } = setup();
    // Planned for a 2000-token prompt: small (1000) was skipped, medium (5000) chosen.
    cache.set(request({ promptTokens: 2_000 }), plan(1_001, 5_000, [skipped('small', 'context_too_small')]));
    expect(cache.get(request({ promptTokens: 1_500 }))).toBeDefined();
    expect(cache.get(request({ promptTokens: 1_001 }))).toBeDefined();
    expect(cache.get(request({ promptTokens: 5_000 }))).toBeDefined();
    expect(cache.get(request({ promptTokens: 5_001 }))).toBeUndefined();
    expect(cache.get(request({ promptTokens: 1_000 }))).toBeUndefined();
    expect(cache.get(request({ promptTokens: 10 }))).toBeUndefined();
  });

  it('trusts the range, not the skip list: it reads no model config of its own', () => {
    const { cache } = setup();
    cache.set(request({ promptTokens: 2_000 }), plan(0, 5_000, [skipped('small', 'unhealthy')]));
    expect(cache.get(request({ promptTokens: 10 }))).toBeDefined();
  });

  it('never reuses a plan without a range (a router that sets none: [0, 0])', () => {
    const { cache } = setup();
    cache.set(request(), testPlan('chat', ['small-fast'], { promptTokensMin: 0, promptTokensMax: 0 }));
    expect(cache.get(request({ promptTokens: 1 }))).toBeUndefined();
  });

  it('is reused only within the sticky buckets the router gave (a split arm\'s range)', () => {
    const { cache } = setup();
    const arm = testPlan('chat', ['small-fast'], { split: 'canary', stickyBucketMin: 2_000, stickyBucketMax: 3_999 });
    cache.set(request({ stickyBucket: 2_500 }), arm);
    for (const b of [2_000, 2_500, 3_999]) expect(cache.get(request({ stickyBucket: b })), `bucket ${b}`).toBe(arm);
    for (const b of [0, 1_999, 4_000, 9_999]) expect(cache.get(request({ stickyBucket: b })), `bucket ${b}`).toBeUndefined();
  });

  it('needs both ranges to hold: the right bucket with a prompt outside the range misses', () => {
    const { cache } = setup();
    cache.set(request(), testPlan('chat', ['small-fast'], { promptTokensMin: 0, promptTokensMax: 1_000, stickyBucketMin: 0, stickyBucketMax: 4_999 }));
    expect(cache.get(request({ promptTokens: 500, stickyBucket: 4_999 }))).toBeDefined();
    expect(cache.get(request({ promptTokens: 1_001, stickyBucket: 10 }))).toBeUndefined();
    expect(cache.get(request({ promptTokens: 500, stickyBucket: 5_000 }))).toBeUndefined();
  });

  it('a newer plan for the same key replaces the older one', () => {
    const { cache } = setup();
    cache.set(request({ promptTokens: 100 }), plan(0, 1_000));
    const larger = plan(1_001, 5_000);
    cache.set(request({ promptTokens: 2_000 }), larger);
    expect(cache.get(request({ promptTokens: 3_000 }))).toBe(larger);
    expect(cache.get(request({ promptTokens: 100 }))).toBeUndefined();
  });
});
