import { createHash } from 'node:crypto';
import type { Logger } from '@llmgw/logging';
import type { ResponseCacheMetrics } from '@llmgw/metrics';
import type { Plan, ResponseCache as RouteCache } from '@llmgw/proto/router';
import { CacheMode, FinishReason, type ToolCall } from '@llmgw/proto/v1';
import type { ChatParams } from './providers/types.js';

/** Whose answers an entry belongs to: a tenant on a route. Entries are never shared across scopes. */
export interface CacheScope {
  tenantId: string;
  route: string;
}

/**
 * Where answers are kept (Redis across replicas; in memory in monolithic mode). Both keep at
 * most `maxEntries` per scope, dropping the oldest, and forget an entry after `ttlMs`.
 */
export interface CacheStore {
  get(scope: CacheScope, hash: string): Promise<string | undefined>;
  put(scope: CacheScope, hash: string, value: string, ttlMs: number, maxEntries: number): Promise<void>;
  close(): void;
}

/** A provider's answer as the cache keeps it: what a hit returns, and what it cost when it was made. */
export interface CachedAnswer {
  model: string;
  provider: string;
  content: string;
  toolCalls: ToolCall[];
  finishReason: FinishReason;
  /** What the answer cost when a provider made it: what a hit saves. */
  costMicros: number;
}

/** One request's use of its route's cache, decided once before the plan runs. */
export interface CacheUse {
  scope: CacheScope;
  hash: string;
  policy: RouteCache;
  /** Answer from the cache when it holds the request (false for CACHE_MODE_REFRESH). */
  read: boolean;
}

/** Answers worth replaying: what the provider finished (also at max_tokens), never a filtered one or a broken stream. */
const STORABLE: ReadonlySet<FinishReason> = new Set([FinishReason.FINISH_REASON_STOP, FinishReason.FINISH_REASON_LENGTH, FinishReason.FINISH_REASON_TOOL_CALLS]);

/** JSON with object keys sorted, so equal values give one text whatever order a client sent them in. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * The entry's name: a hash of everything that shapes the answer — the tenant, the route, the
 * plan's models in order, and the normalised request (messages, max tokens, sampling, stop,
 * tools, tool choice, response format). The end user, deadlines and hedging do not change an
 * answer and are left out.
 */
export function cacheHash(scope: CacheScope, plan: Plan, params: ChatParams): string {
  const material = canonical({
    v: 1,
    tenant: scope.tenantId,
    route: scope.route,
    models: plan.attempts.map((a) => a.model),
    messages: params.messages,
    maxTokens: params.maxTokens,
    temperature: params.temperature,
    topP: params.topP,
    stop: params.stop,
    tools: params.tools,
    toolChoice: params.toolChoice,
    responseFormat: params.responseFormat,
  });
  return createHash('sha256').update(material).digest('base64url');
}

/**
 * Whether a request uses its route's cache: only on a route that caches, never when the caller
 * bypasses it, and otherwise when the caller asks (USE, REFRESH) or the route caches
 * deterministic requests and the request's temperature is 0.
 */
export function cacheUseOf(tenantId: string, plan: Plan, params: ChatParams, mode: CacheMode): CacheUse | undefined {
  const policy = plan.cache;
  if (!policy || mode === CacheMode.CACHE_MODE_BYPASS) return undefined;
  const asked = mode === CacheMode.CACHE_MODE_USE || mode === CacheMode.CACHE_MODE_REFRESH;
  if (!asked && !(policy.deterministic && params.temperature === 0)) return undefined;
  const scope = { tenantId, route: plan.route };
  return { scope, hash: cacheHash(scope, plan, params), policy, read: mode !== CacheMode.CACHE_MODE_REFRESH };
}

function parseAnswer(text: string): CachedAnswer | undefined {
  try {
    const a = JSON.parse(text) as Partial<CachedAnswer>;
    if (typeof a.model !== 'string' || typeof a.content !== 'string' || !Array.isArray(a.toolCalls) || typeof a.costMicros !== 'number') return undefined;
    return a as CachedAnswer;
  } catch {
    return undefined;
  }
}

export interface ResponseCacheDeps {
  store: CacheStore;
  logger: Logger;
  metrics?: ResponseCacheMetrics | undefined;
}

/**
 * The executor's exact response cache. A cache that fails costs only the cache: a lookup that
 * errs is a miss, a store that errs is dropped, and each is counted and logged (without the
 * request's text), never surfaced to the caller.
 */
export class ResponseCache {
  constructor(private readonly deps: ResponseCacheDeps) {}

  async lookup(use: CacheUse): Promise<CachedAnswer | undefined> {
    if (!use.read) return undefined;
    let text: string | undefined;
    try {
      text = await this.deps.store.get(use.scope, use.hash);
    } catch (err) {
      this.deps.metrics?.lookup(use.scope.route, 'error');
      this.deps.logger.warn({ route: use.scope.route, err: err instanceof Error ? err.message : String(err) }, 'response cache lookup failed: answering from the provider');
      return undefined;
    }
    const answer = text === undefined ? undefined : parseAnswer(text);
    this.deps.metrics?.lookup(use.scope.route, answer ? 'hit' : 'miss');
    if (answer) this.deps.metrics?.saved(use.scope.route, answer.costMicros);
    return answer;
  }

  /** Keeps a complete answer in the background: the caller never waits for the cache. */
  store(use: CacheUse, answer: CachedAnswer): void {
    if (!STORABLE.has(answer.finishReason)) return;
    const text = JSON.stringify(answer);
    if (Buffer.byteLength(text) > use.policy.maxEntryBytes) {
      this.deps.metrics?.store(use.scope.route, 'too_large');
      return;
    }
    this.deps.store.put(use.scope, use.hash, text, use.policy.ttlMs, use.policy.maxEntries).then(
      () => this.deps.metrics?.store(use.scope.route, 'stored'),
      (err: unknown) => {
        this.deps.metrics?.store(use.scope.route, 'error');
        this.deps.logger.warn({ route: use.scope.route, err: err instanceof Error ? err.message : String(err) }, 'response cache store failed');
      },
    );
  }
}
