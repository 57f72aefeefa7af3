import type { ProviderConfig } from '@llmgw/config';
import { errorKindToProto } from '@llmgw/grpc';
import type { Logger } from '@llmgw/logging';
import type { AttemptOutcomeLabel, ExecutorMetrics } from '@llmgw/metrics';
import type { ExecutionError } from '@llmgw/proto/executor';
import { FallbackTrigger, SchemaFailurePolicy, type Hedge, type Plan, type PlannedAttempt } from '@llmgw/proto/router';
import { AttemptOutcome, type Attempt, type Usage } from '@llmgw/proto/v1';
import type { ErrorKind } from '@llmgw/errors';
import type { CircuitBreaker } from './circuit-breaker.js';
import { ProviderError, type FailureReason } from './providers/errors.js';
import type { ProviderRegistry } from './providers/registry.js';
import type { ProviderAdapter } from './providers/types.js';
import type { UsageSink } from './execute.js';
import type { UsageLedger } from './usage-ledger.js';
import { LatencyWindow } from './latency-window.js';

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
  /** Where calls are counted (hedging p95, backend stats broadcasts); one of its own when not given. */
  window?: LatencyWindow;
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
  schema_failure: FallbackTrigger.FALLBACK_TRIGGER_SCHEMA_FAILURE,
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
  /** A tool of the request must not run twice: never hedge it. */
  noHedge?: boolean;
}

function cancelledByCaller(): ProviderError {
  return new ProviderError('cancelled', 'call cancelled by the caller', 'cancelled', 0);
}

export function attemptRecord(t: Pick<Target, 'planned' | 'providerId'>, outcome: AttemptOutcome, latencyMs: number, status: number, reason: string, error: string): Attempt {
  return { model: t.planned.model, provider: t.providerId, outcome, error, latencyMs: Math.max(0, Math.round(latencyMs)), providerStatus: status, reason, hedge: false };
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

/** Why an answer was rejected: what a repair request tells the model. */
export interface SchemaRepair {
  /** The rejected answer. */
  output: string;
  /** The validation errors, bounded. */
  problem: string;
}

/**
 * An answer that does not match the request's json_schema. The provider answered (and billed
 * `usage`): the attempt failed, it was not lost, so it is billed what it cost.
 */
export class SchemaMismatch extends ProviderError {
  constructor(
    readonly usage: Usage,
    readonly repair: SchemaRepair,
  ) {
    super('unavailable', `the answer did not match the response schema: ${repair.problem}`, 'schema_failure', 200);
  }
}

/** One provider call under way. */
interface Launched<T> {
  target: Target;
  /** Index of its attempt in the plan. */
  index: number;
  /** This call was sent while an earlier one was still under way. */
  hedge: boolean;
  startedAt: number;
  ctl: AbortController;
  /** Unlinks the call's signal from the request scope. */
  unlink: () => void;
  /** Never rejects; the attempt timer is cleared when it settles. */
  settled: Promise<Settled<T>>;
}

type Settled<T> = { value: T; error?: undefined } | { error: ProviderError; value?: undefined };

/** What a failed call means for the plan. */
type Verdict = 'stop' | 'next' | 'retry';

function lostToHedge(): ProviderError {
  return new ProviderError('cancelled', 'cancelled: another attempt answered first', 'hedge_lost', 0);
}

/** The value of `p` if it settles within `ms`, else undefined (p goes on). */
function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const elapsed = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, ms, undefined)));
  return Promise.race([p, elapsed]).finally(() => clearTimeout(timer));
}

/**
 * Runs a plan's attempts in order: skips unhealthy models (open breaker) and models that cannot
 * honour the request, moves on only on the plan's fallback triggers, retries (batch only) with
 * exponential backoff and jitter that honours retry-after, asks once more with a repair
 * instruction after an answer that failed the response schema (unless the plan says fail), hedges
 * an interactive request's first call when the plan says so, and records every attempt.
 * `discarded` is given an answer that arrived but lost to a hedge, to bill what it cost.
 */
export class PlanRunner {
  private readonly authLoggedAt = new Map<string, number>();
  /** This replica's calls per model: hedging delays and the backend stats it broadcasts. */
  readonly latencies: LatencyWindow;

  constructor(private readonly deps: RunnerDeps) {
    this.latencies = deps.window ?? new LatencyWindow({ now: deps.now });
  }

