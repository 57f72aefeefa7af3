import type { ExecuteChatRequest, ExecuteChatResponse, ExecuteChatStreamResponse, ExecuteEmbedRequest, ExecuteEmbedResponse } from '@llmgw/proto/executor';
import type { Plan } from '@llmgw/proto/router';
import { AttemptOutcome, CacheMode, FinishReason, Role, type ChatResponse, type ChatStreamResponse, type Routing, type ToolCall, type ToolCallDelta, type UsageRecorded } from '@llmgw/proto/v1';
import { AppError, type ErrorKind } from '@llmgw/errors';
import type { GenAiMetrics } from '@llmgw/metrics';
import { errorKindFromProto, errorKindToProto } from '@llmgw/grpc';
import { countChatTokens, countTokens } from '@llmgw/tokens';
import { within, type OpenSpan } from '@llmgw/tracing';
import { chatParamsOf } from './normalise.js';
import { checkEmbedInputs, checkIds, checkPlan } from './request-check.js';
import { endProviderSpan, openProviderSpan, type GenAiOperation, type ProviderAnswer } from './provider-span.js';
import { PlanRunner, RequestScope, SchemaMismatch, type ExecutionContext, type PlanOutcome, type RunnerDeps, type SchemaRepair, type Target } from './plan-runner.js';
import { cacheUseOf, type CachedAnswer, type CacheUse, type ResponseCache } from './response-cache.js';
import { answerCheck } from './schema-check.js';
import { ProviderError } from './providers/errors.js';
import type { ChatParams, ChatResult, ChatStreamEvent, ProviderUsage } from './providers/types.js';
import { chatUsage, embedUsage, mergeUsage, promptCount } from './usage.js';
import { UsageLedger, type LedgerRequest } from './usage-ledger.js';

export type { ExecutionContext } from './plan-runner.js';

/** Where the executor's usage events go (the UsagePublisher with its journal). */
export interface UsageSink {
  /**
   * Durably notes what the request costs if the process dies now; awaited before each provider
   * call. Rejects (AppError unavailable) when it cannot be noted: the call is then not made.
   */
  note(event: UsageRecorded): Promise<void>;
  /** The request's final event, once per request; it replaces the request's note. */
  publish(event: UsageRecorded): void;
}

export type ExecutorDeps = Omit<RunnerDeps, 'random' | 'sleep'> &
  Partial<Pick<RunnerDeps, 'random' | 'sleep'>> & {
    /** The OpenTelemetry GenAI client metrics of each provider call. */
    genAi?: GenAiMetrics;
    /** The routes' response cache; absent: nothing is cached. */
    cache?: ResponseCache;
  };

export type StreamSend = (msg: ExecuteChatStreamResponse) => Promise<void>;

/** Waits ms, or rejects with the signal's reason when it aborts first. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

interface OpenedStream {
  iterator: AsyncIterator<ChatStreamEvent>;
  /** Events read before the first delta (usage from message_start, the first delta itself). */
  buffered: ChatStreamEvent[];
  ended: boolean;
  /** The call's span, ended with the stream. */
  span: OpenSpan | undefined;
}

/** A provider call's failure as error.type: its reason. */
function failureReason(err: unknown): string {
  return err instanceof ProviderError ? err.reason : 'internal';
}

function required<T>(v: T | undefined, field: string): T {
  if (v === undefined) throw new AppError('invalid_argument', `${field} is required`);
  return v;
}

/** The intent's score and the prompt version are the edge's (its classifier and templates): the edge fills them in. */
function routingOf(plan: Plan, outcome: Pick<PlanOutcome<unknown>, 'fallbackUsed' | 'attempts'>, chosen: string, cacheHit = false): Routing {
  return { rule: plan.rule, route: plan.route, split: plan.split, intent: plan.intent, intentScore: 0, promptVersion: '', chosenModel: chosen, fallbackUsed: outcome.fallbackUsed, attempts: outcome.attempts, cacheHit };
}

/** Replayed answers come in slices of this many characters (code points), as a provider streams them. */
const REPLAY_CHUNK_CHARS = 64;

