import type { ProviderConfig } from '@llmgw/config';
import { errorKindToProto } from '@llmgw/grpc';
import type { Logger } from '@llmgw/logging';
import type { AttemptOutcomeLabel, ExecutorMetrics } from '@llmgw/metrics';
import type { ExecutionError } from '@llmgw/proto/executor';
import { FallbackTrigger, type Plan, type PlannedAttempt } from '@llmgw/proto/router';
import { AttemptOutcome, type Attempt } from '@llmgw/proto/v1';
import type { ErrorKind } from '@llmgw/errors';
import type { CircuitBreaker } from './circuit-breaker.js';
import { ProviderError, type FailureReason } from './providers/errors.js';
import type { ProviderRegistry } from './providers/registry.js';
import type { ProviderAdapter } from './providers/types.js';
import type { UsageSink } from './execute.js';
import type { UsageLedger } from './usage-ledger.js';

/** What the executor needs from the gRPC call (a subset of @llmgw/grpc CallContext). */
export interface ExecutionContext {
  signal: AbortSignal;
  /** Milliseconds before the caller's deadline; Infinity when it set none. */
  remainingMs(): number;
  logger: Logger;
}

export interface RunnerDeps {
  /** The executor's section of the config: its providers (timeouts; keys live in the adapters). */
  providers: Readonly<Record<string, ProviderConfig>>;
  registry: ProviderRegistry;
  breaker: CircuitBreaker;
  logger: Logger;
  now: () => number;
  random: () => number;
  /** Waits ms or rejects with the signal's reason. */
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  metrics?: ExecutorMetrics;
  usage: UsageSink;
  /** Told the provider of each model a plan names (for health broadcasts). */
  onPlanned?: (model: string, provider: string) => void;
}

/** One planned attempt resolved to this replica's provider adapter. */
export interface Target {
  planned: PlannedAttempt;
  providerId: string;
  upstreamModel: string;
  adapter: ProviderAdapter;
}

const TRIGGER_OF: Partial<Record<FailureReason, FallbackTrigger>> = {
  timeout: FallbackTrigger.FALLBACK_TRIGGER_TIMEOUT,
  http_5xx: FallbackTrigger.FALLBACK_TRIGGER_HTTP_5XX,
  bad_response: FallbackTrigger.FALLBACK_TRIGGER_HTTP_5XX,
  http_429: FallbackTrigger.FALLBACK_TRIGGER_HTTP_429,
  connection_error: FallbackTrigger.FALLBACK_TRIGGER_CONNECTION_ERROR,
};

const MAX_BACKOFF_MS = 30_000;
/** Time kept back from the caller's deadline to send our answer (with its routing record). */
const MAX_HEADROOM_MS = 10;
const AUTH_LOG_INTERVAL_MS = 10_000;

/**
 * The request's overall budget: the deadline aborts `signal`. A caller's cancel aborts it too when
 * `abortOnCancel` (streams: the provider stops generating, and bills only what it sent); otherwise
 * (unary) the attempt under way runs on, since the provider bills it whether we wait or not and
 * only waiting tells us what it cost, and no further attempt starts. Dispose when done.
 */
export class RequestScope {
  readonly signal: AbortSignal;
  readonly deadlineAt: number;
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly onCancel: () => void;
  private gone = false;

  constructor(
    private readonly ctx: ExecutionContext,
    planTimeoutMs: number,
    private readonly now: () => number,
    abortOnCancel = true,
  ) {
    this.signal = this.controller.signal;
    const remaining = ctx.remainingMs();
    const callerBudget = remaining === Infinity ? Infinity : Math.max(0, remaining - Math.min(MAX_HEADROOM_MS, remaining / 10));
    const budget = Math.min(callerBudget, planTimeoutMs > 0 ? planTimeoutMs : Infinity);
    this.deadlineAt = budget === Infinity ? Infinity : now() + budget;
    this.onCancel = () => {
      this.gone = true;
      if (abortOnCancel) this.controller.abort(cancelledByCaller());
    };
    if (ctx.signal.aborted) this.onCancel();
    else ctx.signal.addEventListener('abort', this.onCancel, { once: true });
    if (budget !== Infinity) {
      this.timer = setTimeout(
        () => this.controller.abort(new ProviderError('deadline_exceeded', `request deadline of ${Math.round(budget)} ms exceeded`, 'deadline_exceeded', 0)),
        budget,
      );
    }
  }

