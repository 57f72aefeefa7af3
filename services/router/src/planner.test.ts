import { describe, expect, it } from 'vitest';
import { AppError } from '@llmgw/errors';
import { AttemptOutcome, LatencyClass, QualityTier, TaskType } from '@llmgw/proto/v1';
import { FallbackTrigger, Operation, PlanRouteRequest } from '@llmgw/proto/router';
import { latencyClassName, Planner, qualityTierName, taskTypeName } from './planner.js';
import { testPolicy } from './test-config.js';

const planner = new Planner(testPolicy());
const req = (p: Partial<PlanRouteRequest>): PlanRouteRequest => PlanRouteRequest.fromPartial({ tenantId: 'acme', ...p });

function failure(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error('expected an AppError');
}

describe('enum names', () => {
  it.each([
    [taskTypeName(TaskType.TASK_TYPE_CODE), 'code'],
    [taskTypeName(TaskType.TASK_TYPE_SUMMARIZATION), 'summarization'],
    [qualityTierName(QualityTier.QUALITY_TIER_PREMIUM), 'premium'],
    [latencyClassName(LatencyClass.LATENCY_CLASS_BATCH), 'batch'],
    [taskTypeName(TaskType.TASK_TYPE_UNSPECIFIED), undefined],
  ])('%s is %s', (got, want) => expect(got).toBe(want));
});

describe('rule matching', () => {
  it.each([
    ['enterprise + premium', req({ tenantId: 'globex', qualityTier: QualityTier.QUALITY_TIER_PREMIUM }), 'premium-reasoning', ['large-reasoning', 'small-fast']],
    ['startup + premium falls through', req({ qualityTier: QualityTier.QUALITY_TIER_PREMIUM }), 'default', ['small-fast', 'small-backup']],
    ['tier in request wins over tenant tier', req({ tenantId: 'globex', tier: 'startup', qualityTier: QualityTier.QUALITY_TIER_PREMIUM }), 'default', ['small-fast', 'small-backup']],
    ['code task', req({ taskType: TaskType.TASK_TYPE_CODE }), 'code', ['coder', 'small-fast']],
    ['batch', req({ latencyClass: LatencyClass.LATENCY_CLASS_BATCH }), 'batch', ['small-backup', 'small-fast']],
    ['nothing set', req({}), 'default', ['small-fast', 'small-backup']],
    ['explicit default route', req({ route: 'support-chat' }), 'default', ['small-fast', 'small-backup']],
  ])('%s', (_name, r, rule, models) => {
    const plan = planner.plan(r);
    expect(plan.route).toBe('support-chat');
    expect(plan.rule).toBe(rule);
    expect(plan.attempts.map((a) => a.model)).toEqual(models);
  });

  it('unknown route is INVALID_ARGUMENT naming it', () => {
    const err = failure(() => planner.plan(req({ route: 'nope' })));
    expect(err.kind).toBe('invalid_argument');
    expect(err.message).toContain('"nope"');
  });
});

