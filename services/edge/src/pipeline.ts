import type { GatewayConfig } from '@llmgw/config';
import { AppError, type ErrorKind } from '@llmgw/errors';
import { metadataValue, type CallContext, type StreamSink } from '@llmgw/grpc';
import type { Logger } from '@llmgw/logging';
import { costMicros } from '@llmgw/pricing';
import type { Principal } from '@llmgw/proto/auth';
import type { ExecutionError } from '@llmgw/proto/executor';
import { QuotaDecision } from '@llmgw/proto/quota';
import { Operation, type Plan } from '@llmgw/proto/router';
import {
  TokenSource,
  type ChatRequest,
  type ChatResponse,
  type ChatStreamResponse,
  type EmbedRequest,
  type EmbedResponse,
  type GetUsageRequest,
  type GetUsageResponse,
  Routing,
  type Usage,
} from '@llmgw/proto/v1';
import { countChatTokens, countTokens, type TokenizerFamily } from '@llmgw/tokens';
import { AuthCache } from '@llmgw/caller-auth';
import type { Downstream } from './downstream.js';
import type { PlanCache } from './plan-cache.js';
import type { UsagePublisher } from './usage-publisher.js';
import { checkPromptSize, validateChat, validateEmbed } from './validate.js';

export interface PipelineDeps {
  config: GatewayConfig;
  downstream: Downstream;
  authCache: AuthCache;
  planCache: PlanCache;
  publisher: UsagePublisher;
  now: () => number;
  /** Deadline for each control-plane call (auth, router, quota). */
  controlTimeoutMs?: number;
}

/** A request that passed auth, validation, routing and quota, ready for the executor. */
interface Admitted {
  principal: Principal;
  plan: Plan;
  routeName: string;
  promptTokens: number;
  deadline: number;
  /** Child logger with tenant and route, built on first use. */
  log: () => Logger;
  startedAt: number;
}

interface UsageFacts {
  model: string;
  provider: string;
  usage: Usage | undefined;
  routing: Routing | undefined;
  errorCode: string;
  streamed: boolean;
  operation: 'chat' | 'embed';
}

/** Trailer of a failed request carrying its routing record (a serialised llmgateway.v1.Routing). */
export const ROUTING_TRAILER = 'x-routing-bin';

const EXECUTION_ERROR_KINDS: Record<string, ErrorKind> = {
  UNAVAILABLE: 'unavailable',
  INVALID_ARGUMENT: 'invalid_argument',
  DEADLINE_EXCEEDED: 'deadline_exceeded',
  RESOURCE_EXHAUSTED: 'resource_exhausted',
  PERMISSION_DENIED: 'permission_denied',
  CANCELLED: 'cancelled',
  FAILED_PRECONDITION: 'failed_precondition',
};

/**
 * The request pipeline of DESIGN.md: authenticate, validate, plan, reserve, execute, publish.
 * Nothing downstream is called before the request is known to be valid, and every request that
 * reached the executor yields exactly one usage event.
 */
export class GatewayPipeline {
  private readonly controlTimeoutMs: number;

  constructor(private readonly deps: PipelineDeps) {
    this.controlTimeoutMs = deps.controlTimeoutMs ?? 2_000;
  }

  async chat(req: ChatRequest, ctx: CallContext): Promise<ChatResponse> {
    const { a, request } = await this.admitChat(req, ctx, false);
    const principal = a.principal;
    const opts = await this.execOpts(ctx, a);
    const res = await this.executeOrRelease(ctx, a, () =>
      this.deps.downstream.executeChat({ requestId: ctx.requestId, tenantId: principal.tenantId, request, plan: a.plan }, opts),
    );
    const response = res.response;
    this.publishUsage(ctx, a, {
      model: response?.model || response?.routing?.chosenModel || lastAttemptModel(response?.routing),
      provider: response?.provider ?? '',
      usage: response?.usage,
      routing: response?.routing,
      errorCode: res.error?.code ?? '',
      streamed: false,
      operation: 'chat',
    });
    if (res.error) throw executionError(res.error, response?.routing);
    if (!response) throw new AppError('internal', 'executor returned no response');
    this.logPromptIfAllowed(a, req, response.message?.content ?? '');
    return response;
  }