  /** True once the caller cancelled (or went away). */
  get callerGone(): boolean {
    return this.gone;
  }

  remaining(): number {
    return this.deadlineAt === Infinity ? Infinity : this.deadlineAt - this.now();
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.ctx.signal.removeEventListener('abort', this.onCancel);
  }
}

export interface PlanSuccess<T> {
  value: T;
  target: Target;
  /** The attempt record of the success (already in attempts), to amend after a stream. */
  attempt: Attempt;
  /** The attempt's abort signal, still linked to the request scope. */
  signal: AbortSignal;
  /** Unlinks the attempt's signal from the scope; call when the value is consumed. */
  release: () => void;
  /** Wall time the attempt started (for streams finishing later). */
  startedAt: number;
}

export interface PlanOutcome<T> {
  attempts: Attempt[];
  fallbackUsed: boolean;
  ok?: PlanSuccess<T>;
  /** A content filter reported as an error status (e.g. Azure 400 content_filter): returned as a filtered answer. */
  filtered?: { target: Target; error: ProviderError };
  error?: ExecutionError;
}

export interface RunOptions {
  batch: boolean;
  /** Output tokens asked for; a model whose output limit is lower is skipped. Undefined for embeddings. */
  maxTokens: number | undefined;
  /** Where failed attempts are billed. */
  ledger: UsageLedger;
}

function cancelledByCaller(): ProviderError {
  return new ProviderError('cancelled', 'call cancelled by the caller', 'cancelled', 0);
}

export function attemptRecord(t: Pick<Target, 'planned' | 'providerId'>, outcome: AttemptOutcome, latencyMs: number, status: number, reason: string, error: string): Attempt {
  return { model: t.planned.model, provider: t.providerId, outcome, error, latencyMs: Math.max(0, Math.round(latencyMs)), providerStatus: status, reason };
}

function executionError(kind: ErrorKind, message: string, retryAfterMs = 0): ExecutionError {
  return { code: '', kind: errorKindToProto(kind), message, retryAfterMs: Math.max(0, Math.round(retryAfterMs)) };
}

/** What the caller is told when this failure ends the plan. */
function callerKindOf(err: ProviderError): ErrorKind {
  switch (err.reason) {
    case 'invalid_request':
      return 'invalid_argument';
    case 'http_429':
      return 'resource_exhausted';
    case 'timeout':
    case 'deadline_exceeded':
      return 'deadline_exceeded';
    default:
      return 'unavailable';
  }
}

/**
 * Runs a plan's attempts in order: skips unhealthy models (open breaker) and models that cannot
 * honour the request, moves on only on the plan's fallback triggers, retries (batch only) with
 * exponential backoff and jitter that honours retry-after, and records every attempt.
 */
export class PlanRunner {
  private readonly authLoggedAt = new Map<string, number>();

  constructor(private readonly deps: RunnerDeps) {}