/** The cached answer's text in stream-sized pieces. */
export function replayChunks(content: string): string[] {
  const chars = Array.from(content);
  const out: string[] = [];
  for (let i = 0; i < chars.length; i += REPLAY_CHUNK_CHARS) out.push(chars.slice(i, i + REPLAY_CHUNK_CHARS).join(''));
  return out;
}

/** Tool calls from a stream's deltas: the deltas of one index joined, in index order. */
function toolCallsOf(deltas: readonly ToolCallDelta[]): ToolCall[] {
  const byIndex = new Map<number, ToolCall>();
  for (const d of deltas) {
    const call = byIndex.get(d.index) ?? { id: '', name: '', argumentsJson: '' };
    call.id ||= d.id;
    call.name ||= d.name;
    call.argumentsJson += d.argumentsJsonDelta;
    byIndex.set(d.index, call);
  }
  return [...byIndex.entries()].sort(([a], [b]) => a - b).map(([, c]) => c);
}

/** The request again, with the rejected answer and what was wrong with it: one repair try. */
function repairParams(params: ChatParams, repair: SchemaRepair): ChatParams {
  const turn = (role: Role, content: string) => ({ role, content, name: '', toolCalls: [], toolCallId: '' });
  return {
    ...params,
    messages: [
      ...params.messages,
      turn(Role.ROLE_ASSISTANT, repair.output),
      turn(Role.ROLE_USER, `Your answer did not match the required JSON schema (${repair.problem}). Reply again with only JSON that matches the schema.`),
    ],
  };
}

function isDelta(ev: ChatStreamEvent): boolean {
  return (ev.content !== undefined && ev.content.length > 0) || (ev.toolCalls !== undefined && ev.toolCalls.length > 0);
}

/**
 * Runs plans against providers and records what they cost. Transport-free: server.ts maps gRPC
 * to these calls, tests call them directly. Expected failures come back in the response
 * (ExecutionError), never thrown; only a caller cancel or a malformed request throws (AppError).
 * Every request that reaches `execute*` yields exactly one usage event, whatever happens to the
 * caller, listing every attempt with what it was billed.
 */
export class Executor {
  private readonly runner: PlanRunner;

  constructor(private readonly deps: ExecutorDeps) {
    this.runner = new PlanRunner({ ...deps, random: deps.random ?? Math.random, sleep: deps.sleep ?? abortableSleep });
  }

