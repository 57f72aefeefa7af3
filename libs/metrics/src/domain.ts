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
const httpCache = new WeakMap<Registry, HttpMetrics>();
const routerCache = new WeakMap<Registry, RouterMetrics>();

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
    return {
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