  async run<T>(plan: Plan, scope: RequestScope, opts: RunOptions, fn: (t: Target, signal: AbortSignal) => Promise<T>): Promise<PlanOutcome<T>> {
    const { now, breaker } = this.deps;
    const attempts: Attempt[] = plan.skipped.slice();
    let lastError: ProviderError | undefined;
    let unsupported: string | undefined;
    let unhealthy = 0;
    let ran = false;

    for (let i = 0; i < plan.attempts.length; i++) {
      const planned = plan.attempts[i] as PlannedAttempt;
      const target = this.resolve(planned);
      if (typeof target === 'string') {
        attempts.push(attemptRecord({ planned, providerId: planned.provider }, AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED, 0, 0, 'config_error', target));
        this.record(planned.provider, planned.model, 'skipped', 'config_error');
        continue;
      }
      if (opts.maxTokens !== undefined && planned.maxOutputTokens > 0 && opts.maxTokens > planned.maxOutputTokens) {
        const param = `max_tokens (${opts.maxTokens} exceeds the model's limit of ${planned.maxOutputTokens})`;
        unsupported ??= `model ${planned.model} cannot honour parameter ${param}`;
        attempts.push(attemptRecord(target, AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED, 0, 0, 'unsupported_parameter', `cannot honour ${param}`));
        this.record(target.providerId, planned.model, 'skipped', 'unsupported_parameter');
        continue;
      }
      if (!breaker.allow(planned.model)) {
        unhealthy++;
        attempts.push(attemptRecord(target, AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED, 0, 0, 'unhealthy', 'circuit breaker open after repeated failures'));
        this.record(target.providerId, planned.model, 'skipped', 'unhealthy');
        continue;
      }

      const tries = opts.batch ? planned.maxRetries + 1 : 1;
      let moveOn = false;
      for (let t = 0; t < tries; t++) {
        if (t > 0 && !breaker.allow(planned.model)) {
          attempts.push(attemptRecord(target, AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED, 0, 0, 'unhealthy', 'circuit breaker open after repeated failures'));
          this.record(target.providerId, planned.model, 'skipped', 'unhealthy');
          moveOn = true;
          break;
        }
        if (scope.callerGone) {
          breaker.release(planned.model);
          throw cancelledByCaller();
        }
        // Write-ahead: once the provider is called it may bill us, so that must survive our crash.
        try {
          await this.deps.usage.note(opts.ledger.interrupted(planned, target.providerId, i > 0 || plan.skipped.length > 0, attempts.length + 1, now()));
        } catch (e) {
          breaker.release(planned.model);
          throw e;
        }
        const remaining = scope.remaining();
        if (remaining <= 0 || scope.signal.aborted) {
          breaker.release(planned.model);
          return this.stop(attempts, i, plan, scope.signal.reason instanceof ProviderError && scope.signal.reason.reason === 'cancelled'
            ? scope.signal.reason
            : new ProviderError('deadline_exceeded', 'request deadline exceeded', 'deadline_exceeded', 0));
        }
        ran = true;
        const attemptTimeout = planned.timeoutMs > 0 ? planned.timeoutMs : (this.deps.providers[target.providerId]?.timeout_ms ?? 30_000);
        const capped = remaining < attemptTimeout;
        const timeoutMs = capped ? remaining : attemptTimeout;
        const ctl = new AbortController();
        const link = () => ctl.abort(scope.signal.reason);
        scope.signal.addEventListener('abort', link, { once: true });
        const timer = setTimeout(
          () =>
            ctl.abort(
              capped
                ? new ProviderError('deadline_exceeded', `request deadline exceeded after ${Math.round(timeoutMs)} ms`, 'deadline_exceeded', 0)
                : new ProviderError('unavailable', `no answer within the attempt timeout of ${timeoutMs} ms`, 'timeout', 0),
            ),
          timeoutMs,
        );
        const startedAt = now();
        try {
          const value = await fn(target, ctl.signal);
          clearTimeout(timer);
          breaker.success(planned.model);
          const attempt = attemptRecord(target, AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS, now() - startedAt, 200, '', '');
          attempts.push(attempt);
          this.record(target.providerId, planned.model, 'success', '', now() - startedAt);
          return {
            attempts,
            fallbackUsed: i > 0 || plan.skipped.length > 0,
            ok: { value, target, attempt, signal: ctl.signal, release: () => scope.signal.removeEventListener('abort', link), startedAt },
          };
        } catch (e) {
          clearTimeout(timer);
          scope.signal.removeEventListener('abort', link);
          const err = e instanceof ProviderError ? e : new ProviderError('unavailable', `${target.providerId} call failed`, 'connection_error', 0, { cause: e });
          const latency = now() - startedAt;
          this.record(
            target.providerId,
            planned.model,
            err.reason === 'cancelled' ? 'cancelled' : err.reason === 'content_filter' ? 'success' : 'failed',
            err.reason,
            latency,
          );
          if (err.reason === 'cancelled') {
            breaker.release(planned.model);
            // The request reached the provider, which may bill it (a stream bills its prompt once it starts).
            opts.ledger.failed(planned, target.providerId, err.reason);
            throw err;
          }
          if (err.reason === 'content_filter') {
            breaker.success(planned.model);
            attempts.push(attemptRecord(target, AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS, latency, err.status, 'content_filter', ''));
            return { attempts, fallbackUsed: i > 0 || plan.skipped.length > 0, filtered: { target, error: err } };
          }
          attempts.push(attemptRecord(target, AttemptOutcome.ATTEMPT_OUTCOME_FAILED, latency, err.status, err.reason, err.message));
          opts.ledger.failed(planned, target.providerId, err.reason);
          lastError = err;
          if (err.retriable) breaker.failure(planned.model, err.reason);
          else breaker.release(planned.model);
          if (err.reason === 'auth_config') this.logAuthFault(target, err.status);
          if (err.reason === 'deadline_exceeded') return this.stop(attempts, i, plan, err);
          if (!err.retriable) return this.stop(attempts, i, plan, err);
          if (t + 1 < tries) {
            const delay = this.backoff(plan.retryBackoffMs, t, err.retryAfterMs);
            if (delay < scope.remaining()) {
              try {
                await this.deps.sleep(delay, scope.signal);
              } catch (abort) {
                if (abort instanceof ProviderError && abort.reason !== 'cancelled') return this.stop(attempts, i, plan, abort);
                throw abort;
              }
              continue;
            }
          }
          const trigger = TRIGGER_OF[err.reason];
          if (trigger === undefined || !plan.fallbackTriggers.includes(trigger)) return this.stop(attempts, i, plan, err);
          moveOn = true;
          break;
        }
      }
      if (!moveOn) break;
    }

    if (lastError) {
      const kind = callerKindOf(lastError);
      return {
        attempts,
        fallbackUsed: false,
        error: executionError(
          kind,
          `all attempts failed; last: ${attempts[attempts.length - 1]?.model ?? ''}: ${lastError.message}`,
          kind === 'resource_exhausted' ? lastError.retryAfterMs : 0,
        ),
      };
    }
    if (!ran && unsupported) return { attempts, fallbackUsed: false, error: executionError('invalid_argument', unsupported) };
    if (unhealthy > 0) return { attempts, fallbackUsed: false, error: executionError('unavailable', 'every model of the plan is unhealthy (circuit breaker open)') };
    if (plan.attempts.length === 0) return { attempts, fallbackUsed: false, error: executionError('invalid_argument', 'plan has no attempts') };
    return { attempts, fallbackUsed: false, error: executionError('unavailable', 'no attempt of the plan could run') };
  }

