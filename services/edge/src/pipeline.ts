import type { EdgeSections } from '@llmgw/config';
import { AppError } from '@llmgw/errors';
import { Metadata } from '@grpc/grpc-js';
import { callContext, errorKindFromProto, metadataValue, type CallContext, type StreamSink } from '@llmgw/grpc';
import type { Logger } from '@llmgw/logging';
import type { PolicyMetrics } from '@llmgw/metrics';
import type { Principal } from '@llmgw/proto/auth';
import type { ChatParams, ExecuteChatRequest, ExecutionError, UsageLabels } from '@llmgw/proto/executor';
import { QuotaDecision } from '@llmgw/proto/quota';
import { Operation, type CatalogEntry, type Plan, type PlanRouteRequest } from '@llmgw/proto/router';
import {
  ChatStreamResponse,
  EmbedRequest,
  Role,
  Routing,
  type ChatRequest,
  type ChatResponse,
  type EmbedResponse,
  type GetUsageRequest,
  type GetUsageResponse,
  type Message,
} from '@llmgw/proto/v1';
import { randomUUID } from 'node:crypto';
import { stickyBucket } from '@llmgw/sticky';
import { familyOf, PromptTokens } from '@llmgw/tokens';
import { AuthCache, isMistypedKey, requireScope, type Scope } from '@llmgw/caller-auth';
import { AccessRecord, type AccessOperation } from './access-log.js';
import type { Downstream } from './downstream.js';
import { policyFor, scanTexts, StreamPolicer, type CompiledPolicy, type JsonText, type ScanResult } from './content-policy.js';
import type { Classification, Embed, IntentClassifier } from './intent-classifier.js';
import { planEstimate, promptTokenCounts, type Estimate } from './estimate.js';
import type { PlanCache } from './plan-cache.js';
import { applyTemplate } from './templates.js';
import { applyPlan, requestTimeout, shapeChat, shapeEmbed, shapeUsageQuery, usageLabels } from './validate.js';

export interface PipelineDeps {
  /** The edge's sections of the config (the tenants' prompt-log policy), current after reloads. */
  config: () => EdgeSections;
  downstream: Downstream;
  authCache: AuthCache;
  planCache: PlanCache;
  now: () => number;
  /** Deadline for each control-plane call (auth, router, quota). */
  controlTimeoutMs?: number;
  /** One access log line per chat and embed request (default true). */
  accessLog?: boolean;
  /** Gives requests of routes with a classifier (the config's `intents`) their intent. */
  intents: IntentClassifier;
  /** Counts the content policies' enforcements. */
  policyMetrics?: PolicyMetrics;
}

/** The request's content policy and what of its prompt a log may show. */
interface Policed {
  policy: CompiledPolicy;
  /** The messages' contents with every match replaced. */
  logTexts: string[];
}

/** A request that passed auth, validation, routing and quota, ready for the executor. */
interface Admitted {
  principal: Principal;
  plan: Plan;
  deadline: number;
  /** Child logger with tenant and route, built on first use. */
  log: () => Logger;
  /** The route's classifier's verdict, when the route has one. */
  intent?: Classification;
  /** The tenant's content policy for the route, when it has one. */
  policed?: Policed;
}

type PlanBase = Pick<PlanRouteRequest, 'route' | 'taskType' | 'qualityTier' | 'latencyClass' | 'priority' | 'model' | 'modelOrRoute' | 'operation' | 'requiredCapabilities' | 'intent'>;

/** Trailer of a failed request carrying its routing record (a serialised llmgateway.v1.Routing). */
export const ROUTING_TRAILER = 'x-routing-bin';

/** Failures of a call after which the callee may still have done its work. */
const ANSWER_MAY_BE_LOST: ReadonlySet<string> = new Set(['deadline_exceeded', 'unavailable', 'cancelled']);

/**
 * The request pipeline of DESIGN.md: authenticate, shape, plan, validate against the plan,
 * reserve, execute. Nothing downstream is called before the request is known to be valid. The
 * edge decides nothing the router or the executor owns: prices, tokenizers, caps and guardrails
 * come in the plan, and the executor records the money (it publishes the usage event).
 */
export class GatewayPipeline {
  private readonly controlTimeoutMs: number;

  constructor(private readonly deps: PipelineDeps) {
    this.controlTimeoutMs = deps.controlTimeoutMs ?? 2_000;
  }

