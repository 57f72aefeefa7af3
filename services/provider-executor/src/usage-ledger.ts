import { microsToUsd } from '@llmgw/pricing';
import type { ErrorKind } from '@llmgw/errors';
import type { UsageLabels } from '@llmgw/proto/executor';
import type { PlannedAttempt } from '@llmgw/proto/router';
import { AttemptOutcome, TokenSource, type AttemptUsage, type Usage, type UsageRecorded } from '@llmgw/proto/v1';
import { familyOf, type TokenizerFamily } from '@llmgw/tokens';
import type { FailureReason } from './providers/errors.js';
import { priced } from './usage.js';

/** The request the ledger bills, as the edge named it. */
export interface LedgerRequest {
  requestId: string;
  tenantId: string;
  keyId: string;
  route: string;
  /** The plan's split arm; '' for the rule's own model. */
  split: string;
  /** The plan's intent; '' when the request had none. */
  intent: string;
  operation: 'chat' | 'embed';
  streamed: boolean;
  /** The caller's cost dimensions, as the edge took them from the request. */
  labels: UsageLabels | undefined;
}

/**
 * Failures after which the provider may have billed the attempt although we got no answer: we
 * stopped waiting (timeout, deadline), the caller left (a stream cancelled before its first
 * token; unary attempts are not aborted on cancel) or a hedge answered first, while the provider
 * was generating.
 */
const MAY_BE_BILLED: ReadonlySet<FailureReason> = new Set(['timeout', 'deadline_exceeded', 'cancelled', 'hedge_lost']);

/**
 * What one request cost, attempt by attempt: the executor is where money is spent, so it is
 * where it is recorded. Every attempt that reached a provider is listed with what it was billed;
 * the totals of the usage event and of the response are the sums.
 */
export class UsageLedger {
  private readonly attempts: AttemptUsage[] = [];
  /** The attempt that answered (in full or in part), else the last one tried: the event's model. */
  private answeredBy: AttemptUsage | undefined;
  private lastTried: AttemptUsage | undefined;
  /** Counted once per family: every attempt's write-ahead note needs the count. */
  private readonly prompts = new Map<TokenizerFamily, number>();

  constructor(
    private readonly req: LedgerRequest,
    /** Prompt tokens in a tokenizer family: what an attempt with no reported usage is charged. */
    private readonly countPrompt: (family: TokenizerFamily) => number,
    private readonly startedAt: number,
  ) {}

  /** An attempt that answered (also a content-filtered one, which providers bill). */
  answered(planned: PlannedAttempt, provider: string, usage: Usage): void {
    this.answeredBy = this.add(planned, provider, usage, AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS, '');
  }

  /**
   * An attempt that failed after the provider produced output: a stream cut short or cancelled,
   * an answer that did not match the response schema, one that lost to a hedge.
   */
  partial(planned: PlannedAttempt, provider: string, usage: Usage, reason: string): void {
    this.answeredBy = this.add(planned, provider, usage, AttemptOutcome.ATTEMPT_OUTCOME_FAILED, reason);
  }

  /**
   * An attempt that failed without an answer. An error status or a dropped connection is not
   * billed; a timeout or a cancel may be (the provider went on generating after we stopped
   * waiting): it is charged its prompt, estimated, since no provider tells us more.
   */
  failed(planned: PlannedAttempt, provider: string, reason: FailureReason): void {
    const usage = MAY_BE_BILLED.has(reason) ? this.promptOnly(planned) : priced(planned, { inputTokens: 0, outputTokens: 0 }, false);
    this.lastTried = this.add(planned, provider, usage, AttemptOutcome.ATTEMPT_OUTCOME_FAILED, reason);
  }

  /**
   * The event if the process died now with `inFlight` under way: the attempts so far plus each of
   * these billed as a timed-out attempt (its prompt, estimated), since the provider may bill it.
   */
  interrupted(inFlight: readonly { planned: PlannedAttempt; provider: string }[], fallbackUsed: boolean, attemptCount: number, now: number): UsageRecorded {
    const under = inFlight.map((c) => attemptOf(c.planned, c.provider, this.promptOnly(c.planned), AttemptOutcome.ATTEMPT_OUTCOME_FAILED, 'executor_restarted'));
    return this.eventOf([...this.attempts, ...under], under[under.length - 1], 'unavailable', fallbackUsed, attemptCount, now);
  }

