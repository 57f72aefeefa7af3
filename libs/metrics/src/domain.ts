import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Metrics } from './metrics.js';
import { RPC_SECONDS_BUCKETS } from './rpc.js';

/*
 * Domain metrics of the services. Logic classes depend on the small interfaces (no prom-client
 * types), so they stay testable with fakes; the factories register each family once per registry.
 * Label values are bounded by config (routes, models, providers, limit names) or by enums
 * (outcomes, reasons); request and tenant ids never become labels.
 */

/** Provider-executor: the usage events it publishes, one per request it received. */
export interface UsageMetrics {
  /** A usage event was accepted by the bus (first try or from the outbox). */
  usageEventPublished(): void;
  /** The outbox's records, read when metrics are scraped; returns the function that stops reading it. */
  observeOutbox(pending: () => number): () => void;
  /** The outbox's live bytes (what USAGE_OUTBOX_MAX_BYTES caps), read when scraped. */
  observeOutboxBytes(bytes: () => number): () => void;
  /** A request refused before any provider call because the outbox was full. */
  outboxRefused(): void;
  /** One request that produced a usage event; outcome is "ok" or a lower-case gRPC code name. */
  request(route: string, outcome: string): void;
  /** What one request spent and where it went, from its usage event (see `SpentRequest`). */
  spent(r: SpentRequest): void;
}

/** One request's spend as its usage event records it; tenant ids are bounded by the configured tenants. */
export interface SpentRequest {
  tenant: string;
  route: string;
  /** The model that answered; '' when none did. */
  model: string;
  operation: string;
  fallbackUsed: boolean;
  /** Every provider call, in order, with what it was billed. */
  calls: readonly { model: string; provider: string; inputTokens: number; outputTokens: number; costMicros: number }[];
  /** Why the request moved from one model to another, once per move (e.g. http_5xx, timeout, schema_failure). */
  fallbackReasons: readonly string[];
}

/**
 * Token buckets of the OpenTelemetry GenAI conventions for gen_ai.client.token.usage: 1 to 4^13.
 */
export const GEN_AI_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];

/** Seconds buckets of the conventions for gen_ai.client.operation.duration and time to first chunk. */
export const GEN_AI_SECONDS_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];

/** Provider-executor: the OpenTelemetry GenAI client metrics, one observation per provider call. */
export interface GenAiMetrics {
  /** A call ended (a stream: with its last chunk); errorType '' when it answered, else the failure reason. */
  operation(operation: string, provider: string, model: string, errorType: string, seconds: number): void;
  /** A stream's first chunk arrived. */
  firstChunk(provider: string, model: string, seconds: number): void;
}

/** Quota: reserve decisions and decisions taken without the shared store. */
export interface QuotaMetrics {
  /** limit: the limit name that denied the request, '' when allowed. */
  decision(decision: 'allowed' | 'denied', limit: string): void;
  storeDegraded(): void;
}

export type AttemptOutcomeLabel = 'success' | 'failed' | 'skipped' | 'cancelled';

/** Provider-executor: one record per planned attempt. */
export interface ExecutorMetrics {
  /** seconds undefined for attempts that did not call the provider (skipped). */
  attempt(provider: string, model: string, outcome: AttemptOutcomeLabel, reason: string, seconds?: number): void;
  /** A hedge sent, or a hedge that answered first (route: from the config, via the plan). */
  hedge(route: string, outcome: 'sent' | 'won'): void;
  /** An answer withheld or shaped by policy: a provider's safety refusal or content filter. */
  enforcement(route: string, kind: 'content_filter'): void;
}

/** Executor: the routes' response caches (route from the config, via the plan). */
export interface ResponseCacheMetrics {
  /** A lookup: answered from the cache, not held, or failed (Redis down: a miss). */
  lookup(route: string, result: 'hit' | 'miss' | 'error'): void;
  /** An answer kept, not kept because it is over the route's max_entry_bytes, or failed. */
  store(route: string, result: 'stored' | 'too_large' | 'error'): void;
  /** What a hit's answer cost when a provider made it. */
  saved(route: string, costMicros: number): void;
}

/** Edge: the routes' intent classifiers. */
export interface IntentMetrics {
  /**
   * A request classified (route and intent from config; intent "none" when none was sure), by
   * how: its nearest exemplar, a keyword, or neither.
   */
  classified(route: string, intent: string, source: 'embedding' | 'keyword' | 'none'): void;
  /** The nearest exemplar was below the route's threshold (a keyword may still have decided). */
  lowConfidence(route: string): void;
}