  async run<T>(
    plan: Plan,
    scope: RequestScope,
    opts: RunOptions,
    fn: (t: Target, signal: AbortSignal, repair?: SchemaRepair) => Promise<T>,
    discarded?: (t: Target, value: T) => void,
  ): Promise<PlanOutcome<T>> {
    const { breaker } = this.deps;
    const attempts: Attempt[] = plan.skipped.slice();
    let lastError: ProviderError | undefined;
    let unsupported: string | undefined;
    let unhealthy = 0;
    let ran = false;
    // Only an interactive request's first call is hedged, and never one whose tools must not run twice.
    let hedge = plan.hedge && !opts.batch && !opts.noHedge ? plan.hedge : undefined;

    /** Attempt i resolved to a target, or undefined after recording why it is skipped. */
    const callable = (i: number): Target | undefined => {
      const planned = plan.attempts[i] as PlannedAttempt;
      const target = this.resolve(planned);
      if (typeof target === 'string') {
        attempts.push(attemptRecord({ planned, providerId: planned.provider }, AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED, 0, 0, 'config_error', target));
        this.record(planned.provider, planned.model, 'skipped', 'config_error');
        return undefined;
      }
      if (opts.maxTokens !== undefined && planned.maxOutputTokens > 0 && opts.maxTokens > planned.maxOutputTokens) {
        const param = `max_tokens (${opts.maxTokens} exceeds the model's limit of ${planned.maxOutputTokens})`;
        unsupported ??= `model ${planned.model} cannot honour parameter ${param}`;
        attempts.push(attemptRecord(target, AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED, 0, 0, 'unsupported_parameter', `cannot honour ${param}`));
        this.record(target.providerId, planned.model, 'skipped', 'unsupported_parameter');
        return undefined;
      }
      if (!breaker.allow(planned.model)) {
        unhealthy++;
        this.skipUnhealthy(attempts, target);
        return undefined;
      }
      return target;
    };

    /** Records a failed call and bills it; says what follows from it. Throws when the caller is gone. */
    const judge = (call: Launched<T>, err: ProviderError, retriesLeft: number, repaired: boolean): Verdict => {
      const { planned } = call.target;
      const latency = this.deps.now() - call.startedAt;
      this.record(call.target.providerId, planned.model, err.reason === 'cancelled' ? 'cancelled' : 'failed', err.reason, latency);
      if (err.reason === 'cancelled') {
        breaker.release(planned.model);
        // The request reached the provider, which may bill it (a stream bills its prompt once it starts).
        opts.ledger.failed(planned, call.target.providerId, err.reason);
        throw err;
      }
      attempts.push({ ...attemptRecord(call.target, AttemptOutcome.ATTEMPT_OUTCOME_FAILED, latency, err.status, err.reason, err.message), hedge: call.hedge });
      // The request's own deadline cut the call: no verdict on the backend, like a cancel.
      if (err.reason !== 'deadline_exceeded') this.latencies.call(planned.model, err.retriable);
      if (err instanceof SchemaMismatch) {
        // The backend is healthy: it answered, only not in the shape asked for.
        breaker.success(planned.model);
        opts.ledger.partial(planned, call.target.providerId, err.usage, err.reason);
        if (plan.schemaFailurePolicy !== SchemaFailurePolicy.SCHEMA_FAILURE_POLICY_FAIL && !repaired) return 'retry';
      } else {
        opts.ledger.failed(planned, call.target.providerId, err.reason);
        if (err.retriable) breaker.failure(planned.model, err.reason);
        else breaker.release(planned.model);
        if (err.reason === 'auth_config') this.logAuthFault(call.target, err.status);
        if (err.reason === 'deadline_exceeded' || !err.retriable) return 'stop';
        if (retriesLeft > 0) return 'retry';
      }
      const trigger = TRIGGER_OF[err.reason];
      return trigger !== undefined && plan.fallbackTriggers.includes(trigger) ? 'next' : 'stop';
    };

    /** Cancels a call that lost to another and bills what the provider may charge for it. */
    const cancelLoser = async (loser: Launched<T>): Promise<void> => {
      loser.ctl.abort(lostToHedge());
      const r = await loser.settled;
      loser.unlink();
      breaker.release(loser.target.planned.model);
      if (r.error === undefined && discarded) discarded(loser.target, r.value);
      else opts.ledger.failed(loser.target.planned, loser.target.providerId, 'hedge_lost');
      attempts.push({ ...attemptRecord(loser.target, AttemptOutcome.ATTEMPT_OUTCOME_FAILED, this.deps.now() - loser.startedAt, 0, 'hedge_lost', 'cancelled: another attempt answered first'), hedge: loser.hedge });
      this.record(loser.target.providerId, loser.target.planned.model, 'cancelled', 'hedge_lost');
    };

    for (let i = 0; i < plan.attempts.length; i++) {
      let target = callable(i);
      if (!target) continue;
      let retriesLeft = opts.batch ? target.planned.maxRetries : 0;
      let repaired = false;
      let repair: SchemaRepair | undefined;
      let verdict: Verdict = 'stop';
      for (let t = 0; ; t++) {
        if (t > 0 && !breaker.allow(target.planned.model)) {
          this.skipUnhealthy(attempts, target);
          verdict = 'next';
          break;
        }
        const first = await this.launch(plan, scope, opts, attempts, [], target, i, false, fn, repair);
        if (!('settled' in first)) return first;
        ran = true;
        let calls: Launched<T>[] = [first];
        let settled = await (hedge ? within(first.settled, this.hedgeDelay(hedge, target.planned.model)) : first.settled);
        if (settled === undefined && hedge) {
          const second = await this.hedgeCall(hedge, plan, scope, opts, attempts, first, callable, fn);
          if (second) calls = [first, second];
          settled = undefined;
        }
        hedge = undefined;
        // The first good answer (or safety refusal) wins; a failed call leaves the other running.
        let winner: { call: Launched<T>; r: Settled<T> } | undefined;
        let failed: Launched<T> | undefined;
        while (calls.length > 0) {
          const [call, r] = settled !== undefined && calls.length === 1 ? [first, settled] : await Promise.race(calls.map((c) => c.settled.then((res) => [c, res] as const)));
          settled = undefined;
          calls = calls.filter((c) => c !== call);
          if (r.error === undefined || r.error.reason === 'content_filter') {
            winner = { call, r };
            break;
          }
          call.unlink();
          try {
            verdict = judge(call, r.error, retriesLeft, repaired);
          } catch (err) {
            for (const loser of calls) await cancelLoser(loser);
            throw err;
          }
          lastError = r.error;
          failed = call;
        }
        for (const loser of calls) await cancelLoser(loser);
        if (winner) {
          const { call, r } = winner;
          if (call.hedge) this.deps.metrics?.hedge(plan.route, 'won');
          const fallbackUsed = call.index > 0 || plan.skipped.length > 0;
          const latency = this.deps.now() - call.startedAt;
          const { planned } = call.target;
          breaker.success(planned.model);
          if (r.error) {
            this.latencies.call(planned.model, false);
            this.record(call.target.providerId, planned.model, 'success', 'content_filter', latency);
            attempts.push({ ...attemptRecord(call.target, AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS, latency, r.error.status, 'content_filter', ''), hedge: call.hedge });
            call.unlink();
            return { attempts, fallbackUsed, filtered: { target: call.target, error: r.error } };
          }
          this.latencies.observe(planned.model, latency);
          this.record(call.target.providerId, planned.model, 'success', '', latency);
          const attempt = { ...attemptRecord(call.target, AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS, latency, 200, '', ''), hedge: call.hedge };
          attempts.push(attempt);
          return { attempts, fallbackUsed, ok: { value: r.value, target: call.target, attempt, signal: call.ctl.signal, release: call.unlink, startedAt: call.startedAt } };
        }
        // Fallback goes on after the last attempt that ran; a retry or repair asks its model again.
        const last = failed as Launched<T>;
        i = Math.max(i, last.index);
        target = last.target;
        if (verdict === 'retry') {
          if (lastError instanceof SchemaMismatch) {
            repaired = true;
            repair = lastError.repair;
            continue;
          }
          retriesLeft--;
          const delay = this.backoff(plan.retryBackoffMs, t, lastError?.retryAfterMs);
          if (delay < scope.remaining()) {
            try {
              await this.deps.sleep(delay, scope.signal);
            } catch (abort) {
              if (abort instanceof ProviderError && abort.reason !== 'cancelled') return this.stop(attempts, i, plan, abort);
              throw abort;
            }
            continue;
          }
          const trigger = lastError && TRIGGER_OF[lastError.reason];
          verdict = trigger !== undefined && plan.fallbackTriggers.includes(trigger) ? 'next' : 'stop';
        }
        break;
      }
      if (verdict === 'stop') return this.stop(attempts, i, plan, lastError as ProviderError);
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

  /**
   * Notes the call (write-ahead: once the provider is called it may bill us, so that must survive
   * our crash, with every call under way), then starts it under its attempt timeout. A deadline
   * already spent stops the plan instead.
   */
  private async launch<T>(
    plan: Plan,
    scope: RequestScope,
    opts: RunOptions,
    attempts: Attempt[],
    underWay: Launched<T>[],
    target: Target,
    index: number,
    hedge: boolean,
    fn: (t: Target, signal: AbortSignal, repair?: SchemaRepair) => Promise<T>,
    repair: SchemaRepair | undefined,
  ): Promise<Launched<T> | PlanOutcome<T>> {
    const { now, breaker } = this.deps;
    const { planned } = target;
    if (scope.callerGone) {
      breaker.release(planned.model);
      throw cancelledByCaller();
    }
    try {
      const inFlight = [...underWay.map((c) => c.target), target].map((t) => ({ planned: t.planned, provider: t.providerId }));
      await this.deps.usage.note(opts.ledger.interrupted(inFlight, index > 0 || plan.skipped.length > 0, attempts.length + inFlight.length, now()));
    } catch (e) {
      breaker.release(planned.model);
      throw e;
    }
    const remaining = scope.remaining();
    if (remaining <= 0 || scope.signal.aborted) {
      breaker.release(planned.model);
      const reason = scope.signal.reason;
      return this.stop(attempts, index, plan, reason instanceof ProviderError && reason.reason === 'cancelled' ? reason : new ProviderError('deadline_exceeded', 'request deadline exceeded', 'deadline_exceeded', 0));
    }
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
    const settled = fn(target, ctl.signal, repair).then(
      (value): Settled<T> => ({ value }),
      (e: unknown): Settled<T> => ({ error: e instanceof ProviderError ? e : new ProviderError('unavailable', `${target.providerId} call failed`, 'connection_error', 0, { cause: e }) }),
    );
    void settled.finally(() => clearTimeout(timer));
    return { target, index, hedge, startedAt: now(), ctl, unlink: () => scope.signal.removeEventListener('abort', link), settled };
  }

  /**
   * Sends the hedge of `first`: to the same model or to the plan's next callable attempt. None
   * when there is none, the breaker refuses, or the deadline is spent. A failure to note it
   * (outbox) or a caller gone cancels `first` too, billed, before it is thrown.
   */
  private async hedgeCall<T>(
    hedge: Hedge,
    plan: Plan,
    scope: RequestScope,
    opts: RunOptions,
    attempts: Attempt[],
    first: Launched<T>,
    callable: (i: number) => Target | undefined,
    fn: (t: Target, signal: AbortSignal, repair?: SchemaRepair) => Promise<T>,
  ): Promise<Launched<T> | undefined> {
    let target: Target | undefined;
    let index = first.index;
    if (hedge.sameModel) target = this.deps.breaker.allow(first.target.planned.model) ? first.target : undefined;
    else {
      for (let j = first.index + 1; j < plan.attempts.length && !target; j++) {
        target = callable(j);
        index = j;
      }
    }
    if (!target) return undefined;
    let second: Launched<T> | PlanOutcome<T>;
    try {
      second = await this.launch(plan, scope, opts, attempts, [first], target, index, true, fn, undefined);
    } catch (err) {
      first.ctl.abort(err);
      await first.settled;
      first.unlink();
      this.deps.breaker.release(first.target.planned.model);
      opts.ledger.failed(first.target.planned, first.target.providerId, 'cancelled');
      throw err;
    }
    if (!('settled' in second)) return undefined;
    this.deps.metrics?.hedge(plan.route, 'sent');
    return second;
  }

  /** The plan's fixed delay, or the model's measured p95 within the plan's bounds once known. */
  private hedgeDelay(hedge: Hedge, model: string): number {
    if (!hedge.delayP95) return hedge.delayMs;
    const p95 = this.latencies.p95(model);
    return p95 === undefined ? hedge.delayMs : Math.min(hedge.delayMsMax, Math.max(hedge.delayMsMin, p95));
  }

  private skipUnhealthy(attempts: Attempt[], target: Target): void {
    attempts.push(attemptRecord(target, AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED, 0, 0, 'unhealthy', 'circuit breaker open after repeated failures'));
    this.record(target.providerId, target.planned.model, 'skipped', 'unhealthy');
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