  async executeChat(req: ExecuteChatRequest, ctx: ExecutionContext): Promise<ExecuteChatResponse> {
    checkIds(req);
    const plan = checkPlan(required(req.plan, 'plan'));
    const params = chatParamsOf(req.params);
    const ledger = this.ledger(req, plan, 'chat', false, promptCount(req.params?.promptTokens ?? [], (family) => countChatTokens(params.messages, family)));
    const caching = this.cacheUse(req, plan, params);
    const hit = caching && (await this.deps.cache?.lookup(caching));
    if (hit) return { response: this.cachedResponse(req.requestId, plan, hit, ledger), error: undefined };
    // Unary: a caller gone mid-attempt does not abort it (see RequestScope); its cost is recorded.
    const scope = new RequestScope(ctx, plan.timeoutMs, this.deps.now, false);
    const check = params.responseFormat.type === 'json_schema' ? answerCheck(params.responseFormat.schema) : undefined;
    const usageOf = (t: Target, r: ChatResult, messages: ChatParams['messages']) =>
      chatUsage(t.planned, r.usage, messages, () => r.content + r.toolCalls.map((c) => c.name + c.argumentsJson).join(''));
    return this.billed<ExecuteChatResponse>(ledger, scope, async () => {
      const outcome = await this.runner.run(
        plan,
        scope,
        this.runOptions(req, params, ledger),
        async (t, signal, repair) => {
          const asked = repair ? repairParams(params, repair) : params;
          const r = await this.timed('chat', t, () => t.adapter.chat({ upstreamModel: t.upstreamModel, params: asked, signal }));
          // A refusal is returned as it is; any other answer must match the schema to be one.
          const problem = check && r.finishReason !== FinishReason.FINISH_REASON_CONTENT_FILTER ? check(r.content) : undefined;
          if (problem) throw new SchemaMismatch(usageOf(t, r, asked.messages), { output: r.content, problem });
          return r;
        },
        (t, r) => ledger.partial(t.planned, t.providerId, usageOf(t, r, params.messages), 'hedge_lost'),
      );
      if (outcome.ok) {
        outcome.ok.release();
        const { value: r, target } = outcome.ok;
        if (r.finishReason === FinishReason.FINISH_REASON_CONTENT_FILTER) {
          outcome.ok.attempt.reason = 'content_filter';
          this.enforced(ctx, plan, target);
        }
        ledger.answered(target.planned, target.providerId, usageOf(target, r, params.messages));
        if (caching) {
          const answer = { model: target.planned.model, provider: target.providerId, content: r.content, toolCalls: r.toolCalls, finishReason: r.finishReason };
          this.deps.cache?.store(caching, { ...answer, costMicros: ledger.total().costMicros });
        }
        const response: ChatResponse = {
          id: req.requestId,
          model: target.planned.model,
          provider: target.providerId,
          message: { role: Role.ROLE_ASSISTANT, content: r.content, name: '', toolCalls: r.toolCalls, toolCallId: '' },
          finishReason: r.finishReason,
          usage: ledger.total(),
          routing: routingOf(plan, outcome, target.planned.model),
        };
        return { result: { response, error: undefined }, outcome };
      }
      if (outcome.filtered) {
        this.enforced(ctx, plan, outcome.filtered.target);
        return { result: { response: this.filteredResponse(req.requestId, plan, outcome, outcome.filtered.target, params, ledger), error: undefined }, outcome };
      }
      return { result: { response: this.failedResponse(req.requestId, plan, outcome, ledger), error: outcome.error }, outcome };
    });
  }

  async executeChatStream(req: ExecuteChatRequest, ctx: ExecutionContext, send: StreamSend): Promise<void> {
    checkIds(req);
    const plan = checkPlan(required(req.plan, 'plan'));
    const params = chatParamsOf(req.params);
    const ledger = this.ledger(req, plan, 'chat', true, promptCount(req.params?.promptTokens ?? [], (family) => countChatTokens(params.messages, family)));
    const caching = this.cacheUse(req, plan, params);
    const hit = caching && (await this.deps.cache?.lookup(caching));
    if (hit) return this.replay(req.requestId, plan, hit, ledger, send);
    const scope = new RequestScope(ctx, plan.timeoutMs, this.deps.now);
    const check = params.responseFormat.type === 'json_schema' ? answerCheck(params.responseFormat.schema) : undefined;
    await this.billed(ledger, scope, async (seen) => {
      const outcome = await this.runner.run(
        plan,
        scope,
        this.runOptions(req, params, ledger),
        (t, signal) => this.openStream(t, params, signal),
        // A stream that opened but lost to its hedge is billed as one that did not open; its span ends here.
        (t, opened) => {
          endProviderSpan(opened.span, undefined, 'hedge_lost');
          ledger.failed(t.planned, t.providerId, 'hedge_lost');
        },
      );
      // The pump may still throw (caller gone mid-stream): the event keeps this routing record.
      seen(outcome);
      if (outcome.filtered) {
        const r = this.filteredResponse(req.requestId, plan, outcome, outcome.filtered.target, params, ledger);
        await send({ chunk: { id: r.id, model: r.model, provider: r.provider, contentDelta: '', toolCallDeltas: [], finishReason: r.finishReason, usage: r.usage, routing: r.routing }, error: undefined });
        return { result: undefined, outcome };
      }
      if (!outcome.ok) {
        const r = this.failedResponse(req.requestId, plan, outcome, ledger);
        await send({ chunk: { id: r.id, model: '', provider: '', contentDelta: '', toolCallDeltas: [], finishReason: FinishReason.FINISH_REASON_UNSPECIFIED, usage: r.usage, routing: r.routing }, error: outcome.error });
        return { result: undefined, outcome };
      }
      const streamError = await this.pump(req.requestId, plan, params, outcome, send, ledger, check, caching);
      return { result: undefined, outcome, error: streamError };
    });
  }