/** Edge: the tenants' content policies. */
export interface PolicyMetrics {
  /**
   * A policy's detector (or deny pattern, by name) matched a request's or an answer's text and
   * its action was taken; policy and detector names come from config.
   */
  enforced(policy: string, detector: string, action: string, direction: 'request' | 'response'): void;
}

/** Router: plans shaped by the executors' measured health. */
export interface RouterMetrics {
  /** A plan put the model behind its healthy candidates (route and model from config, reason an enum). */
  demotion(route: string, model: string, reason: 'error_rate' | 'p95'): void;
}

/** Edge: requests of the OpenAI- and Anthropic-compatible HTTP surface. */
export interface HttpMetrics {
  /** endpoint: a fixed name (chat_completions, embeddings, messages, models, unknown). */
  handled(endpoint: string, status: number, seconds: number): void;
}

export const PROVIDER_SECONDS_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120];

const usageCache = new WeakMap<Registry, UsageMetrics>();
const quotaCache = new WeakMap<Registry, QuotaMetrics>();
const executorCache = new WeakMap<Registry, ExecutorMetrics>();
const responseCacheCache = new WeakMap<Registry, ResponseCacheMetrics>();
const httpCache = new WeakMap<Registry, HttpMetrics>();
const genAiCache = new WeakMap<Registry, GenAiMetrics>();
const routerCache = new WeakMap<Registry, RouterMetrics>();
const intentCache = new WeakMap<Registry, IntentMetrics>();
const policyCache = new WeakMap<Registry, PolicyMetrics>();

function once<T>(cache: WeakMap<Registry, T>, registry: Registry, make: (r: Registry) => T): T {
  let m = cache.get(registry);
  if (!m) {
    m = make(registry);
    cache.set(registry, m);
  }
  return m;
}

/** Outcome labels of llmgw_requests_total; any other code is counted as "error". */
const REQUEST_OUTCOMES = new Set([
  'ok',
  'cancelled',
  'invalid_argument',
  'deadline_exceeded',
  'resource_exhausted',
  'permission_denied',
  'failed_precondition',
  'unavailable',
  'internal',
]);

export function usageMetrics(m: Metrics): UsageMetrics {
  return once(usageCache, m.registry, (registry) => {
    const published = new Counter({
      name: 'llmgw_usage_events_published_total',
      help: 'Usage events accepted by the event bus (directly or from the outbox).',
      registers: [registry],
    });
    const gauge = (name: string, help: string) => {
      const sources = new Set<() => number>();
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          let n = 0;
          for (const s of sources) n += s();
          this.set(n);
        },
      });
      return (read: () => number) => {
        const source = () => read();
        sources.add(source);
        return () => sources.delete(source);
      };
    };
    const observeOutbox = gauge(
      'llmgw_usage_outbox_pending',
      'Usage records in the outbox: write-ahead notes of requests under way and events the bus has not acknowledged.',
    );
    const observeOutboxBytes = gauge('llmgw_usage_outbox_bytes', 'Live bytes of the usage outbox (capped by USAGE_OUTBOX_MAX_BYTES).');
    const refused = new Counter({
      name: 'llmgw_usage_outbox_refused_total',
      help: 'Requests refused (UNAVAILABLE) before any provider call because the usage outbox was full.',
      registers: [registry],
    });
    const requests = new Counter({
      name: 'llmgw_requests_total',
      help: 'Requests the executor received (one per usage event), by route and outcome.',
      labelNames: ['route', 'outcome'],
      registers: [registry],
    });
    const tokens = new Counter({
      name: 'llmgw_tokens_total',
      help: 'Tokens billed, by tenant, route, model (of each provider call) and type (input, output).',
      labelNames: ['tenant', 'route', 'model', 'type'],
      registers: [registry],
    });
    const cost = new Counter({
      name: 'llmgw_cost_micros_total',
      help: 'Cost billed in micro-dollars, by tenant, route and model (of each provider call); divide by 1e6 for USD.',
      labelNames: ['tenant', 'route', 'model'],
      registers: [registry],
    });
    const routed = new Counter({
      name: 'llmgw_routed_requests_total',
      help: 'Requests by route, the model that answered ("" when none did) and whether a fallback answered.',
      labelNames: ['route', 'model', 'fallback'],
      registers: [registry],
    });
    const fallbacks = new Counter({
      name: 'llmgw_fallbacks_total',
      help: 'Moves from one model to another within a request, by route and the reason the earlier model failed.',
      labelNames: ['route', 'reason'],
      registers: [registry],
    });
    const tokenUsage = new Histogram({
      name: 'gen_ai_client_token_usage',
      help: 'Tokens per provider call (OpenTelemetry gen_ai.client.token.usage), by operation, provider, model and token type.',
      labelNames: ['gen_ai_operation_name', 'gen_ai_provider_name', 'gen_ai_request_model', 'gen_ai_token_type'],
      buckets: GEN_AI_TOKEN_BUCKETS,
      registers: [registry],
    });
    const spent = (r: SpentRequest) => {
      routed.labels(r.route, r.model, String(r.fallbackUsed)).inc();
      for (const reason of r.fallbackReasons) fallbacks.labels(r.route, reason).inc();
      for (const c of r.calls) {
        tokens.labels(r.tenant, r.route, c.model, 'input').inc(c.inputTokens);
        tokens.labels(r.tenant, r.route, c.model, 'output').inc(c.outputTokens);
        cost.labels(r.tenant, r.route, c.model).inc(c.costMicros);
        tokenUsage.labels(r.operation, c.provider, c.model, 'input').observe(c.inputTokens);
        if (r.operation !== 'embeddings') tokenUsage.labels(r.operation, c.provider, c.model, 'output').observe(c.outputTokens);
      }
    };
    return {
      spent,
      usageEventPublished: () => published.inc(),
      observeOutbox,
      observeOutboxBytes,
      outboxRefused: () => refused.inc(),
      request: (route, outcome) => requests.labels(route, REQUEST_OUTCOMES.has(outcome) ? outcome : 'error').inc(),
    };
  });
}