  /**
   * `modelOrRoute`: the HTTP surface's `model` field, set instead of the request's route and model
   * (the router resolves it: a route of that name, else a model pin).
   */
  async chat(req: ChatRequest, ctx: CallContext, modelOrRoute = ''): Promise<ChatResponse> {
    return this.logged(ctx, 'chat', async (access) => {
      const { a, params, labels } = await this.admitChat(req, ctx, false, modelOrRoute, access);
      const opts = await this.execOpts(ctx, a);
      const res = await this.executeOrRelease(ctx, a, () => this.deps.downstream.executeChat(this.executeRequest(ctx, a, params, labels), opts));
      const response = res.response;
      recordEdgeFacts(response?.routing, a, labels);
      access.executed(response?.routing, response?.usage);
      if (res.error) throw executionError(res.error, response?.routing);
      if (!response) throw new AppError('internal', 'executor returned no response');
      const answer = response.message;
      const completion = answer && a.policed?.policy.response ? this.enforceMessages(a.log(), a.policed.policy, [answer], 'response') : undefined;
      this.logPromptIfAllowed(a, req, completion?.[0] ?? answer?.content ?? '');
      return response;
    });
  }

  async chatStream(req: ChatRequest, ctx: CallContext, send: StreamSink<ChatStreamResponse>, modelOrRoute = ''): Promise<void> {
    return this.logged(ctx, 'chat_stream', async (access) => {
      const { a, params, labels } = await this.admitChat(req, ctx, true, modelOrRoute, access);
      let received = false;
      let relayedText = '';
      let routing: Routing | undefined;
      let failure: ExecutionError | undefined;
      const opts = await this.execOpts(ctx, a);
      const policy = a.policed?.policy;
      // A response policy lets text through as soon as no match can still grow into it.
      const policer = policy?.response ? new StreamPolicer(policy) : undefined;
      try {
        for await (const msg of this.deps.downstream.executeChatStream(this.executeRequest(ctx, a, params, labels), opts)) {
          received = true;
          if (msg.error) failure = msg.error;
          if (!msg.chunk) continue;
          const chunk = msg.chunk;
          relayedText += chunk.contentDelta;
          recordEdgeFacts(chunk.routing, a, labels);
          routing = chunk.routing ?? routing;
          if (chunk.routing) access.executed(chunk.routing, chunk.usage);
          if (policer) {
            // The last message (it carries the routing record) brings what was held back. Tool
            // calls, held whole, go in a message just before it, after the held text (the answer's
            // order: a surface such as Anthropic's opens a block per kind as it comes).
            const last = chunk.routing !== undefined;
            policer.holdToolCalls(chunk.toolCallDeltas);
            chunk.toolCallDeltas = [];
            chunk.contentDelta = policer.push(chunk.contentDelta) + (last ? policer.end() : '');
            const toolCallDeltas = last ? policer.endToolCalls() : [];
            if (policer.blockedBy !== undefined || last) this.report(a.log(), policy as CompiledPolicy, policer.result(), 'response');
            if (toolCallDeltas.length > 0) {
              await send(ChatStreamResponse.fromPartial({ id: chunk.id, model: chunk.model, provider: chunk.provider, contentDelta: chunk.contentDelta, toolCallDeltas }));
              chunk.contentDelta = '';
            }
            if (!last && chunk.contentDelta === '') continue;
          }
          await send(chunk);
        }
      } catch (err) {
        const e = toAppError(err, ctx);
        // Not a byte from the executor: it may never have had the request, so give the reservation back.
        if (!received && e.kind === 'unavailable') await this.release(ctx, a.principal);
        throw e;
      }
      if (failure) throw executionError(failure, routing);
      this.logPromptIfAllowed(a, req, policer ? (policer.result().logTexts[0] as string) : relayedText);
    });
  }

  async embed(req: EmbedRequest, ctx: CallContext, modelOrRoute = ''): Promise<EmbedResponse> {
    return this.logged(ctx, 'embed', (access) => this.embedLogged(req, ctx, modelOrRoute, access));
  }

  private async embedLogged(req: EmbedRequest, ctx: CallContext, modelOrRoute: string, access: AccessRecord): Promise<EmbedResponse> {
    const principal = await this.authenticate(ctx, 'embed');
    shapeEmbed(req);
    // Texts to embed reach the provider as prompts do: the same policy, before anything is reserved.
    const policy = policyFor(this.deps.config(), principal.tenantId, req.route || modelOrRoute);
    if (policy?.request) req.inputs = this.enforce(ctx.logger, policy, req.inputs, 'request').texts;
    return this.runEmbed(req, ctx, principal, modelOrRoute, access);
  }