describe('attempt fields', () => {
  it('takes provider, upstream model, provider timeout and no retries for interactive', () => {
    const plan = planner.plan(req({}));
    expect(plan.attempts[0]).toEqual({ model: 'small-fast', provider: 'p-openai', upstreamModel: 'gpt-4o-mini', timeoutMs: 20_000, maxRetries: 0 });
    // Provider timeout 45 s is capped by the route's 30 s; upstream model defaults to the key.
    expect(plan.attempts[1]).toEqual({ model: 'small-backup', provider: 'p-anthropic', upstreamModel: 'small-backup', timeoutMs: 30_000, maxRetries: 0 });
    expect(plan).toMatchObject({ maxTokensCap: 4096, defaultMaxTokens: 512, timeoutMs: 30_000, retryBackoffMs: 200, skipped: [] });
  });

  it('uses the route attempt timeout and batch retries', () => {
    const plan = planner.plan(req({ tenantId: 'globex', route: 'strict', latencyClass: LatencyClass.LATENCY_CLASS_BATCH }));
    expect(plan.attempts.map((a) => [a.model, a.timeoutMs, a.maxRetries])).toEqual([
      ['large-reasoning', 4000, 3],
      ['small-backup', 4000, 3],
    ]);
    expect(plan.retryBackoffMs).toBe(150);
  });

  it.each([
    ['support-chat', [FallbackTrigger.FALLBACK_TRIGGER_TIMEOUT, FallbackTrigger.FALLBACK_TRIGGER_HTTP_5XX, FallbackTrigger.FALLBACK_TRIGGER_HTTP_429, FallbackTrigger.FALLBACK_TRIGGER_CONNECTION_ERROR]],
    ['strict', [FallbackTrigger.FALLBACK_TRIGGER_SCHEMA_FAILURE, FallbackTrigger.FALLBACK_TRIGGER_HTTP_5XX]],
    ['embeddings', [FallbackTrigger.FALLBACK_TRIGGER_TIMEOUT, FallbackTrigger.FALLBACK_TRIGGER_HTTP_5XX, FallbackTrigger.FALLBACK_TRIGGER_HTTP_429, FallbackTrigger.FALLBACK_TRIGGER_CONNECTION_ERROR]],
  ])('route %s has fallback triggers %j', (route, triggers) => {
    const plan = planner.plan(req({ tenantId: 'globex', route, operation: route === 'embeddings' ? Operation.OPERATION_EMBED : Operation.OPERATION_CHAT }));
    expect(plan.fallbackTriggers).toEqual(triggers);
  });
});

describe('skips', () => {
  it.each([
    ['not allowed', req({ route: 'strict' }), ['small-backup'], [['large-reasoning', 'not_allowed', 'tenant acme may not use model large-reasoning']]],
    ['missing capability', req({ requiredCapabilities: ['json_schema'] }), ['small-fast'], [['small-backup', 'missing_capability', 'model small-backup cannot honour json_schema']]],
    ['context too small', req({ taskType: TaskType.TASK_TYPE_CODE, promptTokens: 20_000 }), ['small-fast'], [['coder', 'context_too_small', 'model coder has a context of 16000 tokens; the prompt has 20000']]],
    ['embed needs embeddings', req({ route: 'embeddings', operation: Operation.OPERATION_EMBED }), ['embed-small'], [['small-fast', 'missing_capability', 'model small-fast cannot honour embeddings']]],
  ])('%s', (_name, r, models, skipped) => {
    const plan = planner.plan(r);
    expect(plan.attempts.map((a) => a.model)).toEqual(models);
    expect(plan.skipped.map((s) => [s.model, s.reason, s.error])).toEqual(skipped);
    for (const s of plan.skipped) expect(s.outcome).toBe(AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED);
    expect(plan.skipped[0]?.provider).not.toBe('');
  });

  it.each([
    ['every model not allowed', req({ tenantId: 'coders', route: 'strict' }), 'permission_denied', undefined],
    ['not allowed + missing capability', req({ tenantId: 'tiny', requiredCapabilities: ['vision'] }), 'invalid_argument', 'vision'],
    ['nobody honours vision', req({ tenantId: 'globex', requiredCapabilities: ['vision'] }), 'invalid_argument', 'no model of route "support-chat" can honour vision'],
    ['json_schema on a route without it', req({ tenantId: 'tiny', route: 'support-chat', requiredCapabilities: ['json_schema'] }), 'invalid_argument', 'json_schema'],
    ['prompt too large everywhere', req({ tenantId: 'globex', promptTokens: 500_000 }), 'invalid_argument', 'larger than the context'],
    ['unknown tenant may use nothing', req({ tenantId: 'nobody' }), 'permission_denied', 'nobody'],
  ])('%s', (_name, r, kind, text) => {
    const err = failure(() => planner.plan(r));
    expect(err.kind).toBe(kind);
    if (text) expect(err.message).toContain(text);
  });

  it('permission error names the models', () => {
    const err = failure(() => planner.plan(req({ tenantId: 'coders', route: 'strict' })));
    expect(err.message).toBe('tenant coders may not use model(s) large-reasoning, small-backup of route "strict"');
  });
});