export function quotaMetrics(m: Metrics): QuotaMetrics {
  return once(quotaCache, m.registry, (registry) => {
    const decisions = new Counter({
      name: 'llmgw_quota_decisions_total',
      help: 'Quota reservations decided, by decision and the limit that denied (empty when allowed).',
      labelNames: ['decision', 'limit'],
      registers: [registry],
    });
    const degraded = new Counter({
      name: 'llmgw_quota_store_degraded_total',
      help: 'Reservations decided without the shared store (quota.on_store_down policy).',
      registers: [registry],
    });
    return {
      decision: (decision, limit) => decisions.labels(decision, limit).inc(),
      storeDegraded: () => degraded.inc(),
    };
  });
}

export function executorMetrics(m: Metrics): ExecutorMetrics {
  return once(executorCache, m.registry, (registry) => {
    const attempts = new Counter({
      name: 'llmgw_provider_attempts_total',
      help: 'Planned provider attempts, by provider, model, outcome and failure or skip reason.',
      labelNames: ['provider', 'model', 'outcome', 'reason'],
      registers: [registry],
    });
    const seconds = new Histogram({
      name: 'llmgw_provider_attempt_seconds',
      help: 'Duration of provider calls (until the answer, or the first chunk of a stream), by provider.',
      labelNames: ['provider'],
      buckets: PROVIDER_SECONDS_BUCKETS,
      registers: [registry],
    });
    const hedges = new Counter({
      name: 'llmgw_hedges_total',
      help: 'Hedged attempts by route: sent, and won (the hedge answered first).',
      labelNames: ['route', 'outcome'],
      registers: [registry],
    });
    const enforcements = new Counter({
      name: 'llmgw_enforcements_total',
      help: 'Answers a provider refused or filtered for safety, returned as they are (never rerouted), by route.',
      labelNames: ['route', 'kind'],
      registers: [registry],
    });
    return {
      attempt: (provider, model, outcome, reason, s) => {
        attempts.labels(provider, model, outcome, reason).inc();
        if (s !== undefined) seconds.labels(provider).observe(s);
      },
      hedge: (route, outcome) => hedges.labels(route, outcome).inc(),
      enforcement: (route, kind) => enforcements.labels(route, kind).inc(),
    };
  });
}

export function responseCacheMetrics(m: Metrics): ResponseCacheMetrics {
  return once(responseCacheCache, m.registry, (registry) => {
    const lookups = new Counter({
      name: 'llmgw_response_cache_lookups_total',
      help: 'Response cache lookups by route and result (hit, miss, error: the cache was unreachable and the request went to the provider).',
      labelNames: ['route', 'result'],
      registers: [registry],
    });
    const stores = new Counter({
      name: 'llmgw_response_cache_stores_total',
      help: 'Answers offered to the response cache by route and result (stored, too_large, error).',
      labelNames: ['route', 'result'],
      registers: [registry],
    });
    const saved = new Counter({
      name: 'llmgw_response_cache_saved_micros_total',
      help: 'What the answers served from the response cache cost when a provider made them, in micro-dollars, by route.',
      labelNames: ['route'],
      registers: [registry],
    });
    return {
      lookup: (route, result) => lookups.labels(route, result).inc(),
      store: (route, result) => stores.labels(route, result).inc(),
      saved: (route, micros) => saved.labels(route).inc(micros),
    };
  });
}

