import { Metadata } from '@grpc/grpc-js';
import { AppError } from '@llmgw/errors';
import { MemoryEventBus } from '@llmgw/events';
import type { CallContext, CallOpts } from '@llmgw/grpc';
import { silentLogger } from '@llmgw/logging';
import { costMicros } from '@llmgw/pricing';
import type { AuthenticateResponse, Principal } from '@llmgw/proto/auth';
import {
  ExecuteChatResponse,
  ExecuteChatStreamResponse,
  ExecuteEmbedResponse,
  type ExecuteChatRequest,
  type ExecuteChatStreamRequest,
  type ExecuteEmbedRequest,
  type ExecutionError,
} from '@llmgw/proto/executor';
import { QuotaDecision, ReserveQuotaResponse, type ReleaseQuotaRequest, type ReserveQuotaRequest } from '@llmgw/proto/quota';
import { Operation, Plan, type PlanRouteRequest } from '@llmgw/proto/router';
import {
  AttemptOutcome,
  ChatRequest,
  ChatStreamResponse,
  EmbedRequest,
  FinishReason,
  GetUsageResponse,
  Role,
  TokenSource,
  UsageRecorded,
  type GetUsageRequest,
  type Routing,
  type Usage,
} from '@llmgw/proto/v1';
import { countChatTokens, countTokens } from '@llmgw/tokens';
import { afterEach, describe, expect, it } from 'vitest';
import { AuthCache } from '@llmgw/caller-auth';
import type { Downstream } from './downstream.js';
import { GatewayPipeline } from './pipeline.js';
import { PlanCache } from './plan-cache.js';
import { UsagePublisher } from './usage-publisher.js';
import { edgeTestConfig } from './test-config.js';

const config = edgeTestConfig();

const GOOD_KEY = 'sk-test-acme-0000000000000000';
const OTHER_KEY = 'sk-test-acme-1111111111111111';
const PRINCIPAL: Principal = { tenantId: 'acme', keyId: 'k-acme', tier: 'startup', scopes: [], admin: false };
const T0 = 1_700_000_000_000;

const MESSAGES = [
  { role: Role.ROLE_SYSTEM, content: 'You are terse.', name: '', toolCalls: [], toolCallId: '' },
  { role: Role.ROLE_USER, content: 'Say hello to the whole wide world, please.', name: '', toolCalls: [], toolCallId: '' },
];
const chatReq = (over: Partial<ChatRequest> = {}): ChatRequest => ChatRequest.fromPartial({ messages: MESSAGES, ...over });

const planOf = (...models: string[]): Plan =>
  Plan.fromPartial({
    route: 'chat',
    rule: 'default',
    attempts: models.map((m) => ({ model: m, provider: m === 'claude' ? 'sim-anthropic' : 'sim-openai', upstreamModel: m, timeoutMs: 5000 })),
    timeoutMs: 10_000,
  });

const ROUTING: Routing = {
  rule: 'default',
  chosenModel: 'small-fast',
  fallbackUsed: true,
  route: 'chat',
  attempts: [
    { model: 'claude', provider: 'sim-anthropic', outcome: AttemptOutcome.ATTEMPT_OUTCOME_FAILED, error: 'boom', latencyMs: 5, providerStatus: 500, reason: 'http_5xx' },
    { model: 'small-fast', provider: 'sim-openai', outcome: AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS, error: '', latencyMs: 9, providerStatus: 200, reason: '' },
  ],
};
const USAGE: Usage = { inputTokens: 21, outputTokens: 34, costUsd: 0.000099, costMicros: 99, tokensEstimated: false };

const allowed = ReserveQuotaResponse.fromPartial({ decision: QuotaDecision.QUOTA_DECISION_ALLOWED, limit: '', remaining: 100 });

type StreamStep = ExecuteChatStreamResponse | { throws: unknown };

/** The services behind the edge, recording every call. */
class FakeDownstream implements Downstream {
  readonly calls = {
    authenticate: [] as { apiKey: string; opts: CallOpts }[],
    planRoute: [] as { req: PlanRouteRequest; opts: CallOpts }[],
    reserveQuota: [] as { req: ReserveQuotaRequest; opts: CallOpts }[],
    releaseQuota: [] as { req: ReleaseQuotaRequest; opts: CallOpts }[],
    executeChat: [] as { req: ExecuteChatRequest; opts: CallOpts }[],
    executeChatStream: [] as { req: ExecuteChatStreamRequest; opts: CallOpts }[],
    executeEmbed: [] as { req: ExecuteEmbedRequest; opts: CallOpts }[],
    getUsage: [] as { req: GetUsageRequest; opts: CallOpts }[],
  };
  auth: AuthenticateResponse = { principal: PRINCIPAL, cacheTtlMs: 5_000 };
  plan: Plan = planOf('small-fast', 'claude');
  quota: ReserveQuotaResponse = allowed;
  chatResult: () => Promise<ExecuteChatResponse> = async () =>
    ExecuteChatResponse.fromPartial({
      response: {
        id: 'resp-1',
        model: 'small-fast',
        provider: 'sim-openai',
        message: { role: Role.ROLE_ASSISTANT, content: 'Hello, world.' },
        finishReason: FinishReason.FINISH_REASON_STOP,
        usage: USAGE,
        routing: ROUTING,
      },
    });
  stream: StreamStep[] = [];
  embedResult: () => Promise<ExecuteEmbedResponse> = async () =>
    ExecuteEmbedResponse.fromPartial({
      response: { id: 'e1', model: 'embed-small', provider: 'sim-openai', embeddings: [{ index: 0, values: [0.1] }], usage: { inputTokens: 3, costMicros: 1 } },
    });