  /** Plans, reserves and executes an embedding request already authenticated and shaped. */
  private async runEmbed(req: EmbedRequest, ctx: CallContext, principal: Principal, modelOrRoute: string, access?: AccessRecord): Promise<EmbedResponse> {
    const labels = this.usageLabels(req);
    const started = this.deps.now();
    const prompt = PromptTokens.texts(req.inputs);
    const plan = await this.plan(
      ctx,
      principal,
      { route: req.route, model: req.model, modelOrRoute, taskType: 0, qualityTier: 0, latencyClass: 0, priority: 0, operation: Operation.OPERATION_EMBED, requiredCapabilities: ['embeddings'], intent: '' },
      prompt.estimate('approx'),
      req.user,
    );
    access?.planned(plan, principal.keyId);
    await this.reserve(ctx, principal, plan, planEstimate(plan, prompt, 0));
    const a = this.admitted(ctx, principal, plan, started, requestTimeout(req.timeoutMs, plan));
    const opts = await this.execOpts(ctx, a);
    const res = await this.executeOrRelease(ctx, a, () =>
      this.deps.downstream.executeEmbed(
        { requestId: ctx.requestId, tenantId: principal.tenantId, keyId: principal.keyId, request: req, plan, promptTokens: promptTokenCounts(plan, prompt), labels },
        opts,
      ),
    );
    const response = res.response;
    access?.executed(response?.routing, response?.usage);
    if (res.error) throw executionError(res.error, response?.routing);
    if (!response) throw new AppError('internal', 'executor returned no response');
    return response;
  }

  /**
   * The intent of a request to a route with a classifier. Its text is embedded for the request's
   * tenant under a request id of its own (its own reservation and usage event); the exemplars for
   * the classifier's tenant. Neither call's trailers reach the caller.
   */
  private async classify(ctx: CallContext, principal: Principal, route: string, messages: ChatRequest['messages']): Promise<Classification | undefined> {
    const config = this.deps.config();
    // A route name comes from the caller: "constructor" must not find Object.prototype's.
    const classifier = Object.hasOwn(config.intents, route) ? config.intents[route] : undefined;
    if (!classifier) return undefined;
    const text = messages.findLast((m) => m.role === Role.ROLE_USER)?.content ?? '';
    if (!text) return undefined;
    const embedQuery: Embed = (embedRoute, texts) => this.embedVectors(internalContext(ctx, `${ctx.requestId}-intent`, ctx.signal), principal, embedRoute, texts);
    const payer: Principal = { tenantId: classifier.tenant, keyId: 'intent-classifier', tier: config.tenants[classifier.tenant]?.tier ?? '', scopes: ['embed'], admin: false };
    const embedExemplars: Embed = (embedRoute, texts) =>
      this.embedVectors(internalContext(ctx, `intent-exemplars-${randomUUID()}`, AbortSignal.timeout(EXEMPLAR_TIMEOUT_MS)), payer, embedRoute, texts);
    return this.deps.intents.classify(route, classifier, text, embedQuery, embedExemplars, principal.tenantId);
  }

  private async embedVectors(ctx: CallContext, principal: Principal, route: string, texts: string[]): Promise<Float32Array[]> {
    const req = EmbedRequest.fromPartial({ route, inputs: texts });
    shapeEmbed(req);
    const res = await this.runEmbed(req, ctx, principal, '');
    return [...res.embeddings].sort((x, y) => x.index - y.index).map((e) => Float32Array.from(e.values));
  }

  /** Runs a chat or embed request and writes its access line when it ends, however it ends. */
  private async logged<T>(ctx: CallContext, operation: AccessOperation, run: (access: AccessRecord) => Promise<T>): Promise<T> {
    const access = new AccessRecord(() => ctx.logger, operation, this.deps.now(), this.deps.now);
    if (this.deps.accessLog === false) return run(access);
    try {
      const out = await run(access);
      access.finish();
      return out;
    } catch (err) {
      access.finish(err);
      throw err;
    }
  }

