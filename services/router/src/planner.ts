import { AppError, quoted } from '@llmgw/errors';
import type { DemoteConfig, FallbackTriggerName, ModelConfig, ResolvedPrice, ResponseFormatName, RouteConfig, RouterSections, RuleConfig } from '@llmgw/config';
import { Attempt, AttemptOutcome, LatencyClass, Priority, QualityTier, ResponseFormatType, TaskType } from '@llmgw/proto/v1';
import { CatalogEntryKind, FallbackTrigger, Operation, SchemaFailurePolicy, Tokenizer, type CatalogEntry, type Guardrails, type Hedge, type Plan, type PlannedAttempt, type PlanRouteRequest, type Pricing, type ResponseCache } from '@llmgw/proto/router';
import { STICKY_BUCKETS } from '@llmgw/sticky';
import type { HealthView } from './backend-health.js';
import type { MeasuredHealth } from './backend-stats.js';

export type SkipReason = 'not_allowed' | 'missing_capability' | 'context_too_small' | 'unhealthy';

/** Why a model was demoted: the bounded label of llmgw_backend_demotions_total. */
export type DemotionReason = 'error_rate' | 'p95';

/** Told of every model a plan demoted (the router counts them). */
export type DemotionObserver = (route: string, model: string, reason: DemotionReason) => void;

const percent = (x: number) => `${+(x * 100).toFixed(1)}%`;

/** Why the route's thresholds demote a model with these measurements, or undefined. */
export function demotionOf(demote: DemoteConfig, m: MeasuredHealth | undefined): { reason: DemotionReason; text: string } | undefined {
  if (!m || m.calls < demote.min_calls) return undefined;
  const rate = m.errors / m.calls;
  if (demote.error_rate_above !== undefined && rate > demote.error_rate_above) {
    return { reason: 'error_rate', text: `error rate ${percent(rate)} over ${m.calls} calls (above ${percent(demote.error_rate_above)})` };
  }
  if (demote.p95_ms_above !== undefined && m.p95Ms > demote.p95_ms_above) {
    return { reason: 'p95', text: `p95 ${m.p95Ms} ms over ${m.calls} calls (above ${demote.p95_ms_above} ms)` };
  }
  return undefined;
}

const TRIGGERS: Record<FallbackTriggerName, FallbackTrigger> = {
  timeout: FallbackTrigger.FALLBACK_TRIGGER_TIMEOUT,
  http_5xx: FallbackTrigger.FALLBACK_TRIGGER_HTTP_5XX,
  http_429: FallbackTrigger.FALLBACK_TRIGGER_HTTP_429,
  connection_error: FallbackTrigger.FALLBACK_TRIGGER_CONNECTION_ERROR,
  schema_failure: FallbackTrigger.FALLBACK_TRIGGER_SCHEMA_FAILURE,
};

/** Proto enum value → lower-case config name (TASK_TYPE_CODE → "code"); unset values map to nothing. */
function enumNames(values: Record<string, string | number>, prefix: string): ReadonlyMap<number, string> {
  const names = new Map<number, string>();
  for (const [name, value] of Object.entries(values)) {
    if (typeof value !== 'number' || value <= 0) continue;
    names.set(value, name.slice(prefix.length).toLowerCase());
  }
  return names;
}

const RESPONSE_FORMATS: Record<ResponseFormatName, ResponseFormatType> = {
  text: ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT,
  json_object: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT,
  json_schema: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
};

const SCHEMA_FAILURE_POLICIES: Record<RouteConfig['on_schema_failure'], SchemaFailurePolicy> = {
  repair: SchemaFailurePolicy.SCHEMA_FAILURE_POLICY_REPAIR,
  fail: SchemaFailurePolicy.SCHEMA_FAILURE_POLICY_FAIL,
};

function hedgeOf(h: NonNullable<RuleConfig['hedge']>): Hedge {
  return { delayMs: h.after_ms, delayP95: h.after_p95, delayMsMin: h.min_ms, delayMsMax: h.max_ms, sameModel: h.to === 'same' };
}