  totalCalls(): number {
    return Object.values(this.calls).reduce((n, c) => n + c.length, 0);
  }

  async authenticate(apiKey: string, opts: CallOpts): Promise<AuthenticateResponse> {
    this.calls.authenticate.push({ apiKey, opts });
    return this.auth;
  }
  async planRoute(req: PlanRouteRequest, opts: CallOpts): Promise<Plan> {
    this.calls.planRoute.push({ req, opts });
    return this.plan;
  }
  async reserveQuota(req: ReserveQuotaRequest, opts: CallOpts): Promise<ReserveQuotaResponse> {
    this.calls.reserveQuota.push({ req, opts });
    return this.quota;
  }
  async releaseQuota(req: ReleaseQuotaRequest, opts: CallOpts): Promise<void> {
    this.calls.releaseQuota.push({ req, opts });
  }
  executeChat(req: ExecuteChatRequest, opts: CallOpts): Promise<ExecuteChatResponse> {
    this.calls.executeChat.push({ req, opts });
    return this.chatResult();
  }
  executeChatStream(req: ExecuteChatStreamRequest, opts: CallOpts): AsyncIterable<ExecuteChatStreamResponse> {
    this.calls.executeChatStream.push({ req, opts });
    const steps = this.stream;
    return (async function* () {
      for (const step of steps) {
        if ('throws' in step) throw step.throws;
        yield step;
      }
    })();
  }
  executeEmbed(req: ExecuteEmbedRequest, opts: CallOpts): Promise<ExecuteEmbedResponse> {
    this.calls.executeEmbed.push({ req, opts });
    return this.embedResult();
  }
  async getUsage(req: GetUsageRequest, opts: CallOpts): Promise<GetUsageResponse> {
    this.calls.getUsage.push({ req, opts });
    return GetUsageResponse.fromPartial({ rows: [] });
  }
  close(): void {}
}

/** The in-memory bus, recording every publish (before its dedup). */
class RecordingBus extends MemoryEventBus {
  readonly events: UsageRecorded[] = [];
  override async publish(subject: string, data: Uint8Array, msgId: string): Promise<void> {
    this.events.push(UsageRecorded.decode(data));
    return super.publish(subject, data, msgId);
  }
}

let seq = 0;
function makeCtx(authorization: string | null = `Bearer ${GOOD_KEY}`, over: Partial<Omit<CallContext, 'setTenant' | 'setTrailer' | 'trailers'>> = {}): CallContext & { abort: () => void } {
  const metadata = new Metadata();
  if (authorization !== null) metadata.set('authorization', authorization);
  const controller = new AbortController();
  let trailers: Metadata | undefined;
  return {
    get trailers() {
      return trailers;
    },
    setTrailer(key: string, value: string) {
      (trailers ??= new Metadata()).set(key, value);
    },
    requestId: `req-${++seq}`,
    tenantId: '',
    method: 'Chat',
    metadata,
    signal: controller.signal,
    remainingMs: () => Infinity,
    logger: silentLogger(),
    setTenant(tenantId: string) {
      this.tenantId = tenantId;
    },
    abort: () => controller.abort(new Error('client went away')),
    ...over,
  };
}

const publishers: UsagePublisher[] = [];
afterEach(async () => {
  for (const p of publishers.splice(0)) await p.close();
});

function setup(opts: { planTtlMs?: number; now?: () => number } = {}) {
  const downstream = new FakeDownstream();
  const bus = new RecordingBus();
  const publisher = new UsagePublisher(bus, silentLogger(), { retryIntervalMs: 60_000 });
  publishers.push(publisher);
  const now = opts.now ?? (() => T0);
  const authCache = new AuthCache({ now });
  const planCache = new PlanCache({ config, ttlMs: opts.planTtlMs ?? 1_000, now });
  const pipeline = new GatewayPipeline({ config, downstream, authCache, planCache, publisher, now });
  /** Usage events published so far (after the publisher's deferred sends). */
  const events = async () => {
    await publisher.flush();
    return bus.events;
  };
  return { downstream, bus, publisher, pipeline, events };
}