describe('model pins', () => {
  it('a pinned model is the only attempt', () => {
    const plan = planner.plan(req({ model: 'small-backup' }));
    expect(plan.rule).toBe('pinned');
    expect(plan.attempts.map((a) => a.model)).toEqual(['small-backup']);
  });

  it.each([
    ['unknown model', req({ model: 'gpt-9' }), 'invalid_argument', 'unknown model "gpt-9"'],
    ['not allowed', req({ model: 'large-reasoning' }), 'permission_denied', 'tenant acme may not use model large-reasoning'],
    ['cannot honour', req({ model: 'small-backup', requiredCapabilities: ['json_schema'] }), 'invalid_argument', 'json_schema'],
  ])('%s', (_name, r, kind, message) => {
    const err = failure(() => planner.plan(r));
    expect(err.kind).toBe(kind);
    expect(err.message).toContain(message);
  });

  it('an enterprise tenant may pin the large model', () => {
    expect(planner.plan(req({ tenantId: 'globex', model: 'large-reasoning' })).attempts[0]?.upstreamModel).toBe('o3');
  });
});

describe('backend health', () => {
  const unhealthy = (...models: string[]) => ({ isUnhealthy: (m: string) => models.includes(m) });
  const skippedOf = (p: ReturnType<Planner['plan']>) => p.skipped.map((s) => [s.model, s.outcome, s.reason, s.error]);

  it('skips an unhealthy primary and records it', () => {
    const plan = planner.plan(req({}), unhealthy('small-fast'));
    expect(plan.attempts.map((a) => a.model)).toEqual(['small-backup']);
    expect(skippedOf(plan)).toEqual([
      ['small-fast', AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED, 'unhealthy', 'model small-fast is unhealthy (circuit breaker open on an executor)'],
    ]);
    expect(plan.skipped[0]?.provider).toBe('p-openai');
  });

  it('skips an unhealthy fallback too, keeping the healthy primary', () => {
    const plan = planner.plan(req({}), unhealthy('small-backup'));
    expect(plan.attempts.map((a) => a.model)).toEqual(['small-fast']);
    expect(skippedOf(plan).map((s) => s[0])).toEqual(['small-backup']);
  });

  it('keeps every model, in order, when all of them are unhealthy', () => {
    const plan = planner.plan(req({}), unhealthy('small-fast', 'small-backup'));
    expect(plan.attempts.map((a) => a.model)).toEqual(['small-fast', 'small-backup']);
    expect(plan.skipped).toEqual([]);
  });

  it('counts only models left after policy skips: the one allowed model stays even when unhealthy', () => {
    // tenant tiny may only use small-backup; small-fast is skipped as not_allowed, not for health.
    const plan = planner.plan(req({ tenantId: 'tiny' }), unhealthy('small-fast', 'small-backup'));
    expect(plan.attempts.map((a) => a.model)).toEqual(['small-backup']);
    expect(skippedOf(plan).map((s) => [s[0], s[2]])).toEqual([['small-fast', 'not_allowed']]);
  });

  it('applies to the chain of whichever rule matched', () => {
    const plan = planner.plan(req({ taskType: TaskType.TASK_TYPE_CODE }), unhealthy('coder'));
    expect(plan.attempts.map((a) => a.model)).toEqual(['small-fast']);
    expect(skippedOf(plan).map((s) => [s[0], s[2]])).toEqual([['coder', 'unhealthy']]);
  });

  it('never skips a pinned model for health', () => {
    const plan = planner.plan(req({ model: 'small-fast' }), unhealthy('small-fast', 'small-backup'));
    expect(plan.rule).toBe('pinned');
    expect(plan.attempts.map((a) => a.model)).toEqual(['small-fast']);
    expect(plan.skipped).toEqual([]);
  });

  it('a healthy view changes nothing', () => {
    expect(planner.plan(req({}), unhealthy())).toEqual(planner.plan(req({})));
  });
});