  /** Attempts billed so far (every attempt that reached a provider). */
  attemptCount(): number {
    return this.attempts.length;
  }

  total(): Usage {
    return totalOf(this.attempts);
  }

  /** The usage event; `error` is why the request failed, undefined on success. */
  event(error: ErrorKind | undefined, fallbackUsed: boolean, attemptCount: number, now: number): UsageRecorded {
    return this.eventOf(this.attempts, this.answeredBy ?? this.lastTried, error, fallbackUsed, attemptCount, now);
  }

  /** The event of a request answered from the response cache: no attempt, no tokens, no cost; what the answer once cost is what it saved. */
  cacheHit(answer: { model: string; provider: string; costMicros: number }, now: number): UsageRecorded {
    return { ...this.eventOf([], undefined, undefined, false, 0, now), model: answer.model, provider: answer.provider, cacheHit: true, cacheSavedCostMicros: answer.costMicros };
  }

  private promptOnly(planned: PlannedAttempt): Usage {
    const family = familyOf(planned.tokenizer);
    let n = this.prompts.get(family);
    if (n === undefined) this.prompts.set(family, (n = this.countPrompt(family)));
    return priced(planned, { inputTokens: n, outputTokens: 0 }, true);
  }

  private eventOf(attempts: AttemptUsage[], billedTo: AttemptUsage | undefined, error: ErrorKind | undefined, fallbackUsed: boolean, attemptCount: number, now: number): UsageRecorded {
    const total = totalOf(attempts);
    return {
      eventId: this.req.requestId,
      requestId: this.req.requestId,
      tenantId: this.req.tenantId,
      keyId: this.req.keyId,
      route: this.req.route,
      split: this.req.split,
      intent: this.req.intent,
      model: billedTo?.model ?? '',
      provider: billedTo?.provider ?? '',
      inputTokens: total.inputTokens,
      outputTokens: total.outputTokens,
      cachedInputTokens: total.cachedInputTokens,
      cacheWriteInputTokens: total.cacheWriteInputTokens,
      reasoningTokens: total.reasoningTokens,
      costMicros: total.costMicros,
      user: this.req.labels?.user ?? '',
      promptVersion: this.req.labels?.promptVersion ?? '',
      feature: this.req.labels?.feature ?? '',
      tokenSource: total.tokensEstimated ? TokenSource.TOKEN_SOURCE_ESTIMATED : TokenSource.TOKEN_SOURCE_PROVIDER,
      occurredAt: new Date(now),
      success: error === undefined,
      errorCode: error === undefined ? '' : error.toUpperCase(),
      fallbackUsed,
      attemptCount,
      latencyMs: Math.max(0, Math.round(now - this.startedAt)),
      streamed: this.req.streamed,
      operation: this.req.operation,
      attempts,
      cacheHit: false,
      cacheSavedCostMicros: 0,
    };
  }

  private add(planned: PlannedAttempt, provider: string, usage: Usage, outcome: AttemptOutcome, reason: string): AttemptUsage {
    const attempt = attemptOf(planned, provider, usage, outcome, reason);
    this.attempts.push(attempt);
    return attempt;
  }
}

function attemptOf(planned: PlannedAttempt, provider: string, usage: Usage, outcome: AttemptOutcome, reason: string): AttemptUsage {
  return {
    model: planned.model,
    provider,
    inputTokens: usage.inputTokens,
    outputTokens: usage.outputTokens,
    cachedInputTokens: usage.cachedInputTokens,
    cacheWriteInputTokens: usage.cacheWriteInputTokens,
    reasoningTokens: usage.reasoningTokens,
    costMicros: usage.costMicros,
    tokenSource: usage.tokensEstimated ? TokenSource.TOKEN_SOURCE_ESTIMATED : TokenSource.TOKEN_SOURCE_PROVIDER,
    outcome,
    reason,
  };
}

function totalOf(attempts: readonly AttemptUsage[]): Usage {
  const total = { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteInputTokens: 0, reasoningTokens: 0, costMicros: 0 };
  let estimated = false;
  for (const a of attempts) {
    for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += a[k];
    estimated ||= a.tokenSource === TokenSource.TOKEN_SOURCE_ESTIMATED;
  }
  return { ...total, costUsd: microsToUsd(total.costMicros), tokensEstimated: estimated };
}