async function rejection(p: Promise<unknown>): Promise<AppError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof AppError) return err;
    throw new Error(`expected an AppError, got ${String(err)}`);
  }
  throw new Error('expected a rejection');
}

const chunk = (over: Partial<ChatStreamResponse>): ChatStreamResponse => ChatStreamResponse.fromPartial({ id: 'resp-s', ...over });
const streamMsg = (c: ChatStreamResponse | undefined, error?: ExecutionError): ExecuteChatStreamResponse => ({ chunk: c, error });

describe('GatewayPipeline authentication', () => {
  it.each<[string, string | null]>([
    ['no authorization', null],
    ['an empty authorization', ''],
    ['a Basic scheme', `Basic ${GOOD_KEY}`],
    ['a bare key', GOOD_KEY],
    ['Bearer without a key', 'Bearer '],
    ['Bearer with two tokens', `Bearer ${GOOD_KEY} extra`],
  ])('refuses %s as UNAUTHENTICATED without calling anything', async (_name, header) => {
    const { pipeline, downstream, events } = setup();
    const err = await rejection(pipeline.chat(chatReq(), makeCtx(header)));
    expect(err.kind).toBe('unauthenticated');
    expect(downstream.totalCalls()).toBe(0);
    expect(await events()).toHaveLength(0);
  });

  it('refuses a key auth does not know, before planning', async () => {
    const { pipeline, downstream } = setup();
    downstream.auth = { principal: undefined, cacheTtlMs: 0 };
    const err = await rejection(pipeline.chat(chatReq(), makeCtx()));
    expect(err.kind).toBe('unauthenticated');
    expect(downstream.calls.authenticate).toHaveLength(1);
    expect(downstream.calls.planRoute).toHaveLength(0);
  });

  it('passes only the key to auth, case-insensitively on the scheme, with a deadline', async () => {
    const { pipeline, downstream } = setup();
    await pipeline.chat(chatReq(), makeCtx(`bearer   ${GOOD_KEY}  `));
    expect(downstream.calls.authenticate).toHaveLength(1);
    expect(downstream.calls.authenticate[0]!.apiKey).toBe(GOOD_KEY);
    expect(downstream.calls.authenticate[0]!.opts.timeoutMs).toBeGreaterThan(0);
    expect(Number.isFinite(downstream.calls.authenticate[0]!.opts.timeoutMs)).toBe(true);
  });

  it('puts the tenant on the call context (and so on every later log line), cached or not', async () => {
    const { pipeline } = setup();
    const first = makeCtx();
    await pipeline.chat(chatReq(), first);
    expect(first.tenantId).toBe('acme');
    const second = makeCtx();
    await pipeline.chat(chatReq(), second);
    expect(second.tenantId).toBe('acme');
  });

  it('caches the principal: a second request with the same key does not call auth', async () => {
    const { pipeline, downstream } = setup();
    await pipeline.chat(chatReq(), makeCtx());
    await pipeline.chat(chatReq(), makeCtx());
    expect(downstream.calls.authenticate).toHaveLength(1);
    await pipeline.chat(chatReq(), makeCtx(`Bearer ${OTHER_KEY}`));
    expect(downstream.calls.authenticate).toHaveLength(2);
  });

  it('does not cache when auth grants no TTL', async () => {
    const { pipeline, downstream } = setup();
    downstream.auth = { principal: PRINCIPAL, cacheTtlMs: 0 };
    await pipeline.chat(chatReq(), makeCtx());
    await pipeline.chat(chatReq(), makeCtx());
    expect(downstream.calls.authenticate).toHaveLength(2);
  });
});