  async executeEmbed(req: ExecuteEmbedRequest, ctx: ExecutionContext): Promise<ExecuteEmbedResponse> {
    checkIds(req);
    const request = required(req.request, 'request');
    checkEmbedInputs(request.inputs, request.dimensions);
    const plan = checkPlan(required(req.plan, 'plan'));
    const scope = new RequestScope(ctx, plan.timeoutMs, this.deps.now, false);
    const ledger = this.ledger(req, plan, 'embed', false, promptCount(req.promptTokens, (family) => request.inputs.reduce((n, t) => n + countTokens(t, family), 0)));
    return this.billed<ExecuteEmbedResponse>(ledger, scope, async () => {
      const outcome = await this.runner.run(plan, scope, { batch: false, maxTokens: undefined, ledger }, (t, signal) =>
        this.timed('embeddings', t, () => t.adapter.embed({ upstreamModel: t.upstreamModel, inputs: request.inputs, dimensions: request.dimensions, user: request.user, signal })),
      );
      if (outcome.ok) {
        outcome.ok.release();
        const { value: r, target } = outcome.ok;
        ledger.answered(target.planned, target.providerId, embedUsage(target.planned, r.usage, request.inputs));
        const response = {
          id: req.requestId,
          model: target.planned.model,
          provider: target.providerId,
          embeddings: r.vectors.map((values, index) => ({ index, values })),
          usage: ledger.total(),
          routing: routingOf(plan, outcome, target.planned.model),
        };
        return { result: { response, error: undefined }, outcome };
      }
      const response = { id: req.requestId, model: '', provider: '', embeddings: [], usage: ledger.total(), routing: routingOf(plan, outcome, '') };
      return { result: { response, error: outcome.error }, outcome };
    });
  }

  private ledger(req: Pick<ExecuteChatRequest, 'requestId' | 'tenantId' | 'keyId' | 'labels'>, plan: Plan, operation: LedgerRequest['operation'], streamed: boolean, prompt: ConstructorParameters<typeof UsageLedger>[1]): UsageLedger {
    return new UsageLedger({ requestId: req.requestId, tenantId: req.tenantId, keyId: req.keyId, labels: req.labels, route: plan.route, split: plan.split, intent: plan.intent, operation, streamed }, prompt, this.deps.now());
  }

  /**
   * Runs one request and publishes its usage event afterwards, whatever happened: an answer, a
   * failure, a caller that cancelled or went away. The event's error is the execution's, else
   * CANCELLED when the caller is gone, else none.
   */
  private async billed<T>(
    ledger: UsageLedger,
    scope: RequestScope,
    run: (seen: (outcome: PlanOutcome<unknown>) => void) => Promise<{ result: T; outcome: PlanOutcome<unknown>; error?: ErrorKind | undefined }>,
  ): Promise<T> {
    let kind: ErrorKind | undefined = 'internal';
    let outcome: PlanOutcome<unknown> | undefined;
    try {
      const r = await run((o) => (outcome = o));
      outcome = r.outcome;
      const failed = r.error ?? (r.outcome.error ? errorKindFromProto(r.outcome.error.kind) : undefined);
      kind = failed ?? (scope.callerGone ? 'cancelled' : undefined);
      return r.result;
    } catch (err) {
      // A caller gone shows up as whatever its transport threw (gRPC: a plain Error): CANCELLED.
      kind = scope.callerGone ? 'cancelled' : err instanceof AppError ? err.kind : 'internal';
      throw err;
    } finally {
      scope.dispose();
      // Thrown before the plan ended (a cancel between attempts), the routing record is lost: count what the ledger billed.
      const attemptCount = outcome?.attempts.length ?? ledger.attemptCount();
      this.deps.usage.publish(ledger.event(kind, outcome?.fallbackUsed ?? false, attemptCount, this.deps.now()));
    }
  }

  private runOptions(req: ExecuteChatRequest, params: ChatParams, ledger: UsageLedger) {
    return { batch: req.params?.batch ?? false, maxTokens: params.maxTokens, ledger, noHedge: req.params?.noHedge ?? false };
  }