const TOKENIZERS: Record<ModelConfig['tokenizer'], Tokenizer> = {
  openai: Tokenizer.TOKENIZER_OPENAI,
  approx: Tokenizer.TOKENIZER_APPROX,
};

const TASK_TYPES = enumNames(TaskType, 'TASK_TYPE_');
const QUALITY_TIERS = enumNames(QualityTier, 'QUALITY_TIER_');
const LATENCY_CLASSES = enumNames(LatencyClass, 'LATENCY_CLASS_');
const PRIORITIES = enumNames(Priority, 'PRIORITY_');

export function taskTypeName(v: TaskType): string | undefined {
  return TASK_TYPES.get(v);
}
export function qualityTierName(v: QualityTier): string | undefined {
  return QUALITY_TIERS.get(v);
}
export function latencyClassName(v: LatencyClass): string | undefined {
  return LATENCY_CLASSES.get(v);
}

/** A `when` condition matches when it is absent, or when the request's value is one of its names. */
function condition(list: readonly string[] | undefined, value: string | undefined): boolean {
  return list === undefined || (value !== undefined && list.includes(value));
}

/** The request's values the rule conditions other than prompt size look at, as config names. */
interface RuleFacts {
  task?: string;
  quality?: string;
  latency?: string;
  tier: string;
  priority: string;
  json: boolean;
  intent?: string;
}

/** Where a rule sends a range of sticky buckets: one of its split arms, or its own chain. */
interface Arm {
  /** The plan's `split`: the arm's name; empty for the rule's own model. */
  name: string;
  chain: readonly string[];
  /** Sticky buckets [bucketMin, bucketMax] this arm gets. */
  bucketMin: number;
  bucketMax: number;
}

interface CompiledRule {
  config: RuleConfig;
  /** Covering [0, STICKY_BUCKETS) in order: the split arms by cumulative share, then the rule's own chain. */
  arms: readonly Arm[];
  /** Every model the rule may plan: its own chain first, then its split arms'. */
  models: readonly string[];
}

interface CompiledRoute {
  name: string;
  config: RouteConfig;
  rules: readonly CompiledRule[];
  triggers: FallbackTrigger[];
  guardrails: Guardrails;
  cache: ResponseCache | undefined;
}

/** The rule that matched and the prompt sizes for which it is still the first to match. */
interface RuleMatch {
  rule: CompiledRule;
  promptTokensMin: number;
  promptTokensMax: number;
}

/**
 * A split arm's buckets start where the previous arm's end; the boundaries are the rounded
 * cumulative shares, so rounding never adds up across arms. Arms too small for a bucket are left out.
 */
function compileRule(rule: RuleConfig): CompiledRule {
  const own = [rule.model, ...rule.fallback];
  const arms: Arm[] = [];
  let cumulative = 0;
  let start = 0;
  for (const arm of rule.split) {
    cumulative += arm.share;
    const end = Math.min(STICKY_BUCKETS, Math.round(cumulative * STICKY_BUCKETS));
    if (end > start) arms.push({ name: arm.name ?? arm.model, chain: [arm.model, ...(arm.fallback ?? own)], bucketMin: start, bucketMax: end - 1 });
    start = end;
  }
  if (start < STICKY_BUCKETS) arms.push({ name: '', chain: own, bucketMin: start, bucketMax: STICKY_BUCKETS - 1 });
  return { config: rule, arms, models: [...own, ...arms.flatMap((a) => a.chain)] };
}

/** Every `when` condition except prompt size, which matchRule handles to bound the plan's range. */
function matchesApartFromPromptSize(when: RuleConfig['when'], facts: RuleFacts): boolean {
  return (
    condition(when.task_type, facts.task) &&
    condition(when.quality_tier, facts.quality) &&
    condition(when.latency_class, facts.latency) &&
    condition(when.tenant_tier, facts.tier) &&
    condition(when.priority, facts.priority) &&
    condition(when.intent, facts.intent) &&
    (when.json === undefined || when.json === facts.json)
  );
}