describe('GatewayPipeline admission', () => {
  it('refuses an invalid request with no router, quota or executor call', async () => {
    const { pipeline, downstream, events } = setup();
    const err = await rejection(pipeline.chat(chatReq({ maxTokens: 5_000 }), makeCtx()));
    expect(err.kind).toBe('invalid_argument');
    expect(err.message).toMatch(/^max_tokens: /);
    expect(downstream.calls.planRoute).toHaveLength(0);
    expect(downstream.calls.reserveQuota).toHaveLength(0);
    expect(downstream.calls.executeChat).toHaveLength(0);
    expect(await events()).toHaveLength(0);
  });

  it('refuses a prompt over the route limit before reserving quota', async () => {
    const { pipeline, downstream } = setup();
    const err = await rejection(pipeline.chat(chatReq({ route: 'tiny-prompt' }), makeCtx()));
    expect(err.kind).toBe('invalid_argument');
    expect(err.message).toMatch(/^messages: prompt has \d+ tokens, over the limit of 5 for route "tiny-prompt"/);
    expect(downstream.calls.reserveQuota).toHaveLength(0);
    expect(downstream.calls.executeChat).toHaveLength(0);
  });

  it('refuses an empty plan as INTERNAL before reserving quota', async () => {
    const { pipeline, downstream } = setup();
    downstream.plan = Plan.fromPartial({ route: 'chat' });
    const err = await rejection(pipeline.chat(chatReq(), makeCtx()));
    expect(err.kind).toBe('internal');
    expect(downstream.calls.reserveQuota).toHaveLength(0);
  });

  it('plans with the resolved route, the principal, the capabilities and the rough prompt size', async () => {
    const { pipeline, downstream } = setup();
    await pipeline.chatStream(chatReq({ tools: [{ name: 'f', description: '', parametersJsonSchema: '' }] }), makeCtx(), async () => undefined);
    const req = downstream.calls.planRoute[0]!.req;
    expect(req).toMatchObject({
      tenantId: 'acme',
      tier: 'startup',
      route: 'chat',
      operation: Operation.OPERATION_CHAT,
      requiredCapabilities: ['streaming', 'tools'],
      promptTokens: countChatTokens(MESSAGES, 'approx'),
    });
  });

  it('maps a quota denial to RESOURCE_EXHAUSTED with retry-after and rate-limit trailers, without executing', async () => {
    const { pipeline, downstream, events } = setup();
    downstream.quota = ReserveQuotaResponse.fromPartial({
      decision: QuotaDecision.QUOTA_DECISION_DENIED,
      limit: 'requests_per_minute',
      retryAfterMs: 1_500,
      limitValue: 120,
      remaining: 0,
      resetMs: 30_000,
    });
    const err = await rejection(pipeline.chat(chatReq(), makeCtx()));
    expect(err.kind).toBe('resource_exhausted');
    expect(err.message).toContain('requests_per_minute');
    expect(err.opts.retryAfterMs).toBe(1_500);
    expect(err.opts.trailers).toEqual({
      'x-ratelimit-limit': '120',
      'x-ratelimit-remaining': '0',
      'x-ratelimit-reset': '30000',
      'x-ratelimit-name': 'requests_per_minute',
    });
    expect(downstream.calls.executeChat).toHaveLength(0);
    expect(downstream.calls.releaseQuota).toHaveLength(0);
    expect(await events()).toHaveLength(0);
  });

  it('reports the tightest limit of an admitted request in its trailers, and none when no limit applies', async () => {
    const { pipeline, downstream } = setup();
    downstream.quota = ReserveQuotaResponse.fromPartial({
      decision: QuotaDecision.QUOTA_DECISION_ALLOWED,
      limit: 'tenant:requests_per_minute',
      limitValue: 120,
      remaining: 119,
      resetMs: 60_000,
    });
    const ctx = makeCtx();
    await pipeline.chat(chatReq(), ctx);
    expect(ctx.trailers?.getMap()).toEqual({
      'x-ratelimit-limit': '120',
      'x-ratelimit-remaining': '119',
      'x-ratelimit-reset': '60000',
      'x-ratelimit-name': 'tenant:requests_per_minute',
    });
    downstream.quota = ReserveQuotaResponse.fromPartial({ decision: QuotaDecision.QUOTA_DECISION_ALLOWED });
    const unlimited = makeCtx(`Bearer ${OTHER_KEY}`);
    await pipeline.chat(chatReq(), unlimited);
    expect(unlimited.trailers).toBeUndefined();
  });

  it('treats an UNSPECIFIED quota decision as a denial', async () => {
    const { pipeline, downstream } = setup();
    downstream.quota = ReserveQuotaResponse.fromPartial({ decision: QuotaDecision.QUOTA_DECISION_UNSPECIFIED });
    expect((await rejection(pipeline.chat(chatReq(), makeCtx()))).kind).toBe('resource_exhausted');
    expect(downstream.calls.executeChat).toHaveLength(0);
  });

  it('reserves prompt tokens + the default max tokens, priced at the first planned model (exact tokenizer)', async () => {
    const { pipeline, downstream } = setup();
    await pipeline.chat(chatReq(), makeCtx());
    const prompt = countChatTokens(MESSAGES, 'openai');
    const req = downstream.calls.reserveQuota[0]!.req;
    expect(req).toMatchObject({ tenantId: 'acme', tier: 'startup', route: 'chat', model: 'small-fast', estimatedTokens: prompt + 256 });
    expect(req.requestId).toBe(downstream.calls.executeChat[0]!.req.requestId);
    expect(req.estimatedCostMicros).toBe(costMicros({ inputPerMillionUsd: 0.15, outputPerMillionUsd: 0.6 }, prompt, 256));
  });

  it('uses the first planned model pricing and tokenizer, and a given max_tokens', async () => {
    const { pipeline, downstream } = setup();
    downstream.plan = planOf('claude', 'small-fast');
    await pipeline.chat(chatReq({ maxTokens: 100 }), makeCtx());
    const prompt = countChatTokens(MESSAGES, 'approx');
    const req = downstream.calls.reserveQuota[0]!.req;
    expect(req.model).toBe('claude');
    expect(req.estimatedTokens).toBe(prompt + 100);
    expect(req.estimatedCostMicros).toBe(costMicros({ inputPerMillionUsd: 1, outputPerMillionUsd: 5 }, prompt, 100));
    // 1 $/M in + 5 $/M out: clearly not small-fast's price.
    expect(req.estimatedCostMicros).toBe(Math.round(prompt * 1 + 100 * 5));
  });

  it('caches the plan: a second identical request does not call the router', async () => {
    const { pipeline, downstream } = setup();
    await pipeline.chat(chatReq(), makeCtx());
    await pipeline.chat(chatReq(), makeCtx());
    expect(downstream.calls.planRoute).toHaveLength(1);
    expect(downstream.calls.executeChat[1]!.req.plan).toEqual(downstream.plan);
    await pipeline.chat(chatReq({ tools: [{ name: 'f', description: '', parametersJsonSchema: '' }] }), makeCtx());
    expect(downstream.calls.planRoute).toHaveLength(2);
  });

  it('calls the router every time when the plan cache is off', async () => {
    const { pipeline, downstream } = setup({ planTtlMs: 0 });
    await pipeline.chat(chatReq(), makeCtx());
    await pipeline.chat(chatReq(), makeCtx());
    expect(downstream.calls.planRoute).toHaveLength(2);
  });
});