  /** A provider's safety refusal or content filter: returned as it is, never rerouted, and counted. */
  private enforced(ctx: ExecutionContext, plan: Plan, target: Target): void {
    this.deps.metrics?.enforcement(plan.route, 'content_filter');
    ctx.logger.info({ enforcement: 'content_filter', route: plan.route, model: target.planned.model, provider: target.providerId }, 'provider refused or filtered the answer: returned as is, not rerouted');
  }
  /**
   * One provider call, observed as its GenAI span and gen_ai.client.operation.duration (error
   * type: the failure reason).
   */
  private async timed<T extends ProviderAnswer>(operation: GenAiOperation, t: Target, call: () => Promise<T>): Promise<T> {
    const started = this.deps.now();
    const span = openProviderSpan(operation, t);
    let errorType = '';
    try {
      const answer = await within(span, call);
      endProviderSpan(span, answer);
      return answer;
    } catch (err) {
      errorType = failureReason(err);
      endProviderSpan(span, undefined, errorType);
      throw err;
    } finally {
      this.deps.genAi?.operation(operation, t.providerId, t.planned.model, errorType, (this.deps.now() - started) / 1000);
    }
  }

  /**
   * Opens the stream and reads up to the first delta: failures until then may fall back. A
   * failure here ends the call's duration; an open stream's duration ends in `pump`.
   */
  private async openStream(t: Target, params: ChatParams, signal: AbortSignal): Promise<OpenedStream> {
    const started = this.deps.now();
    const seconds = () => (this.deps.now() - started) / 1000;
    const span = openProviderSpan('chat', t);
    try {
      return await within(span, async () => {
        const iterable = await t.adapter.chatStream({ upstreamModel: t.upstreamModel, params, signal });
        const iterator = iterable[Symbol.asyncIterator]();
        const buffered: ChatStreamEvent[] = [];
        for (;;) {
          const r = await iterator.next();
          if (r.done) return { iterator, buffered, ended: true, span };
          buffered.push(r.value);
          if (isDelta(r.value) || r.value.finishReason !== undefined) {
            this.deps.genAi?.firstChunk(t.providerId, t.planned.model, seconds());
            return { iterator, buffered, ended: false, span };
          }
        }
      });
    } catch (err) {
      const reason = failureReason(err);
      endProviderSpan(span, undefined, reason);
      this.deps.genAi?.operation('chat', t.providerId, t.planned.model, reason, seconds());
      throw err;
    }
  }