  async chatStream(req: ChatRequest, ctx: CallContext, send: StreamSink<ChatStreamResponse>): Promise<void> {
    const { a, request } = await this.admitChat(req, ctx, true);
    const principal = a.principal;
    let received = false;
    let relayedText = '';
    let last: ChatStreamResponse | undefined;
    let failure: ExecutionError | undefined;
    const opts = await this.execOpts(ctx, a);
    try {
      const stream = this.deps.downstream.executeChatStream({ requestId: ctx.requestId, tenantId: principal.tenantId, request, plan: a.plan }, opts);
      for await (const msg of stream) {
        received = true;
        if (msg.error) failure = msg.error;
        if (!msg.chunk) continue;
        relayedText += msg.chunk.contentDelta;
        if (msg.chunk.usage || msg.chunk.routing) last = msg.chunk;
        await send(msg.chunk);
      }
    } catch (err) {
      const e = toAppError(err, ctx);
      if (!received && e.kind === 'unavailable') {
        await this.release(ctx, a);
      } else {
        // The executor had the request: count what was relayed, since the final usage never came.
        this.publishUsage(ctx, a, {
          model: last?.model ?? a.plan.attempts[0]?.model ?? '',
          provider: last?.provider ?? '',
          usage: { inputTokens: a.promptTokens, outputTokens: countTokens(relayedText, this.tokenizerOf(a)), costUsd: 0, costMicros: 0, tokensEstimated: true },
          routing: undefined,
          errorCode: ctx.signal.aborted ? 'CANCELLED' : codeName(e.kind),
          streamed: true,
          operation: 'chat',
        });
      }
      throw e;
    }
    this.publishUsage(ctx, a, {
      model: last?.model || last?.routing?.chosenModel || lastAttemptModel(last?.routing),
      provider: last?.provider ?? '',
      usage: last?.usage,
      routing: last?.routing,
      errorCode: failure?.code ?? '',
      streamed: true,
      operation: 'chat',
    });
    if (failure) throw executionError(failure, last?.routing);
    this.logPromptIfAllowed(a, req, relayedText);
  }

  async embed(req: EmbedRequest, ctx: CallContext): Promise<EmbedResponse> {
    const principal = await this.authenticate(ctx);
    const v = validateEmbed(req, this.deps.config);
    const a = await this.admit(ctx, principal, v.routeName, {
      plan: { ...this.planBase({ ...req, taskType: 0, qualityTier: 0, latencyClass: 0 }), operation: Operation.OPERATION_EMBED, requiredCapabilities: ['embeddings'] },
      promptTokens: (family) => req.inputs.reduce((n, t) => n + countTokens(t, family), 0),
      outputTokens: 0,
      timeoutMs: v.timeoutMs,
      checkPrompt: () => undefined,
    });
    const request = { ...req, route: v.routeName };
    const opts = await this.execOpts(ctx, a);
    const res = await this.executeOrRelease(ctx, a, () =>
      this.deps.downstream.executeEmbed({ requestId: ctx.requestId, tenantId: principal.tenantId, request, plan: a.plan }, opts),
    );
    const response = res.response;
    this.publishUsage(ctx, a, {
      model: response?.model || lastAttemptModel(response?.routing),
      provider: response?.provider ?? '',
      usage: response?.usage,
      routing: response?.routing,
      errorCode: res.error?.code ?? '',
      streamed: false,
      operation: 'embed',
    });
    if (res.error) throw executionError(res.error, response?.routing);
    if (!response) throw new AppError('internal', 'executor returned no response');
    return response;
  }

  /** Usage is answered by the accountant, which checks the caller's key itself. */
  async getUsage(req: GetUsageRequest, ctx: CallContext): Promise<GetUsageResponse> {
    const authorization = metadataValue(ctx.metadata, 'authorization');
    if (!authorization) throw new AppError('unauthenticated', 'missing API key: send metadata "authorization: Bearer <key>"');
    return this.deps.downstream.getUsage(req, {
      timeoutMs: Math.min(ctx.remainingMs(), 10_000),
      requestId: ctx.requestId,
      metadata: { authorization },
      signal: ctx.signal,
    });
  }

