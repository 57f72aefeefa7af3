import { describe, expect, it } from 'vitest';
import { parseSections, routerSectionsSchema } from '@llmgw/config';
import { AppError } from '@llmgw/errors';
import { AttemptOutcome, LatencyClass, Priority, QualityTier, TaskType } from '@llmgw/proto/v1';
import { CatalogEntryKind, FallbackTrigger, Operation, PlanRouteRequest, SchemaFailurePolicy, Tokenizer, type Plan } from '@llmgw/proto/router';
import { ResponseFormatType } from '@llmgw/proto/v1';
import { latencyClassName, Planner, qualityTierName, taskTypeName } from './planner.js';
import { STICKY_BUCKETS, stickyBucket } from '@llmgw/sticky';
import { testPolicy, testPolicyYaml } from './test-config.js';

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
  pricing: { inputPerMillionUsd: 0.15, outputPerMillionUsd: 0.6, cachedInputPerMillionUsd: 0.075, cacheWriteInputPerMillionUsd: 0.15 },
  tokenizer: Tokenizer.TOKENIZER_OPENAI,
  contextTokens: 128_000,
  maxOutputTokens: 16_384,
  demoted: '',
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
    // Defaults: upstream model = the key, tokenizer approx, 4096 output tokens, cache reads and writes at the input price.
    expect(plan.attempts[1]).toEqual({
      model: 'small-backup',
      provider: 'p-anthropic',
      upstreamModel: 'small-backup',
      timeoutMs: 0,
      maxRetries: 0,
      pricing: { inputPerMillionUsd: 1, outputPerMillionUsd: 5, cachedInputPerMillionUsd: 1, cacheWriteInputPerMillionUsd: 1 },
      tokenizer: Tokenizer.TOKENIZER_APPROX,
      contextTokens: 200_000,
      maxOutputTokens: 4_096,
      demoted: '',
    });
    expect(plan).toMatchObject({ maxTokensCap: 4096, defaultMaxTokens: 512, timeoutMs: 30_000, retryBackoffMs: 200, skipped: [] });
  });

  it('carries the price in effect when it plans: the one before effective_from up to its last millisecond, the new one from it on', () => {
    const change = Date.parse('2026-07-01T00:00:00Z');
    const priceAt = (at: number) => new Planner(testPolicy(), () => at).plan(req({ taskType: TaskType.TASK_TYPE_CODE })).attempts[0]!.pricing;
    expect(priceAt(change - 1)).toEqual({ inputPerMillionUsd: 1, outputPerMillionUsd: 4, cachedInputPerMillionUsd: 0.25, cacheWriteInputPerMillionUsd: 1 });
    expect(priceAt(change)).toEqual({ inputPerMillionUsd: 0.8, outputPerMillionUsd: 3.2, cachedInputPerMillionUsd: 0.2, cacheWriteInputPerMillionUsd: 1 });
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

describe('demotion by measured health', () => {
  /** The test policy with `demote` on support-chat, whose default rule has two fallbacks. */
  const demoting = new Planner(
    parseSections(
      routerSectionsSchema,
      testPolicyYaml()
        .replace('    fallback_on: [timeout, http_5xx, http_429, connection_error]\n', '    fallback_on: [timeout, http_5xx, http_429, connection_error]\n    demote: { error_rate_above: 0.25, p95_ms_above: 8000, min_calls: 20 }\n')
        .replace('        model: small-fast\n        fallback: [small-backup]\n', '        model: small-fast\n        fallback: [small-backup, large-reasoning]\n'),
      'router-test.yaml',
      {},
    ),
  );
  type Measured = Record<string, { calls: number; errors: number; p95Ms: number }>;
  const view = (measured: Measured, unhealthy: string[] = []) => ({ isUnhealthy: (m: string) => unhealthy.includes(m), measured: (m: string) => measured[m] });
  const order = (p: Plan) => p.attempts.map((a) => [a.model, a.demoted]);
  const healthy = { calls: 100, errors: 1, p95Ms: 900 };
  // globex may use every model: the default rule's whole chain.
  const r = req({ tenantId: 'globex' });

  it('moves a primary over the error rate behind the healthy candidates, saying why', () => {
    const demoted: [string, string, string][] = [];
    const plan = demoting.plan(r, view({ 'small-fast': { calls: 50, errors: 20, p95Ms: 700 }, 'small-backup': healthy }), (...d) => demoted.push(d));
    expect(order(plan)).toEqual([
      ['small-backup', ''],
      ['large-reasoning', ''],
      ['small-fast', 'error rate 40% over 50 calls (above 25%)'],
    ]);
    // Demoted is not skipped: nothing in the routing record's skipped list.
    expect(plan.skipped).toEqual([]);
    expect(demoted).toEqual([['support-chat', 'small-fast', 'error_rate']]);
  });

  it('demotes for the p95 too; the error rate is named first when both are over', () => {
    const plan = demoting.plan(r, view({ 'small-backup': { calls: 30, errors: 0, p95Ms: 9_100 }, 'large-reasoning': { calls: 40, errors: 30, p95Ms: 12_000 } }));
    expect(order(plan)).toEqual([
      ['small-fast', ''],
      ['small-backup', 'p95 9100 ms over 30 calls (above 8000 ms)'],
      ['large-reasoning', 'error rate 75% over 40 calls (above 25%)'],
    ]);
  });

  it('still plans every model, in order, when all of them are demoted', () => {
    const bad = { calls: 100, errors: 90, p95Ms: 100 };
    const plan = demoting.plan(r, view({ 'small-fast': bad, 'small-backup': bad, 'large-reasoning': bad }));
    expect(plan.attempts.map((a) => a.model)).toEqual(['small-fast', 'small-backup', 'large-reasoning']);
    expect(plan.attempts.every((a) => a.demoted.startsWith('error rate 90%'))).toBe(true);
  });

  it('says nothing below min_calls, nor at the thresholds exactly', () => {
    const plan = demoting.plan(r, view({ 'small-fast': { calls: 19, errors: 19, p95Ms: 60_000 }, 'small-backup': { calls: 20, errors: 5, p95Ms: 8_000 } }));
    expect(order(plan)).toEqual([
      ['small-fast', ''],
      ['small-backup', ''],
      ['large-reasoning', ''],
    ]);
  });

  it('skips an open breaker first, then demotes among the rest', () => {
    const plan = demoting.plan(r, view({ 'small-backup': { calls: 50, errors: 50, p95Ms: 0 } }, ['small-fast']));
    expect(order(plan)).toEqual([
      ['large-reasoning', ''],
      ['small-backup', 'error rate 100% over 50 calls (above 25%)'],
    ]);
    expect(plan.skipped.map((s) => [s.model, s.reason])).toEqual([['small-fast', 'unhealthy']]);
  });

  it('changes nothing on a route without demote, nor for a pinned model', () => {
    const bad = view({ 'small-fast': { calls: 100, errors: 100, p95Ms: 50_000 } });
    // The test policy's support-chat has no demote.
    expect(planner.plan(r, bad)).toEqual(planner.plan(r));
    expect(planner.plan(r, bad).attempts[0]?.model).toBe('small-fast');
    const pinned = demoting.plan(req({ tenantId: 'globex', model: 'small-fast' }), bad);
    expect(order(pinned)).toEqual([['small-fast', '']]);
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

/** A planner over the test config with `routes` (YAML at route indent) added to its routes. */
function plannerWith(routes: string): Planner {
  const yaml = testPolicyYaml().replace('\nroutes:\n', `\nroutes:\n${routes}`);
  return new Planner(parseSections(routerSectionsSchema, yaml, 'router-test.yaml', {}));
}

/** What a plan decides: the rule, the split arm, the attempts and why models were skipped. */
const decision = (p: Plan) => ({ rule: p.rule, split: p.split, attempts: p.attempts.map((a) => a.model), skipped: p.skipped.map((s) => [s.model, s.reason]) });

describe('rule conditions: priority and json', () => {
  const conditions = plannerWith(`  conditions:
    rules:
      - name: urgent
        when: { priority: [high] }
        model: large-reasoning
      - name: background
        when: { priority: [low] }
        model: small-backup
      - name: plain-normal
        when: { priority: [normal], json: false }
        model: coder
      - name: json
        when: { json: true }
        model: small-fast
`);
  const ruleOf = (p: Partial<PlanRouteRequest>) => conditions.plan(req({ tenantId: 'globex', route: 'conditions', ...p })).rule;

  it.each<[string, Partial<PlanRouteRequest>, string]>([
    ['high priority', { priority: Priority.PRIORITY_HIGH }, 'urgent'],
    ['high priority with JSON: the earlier rule wins', { priority: Priority.PRIORITY_HIGH, requiredCapabilities: ['json_object'] }, 'urgent'],
    ['low priority', { priority: Priority.PRIORITY_LOW }, 'background'],
    ['normal priority, no JSON', { priority: Priority.PRIORITY_NORMAL }, 'plain-normal'],
    ['unset priority counts as normal', {}, 'plain-normal'],
    ['other capabilities are not JSON', { requiredCapabilities: ['streaming'] }, 'plain-normal'],
    ['json_object needs JSON: json false does not match', { requiredCapabilities: ['streaming', 'json_object'] }, 'json'],
    ['json_schema needs JSON', { requiredCapabilities: ['json_schema'] }, 'json'],
  ])('%s', (_name, over, rule) => {
    expect(ruleOf(over)).toBe(rule);
  });
});

describe('rule conditions: prompt_tokens', () => {
  const bySize = plannerWith(`  by-size:
    rules:
      - name: tiny
        when: { prompt_tokens: { max: 99 } }
        model: small-fast
      - name: mid-code
        when: { task_type: [code], prompt_tokens: { min: 100, max: 9999 } }
        model: coder
        fallback: [small-fast]
      - name: huge
        when: { prompt_tokens: { min: 150000 } }
        model: small-backup
      - name: default
        model: small-fast
        fallback: [small-backup]
`);
  const planAt = (promptTokens: number, taskType = TaskType.TASK_TYPE_CHAT) => bySize.plan(req({ route: 'by-size', promptTokens, taskType }));
  const decisionAt = (promptTokens: number, taskType = TaskType.TASK_TYPE_CHAT) => {
    try {
      return decision(planAt(promptTokens, taskType));
    } catch (err) {
      if (err instanceof AppError) return err.kind;
      throw err;
    }
  };

  it.each<[string, number, TaskType, string, [number, number]]>([
    ['within max, bounds inclusive', 99, TaskType.TASK_TYPE_CHAT, 'tiny', [0, 99]],
    ['inside min..max, above the skipped tiny', 100, TaskType.TASK_TYPE_CODE, 'mid-code', [100, 9_999]],
    ['at max of mid-code', 9_999, TaskType.TASK_TYPE_CODE, 'mid-code', [100, 9_999]],
    ['a chat request passes mid-code over for its task: no bound from it', 100, TaskType.TASK_TYPE_CHAT, 'default', [100, 128_000]],
    ['a code request above mid-code: the range starts above it', 20_000, TaskType.TASK_TYPE_CODE, 'default', [10_000, 128_000]],
    ['below huge, small-fast skipped for context: the range ends below huge', 140_000, TaskType.TASK_TYPE_CHAT, 'default', [128_001, 149_999]],
    ['from min, without max', 150_000, TaskType.TASK_TYPE_CHAT, 'huge', [150_000, 200_000]],
  ])('%s', (_name, promptTokens, taskType, rule, range) => {
    const plan = planAt(promptTokens, taskType);
    expect(plan.rule).toBe(rule);
    expect([plan.promptTokensMin, plan.promptTokensMax]).toEqual(range);
  });

  it('a cache keyed on the range never serves a plan for a size where another rule (or model) would be chosen', () => {
    // Every rule bound and context limit, one either side, and a few sizes in between.
    const edges = [0, 99, 100, 9_999, 10_000, 16_000, 128_000, 149_999, 150_000, 200_000];
    const sizes = [...new Set(edges.flatMap((n) => [n - 1, n, n + 1]).filter((n) => n >= 0).concat([50, 5_000, 64_000, 140_000, 175_000]))].sort((a, b) => a - b);
    let checked = 0;
    for (const task of [TaskType.TASK_TYPE_CHAT, TaskType.TASK_TYPE_CODE]) {
      for (const planned of sizes) {
        if (typeof decisionAt(planned, task) === 'string') continue;
        const plan = planAt(planned, task);
        for (const other of sizes) {
          if (other < plan.promptTokensMin || other > plan.promptTokensMax) continue;
          expect(decisionAt(other, task), `planned at ${planned}, reused at ${other} (task ${task})`).toEqual(decision(plan));
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(100);
  });

  it('the ranges are tight: one token outside, the plan differs', () => {
    const plan = planAt(20_000, TaskType.TASK_TYPE_CODE);
    expect(decisionAt(9_999, TaskType.TASK_TYPE_CODE)).toMatchObject({ rule: 'mid-code' });
    expect(decisionAt(128_001, TaskType.TASK_TYPE_CODE)).toMatchObject({ rule: 'default', attempts: ['small-backup'] });
    expect(decision(plan)).toMatchObject({ rule: 'default', attempts: ['small-fast', 'small-backup'] });
  });

  it('a pinned model ignores the rules: no bound from prompt_tokens', () => {
    const plan = bySize.plan(req({ route: 'by-size', model: 'small-backup', promptTokens: 50 }));
    expect([plan.rule, plan.promptTokensMin, plan.promptTokensMax]).toEqual(['pinned', 0, 200_000]);
  });
});

const SPLIT_ROUTES = `  experiment:
    rules:
      - name: code
        when: { task_type: [code] }
        model: coder
        fallback: [small-fast]
        split:
          - { model: small-backup, share: 0.1, fallback: [] }
      - name: default
        model: small-fast
        fallback: [small-backup]
        split:
          - { name: backup-20, model: small-backup, share: 0.2, fallback: [small-fast] }
          - { model: large-reasoning, share: 0.3 }
  thirds:
    rules:
      - name: only
        model: small-fast
        split:
          - { name: a, model: small-fast, share: 0.3333333333 }
          - { name: b, model: small-backup, share: 0.3333333333 }
          - { name: c, model: large-reasoning, share: 0.3333333333 }
  canary-only:
    rules:
      - name: only
        model: large-reasoning
        split:
          - { model: coder, share: 0.5, fallback: [] }
`;

describe('weighted splits', () => {
  const splits = plannerWith(SPLIT_ROUTES);
  const planFor = (stickyBucket: number, over: Partial<PlanRouteRequest> = {}) => splits.plan(req({ tenantId: 'globex', route: 'experiment', stickyBucket, ...over }));
  const armOf = (p: Plan) => [p.split, p.stickyBucketMin, p.stickyBucketMax, p.attempts.map((a) => a.model)];

  it.each<[number, (string | number | string[])[]]>([
    [0, ['backup-20', 0, 1_999, ['small-backup', 'small-fast']]],
    [1_999, ['backup-20', 0, 1_999, ['small-backup', 'small-fast']]],
    // No fallback of its own: the rule's model and fallback follow the arm's model.
    [2_000, ['large-reasoning', 2_000, 4_999, ['large-reasoning', 'small-fast', 'small-backup']]],
    [4_999, ['large-reasoning', 2_000, 4_999, ['large-reasoning', 'small-fast', 'small-backup']]],
    [5_000, ['', 5_000, 9_999, ['small-fast', 'small-backup']]],
    [9_999, ['', 5_000, 9_999, ['small-fast', 'small-backup']]],
  ])('bucket %i gets its arm, and the plan says for which buckets it holds', (bucket, arm) => {
    expect(armOf(planFor(bucket))).toEqual(arm);
  });

  it('an arm with fallback [] has only its model', () => {
    expect(armOf(planFor(999, { taskType: TaskType.TASK_TYPE_CODE }))).toEqual(['small-backup', 0, 999, ['small-backup']]);
    expect(armOf(planFor(1_000, { taskType: TaskType.TASK_TYPE_CODE }))).toEqual(['', 1_000, 9_999, ['coder', 'small-fast']]);
  });

  it('a rule without split, and a pin, hold for every bucket', () => {
    expect(armOf(planner.plan(req({ stickyBucket: 1_234 })))).toEqual(['', 0, STICKY_BUCKETS - 1, ['small-fast', 'small-backup']]);
    expect(armOf(planFor(1_234, { model: 'small-backup' }))).toEqual(['', 0, STICKY_BUCKETS - 1, ['small-backup']]);
  });

  it('arm boundaries are the rounded cumulative shares: thirds cover every bucket, leaving none to the rule', () => {
    const at = (b: number) => armOf(splits.plan(req({ tenantId: 'globex', route: 'thirds', stickyBucket: b }))).slice(0, 3);
    // Cumulative 0.3333333333 → 3333, 0.6666666666 → 6667, 0.9999999999 → 10000.
    expect([at(0), at(3_333), at(6_666), at(6_667), at(9_999)]).toEqual([['a', 0, 3_332], ['b', 3_333, 6_666], ['b', 3_333, 6_666], ['c', 6_667, 9_999], ['c', 6_667, 9_999]]);
  });

  it('over 10,000 distinct users each arm gets its share within 2 points', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 10_000; i++) {
      const split = planFor(stickyBucket(`user-${i}@example.com`)).split;
      counts.set(split, (counts.get(split) ?? 0) + 1);
    }
    const shares = Object.fromEntries([...counts].map(([arm, n]) => [arm, n / 10_000]));
    expect(Object.keys(shares).sort()).toEqual(['', 'backup-20', 'large-reasoning']);
    expect(Math.abs(shares['backup-20']! - 0.2)).toBeLessThan(0.02);
    expect(Math.abs(shares['large-reasoning']! - 0.3)).toBeLessThan(0.02);
    expect(Math.abs(shares['']! - 0.5)).toBeLessThan(0.02);
  });

  it('the same user always gets the same arm, whatever else the request says and across planners of one config', () => {
    const again = plannerWith(SPLIT_ROUTES);
    const arms = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const bucket = stickyBucket(`user-${i}`);
      const first = planFor(bucket).split;
      arms.add(first);
      expect(planFor(bucket, { promptTokens: 1_000, priority: Priority.PRIORITY_HIGH }).split).toBe(first);
      expect(again.plan(req({ tenantId: 'globex', route: 'experiment', stickyBucket: bucket })).split).toBe(first);
    }
    expect(arms.size).toBe(3);
  });

  it('a bucket outside [0, 10000) is INVALID_ARGUMENT', () => {
    const err = failure(() => planFor(STICKY_BUCKETS));
    expect(err.kind).toBe('invalid_argument');
    expect(err.message).toContain('sticky_bucket');
  });

  it('the catalog lists a route whose only model the tenant may use is a split arm\'s', () => {
    // coders may use only coder, the canary arm of canary-only.
    expect(splits.catalog('coders', 'startup').map((e) => e.name)).toContain('canary-only');
    expect(splits.catalog('coders', 'startup').map((e) => e.name)).not.toContain('strict');
  });
});

describe('hedging and the schema failure policy in the plan', () => {
  const hedged = plannerWith(`  hedged:
    on_schema_failure: fail
    rules:
      - name: p95
        when: { quality_tier: [premium] }
        model: small-fast
        fallback: [small-backup]
        hedge: { after_ms: 200, after_p95: true, min_ms: 20, max_ms: 800 }
      - name: fixed
        model: small-fast
        fallback: [small-backup]
        hedge: { after_ms: 150, to: same }
  plain:
    rules:
      - name: only
        model: small-fast
`);

  it("carries the matched rule's hedge and the route's policy", () => {
    const p95 = hedged.plan(req({ route: 'hedged', qualityTier: QualityTier.QUALITY_TIER_PREMIUM }));
    expect(p95.hedge).toEqual({ delayMs: 200, delayP95: true, delayMsMin: 20, delayMsMax: 800, sameModel: false });
    expect(p95.schemaFailurePolicy).toBe(SchemaFailurePolicy.SCHEMA_FAILURE_POLICY_FAIL);
    expect(hedged.plan(req({ route: 'hedged' })).hedge).toEqual({ delayMs: 150, delayP95: false, delayMsMin: 0, delayMsMax: 10_000, sameModel: true });
  });

  it('has no hedge for a rule without one or a pinned model, and repairs by default', () => {
    const plain = hedged.plan(req({ route: 'plain' }));
    expect(plain.hedge).toBeUndefined();
    expect(plain.schemaFailurePolicy).toBe(SchemaFailurePolicy.SCHEMA_FAILURE_POLICY_REPAIR);
    expect(hedged.plan(req({ route: 'hedged', model: 'small-fast' })).hedge).toBeUndefined();
  });

  it('refuses a hedge whose min_ms exceeds max_ms', () => {
    expect(() => plannerWith(`  bad:\n    rules:\n      - { name: x, model: small-fast, hedge: { after_ms: 10, min_ms: 50, max_ms: 40 } }\n`)).toThrow(/min_ms must not exceed max_ms/);
  });
});

describe('rule conditions: intent', () => {
  const support = plannerWith(`  support:
    rules:
      - name: billing
        when: { intent: [billing, refunds] }
        model: small-backup
      - name: security
        when: { intent: [account_security] }
        model: large-reasoning
      - name: rest
        model: small-fast
`);
  const planOf = (intent: string) => support.plan(req({ tenantId: 'globex', route: 'support', intent }));

  it.each([
    ['billing', 'billing'],
    ['refunds', 'billing'],
    ['account_security', 'security'],
    ['sales', 'rest'],
    ['', 'rest'],
  ])('intent "%s" → rule %s, and the plan carries the intent', (intent, rule) => {
    const plan = planOf(intent);
    expect(plan.rule).toBe(rule);
    expect(plan.intent).toBe(intent);
  });
});