describe('GatewayPipeline.chat', () => {
  it('executes with the route defaults applied and publishes exactly one usage event from the response', async () => {
    const { pipeline, downstream, events } = setup();
    const ctx = makeCtx();
    const res = await pipeline.chat(chatReq(), ctx);
    expect(res.message?.content).toBe('Hello, world.');
    expect(downstream.calls.executeChat).toHaveLength(1);
    const exec = downstream.calls.executeChat[0]!;
    expect(exec.req).toMatchObject({ requestId: ctx.requestId, tenantId: 'acme', plan: downstream.plan });
    expect(exec.req.request).toMatchObject({ route: 'chat', maxTokens: 256, messages: MESSAGES });
    expect(exec.opts).toMatchObject({ timeoutMs: 10_000, requestId: ctx.requestId, tenantId: 'acme' });
    expect(downstream.calls.releaseQuota).toHaveLength(0);

    const evs = await events();
    expect(evs).toHaveLength(1);
    expect(evs[0]).toEqual(
      UsageRecorded.fromPartial({
        eventId: ctx.requestId,
        requestId: ctx.requestId,
        tenantId: 'acme',
        keyId: 'k-acme',
        route: 'chat',
        model: 'small-fast',
        provider: 'sim-openai',
        inputTokens: 21,
        outputTokens: 34,
        costMicros: 99,
        tokenSource: TokenSource.TOKEN_SOURCE_PROVIDER,
        occurredAt: new Date(T0),
        success: true,
        errorCode: '',
        fallbackUsed: true,
        attemptCount: 2,
        latencyMs: 0,
        streamed: false,
        operation: 'chat',
      }),
    );
  });

  it('bounds the executor deadline by the caller deadline', async () => {
    const { pipeline, downstream } = setup();
    await pipeline.chat(chatReq(), makeCtx(`Bearer ${GOOD_KEY}`, { remainingMs: () => 3_000 }));
    expect(downstream.calls.executeChat[0]!.opts.timeoutMs).toBe(3_000);
  });

  it('prices usage itself when the executor reports no cost', async () => {
    const { pipeline, downstream, events } = setup();
    downstream.chatResult = async () =>
      ExecuteChatResponse.fromPartial({ response: { model: 'claude', provider: 'sim-anthropic', usage: { inputTokens: 1_000, outputTokens: 2_000 } } });
    await pipeline.chat(chatReq(), makeCtx());
    expect((await events())[0]).toMatchObject({ model: 'claude', costMicros: 1_000 * 1 + 2_000 * 5 });
  });

  it.each<[string, string, number, string, number | undefined]>([
    ['UNAVAILABLE', 'unavailable', 0, 'all models failed', undefined],
    ['INVALID_ARGUMENT', 'invalid_argument', 0, 'model rejected the request', undefined],
    ['RESOURCE_EXHAUSTED', 'resource_exhausted', 2_500, 'provider rate limit', 2_500],
    ['DEADLINE_EXCEEDED', 'deadline_exceeded', 0, 'too slow', undefined],
    ['PERMISSION_DENIED', 'permission_denied', 0, 'no', undefined],
    ['SOMETHING_NEW', 'unavailable', 0, 'odd', undefined],
  ])('maps execution error %s to %s and publishes a failed usage event', async (code, kind, retryAfterMs, message, expectedRetry) => {
    const { pipeline, downstream, events } = setup();
    downstream.chatResult = async () =>
      ExecuteChatResponse.fromPartial({
        response: { id: 'r', model: '', provider: '', usage: { inputTokens: 0, outputTokens: 0 }, routing: { ...ROUTING, chosenModel: '', fallbackUsed: true } },
        error: { code, message, retryAfterMs },
      });
    const ctx = makeCtx();
    const err = await rejection(pipeline.chat(chatReq(), ctx));
    expect(err.kind).toBe(kind);
    expect(err.message).toBe(message);
    expect(err.opts.retryAfterMs).toBe(expectedRetry);
    expect(downstream.calls.releaseQuota).toHaveLength(0);
    const evs = await events();
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ requestId: ctx.requestId, success: false, errorCode: code, tenantId: 'acme', keyId: 'k-acme', route: 'chat' });
    // No model answered: the event names the last model tried.
    expect(evs[0]!.model).toBe('small-fast');
    expect(evs[0]!.attemptCount).toBe(2);
  });

  it('publishes a failed event when the executor answers with an error only', async () => {
    const { pipeline, downstream, events } = setup();
    downstream.chatResult = async () => ExecuteChatResponse.fromPartial({ error: { code: 'UNAVAILABLE', message: 'down' } });
    expect((await rejection(pipeline.chat(chatReq(), makeCtx()))).kind).toBe('unavailable');
    const evs = await events();
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ success: false, errorCode: 'UNAVAILABLE', inputTokens: 0, costMicros: 0 });
  });

  it('releases the reservation and publishes nothing when the executor is unreachable', async () => {
    const { pipeline, downstream, events } = setup();
    downstream.chatResult = async () => {
      throw new AppError('unavailable', 'executor unreachable');
    };
    const ctx = makeCtx();
    const err = await rejection(pipeline.chat(chatReq(), ctx));
    expect(err.kind).toBe('unavailable');
    expect(downstream.calls.releaseQuota).toHaveLength(1);
    expect(downstream.calls.releaseQuota[0]!.req).toEqual({ requestId: ctx.requestId, tenantId: 'acme' });
    expect(await events()).toHaveLength(0);
  });

  it('still reports UNAVAILABLE when the release itself fails', async () => {
    const { pipeline, downstream } = setup();
    downstream.chatResult = async () => {
      throw new AppError('unavailable', 'executor unreachable');
    };
    downstream.releaseQuota = async () => {
      throw new AppError('unavailable', 'quota down too');
    };
    expect((await rejection(pipeline.chat(chatReq(), makeCtx()))).kind).toBe('unavailable');
  });

  it('keeps the reservation and publishes nothing when the executor answer is lost (deadline)', async () => {
    const { pipeline, downstream, events } = setup();
    downstream.chatResult = async () => {
      throw new AppError('deadline_exceeded', 'deadline exceeded');
    };
    const err = await rejection(pipeline.chat(chatReq(), makeCtx()));
    expect(err.kind).toBe('deadline_exceeded');
    expect(downstream.calls.releaseQuota).toHaveLength(0);
    expect(await events()).toHaveLength(0);
  });

  it('hides a non-AppError failure as INTERNAL', async () => {
    const { pipeline, downstream } = setup();
    downstream.chatResult = async () => {
      throw new Error('secret detail');
    };
    const err = await rejection(pipeline.chat(chatReq(), makeCtx()));
    expect(err.kind).toBe('internal');
    expect(err.message).not.toContain('secret');
  });

  // BUG (see report): when the caller's deadline has already passed once quota is reserved,
  // execOpts throws deadline_exceeded before the executor is called, and executeOrRelease treats
  // that like a lost executor answer: the reservation is not given back.
  it('gives the reservation back when the deadline passes before the executor is called', async () => {
    let t = T0;
    const { pipeline, downstream } = setup({ now: () => (t += 100) });
    const err = await rejection(pipeline.chat(chatReq(), makeCtx(`Bearer ${GOOD_KEY}`, { remainingMs: () => 50 })));
    expect(err.kind).toBe('deadline_exceeded');
    expect(downstream.calls.executeChat).toHaveLength(0);
    expect(downstream.calls.releaseQuota).toHaveLength(1);
  });
});

