import type { ExecuteChatRequest, ExecuteChatResponse, ExecuteChatStreamResponse, ExecuteEmbedRequest, ExecuteEmbedResponse, ExecutionError } from '@llmgw/proto/executor';
import type { Plan } from '@llmgw/proto/router';
import {
  AttemptOutcome,
  FinishReason,
  LatencyClass,
  Role,
  type ChatRequest,
  type ChatResponse,
  type ChatStreamResponse,
  type Routing,
  type ToolCallDelta,
  type Usage,
} from '@llmgw/proto/v1';
import { AppError } from '@llmgw/errors';
import { requiredCapabilities, toChatParams } from './normalise.js';
import { PlanRunner, RequestScope, type ExecutionContext, type PlanOutcome, type RunnerDeps, type Target } from './plan-runner.js';
import { ProviderError } from './providers/errors.js';
import type { ChatParams, ChatStreamEvent, ProviderUsage } from './providers/types.js';
import { chatUsage, embedUsage, mergeUsage, ZERO_USAGE } from './usage.js';

export type { ExecutionContext } from './plan-runner.js';

export type ExecutorDeps = Omit<RunnerDeps, 'random' | 'sleep'> & Partial<Pick<RunnerDeps, 'random' | 'sleep'>>;

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
}

function required<T>(v: T | undefined, field: string): T {
  if (v === undefined) throw new AppError('invalid_argument', `${field} is required`);
  return v;
}

function routingOf(plan: Plan, outcome: PlanOutcome<unknown>, chosen: string): Routing {
  return { rule: plan.rule, route: plan.route, chosenModel: chosen, fallbackUsed: outcome.fallbackUsed, attempts: outcome.attempts };
}

function isDelta(ev: ChatStreamEvent): boolean {
  return (ev.content !== undefined && ev.content.length > 0) || (ev.toolCalls !== undefined && ev.toolCalls.length > 0);
}

/**
 * Runs plans against providers. Transport-free: server.ts maps gRPC to these calls, tests call
 * them directly. Expected failures come back in the response (ExecutionError), never thrown;
 * only a caller cancel or a malformed request throws (AppError).
 */
export class Executor {
  private readonly runner: PlanRunner;

  constructor(private readonly deps: ExecutorDeps) {
    this.runner = new PlanRunner({ ...deps, random: deps.random ?? Math.random, sleep: deps.sleep ?? abortableSleep });
  }

  async executeChat(req: ExecuteChatRequest, ctx: ExecutionContext): Promise<ExecuteChatResponse> {
    const request = required(req.request, 'request');
    const plan = required(req.plan, 'plan');
    const params = toChatParams(request, plan);
    const scope = new RequestScope(ctx, plan.timeoutMs, this.deps.now);
    try {
      const outcome = await this.runner.run(plan, scope, this.runOptions(request, params, false), (t, signal) =>
        t.adapter.chat({ upstreamModel: t.upstreamModel, params, signal }),
      );
      if (outcome.ok) {
        outcome.ok.release();
        const { value: r, target } = outcome.ok;
        if (r.finishReason === FinishReason.FINISH_REASON_CONTENT_FILTER) outcome.ok.attempt.reason = 'content_filter';
        const usage = chatUsage(target.model, r.usage, params.messages, () => r.content + r.toolCalls.map((c) => c.name + c.argumentsJson).join(''));
        return {
          response: {
            id: req.requestId,
            model: target.planned.model,
            provider: target.providerId,
            message: { role: Role.ROLE_ASSISTANT, content: r.content, name: '', toolCalls: r.toolCalls, toolCallId: '' },
            finishReason: r.finishReason,
            usage,
            routing: routingOf(plan, outcome, target.planned.model),
          },
          error: undefined,
        };
      }
      if (outcome.filtered) return { response: this.filteredResponse(req.requestId, plan, outcome, outcome.filtered.target, params), error: undefined };
      return { response: this.failedResponse(req.requestId, plan, outcome), error: outcome.error };
    } finally {
      scope.dispose();
    }
  }

