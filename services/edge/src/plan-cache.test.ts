import { parseGatewayConfig } from '@llmgw/config';
import { Operation, Plan, PlanRouteRequest, type PlannedAttempt } from '@llmgw/proto/router';
import { AttemptOutcome, LatencyClass, QualityTier, TaskType, type Attempt } from '@llmgw/proto/v1';
import { describe, expect, it } from 'vitest';
import { PlanCache } from './plan-cache.js';

const YAML = `
default_route: chat
providers:
  sim-openai: { kind: openai, base_url: "http://127.0.0.1:9/v1", api_key: sim-key }
models:
  small: { provider: sim-openai, pricing: { input_per_million_usd: 0.15 }, context_tokens: 1000 }
  medium: { provider: sim-openai, pricing: { input_per_million_usd: 0.15 }, context_tokens: 5000 }
  large: { provider: sim-openai, pricing: { input_per_million_usd: 1 }, context_tokens: 100000 }
routes:
  chat: { rules: [{ name: default, model: small, fallback: [medium, large] }] }
tiers:
  startup: {}
tenants:
  acme: { tier: startup }
`;
const config = parseGatewayConfig(YAML, 'plan-cache.test.yaml', {});

const attempt = (model: string): PlannedAttempt => ({ model, provider: 'sim-openai', upstreamModel: model, timeoutMs: 1000, maxRetries: 0 });
const skipped = (model: string, reason: string): Attempt => ({
  model,
  provider: 'sim-openai',
  outcome: AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED,
  error: '',
  latencyMs: 0,
  providerStatus: 0,
  reason,
});
const plan = (models: string[], skips: Attempt[] = []): Plan => Plan.fromPartial({ route: 'chat', rule: 'default', attempts: models.map(attempt), skipped: skips });
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
  const cache = new PlanCache({ config, ttlMs, now: () => t, maxEntries });
  return { cache, advance: (ms: number) => (t += ms) };
}

describe('PlanCache', () => {
  it('hits for the same key fields, whatever the prompt size within the fitting range', () => {
    const { cache } = setup();
    const p = plan(['small', 'large']);
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
    ['model', { model: 'large' }],
    ['operation', { operation: Operation.OPERATION_EMBED }],
    ['required capabilities', { requiredCapabilities: ['streaming', 'tools'] }],
  ])('misses when the %s differs', (_name, over) => {
    const { cache } = setup();
    cache.set(request(), plan(['small']));
    expect(cache.get(request(over))).toBeUndefined();
    expect(cache.get(request())).toBeDefined();
  });

  it('expires entries after ttlMs', () => {
    const { cache, advance } = setup(1_000);
    cache.set(request(), plan(['small']));
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
    cache.set(request(), plan(['small']));
    expect(cache.get(request())).toBeUndefined();
  });

  it('evicts the oldest entry at maxEntries', () => {
    const { cache } = setup(10_000, 2);
    cache.set(request({ tenantId: 'a' }), plan(['small']));
    cache.set(request({ tenantId: 'b' }), plan(['small']));
    cache.set(request({ tenantId: 'c' }), plan(['small']));
    expect(cache.get(request({ tenantId: 'a' }))).toBeUndefined();
    expect(cache.get(request({ tenantId: 'b' }))).toBeDefined();
    expect(cache.get(request({ tenantId: 'c' }))).toBeDefined();
  });

  it('is not reused for a prompt larger than a planned model context', () => {
    const { cache } = setup();
    cache.set(request({ promptTokens: 100 }), plan(['small', 'large']));
    expect(cache.get(request({ promptTokens: 1_000 }))).toBeDefined();
    expect(cache.get(request({ promptTokens: 1_001 }))).toBeUndefined();
  });

  it('is not reused for a prompt that would now fit a model skipped as context_too_small', () => {
    const { cache } = setup();
    // Planned for a 2000-token prompt: small (1000) was skipped, medium (5000) chosen.
    cache.set(request({ promptTokens: 2_000 }), plan(['medium'], [skipped('small', 'context_too_small')]));
    expect(cache.get(request({ promptTokens: 1_500 }))).toBeDefined();
    expect(cache.get(request({ promptTokens: 1_001 }))).toBeDefined();
    expect(cache.get(request({ promptTokens: 1_000 }))).toBeUndefined();
    expect(cache.get(request({ promptTokens: 10 }))).toBeUndefined();
  });

  it('ignores models skipped for other reasons', () => {
    const { cache } = setup();
    cache.set(request({ promptTokens: 2_000 }), plan(['medium'], [skipped('small', 'circuit_open')]));
    expect(cache.get(request({ promptTokens: 10 }))).toBeDefined();
  });

  it('never reuses a plan naming a model missing from the config', () => {
    const { cache } = setup();
    cache.set(request(), plan(['ghost']));
    expect(cache.get(request({ promptTokens: 1 }))).toBeUndefined();
  });
});