interface CompiledModel {
  name: string;
  config: ModelConfig;
  capabilities: ReadonlySet<string>;
}

/** Models a list lets a tenant use; an empty list means every model. */
type ModelAccess = ReadonlySet<string> | 'all';

function accessOf(list: readonly string[]): ModelAccess {
  return list.length > 0 ? new Set(list) : 'all';
}

function guardrailsOf(route: RouteConfig): Guardrails {
  return {
    maxPromptTokens: route.max_prompt_tokens ?? 0,
    allowedResponseFormats: route.allowed_response_formats.map((f) => RESPONSE_FORMATS[f]),
    restrictTools: route.allowed_tools !== undefined,
    allowedTools: route.allowed_tools ?? [],
  };
}

/** The model's price in effect at `atMs` (the config lists them oldest first, the first in effect from the start). */
function priceAt(prices: readonly ResolvedPrice[], atMs: number): Pricing {
  let p = prices[0]!;
  for (const q of prices) if (q.effectiveFromMs <= atMs) p = q;
  return {
    inputPerMillionUsd: p.input_per_million_usd,
    outputPerMillionUsd: p.output_per_million_usd,
    cachedInputPerMillionUsd: p.cached_input_per_million_usd,
    cacheWriteInputPerMillionUsd: p.cache_write_input_per_million_usd,
  };
}

/**
 * Turns a request into a self-sufficient plan: everything the edge validates against and the
 * executor runs with (pricing, tokenizer, limits, timeouts, triggers, guardrails) comes from here,
 * so no other service reads routes or models. Pure and synchronous: everything it needs is
 * compiled from the config once, so a call is a handful of map lookups.
 */
export class Planner {
  private readonly routes = new Map<string, CompiledRoute>();
  private readonly models = new Map<string, CompiledModel>();
  /** What a tier's tenants may use, unless a tenant has a list of its own. */
  private readonly accessByTier = new Map<string, ModelAccess>();
  private readonly accessByTenant = new Map<string, ModelAccess>();

  constructor(
    readonly config: RouterSections,
    /** Picks each model's price in effect (config `pricing` with `effective_from`). */
    private readonly now: () => number = Date.now,
  ) {
    for (const [name, route] of Object.entries(config.routes)) {
      this.routes.set(name, {
        name,
        config: route,
        rules: route.rules.map(compileRule),
        triggers: [...new Set(route.fallback_on)].map((t) => TRIGGERS[t]),
        guardrails: guardrailsOf(route),
        cache: route.cache && {
          ttlMs: route.cache.ttl_s * 1000,
          maxEntries: route.cache.max_entries,
          maxEntryBytes: route.cache.max_entry_bytes,
          deterministic: route.cache.cacheable === 'deterministic',
        },
      });
    }
    for (const [name, model] of Object.entries(config.models)) {
      this.models.set(name, { name, config: model, capabilities: new Set(model.capabilities) });
    }
    for (const [tier, t] of Object.entries(config.tiers)) this.accessByTier.set(tier, accessOf(t.allowed_models));
    for (const [tenant, t] of Object.entries(config.tenants)) {
      if (t.allowed_models !== undefined) this.accessByTenant.set(tenant, accessOf(t.allowed_models));
    }
  }

  /** The tier comes from the caller's principal (auth owns it); a tenant's own list wins; an unknown tier may use nothing. */
  mayUse(tenantId: string, tier: string, model: string): boolean {
    const access = this.accessByTenant.get(tenantId) ?? this.accessByTier.get(tier);
    return access === 'all' || (access !== undefined && access.has(model));
  }