  async executeChatStream(req: ExecuteChatRequest, ctx: ExecutionContext, send: StreamSend): Promise<void> {
    const request = required(req.request, 'request');
    const plan = required(req.plan, 'plan');
    const params = toChatParams(request, plan);
    const scope = new RequestScope(ctx, plan.timeoutMs, this.deps.now);
    try {
      const outcome = await this.runner.run(plan, scope, this.runOptions(request, params, true), (t, signal) => this.openStream(t, params, signal));
      if (outcome.filtered) {
        const r = this.filteredResponse(req.requestId, plan, outcome, outcome.filtered.target, params);
        await send({ chunk: { id: r.id, model: r.model, provider: r.provider, contentDelta: '', toolCallDeltas: [], finishReason: r.finishReason, usage: r.usage, routing: r.routing }, error: undefined });
        return;
      }
      if (!outcome.ok) {
        const r = this.failedResponse(req.requestId, plan, outcome);
        await send({ chunk: { id: r.id, model: '', provider: '', contentDelta: '', toolCallDeltas: [], finishReason: FinishReason.FINISH_REASON_UNSPECIFIED, usage: r.usage, routing: r.routing }, error: outcome.error });
        return;
      }
      await this.pump(req.requestId, plan, params, outcome, send);
    } finally {
      scope.dispose();
    }
  }

  async executeEmbed(req: ExecuteEmbedRequest, ctx: ExecutionContext): Promise<ExecuteEmbedResponse> {
    const request = required(req.request, 'request');
    const plan = required(req.plan, 'plan');
    const scope = new RequestScope(ctx, plan.timeoutMs, this.deps.now);
    try {
      const outcome = await this.runner.run(
        plan,
        scope,
        { batch: false, needs: [['embeddings', 'embeddings']], explicitMaxTokens: undefined },
        (t, signal) => t.adapter.embed({ upstreamModel: t.upstreamModel, inputs: request.inputs, dimensions: request.dimensions, user: request.user, signal }),
      );
      if (outcome.ok) {
        outcome.ok.release();
        const { value: r, target } = outcome.ok;
        return {
          response: {
            id: req.requestId,
            model: target.planned.model,
            provider: target.providerId,
            embeddings: r.vectors.map((values, index) => ({ index, values })),
            usage: embedUsage(target.model, r.usage, request.inputs),
            routing: routingOf(plan, outcome, target.planned.model),
          },
          error: undefined,
        };
      }
      const error: ExecutionError = outcome.error ?? { code: 'UNAVAILABLE', message: 'embedding failed', retryAfterMs: 0 };
      return {
        response: { id: req.requestId, model: '', provider: '', embeddings: [], usage: { ...ZERO_USAGE }, routing: routingOf(plan, outcome, '') },
        error,
      };
    } finally {
      scope.dispose();
    }
  }

  private runOptions(request: ChatRequest, params: ChatParams, streaming: boolean) {
    return {
      batch: request.latencyClass === LatencyClass.LATENCY_CLASS_BATCH,
      needs: requiredCapabilities(params, streaming),
      explicitMaxTokens: request.maxTokens !== undefined && request.maxTokens > 0 ? request.maxTokens : undefined,
    };
  }

  /** Opens the stream and reads up to the first delta: failures until then may fall back. */
  private async openStream(t: Target, params: ChatParams, signal: AbortSignal): Promise<OpenedStream> {
    const iterable = await t.adapter.chatStream({ upstreamModel: t.upstreamModel, params, signal });
    const iterator = iterable[Symbol.asyncIterator]();
    const buffered: ChatStreamEvent[] = [];
    for (;;) {
      const r = await iterator.next();
      if (r.done) return { iterator, buffered, ended: true };
      buffered.push(r.value);
      if (isDelta(r.value) || r.value.finishReason !== undefined) return { iterator, buffered, ended: false };
    }
  }