  /**
   * Forwards deltas as the caller reads them (send awaits backpressure, and the upstream body is
   * pulled only after each send), then the last message with finish reason, usage and routing.
   */
  private async pump(
    requestId: string,
    plan: Plan,
    params: ChatParams,
    outcome: PlanOutcome<OpenedStream>,
    send: StreamSend,
    ledger: UsageLedger,
    check: ((answer: string) => string | undefined) | undefined,
    caching: CacheUse | undefined,
  ): Promise<ErrorKind | undefined> {
    const ok = outcome.ok as NonNullable<typeof outcome.ok>;
    const { target, value: opened } = ok;
    const model = target.planned.model;
    const provider = target.providerId;
    const reported: ProviderUsage = {};
    const text: string[] = [];
    const content: string[] = [];
    /** A stream the cache keeps: its tool calls' pieces, joined at the end. */
    const toolDeltas: ToolCallDelta[] = [];
    const state: { finishReason: FinishReason } = { finishReason: FinishReason.FINISH_REASON_UNSPECIFIED };
    let failure: ProviderError | undefined;
    let callerGone = false;
    let ended = opened.ended;
    const { iterator } = opened;
    const usageSoFar = () => chatUsage(target.planned, reported, params.messages, () => text.join(''));

    const forward = async (ev: ChatStreamEvent): Promise<void> => {
      if (ev.usage) mergeUsage(reported, ev.usage);
      if (ev.finishReason !== undefined) state.finishReason = ev.finishReason;
      if (!isDelta(ev)) return;
      let deltas: ToolCallDelta[] = [];
      if (ev.toolCalls) {
        deltas = ev.toolCalls;
        if (caching) toolDeltas.push(...deltas);
        for (const d of deltas) text.push(d.name, d.argumentsJsonDelta);
      }
      if (ev.content) {
        text.push(ev.content);
        content.push(ev.content);
      }
      const chunk: ChatStreamResponse = {
        id: requestId,
        model,
        provider,
        contentDelta: ev.content ?? '',
        toolCallDeltas: deltas,
        finishReason: FinishReason.FINISH_REASON_UNSPECIFIED,
        usage: undefined,
        routing: undefined,
      };
      await send({ chunk, error: undefined });
    };

    try {
      for (const ev of opened.buffered) await forward(ev);
      while (!ended) {
        let r: IteratorResult<ChatStreamEvent>;
        try {
          r = await iterator.next();
        } catch (e) {
          failure = e instanceof ProviderError ? e : new ProviderError('unavailable', 'provider stream failed', 'connection_error', 0, { cause: e });
          break;
        }
        if (r.done) ended = true;
        else await forward(r.value);
      }
    } catch (e) {
      // send failed: the caller went away. Stop reading upstream (aborts the provider request)
      // and bill what the provider generated until then.
      await iterator.return?.(undefined).catch(() => undefined);
      ledger.partial(target.planned, provider, usageSoFar(), 'cancelled');
      callerGone = true;
      throw e;
    } finally {
      ok.release();
      const errorType = callerGone ? 'cancelled' : (failure?.reason ?? '');
      endProviderSpan(opened.span, { usage: reported, finishReason: state.finishReason }, errorType || undefined);
      this.deps.genAi?.operation('chat', provider, model, errorType, (this.deps.now() - ok.startedAt) / 1000);
    }

    if (failure?.reason === 'cancelled') {
      ledger.partial(target.planned, provider, usageSoFar(), 'cancelled');
      throw failure;
    }
    const usage = usageSoFar();
    // A stream that broke after the provider's finish reason has all the output: answer normally.
    const finishReason = state.finishReason;
    /** Ends the stream on an error after its output was sent: the attempt failed, its output is billed. */
    const failAfterOutput = async (reason: string, attemptError: string, kind: ErrorKind, message: string): Promise<ErrorKind> => {
      const attempt = ok.attempt;
      attempt.outcome = AttemptOutcome.ATTEMPT_OUTCOME_FAILED;
      attempt.reason = reason;
      attempt.providerStatus = 200;
      attempt.error = attemptError;
      attempt.latencyMs = Math.round(this.deps.now() - ok.startedAt);
      ledger.partial(target.planned, provider, usage, reason);
      await send({
        chunk: { id: requestId, model, provider, contentDelta: '', toolCallDeltas: [], finishReason: FinishReason.FINISH_REASON_ERROR, usage: ledger.total(), routing: routingOf(plan, outcome, model) },
        error: { code: '', kind: errorKindToProto(kind), message, retryAfterMs: 0 },
      });
      return kind;
    };
    if (failure && finishReason === FinishReason.FINISH_REASON_UNSPECIFIED) {
      if (failure.retriable) {
        this.deps.breaker.failure(model, failure.reason);
        this.runner.latencies.error(model);
      }
      const kind: ErrorKind = failure.reason === 'deadline_exceeded' ? 'deadline_exceeded' : 'unavailable';
      return failAfterOutput(failure.reason, `provider stream ended early: ${failure.message}`, kind, `provider stream ended early after partial output: ${failure.message}`);
    }
    // Streamed output cannot be taken back, so a stream is not repaired or rerouted: one that does
    // not match the schema ends on an error instead of a finish, never as a success.
    const problem = check && finishReason !== FinishReason.FINISH_REASON_CONTENT_FILTER ? check(content.join('')) : undefined;
    if (problem) {
      return failAfterOutput('schema_failure', `answer does not match the response schema: ${problem}`, 'unavailable', `${model}: the streamed answer does not match the response schema: ${problem}`);
    }
    ok.attempt.latencyMs = Math.round(this.deps.now() - ok.startedAt);
    if (finishReason === FinishReason.FINISH_REASON_CONTENT_FILTER) ok.attempt.reason = 'content_filter';
    ledger.answered(target.planned, provider, usage);
    const finished = finishReason === FinishReason.FINISH_REASON_UNSPECIFIED ? FinishReason.FINISH_REASON_STOP : finishReason;
    if (caching) {
      const answer = { model, provider, content: content.join(''), toolCalls: toolCallsOf(toolDeltas), finishReason: finished };
      this.deps.cache?.store(caching, { ...answer, costMicros: ledger.total().costMicros });
    }
    await send({
      chunk: {
        id: requestId,
        model,
        provider,
        contentDelta: '',
        toolCallDeltas: [],
        finishReason: finished,
        usage: ledger.total(),
        routing: routingOf(plan, outcome, model),
      },
      error: undefined,
    });
    return undefined;
  }