  /** Usage is answered by the accountant, which checks the caller's key itself. */
  async getUsage(req: GetUsageRequest, ctx: CallContext): Promise<GetUsageResponse> {
    const authorization = metadataValue(ctx.metadata, 'authorization');
    if (!authorization) throw new AppError('unauthenticated', 'missing API key: send metadata "authorization: Bearer <key>"');
    shapeUsageQuery(req);
    return this.deps.downstream.getUsage(req, {
      timeoutMs: Math.min(ctx.remainingMs(), 10_000),
      requestId: ctx.requestId,
      metadata: { authorization },
      signal: ctx.signal,
    });
  }

  /** The names this key may put in `model`: routes, then models it may pin (asked of the router, which owns them). */
  async listModels(ctx: CallContext): Promise<CatalogEntry[]> {
    const principal = await this.authenticate(ctx);
    return this.deps.downstream.listModels({ tenantId: principal.tenantId, tier: principal.tier }, this.control(ctx, principal));
  }

  /** `scope` unset: any valid key will do. */
  async authenticate(ctx: CallContext, scope?: Scope): Promise<Principal> {
    const header = metadataValue(ctx.metadata, 'authorization');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) throw new AppError('unauthenticated', 'missing API key: send metadata "authorization: Bearer <key>"');
    // A key whose checksum does not match costs no lookup.
    if (isMistypedKey(match[1])) throw new AppError('unauthenticated', 'invalid API key');
    const digest = AuthCache.digest(match[1]);
    let principal = this.deps.authCache.get(digest);
    if (!principal) {
      const lookupStartedAt = this.deps.now();
      const res = await this.deps.downstream.authenticate(match[1], { timeoutMs: this.controlTimeoutMs, requestId: ctx.requestId, signal: ctx.signal });
      if (!res.principal) throw new AppError('unauthenticated', 'invalid API key');
      // Never past the key's expiry, and not at all if the key was revoked while auth was asked.
      this.deps.authCache.set(digest, res.principal, res.cacheTtlMs, { expiresAtMs: res.expiresAt?.getTime(), lookupStartedAt });
      principal = res.principal;
    }
    ctx.setTenant(principal.tenantId);
    if (scope) requireScope(principal, scope);
    return principal;
  }

  private async admitChat(req: ChatRequest, ctx: CallContext, stream: boolean, modelOrRoute: string, access: AccessRecord): Promise<{ a: Admitted; params: ChatParams; labels: UsageLabels }> {
    const principal = await this.authenticate(ctx, 'chat');
    applyTemplate(req, this.deps.config().templates, req.user || ctx.requestId, modelOrRoute);
    const shaped = shapeChat(req, { stream });
    const labels = this.usageLabels(req);
    // Before anything is classified, planned or reserved: a blocked request costs nothing.
    const policed = this.policeRequest(ctx, principal, req.route || modelOrRoute, req);
    const started = this.deps.now();
    const prompt = PromptTokens.chat(req.messages);
    const intent = await this.classify(ctx, principal, req.route || modelOrRoute, req.messages);
    const plan = await this.plan(
      ctx,
      principal,
      {
        route: req.route,
        model: req.model,
        modelOrRoute,
        taskType: req.taskType,
        qualityTier: req.qualityTier,
        latencyClass: req.latencyClass,
        priority: req.priority,
        operation: Operation.OPERATION_CHAT,
        requiredCapabilities: shaped.requiredCapabilities,
        intent: intent?.intent ?? '',
      },
      prompt.estimate('approx'),
      req.user,
    );
    access.planned(plan, principal.keyId);
    const { params, timeoutMs } = applyPlan(req, shaped, plan, prompt.estimate(familyOf(plan.attempts[0]?.tokenizer ?? 0)));
    params.promptTokens = promptTokenCounts(plan, prompt);
    await this.reserve(ctx, principal, plan, planEstimate(plan, prompt, params.maxTokens));
    return { a: { ...this.admitted(ctx, principal, plan, started, timeoutMs), intent, policed }, params, labels };
  }

  /**
   * Applies the tenant's content policy for the route the caller named to the request's messages
   * (their contents and tool calls' arguments): a blocking match refuses it, `redact` matches are
   * replaced in the messages the provider gets.
   */
  private policeRequest(ctx: CallContext, principal: Principal, route: string, req: ChatRequest): Policed | undefined {
    const policy = policyFor(this.deps.config(), principal.tenantId, route);
    if (!policy) return undefined;
    if (!policy.request) return { policy, logTexts: req.messages.map((m) => m.content) };
    return { policy, logTexts: this.enforceMessages(ctx.logger, policy, req.messages, 'request') };
  }

  /**
   * Polices messages' contents and tool calls' arguments in one scan (the same value is the same
   * placeholder in both), rewriting them in place; the contents as a log may show them.
   */
  private enforceMessages(log: Logger, policy: CompiledPolicy, messages: readonly Message[], direction: 'request' | 'response'): string[] {
    const calls = messages.flatMap((m) => m.toolCalls);
    const scan = this.enforce(log, policy, [...messages.map((m) => m.content), ...calls.map((c) => ({ json: c.argumentsJson }))], direction);
    messages.forEach((m, i) => (m.content = scan.texts[i] as string));
    calls.forEach((c, i) => (c.argumentsJson = scan.texts[messages.length + i] as string));
    return scan.logTexts.slice(0, messages.length);
  }

  /** Scans texts, counts and logs each enforcement (never the matched text) and refuses a blocking match. */
  private enforce(log: Logger, policy: CompiledPolicy, texts: readonly (string | JsonText)[], direction: 'request' | 'response'): ScanResult {
    return this.report(log, policy, scanTexts(policy, texts), direction);
  }

  private report(log: Logger, policy: CompiledPolicy, scan: ScanResult, direction: 'request' | 'response'): ScanResult {
    for (const e of scan.enforcements) {
      this.deps.policyMetrics?.enforced(policy.name, e.rule, e.action, direction);
      log.info({ policy: policy.name, detector: e.rule, action: e.action, direction, matches: e.matches }, 'content policy enforced');
    }
    if (scan.blockedBy !== undefined) {
      throw new AppError(policy.blockStatus, `content policy "${policy.name}" blocks this ${direction}: it matched "${scan.blockedBy}"`);
    }
    return scan;
  }

  private executeRequest(ctx: CallContext, a: Admitted, params: ChatParams, labels: UsageLabels): ExecuteChatRequest {
    return { requestId: ctx.requestId, tenantId: a.principal.tenantId, keyId: a.principal.keyId, request: undefined, plan: a.plan, params, labels };
  }

  /** The request's cost dimensions, checked before anything is planned or reserved. */
  private usageLabels(req: ChatRequest | EmbedRequest): UsageLabels {
    return usageLabels(req, this.deps.config().usage_labels.feature_key);
  }

  /**
   * Prompts stay out of logs unless the tenant's policy (`log_prompts`) lets them in. The keys
   * avoid the logger's redaction paths (`*.messages`, `*.content`), which would otherwise blank
   * the very prompt the tenant asked us to log.
   */
  private logPromptIfAllowed(a: Admitted, req: ChatRequest, completion: string): void {
    if (!this.deps.config().tenants[a.principal.tenantId]?.log_prompts) return;
    const texts = a.policed?.logTexts;
    a.log().info({ promptLog: { turns: req.messages.map((m, i) => ({ role: m.role, text: texts?.[i] ?? m.content })), completion } }, 'prompt logged by tenant policy');
  }

  /**
   * The router's plan, from the cache when an entry holds for this prompt size and sticky bucket.
   * The bucket keeps a weighted split sticky per end user; a request without one sticks by its id.
   */
  private async plan(ctx: CallContext, principal: Principal, base: PlanBase, promptTokens: number, user: string): Promise<Plan> {
    const planRequest: PlanRouteRequest = {
      ...base,
      tenantId: principal.tenantId,
      tier: principal.tier,
      promptTokens,
      stickyBucket: stickyBucket(user || ctx.requestId),
    };
    let plan = this.deps.planCache.get(planRequest);
    if (!plan) {
      plan = await this.deps.downstream.planRoute(planRequest, this.control(ctx, principal));
      this.deps.planCache.set(planRequest, plan);
    }
    if (plan.attempts.length === 0) throw new AppError('internal', 'router returned an empty plan');
    return plan;
  }

  /** Reserves what the plan may spend; a denial is RESOURCE_EXHAUSTED naming the limit. */
  private async reserve(ctx: CallContext, principal: Principal, plan: Plan, estimate: Estimate): Promise<void> {
    let decision;
    try {
      decision = await this.deps.downstream.reserveQuota(
        {
          requestId: ctx.requestId,
          tenantId: principal.tenantId,
          tier: principal.tier,
          route: plan.route,
          model: plan.attempts[0]?.model ?? '',
          estimatedTokens: estimate.tokens,
          estimatedCostMicros: estimate.costMicros,
        },
        this.control(ctx, principal),
      );
    } catch (err) {
      // The answer was lost, not necessarily the reservation: quota may have made it. Give it back
      // by request id (quota keeps a tombstone if the release overtakes the reserve).
      const e = toAppError(err, ctx);
      if (ANSWER_MAY_BE_LOST.has(e.kind)) void this.release(ctx, principal);
      throw e;
    }
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
  }

  private admitted(ctx: CallContext, principal: Principal, plan: Plan, startedAt: number, timeoutMs: number): Admitted {
    let logger: Logger | undefined;
    return {
      principal,
      plan,
      deadline: startedAt + Math.min(timeoutMs, ctx.remainingMs()),
      log: () => (logger ??= ctx.logger.child({ route: plan.route })),
    };
  }

  private control(ctx: CallContext, principal: Principal) {
    return { timeoutMs: this.controlTimeoutMs, requestId: ctx.requestId, tenantId: principal.tenantId, signal: ctx.signal };
  }

  /** Options of the executor call; a deadline already spent gives the reservation back first. */
  private async execOpts(ctx: CallContext, a: Admitted) {
    const timeoutMs = a.deadline - this.deps.now();
    if (timeoutMs <= 0) {
      await this.release(ctx, a.principal);
      throw new AppError('deadline_exceeded', 'deadline passed before the provider was called');
    }
    return { timeoutMs, requestId: ctx.requestId, tenantId: a.principal.tenantId, signal: ctx.signal };
  }

  /**
   * Runs the executor call. If the executor could not be reached, the reservation is given back;
   * if it was reached but its answer was lost, the reservation stays: the executor's usage event
   * reconciles it (or it expires at its reserved amount), never released for money maybe spent.
   */
  private async executeOrRelease<T>(ctx: CallContext, a: Admitted, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      const e = toAppError(err, ctx);
      if (e.kind === 'unavailable') await this.release(ctx, a.principal);
      else a.log().warn({ grpcCode: e.kind }, 'executor answer lost; reservation left to expire at its reserved amount');
      throw e;
    }
  }

  private async release(ctx: CallContext, principal: Principal): Promise<void> {
    await this.deps.downstream
      .releaseQuota({ requestId: ctx.requestId, tenantId: principal.tenantId }, { timeoutMs: this.controlTimeoutMs, requestId: ctx.requestId })
      .catch((err: unknown) => ctx.logger.warn({ err }, 'quota release failed; the reservation expires on its own'));
  }
}