  /** Provider and model come from config (via the plan), reasons from FailureReason: bounded labels. */
  private record(provider: string, model: string, outcome: AttemptOutcomeLabel, reason: string, latencyMs?: number): void {
    this.deps.metrics?.attempt(provider, model, outcome, reason, latencyMs === undefined ? undefined : Math.max(0, latencyMs) / 1000);
  }

  private stop<T>(attempts: Attempt[], i: number, plan: Plan, err: ProviderError): PlanOutcome<T> {
    if (err.reason === 'cancelled') throw err;
    const model = plan.attempts[i]?.model ?? '';
    const kind = callerKindOf(err);
    return { attempts, fallbackUsed: false, error: executionError(kind, `${model}: ${err.message}`, kind === 'resource_exhausted' ? err.retryAfterMs : 0) };
  }

  /** base·2^n with jitter in [½, 1], at least the provider's retry-after, capped. */
  backoff(baseMs: number, retry: number, retryAfterMs: number | undefined): number {
    const base = (baseMs > 0 ? baseMs : 200) * 2 ** retry;
    const jittered = base * (0.5 + this.deps.random() / 2);
    return Math.min(MAX_BACKOFF_MS, Math.max(jittered, retryAfterMs ?? 0));
  }

  private resolve(planned: PlannedAttempt): Target | string {
    const providerId = planned.provider;
    if (!this.deps.registry.has(providerId)) return `unknown provider "${providerId}" for model ${planned.model}`;
    this.deps.onPlanned?.(planned.model, providerId);
    return { planned, providerId, upstreamModel: planned.upstreamModel || planned.model, adapter: this.deps.registry.get(providerId) };
  }

  /** Loud, but at most once per provider per interval; the key itself is never logged. */
  private logAuthFault(t: Target, status: number): void {
    const now = this.deps.now();
    const last = this.authLoggedAt.get(t.providerId) ?? -Infinity;
    if (now - last < AUTH_LOG_INTERVAL_MS) return;
    this.authLoggedAt.set(t.providerId, now);
    this.deps.logger.error(
      { provider: t.providerId, model: t.planned.model, providerStatus: status },
      `provider ${t.providerId} rejected the gateway's credentials: gateway configuration fault, check providers.${t.providerId}.api_key`,
    );
  }
}
