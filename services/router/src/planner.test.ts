import { describe, expect, it } from 'vitest';
import { AppError } from '@llmgw/errors';
import { AttemptOutcome, LatencyClass, QualityTier, TaskType } from '@llmgw/proto/v1';
import { CatalogEntryKind, FallbackTrigger, Operation, PlanRouteRequest, Tokenizer, type Plan } from '@llmgw/proto/router';
import { ResponseFormatType } from '@llmgw/proto/v1';
import { latencyClassName, Planner, qualityTierName, taskTypeName } from './planner.js';
import { testPolicy } from './test-config.js';

const planner = new Planner(testPolicy());

/** The tier auth puts on each test tenant's principal; the router itself does not know it. */
const TIERS: Record<string, string> = { acme: 'startup', globex: 'enterprise', tiny: 'startup', coders: 'startup', vip: 'startup', open: 'startup' };

/** A plan request as the edge sends it: the tier is the principal's (given explicitly, or the tenant's). */
const req = (p: Partial<PlanRouteRequest>): PlanRouteRequest => {
  const tenantId = p.tenantId ?? 'acme';
  return PlanRouteRequest.fromPartial({ ...p, tenantId, tier: p.tier ?? TIERS[tenantId] ?? '' });
};

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
    ['the tier is the request\'s (the principal\'s), not a config lookup', req({ tenantId: 'globex', tier: 'startup', qualityTier: QualityTier.QUALITY_TIER_PREMIUM }), 'default', ['small-fast', 'small-backup']],
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

const SMALL_FAST = {
  model: 'small-fast',
  provider: 'p-openai',
  upstreamModel: 'gpt-4o-mini',
  timeoutMs: 0,
  maxRetries: 0,
  pricing: { inputPerMillionUsd: 0.15, outputPerMillionUsd: 0.6 },
  tokenizer: Tokenizer.TOKENIZER_OPENAI,
  contextTokens: 128_000,
  maxOutputTokens: 16_384,
};
const ALL_FORMATS = [
  ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT,
  ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT,
  ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
];

describe('the router holds only its sections', () => {
  it('reads routes, models and model access, never the providers or their secrets', () => {
    const sections = testPolicy();
    expect(Object.keys(sections).sort()).toEqual(['default_route', 'models', 'routes', 'tenants', 'tiers']);
    // Only allowed_models of tiers and tenants: limits, tiers of tenants and log policy belong to others.
    expect(sections.tiers.startup).toEqual({ allowed_models: ['small-fast', 'small-backup', 'coder', 'embed-small'] });
    expect(sections.tenants.acme).toEqual({});
    expect(sections.tenants.open).toEqual({ allowed_models: [] });
  });
});

