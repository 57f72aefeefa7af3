import { AppError, type ErrorKind } from '@llmgw/errors';

/** Normalised reason recorded on an Attempt; also decides fallback (see execute.ts). */
export type FailureReason =
  | 'timeout'
  | 'http_5xx'
  | 'http_429'
  | 'connection_error'
  | 'invalid_request'
  | 'auth_config'
  | 'content_filter'
  | 'bad_response'
  | 'cancelled'
  | 'deadline_exceeded'
  /** The answer did not match the request's json_schema. */
  | 'schema_failure'
  /** Cancelled because a hedged attempt answered first. */
  | 'hedge_lost';

/** Reasons that may be worth another try (same model later, or the next model). */
export const RETRIABLE_REASONS: ReadonlySet<FailureReason> = new Set([
  'timeout',
  'http_5xx',
  'http_429',
  'connection_error',
  'bad_response',
]);

/** A failed provider call, already classified. Messages never carry secrets. */
export class ProviderError extends AppError {
  override name = 'ProviderError';
  constructor(
    kind: ErrorKind,
    message: string,
    readonly reason: FailureReason,
    /** HTTP status the provider answered with; 0 when there was no answer. */
    readonly status: number,
    opts: { retryAfterMs?: number | undefined; cause?: unknown } = {},
  ) {
    super(kind, message, { retryAfterMs: opts.retryAfterMs, cause: opts.cause });
  }

  /** Delay the provider asked for (429, some 503s). */
  get retryAfterMs(): number | undefined {
    return this.opts.retryAfterMs;
  }

  get retriable(): boolean {
    return RETRIABLE_REASONS.has(this.reason);
  }
}

export type HeaderBag = Record<string, string | string[] | undefined>;

const MAX_MESSAGE_CHARS = 300;

function clip(message: string): string {
  return message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS)}…` : message;
}

function header(headers: HeaderBag, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Delay the provider asked for: `retry-after-ms` (OpenAI, Azure) wins over `retry-after`
 * (seconds or an HTTP date). undefined when absent or unparseable.
 */
export function retryAfterMs(headers: HeaderBag, now: () => number = Date.now): number | undefined {
  const ms = header(headers, 'retry-after-ms');
  if (ms !== undefined) {
    const n = Number(ms);
    if (Number.isFinite(n) && n >= 0) return Math.round(n);
  }
  const ra = header(headers, 'retry-after');
  if (ra === undefined) return undefined;
  const s = Number(ra);
  if (Number.isFinite(s) && s >= 0) return Math.round(s * 1000);
  const date = Date.parse(ra);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now());
}

/**
 * The one HTTP status table (each provider's errors.ts extracts the message from its own
 * error body and calls this):
 * 429 → retriable, retry-after carried; 400/404/413/422 → invalid_argument (no fallback);
 * 401/403 → our credentials: unavailable, reason auth_config, the provider's text is dropped
 * because it may echo part of the key; 408, 409, 5xx (and 529) → retriable.
 */
export function classifyHttpStatus(provider: string, status: number, message: string, headers: HeaderBag): ProviderError {
  const text = clip(message || `HTTP ${status}`);
  if (status === 429) {
    return new ProviderError('resource_exhausted', `${provider} rate limited the gateway (429): ${text}`, 'http_429', status, {
      retryAfterMs: retryAfterMs(headers),
    });
  }
  if (status === 401 || status === 403) {
    return new ProviderError(
      'unavailable',
      `${provider} rejected the gateway's credentials (${status}): gateway configuration fault`,
      'auth_config',
      status,
    );
  }
  if (status === 408) return new ProviderError('unavailable', `${provider} timed out (408): ${text}`, 'timeout', status);
  if (status >= 500 || status === 409) {
    return new ProviderError('unavailable', `${provider} failed (${status}): ${text}`, 'http_5xx', status, {
      retryAfterMs: retryAfterMs(headers),
    });
  }
  return new ProviderError('invalid_argument', `${provider} rejected the request (${status}): ${text}`, 'invalid_request', status);
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
  'UND_ERR_CONNECT_TIMEOUT',
]);

function errCode(err: unknown): string {
  if (typeof err !== 'object' || err === null) return '';
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  return errCode((err as { cause?: unknown }).cause);
}

/**
 * Maps a thrown transport error. An aborted signal wins: its reason is the ProviderError the
 * executor aborted with (timeout, deadline, cancel).
 */
export function classifyTransportError(provider: string, err: unknown, signal: AbortSignal): ProviderError {
  if (err instanceof ProviderError) return err;
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    if (reason instanceof ProviderError) return reason;
    return new ProviderError('cancelled', `${provider} call cancelled`, 'cancelled', 0, { cause: err });
  }
  const code = errCode(err);
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new ProviderError('unavailable', `${provider} did not answer in time (${code})`, 'timeout', 0, { cause: err });
  }
  // Resets, refusals, sockets closed mid-body ("other side closed", "terminated"): all
  // connection errors; the code (or message) is kept for the routing record.
  const detail = err instanceof Error ? `${CONNECTION_CODES.has(code) ? `${code} ` : ''}${err.message}` : code || 'unknown error';
  return new ProviderError('unavailable', `${provider} connection failed: ${clip(detail)}`, 'connection_error', 0, { cause: err });
}

/** A 2xx answer we could not understand. Retriable like a 5xx: the provider misbehaved. */
export function badResponse(provider: string, status: number, what: string): ProviderError {
  return new ProviderError('unavailable', `${provider} sent an unreadable response: ${clip(what)}`, 'bad_response', status);
}

export function streamEndedEarly(provider: string, detail?: string): ProviderError {
  return new ProviderError(
    'unavailable',
    `provider stream ended early (${provider}${detail ? `: ${clip(detail)}` : ''})`,
    'connection_error',
    0,
  );
}

/** Replaces every occurrence of a secret in a provider message. */
export function redact(message: string, secret: string): string {
  return secret.length >= 4 && message.includes(secret) ? message.split(secret).join('[redacted]') : message;
}