  async authenticate(ctx: CallContext): Promise<Principal> {
    const header = metadataValue(ctx.metadata, 'authorization');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) throw new AppError('unauthenticated', 'missing API key: send metadata "authorization: Bearer <key>"');
    const digest = AuthCache.digest(match[1]);
    let principal = this.deps.authCache.get(digest);
    if (!principal) {
      const res = await this.deps.downstream.authenticate(match[1], { timeoutMs: this.controlTimeoutMs, requestId: ctx.requestId, signal: ctx.signal });
      if (!res.principal) throw new AppError('unauthenticated', 'invalid API key');
      this.deps.authCache.set(digest, res.principal, res.cacheTtlMs);
      principal = res.principal;
    }
    ctx.setTenant(principal.tenantId);
    return principal;
  }

  private async admitChat(req: ChatRequest, ctx: CallContext, stream: boolean): Promise<{ a: Admitted; request: ChatRequest }> {
    const principal = await this.authenticate(ctx);
    const v = validateChat(req, this.deps.config, { stream });
    const a = await this.admit(ctx, principal, v.routeName, {
      plan: { ...this.planBase(req), operation: Operation.OPERATION_CHAT, requiredCapabilities: v.requiredCapabilities },
      promptTokens: (family) => countChatTokens(req.messages, family),
      outputTokens: v.maxTokens,
      timeoutMs: v.timeoutMs,
      checkPrompt: (tokens) => checkPromptSize(tokens, v),
    });
    return { a, request: { ...req, maxTokens: v.maxTokens, route: v.routeName } };
  }

  private tokenizerOf(a: Admitted): TokenizerFamily {
    return this.deps.config.models[a.plan.attempts[0]?.model ?? '']?.tokenizer ?? 'approx';
  }

  /** Prompts stay out of logs unless the tenant's policy (`log_prompts`) lets them in. */
  private logPromptIfAllowed(a: Admitted, req: ChatRequest, completion: string): void {
    if (!this.deps.config.tenants[a.principal.tenantId]?.log_prompts) return;
    a.log().info({ promptLog: { messages: req.messages.map((m) => ({ role: m.role, text: m.content })), completion } }, 'prompt logged by tenant policy');
  }

  private planBase(req: Pick<ChatRequest, 'route' | 'taskType' | 'qualityTier' | 'latencyClass' | 'model'>) {
    return { route: req.route, taskType: req.taskType, qualityTier: req.qualityTier, latencyClass: req.latencyClass, model: req.model };
  }

  private async admit(
    ctx: CallContext,
    principal: Principal,
    routeName: string,
    spec: {
      plan: { route: string; taskType: number; qualityTier: number; latencyClass: number; model: string; operation: Operation; requiredCapabilities: string[] };
      promptTokens: (family: TokenizerFamily) => number;
      outputTokens: number;
      timeoutMs: number;
      checkPrompt: (tokens: number) => void;
    },
  ): Promise<Admitted> {
    const startedAt = this.deps.now();
    const deadline = startedAt + Math.min(spec.timeoutMs, ctx.remainingMs());
    let logger: Logger | undefined;
    const log = () => (logger ??= ctx.logger.child({ route: routeName }));
    const control = { timeoutMs: this.controlTimeoutMs, requestId: ctx.requestId, tenantId: principal.tenantId, signal: ctx.signal };
    const roughTokens = spec.promptTokens('approx');
    const planRequest = { ...spec.plan, route: routeName, tenantId: principal.tenantId, tier: principal.tier, promptTokens: roughTokens };
    let plan = this.deps.planCache.get(planRequest);
    if (!plan) {
      plan = await this.deps.downstream.planRoute(planRequest, control);
      this.deps.planCache.set(planRequest, plan);
    }
    const first = plan.attempts[0];
    const model = first ? this.deps.config.models[first.model] : undefined;
    if (!first || !model) throw new AppError('internal', 'router returned an empty plan');
    const promptTokens = model.tokenizer === 'approx' ? roughTokens : spec.promptTokens(model.tokenizer);
    spec.checkPrompt(promptTokens);
    const decision = await this.deps.downstream.reserveQuota(
      {
        requestId: ctx.requestId,
        tenantId: principal.tenantId,
        tier: principal.tier,
        route: routeName,
        model: first.model,
        estimatedTokens: promptTokens + spec.outputTokens,
        estimatedCostMicros: costMicros(
          { inputPerMillionUsd: model.pricing.input_per_million_usd, outputPerMillionUsd: model.pricing.output_per_million_usd },
          promptTokens,
          spec.outputTokens,
        ),
      },
      control,
    );
    const rateLimit = {
      'x-ratelimit-limit': String(decision.limitValue),
      'x-ratelimit-remaining': String(decision.remaining),
      'x-ratelimit-reset': String(decision.resetMs),
      'x-ratelimit-name': decision.limit,
    };
    if (decision.decision !== QuotaDecision.QUOTA_DECISION_ALLOWED) {
      throw new AppError('resource_exhausted', `quota exceeded: limit "${decision.limit}" (${decision.limitValue}); retry in ${decision.retryAfterMs} ms`, {
        retryAfterMs: decision.retryAfterMs,
        trailers: rateLimit,
      });
    }
    // An admitted request reports its tightest limit too, so callers can pace themselves.
    if (decision.limit) for (const [k, v] of Object.entries(rateLimit)) ctx.setTrailer(k, v);
    return { principal, plan, routeName, promptTokens, deadline, log, startedAt };
  }

  /** Options of the executor call; a deadline already spent gives the reservation back first. */
  private async execOpts(ctx: CallContext, a: Admitted) {
    const timeoutMs = a.deadline - this.deps.now();
    if (timeoutMs <= 0) {
      await this.release(ctx, a);
      throw new AppError('deadline_exceeded', 'deadline passed before the provider was called');
    }
    return { timeoutMs, requestId: ctx.requestId, tenantId: a.principal.tenantId, signal: ctx.signal };
  }

  /**
   * Runs the executor call. If the executor could not be reached, the reservation is given back;
   * if it was reached but its answer was lost, the reservation stays and expires at its reserved
   * amount: we would rather over-count than lose money.
   */
  private async executeOrRelease<T>(ctx: CallContext, a: Admitted, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      const e = toAppError(err, ctx);
      if (e.kind === 'unavailable') await this.release(ctx, a);
      else a.log().warn({ grpcCode: e.kind }, 'executor answer lost; reservation left to expire at its reserved amount');
      throw e;
    }
  }

  private async release(ctx: CallContext, a: Admitted): Promise<void> {
    await this.deps.downstream
      .releaseQuota({ requestId: ctx.requestId, tenantId: a.principal.tenantId }, { timeoutMs: this.controlTimeoutMs, requestId: ctx.requestId })
      .catch((err: unknown) => a.log().warn({ err }, 'quota release failed; the reservation expires on its own'));
  }

  private publishUsage(ctx: CallContext, a: Admitted, f: UsageFacts): void {
    this.deps.publisher.publish({
      eventId: ctx.requestId,
      requestId: ctx.requestId,
      tenantId: a.principal.tenantId,
      keyId: a.principal.keyId,
      route: a.routeName,
      model: f.model,
      provider: f.provider,
      inputTokens: f.usage?.inputTokens ?? 0,
      outputTokens: f.usage?.outputTokens ?? 0,
      costMicros: f.usage?.costMicros || this.priceOf(f.model, f.usage),
      tokenSource: f.usage?.tokensEstimated ? TokenSource.TOKEN_SOURCE_ESTIMATED : TokenSource.TOKEN_SOURCE_PROVIDER,
      occurredAt: new Date(this.deps.now()),
      success: f.errorCode === '',
      errorCode: f.errorCode,
      fallbackUsed: f.routing?.fallbackUsed ?? false,
      attemptCount: f.routing?.attempts.length ?? 0,
      latencyMs: this.deps.now() - a.startedAt,
      streamed: f.streamed,
      operation: f.operation,
    });
  }

  /** Cost for usage the edge had to estimate itself (a stream cut before its final message). */
  private priceOf(model: string, usage: Usage | undefined): number {
    const m = this.deps.config.models[model];
    if (!m || !usage) return 0;
    return costMicros(
      { inputPerMillionUsd: m.pricing.input_per_million_usd, outputPerMillionUsd: m.pricing.output_per_million_usd },
      usage.inputTokens,
      usage.outputTokens,
    );
  }
}

function lastAttemptModel(routing: Routing | undefined): string {
  return routing?.attempts.at(-1)?.model ?? '';
}

/** The caller's status for a failed execution, with every attempt in the `x-routing-bin` trailer. */
function executionError(e: ExecutionError, routing: Routing | undefined): AppError {
  return new AppError(EXECUTION_ERROR_KINDS[e.code] ?? 'unavailable', e.message, {
    retryAfterMs: e.retryAfterMs > 0 ? e.retryAfterMs : undefined,
    trailers: routing ? { [ROUTING_TRAILER]: Routing.encode(routing).finish() } : {},
  });
}

function toAppError(err: unknown, ctx: CallContext): AppError {
  if (err instanceof AppError) return err;
  if (ctx.signal.aborted) return new AppError('cancelled', 'cancelled by the caller');
  return new AppError('internal', 'internal error', { cause: err });
}

function codeName(kind: ErrorKind): string {
  return kind.toUpperCase();
}