describe('attempt fields', () => {
  it('carries each model\'s provider, upstream name, pricing, tokenizer and limits; timeout 0 (the provider\'s) without attempt_timeout_ms', () => {
    const plan = planner.plan(req({}));
    expect(plan.attempts[0]).toEqual(SMALL_FAST);
    // Defaults: upstream model = the key, tokenizer approx, 4096 output tokens, output price 0 unless given.
    expect(plan.attempts[1]).toEqual({
      model: 'small-backup',
      provider: 'p-anthropic',
      upstreamModel: 'small-backup',
      timeoutMs: 0,
      maxRetries: 0,
      pricing: { inputPerMillionUsd: 1, outputPerMillionUsd: 5 },
      tokenizer: Tokenizer.TOKENIZER_APPROX,
      contextTokens: 200_000,
      maxOutputTokens: 4_096,
    });
    expect(plan).toMatchObject({ maxTokensCap: 4096, defaultMaxTokens: 512, timeoutMs: 30_000, retryBackoffMs: 200, skipped: [] });
  });

  it('prices a model without an output price at 0 for output', () => {
    const plan = planner.plan(req({ taskType: TaskType.TASK_TYPE_CODE }));
    expect(plan.attempts[0]).toMatchObject({ model: 'coder', pricing: { inputPerMillionUsd: 1, outputPerMillionUsd: 0 }, tokenizer: Tokenizer.TOKENIZER_APPROX, contextTokens: 16_000 });
  });

  it('uses the route attempt timeout and batch retries', () => {
    const plan = planner.plan(req({ tenantId: 'globex', route: 'strict', latencyClass: LatencyClass.LATENCY_CLASS_BATCH }));
    expect(plan.attempts.map((a) => [a.model, a.timeoutMs, a.maxRetries])).toEqual([
      ['large-reasoning', 4000, 3],
      ['small-backup', 4000, 3],
    ]);
    expect(plan.retryBackoffMs).toBe(150);
    expect(plan.timeoutMs).toBe(10_000);
  });

  it('caps an attempt timeout longer than the route timeout at the route timeout', () => {
    const plan = planner.plan(req({ route: 'slow-attempts' }));
    expect(plan.attempts.map((a) => a.timeoutMs)).toEqual([5_000]);
    expect(plan.timeoutMs).toBe(5_000);
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
    ['unknown tier may use nothing', req({ tier: 'gold' }), 'permission_denied', 'tenant acme may not use model(s) small-fast, small-backup'],
    ['no tier may use nothing', req({ tier: '' }), 'permission_denied', 'acme'],
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

describe('model_or_route (the HTTP surface\'s `model`)', () => {
  it('names a route: its rules choose', () => {
    const plan = planner.plan(req({ modelOrRoute: 'strict', tenantId: 'globex' }));
    expect([plan.route, plan.rule, plan.attempts[0]?.model]).toEqual(['strict', 'only', 'large-reasoning']);
  });

  it('else names a model: a pin on the default route, under the same policy', () => {
    const plan = planner.plan(req({ modelOrRoute: 'small-backup' }));
    expect([plan.route, plan.rule, plan.attempts.map((a) => a.model)]).toEqual(['support-chat', 'pinned', ['small-backup']]);
    expect(failure(() => planner.plan(req({ modelOrRoute: 'large-reasoning' }))).kind).toBe('permission_denied');
  });

  it('a name that is neither is NOT_FOUND, quoted and cut', () => {
    const err = failure(() => planner.plan(req({ modelOrRoute: 'gpt-9'.repeat(100) })));
    expect(err.kind).toBe('not_found');
    expect(err.message).toMatch(/^model: no route or model is named "gpt-9gpt-9.*… \(436 more characters\)$/);
  });

  it('goes without route and model', () => {
    expect(failure(() => planner.plan(req({ modelOrRoute: 'strict', route: 'support-chat' }))).kind).toBe('invalid_argument');
  });
});

describe('catalog', () => {
  const names = (tenant: string) => planner.catalog(tenant, TIERS[tenant] ?? '').map((e) => `${e.kind === CatalogEntryKind.CATALOG_ENTRY_KIND_ROUTE ? 'route' : 'model'}:${e.name}`);

  it('lists the routes with a usable model, then the models the tenant may pin, sorted', () => {
    expect(names('acme')).toEqual([
      'route:embeddings', 'route:guarded', 'route:no-tools', 'route:slow-attempts', 'route:strict', 'route:support-chat',
      'model:coder', 'model:embed-small', 'model:small-backup', 'model:small-fast',
    ]);
  });

  it('a tenant limited to one model sees only the routes that can use it', () => {
    expect(names('tiny')).toEqual(['route:strict', 'route:support-chat', 'model:small-backup']);
  });

  it('says what each entry serves', () => {
    const byName = new Map(planner.catalog('acme', 'startup').map((e) => [e.name, e]));
    expect(byName.get('embeddings')?.operation).toBe(Operation.OPERATION_EMBED);
    expect(byName.get('support-chat')?.operation).toBe(Operation.OPERATION_CHAT);
    expect(byName.get('embed-small')).toMatchObject({ provider: 'p-openai', operation: Operation.OPERATION_EMBED, capabilities: ['embeddings'] });
  });

  it('an unknown tier sees nothing', () => {
    expect(planner.catalog('nobody', 'no-such-tier')).toEqual([]);
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

describe('guardrails', () => {
  it.each([
    ['support-chat', { maxPromptTokens: 0, allowedResponseFormats: ALL_FORMATS, restrictTools: false, allowedTools: [] }],
    [
      'guarded',
      {
        maxPromptTokens: 100,
        allowedResponseFormats: [ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT, ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT],
        restrictTools: true,
        allowedTools: ['lookup_order'],
      },
    ],
    // allowed_tools: [] allows no tool at all, which is not the same as no restriction.
    ['no-tools', { maxPromptTokens: 0, allowedResponseFormats: ALL_FORMATS, restrictTools: true, allowedTools: [] }],
  ])('route %s carries its guardrails in the plan', (route, guardrails) => {
    expect(planner.plan(req({ route })).guardrails).toEqual(guardrails);
  });

  it('a pinned model keeps the route\'s guardrails and caps', () => {
    const plan = planner.plan(req({ route: 'guarded', model: 'small-backup' }));
    expect(plan.rule).toBe('pinned');
    expect(plan.guardrails?.maxPromptTokens).toBe(100);
    expect(plan.maxTokensCap).toBe(4096);
  });
});

describe('prompt sizes a plan holds for', () => {
  /** What the prompt size may change in a plan: its attempts and why models were skipped. */
  const shape = (p: Plan) => ({ attempts: p.attempts.map((a) => a.model), skipped: p.skipped.map((s) => [s.model, s.reason]) });
  const rangeOf = (p: Plan) => [p.promptTokensMin, p.promptTokensMax];
  const planOrKind = (r: PlanRouteRequest) => {
    try {
      return shape(planner.plan(r));
    } catch (err) {
      if (err instanceof AppError) return err.kind;
      throw err;
    }
  };

  it('is bounded by the smallest context of the models it may use', () => {
    expect(rangeOf(planner.plan(req({ promptTokens: 10 })))).toEqual([0, 128_000]);
    expect(rangeOf(planner.plan(req({ model: 'small-backup' })))).toEqual([0, 200_000]);
  });

  it('starts above the context of a model skipped for it, and holds exactly over its range', () => {
    const plan = planner.plan(req({ taskType: TaskType.TASK_TYPE_CODE, promptTokens: 20_000 }));
    expect(shape(plan)).toEqual({ attempts: ['small-fast'], skipped: [['coder', 'context_too_small']] });
    expect(rangeOf(plan)).toEqual([16_001, 128_000]);
    const at = (promptTokens: number) => planOrKind(req({ taskType: TaskType.TASK_TYPE_CODE, promptTokens }));
    for (const n of [16_001, 20_000, 64_000, 128_000]) expect(at(n), `${n} tokens`).toEqual(shape(plan));
    // Just outside: the coder fits again below, nothing fits above.
    expect(at(16_000)).toEqual({ attempts: ['coder', 'small-fast'], skipped: [] });
    expect(at(128_001)).toBe('invalid_argument');
  });

  it('the range of a plan with the small-context model holds up to that model\'s context', () => {
    const plan = planner.plan(req({ taskType: TaskType.TASK_TYPE_CODE, promptTokens: 100 }));
    expect(rangeOf(plan)).toEqual([0, 16_000]);
  });

  it('is not bounded by models skipped for access or capability, whatever their context', () => {
    // tiny may use small-backup only: small-fast's 128k context does not limit the plan.
    expect(rangeOf(planner.plan(req({ tenantId: 'tiny' })))).toEqual([0, 200_000]);
    // The coder (16k) cannot use tools: only small-fast (128k) bounds the plan.
    const plan = planner.plan(req({ taskType: TaskType.TASK_TYPE_CODE, requiredCapabilities: ['tools'], promptTokens: 100 }));
    expect(shape(plan)).toEqual({ attempts: ['small-fast'], skipped: [['coder', 'missing_capability']] });
    expect(rangeOf(plan)).toEqual([0, 128_000]);
    expect(rangeOf(planner.plan(req({ route: 'embeddings', operation: Operation.OPERATION_EMBED })))).toEqual([0, 8_192]);
  });

  it('is bounded by a model skipped as unhealthy (a larger prompt would skip it for context instead)', () => {
    const plan = planner.plan(req({}), { isUnhealthy: (m) => m === 'small-fast' });
    expect(shape(plan)).toEqual({ attempts: ['small-backup'], skipped: [['small-fast', 'unhealthy']] });
    expect(rangeOf(plan)).toEqual([0, 128_000]);
  });
});

describe('model access', () => {
  it('a tenant\'s own allowed_models wins over its tier\'s, in both directions', () => {
    // tiny's tier (startup) allows small-fast; tiny's own list does not.
    expect(planner.mayUse('tiny', 'startup', 'small-fast')).toBe(false);
    expect(planner.plan(req({ tenantId: 'tiny' })).skipped.map((s) => [s.model, s.reason])).toEqual([['small-fast', 'not_allowed']]);
    // vip's tier does not allow large-reasoning; vip's own list does, and leaves out small-backup.
    expect(planner.mayUse('vip', 'startup', 'large-reasoning')).toBe(true);
    expect(planner.plan(req({ tenantId: 'vip', model: 'large-reasoning' })).attempts[0]?.upstreamModel).toBe('o3');
    const strict = planner.plan(req({ tenantId: 'vip', route: 'strict' }));
    expect(strict.attempts.map((a) => a.model)).toEqual(['large-reasoning']);
    expect(strict.skipped.map((s) => [s.model, s.reason])).toEqual([['small-backup', 'not_allowed']]);
  });

  it('an empty list of the tenant allows every model, even where its tier is restricted', () => {
    expect(planner.plan(req({ tenantId: 'open', model: 'large-reasoning' })).attempts.map((a) => a.model)).toEqual(['large-reasoning']);
  });

  it('an empty list of the tier allows every model', () => {
    expect(planner.mayUse('globex', 'enterprise', 'large-reasoning')).toBe(true);
    expect(planner.mayUse('acme', 'startup', 'large-reasoning')).toBe(false);
  });

  it('the tier comes from the request: a tenant the router has no entry for gets its tier\'s models', () => {
    expect(planner.plan(req({ tenantId: 'stranger', tier: 'enterprise', model: 'large-reasoning' })).attempts).toHaveLength(1);
    expect(failure(() => planner.plan(req({ tenantId: 'stranger', tier: 'startup', model: 'large-reasoning' }))).kind).toBe('permission_denied');
  });

  it('an unknown tier may use nothing, unless the tenant has a list of its own', () => {
    for (const tier of ['gold', '']) {
      expect(planner.mayUse('acme', tier, 'small-fast')).toBe(false);
      expect(failure(() => planner.plan(req({ tier }))).kind).toBe('permission_denied');
      expect(failure(() => planner.plan(req({ tier, model: 'small-fast' }))).message).toBe('tenant acme may not use model small-fast');
    }
    expect(planner.plan(req({ tenantId: 'tiny', tier: 'gold' })).attempts.map((a) => a.model)).toEqual(['small-backup']);
  });
});