export function routerMetrics(m: Metrics): RouterMetrics {
  return once(routerCache, m.registry, (registry) => {
    const demotions = new Counter({
      name: 'llmgw_backend_demotions_total',
      help: 'Plans that moved a model behind its healthy candidates for its measured error rate or p95 (the route\'s demote thresholds), by route, model and reason.',
      labelNames: ['route', 'model', 'reason'],
      registers: [registry],
    });
    return { demotion: (route, model, reason) => demotions.labels(route, model, reason).inc() };
  });
}

export function intentMetrics(m: Metrics): IntentMetrics {
  return once(intentCache, m.registry, (registry) => {
    const intents = new Counter({
      name: 'llmgw_intents_total',
      help: 'Requests of a classifying route by the intent they were given ("none": no intent was sure) and how (embedding, keyword, none).',
      labelNames: ['route', 'intent', 'source'],
      registers: [registry],
    });
    const low = new Counter({
      name: 'llmgw_intent_low_confidence_total',
      help: 'Requests whose nearest exemplar was below the route\'s threshold, by route.',
      labelNames: ['route'],
      registers: [registry],
    });
    return {
      classified: (route, intent, source) => intents.labels(route, intent, source).inc(),
      lowConfidence: (route) => low.labels(route).inc(),
    };
  });
}

export function policyMetrics(m: Metrics): PolicyMetrics {
  return once(policyCache, m.registry, (registry) => {
    const enforcements = new Counter({
      name: 'llmgw_policy_enforcements_total',
      help: 'Requests and answers in which a content policy\'s detector or deny pattern matched, by policy, detector, action (block, redact, redact_logs) and direction.',
      labelNames: ['policy', 'detector', 'action', 'direction'],
      registers: [registry],
    });
    return { enforced: (policy, detector, action, direction) => enforcements.labels(policy, detector, action, direction).inc() };
  });
}

export function httpMetrics(m: Metrics): HttpMetrics {
  return once(httpCache, m.registry, (registry) => {
    const handled = new Counter({
      name: 'llmgw_http_requests_total',
      help: 'Requests of the edge\'s HTTP surface, by endpoint and HTTP status.',
      labelNames: ['endpoint', 'status'],
      registers: [registry],
    });
    const seconds = new Histogram({
      name: 'llmgw_http_request_seconds',
      help: 'Time from receiving an HTTP request to the end of its answer (the whole stream for SSE), by endpoint.',
      labelNames: ['endpoint'],
      buckets: RPC_SECONDS_BUCKETS,
      registers: [registry],
    });
    return {
      handled: (endpoint, status, s) => {
        handled.labels(endpoint, String(status)).inc();
        seconds.labels(endpoint).observe(s);
      },
    };
  });
}

export function genAiMetrics(m: Metrics): GenAiMetrics {
  return once(genAiCache, m.registry, (registry) => {
    const duration = new Histogram({
      name: 'gen_ai_client_operation_duration_seconds',
      help: 'Duration of provider calls (OpenTelemetry gen_ai.client.operation.duration; a stream until its last chunk), by operation, provider, model and error type ("" when it answered).',
      labelNames: ['gen_ai_operation_name', 'gen_ai_provider_name', 'gen_ai_request_model', 'error_type'],
      buckets: GEN_AI_SECONDS_BUCKETS,
      registers: [registry],
    });
    const firstChunk = new Histogram({
      name: 'gen_ai_client_operation_time_to_first_chunk_seconds',
      help: 'Time from a streamed provider call to its first chunk (OpenTelemetry gen_ai.client.operation.time_to_first_chunk), by provider and model.',
      labelNames: ['gen_ai_operation_name', 'gen_ai_provider_name', 'gen_ai_request_model'],
      buckets: GEN_AI_SECONDS_BUCKETS,
      registers: [registry],
    });
    return {
      operation: (operation, provider, model, errorType, s) => duration.labels(operation, provider, model, errorType).observe(s),
      firstChunk: (provider, model, s) => firstChunk.labels('chat', provider, model).observe(s),
    };
  });
}