/** What the edge owns goes on the executor's routing record: how sure its classifier was, the prompt version. */
function recordEdgeFacts(routing: Routing | undefined, a: Admitted, labels: UsageLabels): void {
  if (!routing) return;
  if (a.intent) routing.intentScore = a.intent.score;
  routing.promptVersion = labels.promptVersion;
}

/** Longest the exemplars' embedding may take; it does not die with the request that started it. */
const EXEMPLAR_TIMEOUT_MS = 30_000;

/** A context for the edge's own calls on a request's behalf: its own request id, trailers kept from the caller. */
function internalContext(ctx: CallContext, requestId: string, signal: AbortSignal): CallContext {
  return callContext({ method: 'intent-classifier', logger: ctx.logger, metadata: new Metadata(), signal, deadlineMs: Date.now() + Math.min(ctx.remainingMs(), EXEMPLAR_TIMEOUT_MS), requestId, tenantId: ctx.tenantId, clientRequestId: '' });
}

/** The caller's status for a failed execution, with every attempt in the `x-routing-bin` trailer. */
function executionError(e: ExecutionError, routing: Routing | undefined): AppError {
  return new AppError(errorKindFromProto(e.kind), e.message, {
    retryAfterMs: e.retryAfterMs > 0 ? e.retryAfterMs : undefined,
    trailers: routing ? { [ROUTING_TRAILER]: Routing.encode(routing).finish() } : {},
  });
}

function toAppError(err: unknown, ctx: CallContext): AppError {
  if (err instanceof AppError) return err;
  if (ctx.signal.aborted) return new AppError('cancelled', 'cancelled by the caller');
  return new AppError('internal', 'internal error', { cause: err });
}