  /**
   * `health` (optional): models it reports unhealthy are skipped (reason `unhealthy`) unless that
   * would leave no attempt, in which case they all stay (trying beats refusing); on a route with
   * `demote`, models whose measured error rate or p95 is over its thresholds go behind the
   * plan's other models, in their order, with the reason in `demoted` (never skipped: when every
   * model is demoted the plan keeps its order). A pin is never skipped or demoted for health.
   */
  plan(request: PlanRouteRequest, health?: HealthView, onDemoted?: DemotionObserver): Plan {
    const req = this.resolveModelOrRoute(request);
    const routeName = req.route || this.config.default_route;
    const route = this.routes.get(routeName);
    if (!route) throw new AppError('invalid_argument', `route: unknown route ${quoted(routeName)}`);
    if (req.stickyBucket >= STICKY_BUCKETS) throw new AppError('invalid_argument', `sticky_bucket: must be below ${STICKY_BUCKETS}, got ${req.stickyBucket}`);

    let ruleName: string;
    let hedge: Hedge | undefined;
    // The arm, with its chain and the sticky buckets it holds for; a pin holds for every bucket.
    let arm: Arm;
    // The prompt sizes for which this exact plan holds: first the sizes for which the same rule
    // matches first, then narrowed by the models' contexts below.
    let promptTokensMin = 0;
    let promptTokensMax = Number.MAX_SAFE_INTEGER;
    if (req.model) {
      if (!this.models.has(req.model)) throw new AppError('invalid_argument', `unknown model ${quoted(req.model)}`);
      if (!this.mayUse(req.tenantId, req.tier, req.model)) {
        throw new AppError('permission_denied', `tenant ${req.tenantId} may not use model ${req.model}`);
      }
      ruleName = 'pinned';
      arm = { name: '', chain: [req.model], bucketMin: 0, bucketMax: STICKY_BUCKETS - 1 };
    } else {
      const match = this.matchRule(route, req);
      if (!match) throw new AppError('invalid_argument', `no rule of route "${routeName}" matches this request`);
      ruleName = match.rule.config.name;
      ({ promptTokensMin, promptTokensMax } = match);
      const bucket = req.stickyBucket;
      // The arms cover every bucket below STICKY_BUCKETS, checked above.
      arm = match.rule.arms.find((a) => bucket >= a.bucketMin && bucket <= a.bucketMax)!;
      hedge = match.rule.config.hedge && hedgeOf(match.rule.config.hedge);
    }
    const chain = arm.chain;

    const batch = req.latencyClass === LatencyClass.LATENCY_CLASS_BATCH;
    const candidates: { model: CompiledModel; skip?: { reason: SkipReason; error: string } }[] = [];
    const missingCapabilities = new Set<string>();
    const seen = new Set<string>();
    for (const name of chain) {
      if (seen.has(name)) continue;
      seen.add(name);
      const model = this.models.get(name);
      if (!model) continue; // the schema guarantees rule models exist
      const skip = this.skipReason(model, req);
      if (skip?.capability) missingCapabilities.add(skip.capability);
      candidates.push({ model, skip });
    }
    // Health only narrows the plan: when every remaining model is unhealthy they all stay.
    if (health && !req.model) {
      const usable = candidates.filter((c) => !c.skip);
      const unhealthy = usable.filter((c) => health.isUnhealthy(c.model.name));
      if (unhealthy.length < usable.length) {
        for (const c of unhealthy) {
          c.skip = { reason: 'unhealthy', error: `model ${c.model.name} is unhealthy (circuit breaker open on an executor)` };
        }
      }
    }

    const attempts: PlannedAttempt[] = [];
    const demoted: PlannedAttempt[] = [];
    const skipped: Attempt[] = [];
    const demote = !req.model && health?.measured ? route.config.demote : undefined;
    const at = this.now();
    // Above every model skipped for context, within every model's context that was considered.
    for (const { model, skip } of candidates) {
      if (skip?.reason === 'context_too_small') promptTokensMin = Math.max(promptTokensMin, model.config.context_tokens + 1);
      else if (skip?.reason !== 'not_allowed' && skip?.reason !== 'missing_capability') {
        promptTokensMax = Math.min(promptTokensMax, model.config.context_tokens);
      }
      if (skip) {
        skipped.push(
          Attempt.fromPartial({
            model: model.name,
            provider: model.config.provider,
            outcome: AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED,
            reason: skip.reason,
            error: skip.error,
          }),
        );
        continue;
      }
      const m = model.config;
      const demotion = demote && demotionOf(demote, health?.measured?.(model.name));
      if (demotion) onDemoted?.(routeName, model.name, demotion.reason);
      (demotion ? demoted : attempts).push({
        model: model.name,
        provider: m.provider,
        upstreamModel: m.upstream_model ?? model.name,
        // 0: the provider's own timeout, which only the executor knows.
        timeoutMs: route.config.attempt_timeout_ms === undefined ? 0 : Math.min(route.config.attempt_timeout_ms, route.config.timeout_ms),
        maxRetries: batch ? route.config.batch_retries : 0,
        pricing: priceAt(m.pricing, at),
        tokenizer: TOKENIZERS[m.tokenizer],
        contextTokens: m.context_tokens,
        maxOutputTokens: m.max_output_tokens,
        demoted: demotion ? demotion.text : '',
      });
    }
    // A demoted model is not skipped: it is tried after the healthy ones.
    attempts.push(...demoted);
    if (attempts.length === 0) throw noModelLeft(routeName, req, skipped, missingCapabilities);

    return {
      route: routeName,
      rule: ruleName,
      attempts,
      fallbackTriggers: route.triggers,
      maxTokensCap: route.config.max_tokens,
      defaultMaxTokens: route.config.default_max_tokens,
      timeoutMs: route.config.timeout_ms,
      skipped,
      retryBackoffMs: route.config.retry_backoff_ms,
      guardrails: route.guardrails,
      promptTokensMin,
      promptTokensMax,
      split: arm.name,
      stickyBucketMin: arm.bucketMin,
      stickyBucketMax: arm.bucketMax,
      schemaFailurePolicy: SCHEMA_FAILURE_POLICIES[route.config.on_schema_failure],
      hedge,
      intent: req.intent,
      cache: route.cache,
    };
  }

