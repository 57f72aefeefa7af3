import { AppError, isAppError, MAX_ERROR_MESSAGE_CHARS, type ErrorKind } from '@llmgw/errors';
import type { Logger } from '@llmgw/logging';
import { AttemptOutcome, Routing, type ChatResponse } from '@llmgw/proto/v1';
import { ROUTING_TRAILER } from '../pipeline.js';

/** What failed, for a dialect to render in its provider's error shape. */
export interface HttpFailure {
  status: number;
  kind: ErrorKind | 'too_large';
  message: string;
  /** The request field at fault, for 400s and 404s. */
  param?: string;
  retryAfterMs?: number;
  /** x-ratelimit-* of the limit that denied the request. */
  rateLimit: Record<string, string>;
  /** Every attempt of a request that reached the executor. */
  routing?: Routing;
}

/** The one table from error kind to HTTP status (the providers' codes; 499 is nginx's "client closed request"). */
const STATUS: Record<ErrorKind, number> = {
  invalid_argument: 400,
  failed_precondition: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  resource_exhausted: 429,
  cancelled: 499,
  internal: 500,
  unavailable: 503,
  deadline_exceeded: 504,
};

/** `messages[0].content: must not be empty` names `messages[0].content`. */
const FIELD_FIRST = /^([A-Za-z_][\w.[\]-]{0,127}): /;

export function failureOf(err: unknown, logger: Logger): HttpFailure {
  if (!isAppError(err)) {
    logger.error({ err }, 'unhandled error');
    return { status: 500, kind: 'internal', message: 'internal error', rateLimit: {} };
  }
  const status = STATUS[err.kind];
  const rateLimit: Record<string, string> = {};
  let routing: Routing | undefined;
  for (const [k, v] of Object.entries(err.opts.trailers ?? {})) {
    if (k === ROUTING_TRAILER && typeof v !== 'string') routing = Routing.decode(v);
    else if (k.startsWith('x-ratelimit-') && typeof v === 'string') rateLimit[k] = v;
  }
  const message = err.message.length <= MAX_ERROR_MESSAGE_CHARS ? err.message : `${err.message.slice(0, MAX_ERROR_MESSAGE_CHARS)}…`;
  return {
    status,
    kind: err.kind,
    message,
    param: status === 400 || status === 404 ? FIELD_FIRST.exec(err.message)?.[1] : undefined,
    retryAfterMs: err.opts.retryAfterMs,
    rateLimit,
    routing,
  };
}

export function bodyTooLarge(limit: number): HttpFailure {
  return { status: 413, kind: 'too_large', message: `the request body is over the limit of ${limit} bytes`, rateLimit: {} };
}

export function badRequest(message: string, param?: string): HttpFailure {
  return { status: 400, kind: 'invalid_argument', message: param ? `${param}: ${message}` : message, param, rateLimit: {} };
}

/** Headers of a failure that the SDKs act on: retry-after (seconds, and -ms which the OpenAI SDK prefers), rate limits, routing. */
export function failureHeaders(f: HttpFailure): Record<string, string> {
  const headers: Record<string, string> = { ...f.rateLimit };
  if (f.retryAfterMs !== undefined) {
    headers['retry-after'] = String(Math.max(1, Math.ceil(f.retryAfterMs / 1000)));
    headers['retry-after-ms'] = String(Math.ceil(f.retryAfterMs));
    // The SDKs retry a 429 on their own; a wait longer than a minute is a budget, not a blip.
    if (f.retryAfterMs > 60_000) headers['x-should-retry'] = 'false';
  }
  if (f.routing) headers[ROUTING_HEADER] = routingHeader(routingJson(f.routing));
  return headers;
}

/** Response header with the routing record (compact JSON, ASCII only), on answers and on failures. */
export const ROUTING_HEADER = 'x-llmgw-routing';

const OUTCOMES: Partial<Record<AttemptOutcome, string>> = {
  [AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS]: 'success',
  [AttemptOutcome.ATTEMPT_OUTCOME_FAILED]: 'failed',
  [AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED]: 'skipped',
};

/** The routing record as the HTTP surface shows it (body extension field `llmgw.routing`). */
export function routingJson(r: Routing) {
  return {
    route: r.route,
    rule: r.rule,
    split: r.split,
    chosen_model: r.chosenModel,
    fallback_used: r.fallbackUsed,
    cache_hit: r.cacheHit,
    attempts: r.attempts.map((a) => ({
      model: a.model,
      provider: a.provider,
      outcome: OUTCOMES[a.outcome] ?? 'unspecified',
      reason: a.reason,
      error: a.error,
      latency_ms: a.latencyMs,
      provider_status: a.providerStatus,
    })),
  };
}

export type RoutingJson = ReturnType<typeof routingJson>;

/** Without the attempts' error texts, which can be long: a header must stay small. */
function routingHeader(full: RoutingJson): string {
  const json = JSON.stringify({ ...full, attempts: full.attempts.map(({ error: _error, ...a }) => a) });
  return json.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The routing header of an answer, from the routing record its `llmgw` field already carries. */
export function routingHeaders(routing: RoutingJson | null): Record<string, string> {
  return routing ? { [ROUTING_HEADER]: routingHeader(routing) } : {};
}

/** The gateway's extension field on answers (both dialects): what it cost and how it was routed. */
export function gatewayFields(r: Pick<ChatResponse, 'id' | 'provider' | 'usage' | 'routing'>) {
  return {
    request_id: r.id,
    provider: r.provider,
    cost_usd: r.usage?.costUsd ?? 0,
    cost_micros: r.usage?.costMicros ?? 0,
    tokens_estimated: r.usage?.tokensEstimated ?? false,
    routing: r.routing ? routingJson(r.routing) : null,
  };
}