  /**
   * Forwards deltas as the caller reads them (send awaits backpressure, and the upstream body is
   * pulled only after each send), then the last message with finish reason, usage and routing.
   */
  private async pump(requestId: string, plan: Plan, params: ChatParams, outcome: PlanOutcome<OpenedStream>, send: StreamSend): Promise<void> {
    const ok = outcome.ok as NonNullable<typeof outcome.ok>;
    const { target, value: opened } = ok;
    const model = target.planned.model;
    const provider = target.providerId;
    const reported: ProviderUsage = {};
    const text: string[] = [];
    const state: { finishReason: FinishReason } = { finishReason: FinishReason.FINISH_REASON_UNSPECIFIED };
    let failure: ProviderError | undefined;
    let ended = opened.ended;
    const { iterator } = opened;

    const forward = async (ev: ChatStreamEvent): Promise<void> => {
      if (ev.usage) mergeUsage(reported, ev.usage);
      if (ev.finishReason !== undefined) state.finishReason = ev.finishReason;
      if (!isDelta(ev)) return;
      let deltas: ToolCallDelta[] = [];
      if (ev.toolCalls) {
        deltas = ev.toolCalls;
        for (const d of deltas) text.push(d.name, d.argumentsJsonDelta);
      }
      if (ev.content) text.push(ev.content);
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
      // send failed: the caller went away. Stop reading upstream (aborts the provider request).
      await iterator.return?.(undefined).catch(() => undefined);
      throw e;
    } finally {
      ok.release();
    }

    if (failure?.reason === 'cancelled') throw failure;
    const usage = chatUsage(target.model, reported, params.messages, () => text.join(''));
    // A stream that broke after the provider's finish reason has all the output: answer normally.
    const finishReason = state.finishReason;
    if (failure && finishReason === FinishReason.FINISH_REASON_UNSPECIFIED) {
      if (failure.retriable) this.deps.breaker.failure(model, failure.reason);
      const attempt = ok.attempt;
      attempt.outcome = AttemptOutcome.ATTEMPT_OUTCOME_FAILED;
      attempt.reason = failure.reason;
      attempt.providerStatus = 200;
      attempt.error = `provider stream ended early: ${failure.message}`;
      attempt.latencyMs = Math.round(this.deps.now() - ok.startedAt);
      const code = failure.reason === 'deadline_exceeded' ? 'DEADLINE_EXCEEDED' : 'UNAVAILABLE';
      await send({
        chunk: { id: requestId, model, provider, contentDelta: '', toolCallDeltas: [], finishReason: FinishReason.FINISH_REASON_ERROR, usage, routing: routingOf(plan, outcome, model) },
        error: { code, message: `provider stream ended early after partial output: ${failure.message}`, retryAfterMs: 0 },
      });
      return;
    }
    ok.attempt.latencyMs = Math.round(this.deps.now() - ok.startedAt);
    if (finishReason === FinishReason.FINISH_REASON_CONTENT_FILTER) ok.attempt.reason = 'content_filter';
    await send({
      chunk: {
        id: requestId,
        model,
        provider,
        contentDelta: '',
        toolCallDeltas: [],
        finishReason: finishReason === FinishReason.FINISH_REASON_UNSPECIFIED ? FinishReason.FINISH_REASON_STOP : finishReason,
        usage,
        routing: routingOf(plan, outcome, model),
      },
      error: undefined,
    });
  }

  private filteredResponse(id: string, plan: Plan, outcome: PlanOutcome<unknown>, target: Target, params: ChatParams): ChatResponse {
    return {
      id,
      model: target.planned.model,
      provider: target.providerId,
      message: { role: Role.ROLE_ASSISTANT, content: '', name: '', toolCalls: [], toolCallId: '' },
      finishReason: FinishReason.FINISH_REASON_CONTENT_FILTER,
      usage: chatUsage(target.model, { outputTokens: 0 }, params.messages, () => ''),
      routing: routingOf(plan, outcome, target.planned.model),
    };
  }

  private failedResponse(id: string, plan: Plan, outcome: PlanOutcome<unknown>): ChatResponse {
    return {
      id,
      model: '',
      provider: '',
      message: undefined,
      finishReason: FinishReason.FINISH_REASON_UNSPECIFIED,
      usage: { ...ZERO_USAGE } satisfies Usage,
      routing: routingOf(plan, outcome, ''),
    };
  }
}