  /**
   * What a tenant may name in `model`: every route with a model the tenant may use, then every
   * model it may pin, each sorted by name. A route serves embeddings when its first rule's model does.
   */
  catalog(tenantId: string, tier: string): CatalogEntry[] {
    const routes: CatalogEntry[] = [];
    for (const route of this.routes.values()) {
      const usable = route.rules.flatMap((r) => r.models).filter((m) => this.mayUse(tenantId, tier, m));
      if (usable.length === 0) continue;
      const first = this.models.get(usable[0] ?? '');
      const primary = this.models.get(route.config.rules[0]?.model ?? '');
      routes.push({
        name: route.name,
        kind: CatalogEntryKind.CATALOG_ENTRY_KIND_ROUTE,
        provider: '',
        capabilities: first ? [...first.capabilities] : [],
        operation: primary?.capabilities.has('embeddings') ? Operation.OPERATION_EMBED : Operation.OPERATION_CHAT,
      });
    }
    const models: CatalogEntry[] = [];
    for (const model of this.models.values()) {
      if (!this.mayUse(tenantId, tier, model.name)) continue;
      models.push({
        name: model.name,
        kind: CatalogEntryKind.CATALOG_ENTRY_KIND_MODEL,
        provider: model.config.provider,
        capabilities: [...model.capabilities],
        operation: model.capabilities.has('embeddings') ? Operation.OPERATION_EMBED : Operation.OPERATION_CHAT,
      });
    }
    const byName = (a: CatalogEntry, b: CatalogEntry) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    return [...routes.sort(byName), ...models.sort(byName)];
  }