  private cacheUse(req: ExecuteChatRequest, plan: Plan, params: ChatParams): CacheUse | undefined {
    return this.deps.cache && cacheUseOf(req.tenantId, plan, params, req.params?.cache ?? CacheMode.CACHE_MODE_UNSPECIFIED);
  }

  /** A hit: the cached answer with a routing record that says so; its usage event bills nothing. */
  private cachedResponse(id: string, plan: Plan, hit: CachedAnswer, ledger: UsageLedger): ChatResponse {
    this.deps.usage.publish(ledger.cacheHit(hit, this.deps.now()));
    return {
      id,
      model: hit.model,
      provider: hit.provider,
      message: { role: Role.ROLE_ASSISTANT, content: hit.content, name: '', toolCalls: hit.toolCalls, toolCallId: '' },
      finishReason: hit.finishReason,
      usage: ledger.total(),
      routing: routingOf(plan, { fallbackUsed: false, attempts: [] }, hit.model, true),
    };
  }

  /** A hit on a stream: the cached answer replayed in pieces, then the last message as a provider's stream ends. */
  private async replay(id: string, plan: Plan, hit: CachedAnswer, ledger: UsageLedger, send: StreamSend): Promise<void> {
    const r = this.cachedResponse(id, plan, hit, ledger);
    const chunk = (contentDelta: string, toolCallDeltas: ToolCallDelta[]): ChatStreamResponse => ({ id, model: r.model, provider: r.provider, contentDelta, toolCallDeltas, finishReason: FinishReason.FINISH_REASON_UNSPECIFIED, usage: undefined, routing: undefined });
    for (const piece of replayChunks(hit.content)) await send({ chunk: chunk(piece, []), error: undefined });
    if (hit.toolCalls.length > 0) await send({ chunk: chunk('', hit.toolCalls.map((c, index) => ({ index, id: c.id, name: c.name, argumentsJsonDelta: c.argumentsJson }))), error: undefined });
    await send({ chunk: { ...chunk('', []), finishReason: r.finishReason, usage: r.usage, routing: r.routing }, error: undefined });
  }

  private filteredResponse(id: string, plan: Plan, outcome: PlanOutcome<unknown>, target: Target, params: ChatParams, ledger: UsageLedger): ChatResponse {
    ledger.answered(target.planned, target.providerId, chatUsage(target.planned, { outputTokens: 0 }, params.messages, () => ''));
    return {
      id,
      model: target.planned.model,
      provider: target.providerId,
      message: { role: Role.ROLE_ASSISTANT, content: '', name: '', toolCalls: [], toolCallId: '' },
      finishReason: FinishReason.FINISH_REASON_CONTENT_FILTER,
      usage: ledger.total(),
      routing: routingOf(plan, outcome, target.planned.model),
    };
  }

  private failedResponse(id: string, plan: Plan, outcome: PlanOutcome<unknown>, ledger: UsageLedger): ChatResponse {
    return {
      id,
      model: '',
      provider: '',
      message: undefined,
      finishReason: FinishReason.FINISH_REASON_UNSPECIFIED,
      usage: ledger.total(),
      routing: routingOf(plan, outcome, ''),
    };
  }
}