describe('GatewayPipeline.chatStream', () => {
  const finalChunk = chunk({ model: 'small-fast', provider: 'sim-openai', finishReason: FinishReason.FINISH_REASON_STOP, usage: USAGE, routing: ROUTING });

  it('relays chunks in order and publishes one event from the last chunk usage', async () => {
    const { pipeline, downstream, events } = setup();
    const parts = [chunk({ contentDelta: 'Hel' }), chunk({ contentDelta: 'lo' }), finalChunk];
    downstream.stream = parts.map((c) => streamMsg(c));
    const sent: ChatStreamResponse[] = [];
    const ctx = makeCtx();
    await pipeline.chatStream(chatReq(), ctx, async (m) => {
      sent.push(m);
    });
    expect(sent).toEqual(parts);
    expect(downstream.calls.executeChatStream[0]!.req).toMatchObject({ requestId: ctx.requestId, tenantId: 'acme' });
    expect(downstream.calls.executeChatStream[0]!.req.request).toMatchObject({ maxTokens: 256, route: 'chat' });
    const evs = await events();
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({
      eventId: ctx.requestId,
      model: 'small-fast',
      provider: 'sim-openai',
      inputTokens: 21,
      outputTokens: 34,
      costMicros: 99,
      tokenSource: TokenSource.TOKEN_SOURCE_PROVIDER,
      success: true,
      streamed: true,
      fallbackUsed: true,
      attemptCount: 2,
      operation: 'chat',
    });
  });

  it('sends every chunk, then throws the error carried by the last message, with one failed event', async () => {
    const { pipeline, downstream, events } = setup();
    const errChunk = chunk({ finishReason: FinishReason.FINISH_REASON_ERROR, usage: { ...USAGE, outputTokens: 2 }, routing: ROUTING, model: 'small-fast' });
    downstream.stream = [
      streamMsg(chunk({ contentDelta: 'He' })),
      streamMsg(errChunk, { code: 'UNAVAILABLE', message: 'provider stream ended early', retryAfterMs: 0 }),
    ];
    const sent: ChatStreamResponse[] = [];
    const err = await rejection(
      pipeline.chatStream(chatReq(), makeCtx(), async (m) => {
        sent.push(m);
      }),
    );
    expect(err.kind).toBe('unavailable');
    expect(err.message).toBe('provider stream ended early');
    expect(sent).toEqual([chunk({ contentDelta: 'He' }), errChunk]);
    const evs = await events();
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ success: false, errorCode: 'UNAVAILABLE', outputTokens: 2, streamed: true, tokenSource: TokenSource.TOKEN_SOURCE_PROVIDER });
    expect(downstream.calls.releaseQuota).toHaveLength(0);
  });

  it('keeps retryAfterMs of a RESOURCE_EXHAUSTED stream error', async () => {
    const { pipeline, downstream } = setup();
    downstream.stream = [streamMsg(chunk({ routing: ROUTING }), { code: 'RESOURCE_EXHAUSTED', message: 'slow down', retryAfterMs: 700 })];
    const err = await rejection(pipeline.chatStream(chatReq(), makeCtx(), async () => undefined));
    expect(err.kind).toBe('resource_exhausted');
    expect(err.opts.retryAfterMs).toBe(700);
  });

  // BUG (latent, see report): a stream message carrying only `error` (no chunk) is skipped by
  // `if (!msg.chunk) continue`, so the failure is lost and a success event is published.
  it('does not report success when the executor sends an error without a chunk', async () => {
    const { pipeline, downstream, events } = setup();
    downstream.stream = [streamMsg(chunk({ contentDelta: 'Hi' })), streamMsg(undefined, { code: 'UNAVAILABLE', message: 'down', retryAfterMs: 0 })];
    const err = await rejection(pipeline.chatStream(chatReq(), makeCtx(), async () => undefined));
    expect(err.kind).toBe('unavailable');
    expect((await events())[0]?.success).toBe(false);
  });

  it('publishes estimated usage when the stream breaks after some chunks', async () => {
    const { pipeline, downstream, events } = setup();
    downstream.stream = [
      streamMsg(chunk({ contentDelta: 'Hello there, ' })),
      streamMsg(chunk({ contentDelta: 'general Kenobi' })),
      { throws: new AppError('unavailable', 'executor connection reset') },
    ];
    const sent: ChatStreamResponse[] = [];
    const err = await rejection(
      pipeline.chatStream(chatReq(), makeCtx(), async (m) => {
        sent.push(m);
      }),
    );
    expect(err.kind).toBe('unavailable');
    expect(sent.map((c) => c.contentDelta)).toEqual(['Hello there, ', 'general Kenobi']);
    // The executor had the request: no release, the usage is estimated.
    expect(downstream.calls.releaseQuota).toHaveLength(0);
    const evs = await events();
    expect(evs).toHaveLength(1);
    const input = countChatTokens(MESSAGES, 'openai');
    const output = countTokens('Hello there, general Kenobi', 'openai');
    expect(evs[0]).toMatchObject({
      model: 'small-fast',
      inputTokens: input,
      outputTokens: output,
      tokenSource: TokenSource.TOKEN_SOURCE_ESTIMATED,
      costMicros: costMicros({ inputPerMillionUsd: 0.15, outputPerMillionUsd: 0.6 }, input, output),
      success: false,
      errorCode: 'UNAVAILABLE',
      streamed: true,
    });
    expect(evs[0]!.outputTokens).toBeGreaterThan(0);
  });

  it('records CANCELLED when the caller went away mid-stream', async () => {
    const { pipeline, downstream, events } = setup();
    const ctx = makeCtx();
    downstream.stream = [streamMsg(chunk({ contentDelta: 'partial' })), { throws: new Error('stream aborted') }];
    const err = await rejection(
      pipeline.chatStream(chatReq(), ctx, async () => {
        ctx.abort();
      }),
    );
    expect(err.kind).toBe('cancelled');
    const evs = await events();
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ success: false, errorCode: 'CANCELLED', tokenSource: TokenSource.TOKEN_SOURCE_ESTIMATED });
  });

  it('releases the reservation and publishes nothing when the executor is unreachable before any chunk', async () => {
    const { pipeline, downstream, events } = setup();
    downstream.stream = [{ throws: new AppError('unavailable', 'executor unreachable') }];
    const sent: ChatStreamResponse[] = [];
    const err = await rejection(
      pipeline.chatStream(chatReq(), makeCtx(), async (m) => {
        sent.push(m);
      }),
    );
    expect(err.kind).toBe('unavailable');
    expect(sent).toHaveLength(0);
    expect(downstream.calls.releaseQuota).toHaveLength(1);
    expect(await events()).toHaveLength(0);
  });

  it('refuses a quota denial without opening the stream', async () => {
    const { pipeline, downstream } = setup();
    downstream.quota = ReserveQuotaResponse.fromPartial({ decision: QuotaDecision.QUOTA_DECISION_DENIED, limit: 'tokens_per_day', retryAfterMs: 9 });
    expect((await rejection(pipeline.chatStream(chatReq(), makeCtx(), async () => undefined))).kind).toBe('resource_exhausted');
    expect(downstream.calls.executeChatStream).toHaveLength(0);
  });

  // BUG (see report): a deadline that passes before the executor is called is billed as a
  // streamed request that reached the executor (estimated prompt tokens, priced), and the
  // reservation is not released.
  it('neither bills nor keeps the reservation when the deadline passes before the executor is called', async () => {
    let t = T0;
    const { pipeline, downstream, events } = setup({ now: () => (t += 100) });
    const err = await rejection(pipeline.chatStream(chatReq(), makeCtx(`Bearer ${GOOD_KEY}`, { remainingMs: () => 50 }), async () => undefined));
    expect(err.kind).toBe('deadline_exceeded');
    expect(downstream.calls.executeChatStream).toHaveLength(0);
    expect(await events()).toHaveLength(0);
    expect(downstream.calls.releaseQuota).toHaveLength(1);
  });
});