  /** `model_or_route` names a route, else a model to pin; a route and a model of one name mean the route. */
  private resolveModelOrRoute(req: PlanRouteRequest): PlanRouteRequest {
    const name = req.modelOrRoute;
    if (!name) return req;
    if (req.route || req.model) throw new AppError('invalid_argument', 'model_or_route goes without route and model');
    if (this.routes.has(name)) return { ...req, route: name, modelOrRoute: '' };
    if (this.models.has(name)) return { ...req, model: name, modelOrRoute: '' };
    throw new AppError('not_found', `model: no route or model is named ${quoted(name)}`);
  }

  /**
   * The first rule whose conditions all hold. Its prompt range keeps the plan cache honest: within
   * the matched rule's `prompt_tokens`, and clear of the sizes at which an earlier rule, passed
   * over for its `prompt_tokens` alone, would have matched instead.
   */
  private matchRule(route: CompiledRoute, req: PlanRouteRequest): RuleMatch | undefined {
    const facts: RuleFacts = {
      task: TASK_TYPES.get(req.taskType),
      quality: QUALITY_TIERS.get(req.qualityTier),
      latency: LATENCY_CLASSES.get(req.latencyClass),
      tier: req.tier,
      priority: PRIORITIES.get(req.priority) ?? 'normal',
      json: req.requiredCapabilities.includes('json_object') || req.requiredCapabilities.includes('json_schema'),
      intent: req.intent || undefined,
    };
    const size = req.promptTokens;
    let promptTokensMin = 0;
    let promptTokensMax = Number.MAX_SAFE_INTEGER;
    for (const rule of route.rules) {
      const { when } = rule.config;
      if (!matchesApartFromPromptSize(when, facts)) continue;
      const min = when.prompt_tokens?.min ?? 0;
      const max = when.prompt_tokens?.max ?? Number.MAX_SAFE_INTEGER;
      if (size >= min && size <= max) {
        return { rule, promptTokensMin: Math.max(promptTokensMin, min), promptTokensMax: Math.min(promptTokensMax, max) };
      }
      if (size < min) promptTokensMax = Math.min(promptTokensMax, min - 1);
      else promptTokensMin = Math.max(promptTokensMin, max + 1);
    }
    return undefined;
  }

  private skipReason(model: CompiledModel, req: PlanRouteRequest): { reason: Exclude<SkipReason, 'unhealthy'>; error: string; capability?: string } | undefined {
    if (!this.mayUse(req.tenantId, req.tier, model.name)) {
      return { reason: 'not_allowed', error: `tenant ${req.tenantId} may not use model ${model.name}` };
    }
    const needed = req.operation === Operation.OPERATION_EMBED ? [...req.requiredCapabilities, 'embeddings'] : req.requiredCapabilities;
    for (const cap of needed) {
      if (!model.capabilities.has(cap)) {
        return { reason: 'missing_capability', error: `model ${model.name} cannot honour ${cap}`, capability: cap };
      }
    }
    if (req.promptTokens > model.config.context_tokens) {
      return {
        reason: 'context_too_small',
        error: `model ${model.name} has a context of ${model.config.context_tokens} tokens; the prompt has ${req.promptTokens}`,
      };
    }
    return undefined;
  }
}

function noModelLeft(route: string, req: PlanRouteRequest, skipped: readonly Attempt[], missing: ReadonlySet<string>): AppError {
  if (skipped.every((s) => s.reason === 'not_allowed')) {
    return new AppError('permission_denied', `tenant ${req.tenantId} may not use model(s) ${skipped.map((s) => s.model).join(', ')} of route "${route}"`);
  }
  if (missing.size > 0) {
    return new AppError('invalid_argument', `no model of route "${route}" can honour ${[...missing].join(', ')} (required by the request)`);
  }
  return new AppError('invalid_argument', `the prompt (${req.promptTokens} tokens) is larger than the context of every model of route "${route}"`);
}