describe('GatewayPipeline.embed and getUsage', () => {
  it('plans an embedding, reserves input tokens only and publishes an embed event', async () => {
    const { pipeline, downstream, events } = setup();
    downstream.plan = planOf('embed-small');
    const inputs = ['first text', 'second text'];
    await pipeline.embed(EmbedRequest.fromPartial({ route: 'embeddings', inputs }), makeCtx());
    expect(downstream.calls.planRoute[0]!.req).toMatchObject({ operation: Operation.OPERATION_EMBED, requiredCapabilities: ['embeddings'], route: 'embeddings' });
    const tokens = inputs.reduce((n, t) => n + countTokens(t, 'openai'), 0);
    expect(downstream.calls.reserveQuota[0]!.req).toMatchObject({ model: 'embed-small', estimatedTokens: tokens });
    const evs = await events();
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ operation: 'embed', model: 'embed-small', inputTokens: 3, costMicros: 1, success: true, streamed: false });
  });

  it('forwards the caller authorization to the accountant, and refuses a call without one', async () => {
    const { pipeline, downstream } = setup();
    expect((await rejection(pipeline.getUsage({ tenantId: '', route: '', model: '', groupBy: [] }, makeCtx(null)))).kind).toBe('unauthenticated');
    expect(downstream.calls.getUsage).toHaveLength(0);
    await pipeline.getUsage({ tenantId: '', route: '', model: '', groupBy: [] }, makeCtx(`Bearer ${GOOD_KEY}`));
    expect(downstream.calls.getUsage[0]!.opts.metadata).toEqual({ authorization: `Bearer ${GOOD_KEY}` });
    expect(downstream.calls.getUsage[0]!.opts.timeoutMs).toBe(10_000);
    expect(downstream.calls.authenticate).toHaveLength(0);
  });
});
