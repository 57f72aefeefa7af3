import { Writable } from 'node:stream';
import { Metadata } from '@grpc/grpc-js';
import type { EdgeSections } from '@llmgw/config';
import { AppError, type ErrorKind as AppErrorKind } from '@llmgw/errors';
import type { CallContext, CallOpts } from '@llmgw/grpc';
import { createLogger, silentLogger } from '@llmgw/logging';
import { costMicros } from '@llmgw/pricing';
import type { AuthenticateResponse, Principal } from '@llmgw/proto/auth';
import {
  ErrorKind,
  ExecuteChatResponse,
  ExecuteChatStreamResponse,
  ExecuteEmbedResponse,
  ToolChoiceMode,
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
  GetUsageRequest,
  GetUsageResponse,
  LatencyClass,
  Priority,
  QualityTier,
  ResponseFormatType,
  Role,
  Routing,
  TaskType,
  type Message,
  type Usage,
} from '@llmgw/proto/v1';
import { stickyBucket } from '@llmgw/sticky';
import { countChatTokens, countChatTokensUpperBound, countTokens, familyOf } from '@llmgw/tokens';
import { describe, expect, it, vi } from 'vitest';
import { AuthCache } from '@llmgw/caller-auth';
import type { Downstream } from './downstream.js';
import { IntentClassifier } from './intent-classifier.js';
import { GatewayPipeline, ROUTING_TRAILER } from './pipeline.js';
import { allowed, chatReq, execError, FakeDownstream, GOOD_KEY, MESSAGES, msg, OTHER_KEY, PRINCIPAL, ROUTING, T0, USAGE } from './test-downstream.js';
import { PlanCache } from './plan-cache.js';
import { edgeTestSections, MODELS, TEST_CONFIG_YAML, testPlan } from './test-config.js';

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
    path: '/llmgateway.v1.GatewayService/Chat',
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

/** A context whose logger is the production one (with its redaction), recording every line. */
function loggedCtx(authorization = `Bearer ${GOOD_KEY}`) {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  // pino writes synchronously to a plain stream, so lines are there once the call returns.
  const ctx = makeCtx(authorization, { logger: createLogger({ service: 'edge', destination }) });
  const promptLines = () => lines.filter((l) => l.msg === 'prompt logged by tenant policy');
  return { ctx, lines, promptLines };
}

function setup(opts: { planTtlMs?: number; now?: () => number; sections?: EdgeSections } = {}) {
  const downstream = new FakeDownstream();
  const now = opts.now ?? (() => T0);
  const authCache = new AuthCache({ now });
  const planCache = new PlanCache({ ttlMs: opts.planTtlMs ?? 1_000, now });
  const state = { sections: opts.sections ?? edgeTestSections() };
  const pipeline = new GatewayPipeline({ config: () => state.sections, downstream, authCache, planCache, now, intents: new IntentClassifier({ logger: silentLogger() }) });
  return { downstream, pipeline, state };
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

const routingOf = (err: AppError): Routing => Routing.decode(err.opts.trailers?.[ROUTING_TRAILER] as Uint8Array);

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
    ['a key of the gateway format whose checksum does not match', `Bearer llmgw_${'A'.repeat(46)}`],
  ])('refuses %s as UNAUTHENTICATED without calling anything', async (_name, header) => {
    const { pipeline, downstream } = setup();
    const err = await rejection(pipeline.chat(chatReq(), makeCtx(header)));
    expect(err.kind).toBe('unauthenticated');
    expect(downstream.totalCalls()).toBe(0);
  });

  it('refuses a key without the scope of the call with PERMISSION_DENIED, before planning', async () => {
    const { pipeline, downstream } = setup();
    downstream.auth = { principal: { ...PRINCIPAL, scopes: ['embed'] }, cacheTtlMs: 0 };
    const err = await rejection(pipeline.chat(chatReq(), makeCtx()));
    expect(err).toMatchObject({ kind: 'permission_denied', message: 'this key lacks the scope "chat"' });
    downstream.auth = { principal: { ...PRINCIPAL, scopes: ['chat'] }, cacheTtlMs: 0 };
    const embedErr = await rejection(pipeline.embed(EmbedRequest.fromPartial({ route: 'embeddings', inputs: ['a'] }), makeCtx()));
    expect(embedErr.message).toBe('this key lacks the scope "embed"');
    expect(downstream.calls.planRoute).toHaveLength(0);
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
  it('calls auth, the router, quota and only then the executor', async () => {
    const { pipeline, downstream } = setup();
    await pipeline.chat(chatReq(), makeCtx());
    expect(downstream.order).toEqual(['authenticate', 'planRoute', 'reserveQuota', 'executeChat']);
  });

  it('refuses a badly shaped request with no router, quota or executor call', async () => {
    const { pipeline, downstream } = setup();
    const err = await rejection(pipeline.chat(chatReq({ temperature: 3 }), makeCtx()));
    expect(err.kind).toBe('invalid_argument');
    expect(err.message).toMatch(/^temperature: /);
    expect(downstream.order).toEqual(['authenticate']);
  });

  it('refuses max_tokens over the plan\'s cap as INVALID_ARGUMENT naming the field, before quota', async () => {
    const { pipeline, downstream } = setup();
    const err = await rejection(pipeline.chat(chatReq({ maxTokens: 5_000 }), makeCtx()));
    expect(err.kind).toBe('invalid_argument');
    expect(err.message).toBe('max_tokens: 5000 is over the cap of 2048 for route "chat"');
    expect(downstream.calls.planRoute).toHaveLength(1);
    expect(downstream.calls.reserveQuota).toHaveLength(0);
    expect(downstream.calls.executeChat).toHaveLength(0);
  });

  it('refuses a prompt over the plan\'s limit before reserving quota, counted with the first attempt\'s tokenizer', async () => {
    const { pipeline, downstream } = setup({ planTtlMs: 0 });
    downstream.plan = testPlan('tiny-prompt', ['small-fast']);
    const exact = await rejection(pipeline.chat(chatReq({ route: 'tiny-prompt' }), makeCtx()));
    expect(exact.kind).toBe('invalid_argument');
    expect(exact.message).toBe(`messages: prompt has ${countChatTokens(MESSAGES, 'openai')} tokens, over the limit of 5 for route "tiny-prompt"`);
    downstream.plan = testPlan('tiny-prompt', ['claude']);
    const approx = await rejection(pipeline.chat(chatReq({ route: 'tiny-prompt', maxTokens: 10 }), makeCtx()));
    expect(approx.message).toContain(`prompt has ${countChatTokens(MESSAGES, 'approx')} tokens`);
    expect(downstream.calls.reserveQuota).toHaveLength(0);
    expect(downstream.calls.executeChat).toHaveLength(0);
  });

  it.each<[string, Partial<ChatRequest>, string]>([
    ['a tool the route does not allow', { tools: [{ name: 'delete_account', description: '', parametersJsonSchema: '{}', sideEffects: false }] }, 'tools[0].name: tool "delete_account" is not allowed on route "locked-down"'],
    [
      'a response format the route does not allow',
      { responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT, jsonSchema: '', schemaName: '' } },
      'response_format.type: json_object is not allowed on route "locked-down"',
    ],
  ])('refuses %s (a guardrail of the plan) before quota is called', async (_name, over, message) => {
    const { pipeline, downstream } = setup();
    downstream.plan = testPlan('locked-down', ['small-fast']);
    const err = await rejection(pipeline.chat(chatReq({ route: 'locked-down', ...over }), makeCtx()));
    expect(err.kind).toBe('invalid_argument');
    expect(err.message).toBe(message);
    expect(downstream.order).toEqual(['authenticate', 'planRoute']);
  });

  it('refuses an empty plan as INTERNAL before reserving quota', async () => {
    const { pipeline, downstream } = setup();
    downstream.plan = Plan.fromPartial({ route: 'chat' });
    const err = await rejection(pipeline.chat(chatReq(), makeCtx()));
    expect(err.kind).toBe('internal');
    expect(downstream.calls.reserveQuota).toHaveLength(0);
  });

  it('passes the router\'s refusal (unknown route, model not allowed) through, before quota', async () => {
    const { pipeline, downstream } = setup();
    downstream.plan = new AppError('invalid_argument', 'unknown route "nope"');
    const err = await rejection(pipeline.chat(chatReq({ route: 'nope' }), makeCtx()));
    expect(err).toMatchObject({ kind: 'invalid_argument', message: 'unknown route "nope"' });
    downstream.plan = new AppError('permission_denied', 'tenant acme may not use model o3');
    expect((await rejection(pipeline.chat(chatReq({ model: 'o3' }), makeCtx()))).kind).toBe('permission_denied');
    expect(downstream.calls.reserveQuota).toHaveLength(0);
  });

  it('plans with the request\'s route (empty: the router\'s default), the principal\'s tier, the capabilities, the priority, the rough prompt size and the end user\'s sticky bucket', async () => {
    const { pipeline, downstream } = setup();
    await pipeline.chatStream(
      chatReq({
        tools: [{ name: 'f', description: '', parametersJsonSchema: '', sideEffects: false }],
        taskType: TaskType.TASK_TYPE_CODE,
        qualityTier: QualityTier.QUALITY_TIER_PREMIUM,
        priority: Priority.PRIORITY_HIGH,
        model: 'small-fast',
        user: 'end-user-42',
      }),
      makeCtx(),
      async () => undefined,
    );
    expect(downstream.calls.planRoute[0]!.req).toEqual({
      tenantId: 'acme',
      tier: 'startup',
      route: '',
      taskType: TaskType.TASK_TYPE_CODE,
      qualityTier: QualityTier.QUALITY_TIER_PREMIUM,
      latencyClass: LatencyClass.LATENCY_CLASS_UNSPECIFIED,
      priority: Priority.PRIORITY_HIGH,
      model: 'small-fast',
      modelOrRoute: '',
      operation: Operation.OPERATION_CHAT,
      requiredCapabilities: ['streaming', 'tools'],
      promptTokens: countChatTokens(MESSAGES, 'approx'),
      stickyBucket: stickyBucket('end-user-42'),
      intent: '',
    });
    expect(downstream.calls.planRoute[0]!.opts).toMatchObject({ tenantId: 'acme' });
  });

  it('a request without an end user sticks by its request id, chat and embed alike', async () => {
    const { pipeline, downstream } = setup({ planTtlMs: 0 });
    await pipeline.chat(chatReq(), makeCtx(undefined, { requestId: 'req-sticky-1' }));
    downstream.plan = testPlan('embeddings', ['embed-small']);
    await pipeline.embed(EmbedRequest.fromPartial({ route: 'embeddings', inputs: ['a'] }), makeCtx(undefined, { requestId: 'req-sticky-2' }));
    await pipeline.embed(EmbedRequest.fromPartial({ route: 'embeddings', inputs: ['a'], user: 'end-user-7' }), makeCtx(undefined, { requestId: 'req-sticky-3' }));
    expect(downstream.calls.planRoute.map((c) => c.req.stickyBucket)).toEqual([stickyBucket('req-sticky-1'), stickyBucket('req-sticky-2'), stickyBucket('end-user-7')]);
  });

  it('reuses a cached split plan only for sticky buckets within its range', async () => {
    const { pipeline, downstream } = setup();
    const bucket = stickyBucket('end-user-42');
    downstream.plan = testPlan('chat', ['small-fast'], { split: 'canary', stickyBucketMin: bucket, stickyBucketMax: bucket });
    await pipeline.chat(chatReq({ user: 'end-user-42' }), makeCtx());
    await pipeline.chat(chatReq({ user: 'end-user-42' }), makeCtx());
    expect(downstream.calls.planRoute).toHaveLength(1);
    const other = ['end-user-1', 'end-user-2'].find((u) => stickyBucket(u) !== bucket)!;
    await pipeline.chat(chatReq({ user: other }), makeCtx());
    expect(downstream.calls.planRoute.map((c) => c.req.stickyBucket)).toEqual([bucket, stickyBucket(other)]);
  });

  it('maps a quota denial to RESOURCE_EXHAUSTED with retry-after and rate-limit trailers, without executing', async () => {
    const { pipeline, downstream } = setup();
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

  it('caches the plan: a second identical request does not call the router', async () => {
    const { pipeline, downstream } = setup();
    await pipeline.chat(chatReq(), makeCtx());
    await pipeline.chat(chatReq(), makeCtx());
    expect(downstream.calls.planRoute).toHaveLength(1);
    expect(downstream.calls.executeChat[1]!.req.plan).toEqual(downstream.plan);
    await pipeline.chat(chatReq({ tools: [{ name: 'f', description: '', parametersJsonSchema: '', sideEffects: false }] }), makeCtx());
    expect(downstream.calls.planRoute).toHaveLength(2);
  });

  it('asks the router again for a prompt outside the range the cached plan holds for', async () => {
    const { pipeline, downstream } = setup();
    const rough = countChatTokens(MESSAGES, 'approx');
    downstream.plan = testPlan('chat', ['small-fast'], { promptTokensMax: rough + 5 });
    await pipeline.chat(chatReq(), makeCtx());
    await pipeline.chat(chatReq(), makeCtx());
    expect(downstream.calls.planRoute).toHaveLength(1);
    await pipeline.chat(chatReq({ messages: [...MESSAGES, msg(Role.ROLE_USER, 'And a longer follow-up question, with more words.')] }), makeCtx());
    expect(downstream.calls.planRoute).toHaveLength(2);
  });

  it('calls the router every time when the plan cache is off', async () => {
    const { pipeline, downstream } = setup({ planTtlMs: 0 });
    await pipeline.chat(chatReq(), makeCtx());
    await pipeline.chat(chatReq(), makeCtx());
    expect(downstream.calls.planRoute).toHaveLength(2);
  });
});

describe('GatewayPipeline reservations: what the plan may spend', () => {
  const reserved = (d: FakeDownstream) => d.calls.reserveQuota[0]!.req;

  it('reserves the exact prompt + the plan\'s default max_tokens for an openai-tokenized attempt, keyed to the request', async () => {
    const { pipeline, downstream } = setup();
    downstream.plan = testPlan('chat', ['small-fast']);
    await pipeline.chat(chatReq(), makeCtx());
    const prompt = countChatTokens(MESSAGES, 'openai');
    const req = reserved(downstream);
    expect(req).toMatchObject({ tenantId: 'acme', tier: 'startup', route: 'chat', model: 'small-fast', estimatedTokens: prompt + 256 });
    expect(req.requestId).toBe(downstream.calls.executeChat[0]!.req.requestId);
    expect(req.estimatedCostMicros).toBe(costMicros(MODELS['small-fast'].pricing, { inputTokens: prompt, outputTokens: 256 }));
  });

  it('prices the reservation at the most expensive attempt: a cheap primary with a 100x fallback reserves the fallback\'s price', async () => {
    const { pipeline, downstream } = setup();
    downstream.plan = testPlan('chat', ['small-fast', 'pricey-fallback']);
    await pipeline.chat(chatReq({ maxTokens: 1_000 }), makeCtx());
    const prompt = countChatTokens(MESSAGES, 'openai');
    const req = reserved(downstream);
    const cheap = costMicros(MODELS['small-fast'].pricing, { inputTokens: prompt, outputTokens: 1_000 });
    expect(req.estimatedCostMicros).toBe(costMicros(MODELS['pricey-fallback'].pricing, { inputTokens: prompt, outputTokens: 1_000 }));
    expect(req.estimatedCostMicros).toBeGreaterThanOrEqual(99 * cheap);
    expect(req.estimatedTokens).toBe(prompt + 1_000);
    // Per-model limits are charged to the model that serves; the reservation names the first.
    expect(req.model).toBe('small-fast');
  });

  it('takes the maximum whatever the order, and the largest token count over tokenizers', async () => {
    const { pipeline, downstream } = setup();
    downstream.plan = testPlan('chat', ['claude', 'small-fast']);
    await pipeline.chat(chatReq({ maxTokens: 100 }), makeCtx());
    const exact = countChatTokens(MESSAGES, 'openai');
    const bound = countChatTokensUpperBound(MESSAGES, 'approx');
    const req = reserved(downstream);
    expect(req.model).toBe('claude');
    expect(req.estimatedTokens).toBe(Math.max(exact, bound) + 100);
    expect(req.estimatedCostMicros).toBe(
      Math.max(costMicros(MODELS.claude.pricing, { inputTokens: bound, cacheWriteInputTokens: bound, outputTokens: 100 }), costMicros(MODELS['small-fast'].pricing, { inputTokens: exact, outputTokens: 100 })),
    );
  });

  it('reserves an upper bound for an approx tokenizer: the prompt\'s UTF-8 bytes, not the 4-characters estimate', async () => {
    const { pipeline, downstream } = setup();
    downstream.plan = testPlan('chat', ['claude']);
    const text = 'こんにちは、世界！🌍'; // 11 UTF-16 units (chars/4: 3 tokens), 31 bytes in UTF-8
    expect(Buffer.byteLength(text, 'utf8')).toBe(31);
    const messages = [msg(Role.ROLE_USER, text)];
    await pipeline.chat(chatReq({ messages, maxTokens: 100 }), makeCtx());
    const req = reserved(downstream);
    // 3 reply-priming + 4 per message + one token per byte at most.
    expect(req.estimatedTokens).toBe(3 + 4 + 31 + 100);
    expect(req.estimatedTokens).toBeGreaterThan(countChatTokens(messages, 'approx') + 100);
    expect(req.estimatedCostMicros).toBe(costMicros(MODELS.claude.pricing, { inputTokens: 3 + 4 + 31, cacheWriteInputTokens: 3 + 4 + 31, outputTokens: 100 }));
  });

  it('reserves with a given max_tokens as the output', async () => {
    const { pipeline, downstream } = setup();
    downstream.plan = testPlan('chat', ['small-fast']);
    await pipeline.chat(chatReq({ maxTokens: 7 }), makeCtx());
    expect(reserved(downstream).estimatedTokens).toBe(countChatTokens(MESSAGES, 'openai') + 7);
  });
});

describe('GatewayPipeline.chat', () => {
  it('hands the executor the plan and the normalised params (no public request), and returns its response with usage and routing', async () => {
    const { pipeline, downstream } = setup();
    const ctx = makeCtx();
    const res = await pipeline.chat(chatReq(), ctx);
    expect(res.message?.content).toBe('Hello, world.');
    expect(res.usage).toEqual(USAGE);
    expect(res.routing).toEqual(ROUTING);
    expect(downstream.calls.executeChat).toHaveLength(1);
    const exec = downstream.calls.executeChat[0]!;
    expect(exec.req).toEqual({
      requestId: ctx.requestId,
      tenantId: 'acme',
      keyId: 'k-acme',
      request: undefined,
      plan: downstream.plan,
      labels: { user: '', promptVersion: '', feature: '' },
      params: {
        messages: MESSAGES,
        maxTokens: 256,
        temperature: undefined,
        topP: undefined,
        stop: [],
        tools: [],
        toolChoice: { mode: ToolChoiceMode.TOOL_CHOICE_MODE_AUTO, name: '' },
        responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT, name: '', schema: undefined },
        user: '',
        batch: false,
        noHedge: false,
        cache: 0,
        // Counted once here, for the reservation, and passed on: the executor does not count again.
        promptTokens: (downstream.plan as Plan).attempts.map((a) => ({ tokenizer: a.tokenizer, tokens: countChatTokens(MESSAGES, familyOf(a.tokenizer)) })),
      },
    });
    expect(exec.req.params?.promptTokens.length).toBeGreaterThan(0);
    expect(exec.opts).toMatchObject({ timeoutMs: 10_000, requestId: ctx.requestId, tenantId: 'acme' });
    expect(downstream.calls.releaseQuota).toHaveLength(0);
  });

  it('hands the executor parsed tools and schemas, the resolved tool choice and max_tokens, and batch', async () => {
    const { pipeline, downstream } = setup();
    await pipeline.chat(
      chatReq({
        maxTokens: 300,
        latencyClass: LatencyClass.LATENCY_CLASS_BATCH,
        tools: [{ name: 'lookup_order', description: 'Find an order', parametersJsonSchema: '{"type":"object","properties":{"id":{"type":"string"}}}', sideEffects: false }],
        toolChoice: 'lookup_order',
        responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, jsonSchema: '{"type":"object","required":["answer"]}', schemaName: 'reply' },
      }),
      makeCtx(),
    );
    expect(downstream.calls.executeChat[0]!.req.params).toMatchObject({
      maxTokens: 300,
      batch: true,
      noHedge: false,
      tools: [{ name: 'lookup_order', description: 'Find an order', parameters: { type: 'object', properties: { id: { type: 'string' } } } }],
      toolChoice: { mode: ToolChoiceMode.TOOL_CHOICE_MODE_TOOL, name: 'lookup_order' },
      responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, name: 'reply', schema: { type: 'object', required: ['answer'] } },
    });
    expect(downstream.calls.planRoute[0]!.req.requiredCapabilities).toEqual(['tools', 'json_schema']);
  });

  it('bounds the executor deadline by the caller deadline and by the request\'s timeout', async () => {
    const { pipeline, downstream } = setup();
    await pipeline.chat(chatReq(), makeCtx(`Bearer ${GOOD_KEY}`, { remainingMs: () => 3_000 }));
    expect(downstream.calls.executeChat[0]!.opts.timeoutMs).toBe(3_000);
    await pipeline.chat(chatReq({ timeoutMs: 2_000 }), makeCtx());
    expect(downstream.calls.executeChat[1]!.opts.timeoutMs).toBe(2_000);
    await pipeline.chat(chatReq({ timeoutMs: 60_000 }), makeCtx());
    expect(downstream.calls.executeChat[2]!.opts.timeoutMs).toBe(10_000);
  });

  it.each<[string, AppErrorKind, ErrorKind, number, number | undefined]>([
    ['INVALID_ARGUMENT', 'invalid_argument', ErrorKind.ERROR_KIND_INVALID_ARGUMENT, 0, undefined],
    ['UNAUTHENTICATED', 'unauthenticated', ErrorKind.ERROR_KIND_UNAUTHENTICATED, 0, undefined],
    ['PERMISSION_DENIED', 'permission_denied', ErrorKind.ERROR_KIND_PERMISSION_DENIED, 0, undefined],
    ['NOT_FOUND', 'not_found', ErrorKind.ERROR_KIND_NOT_FOUND, 0, undefined],
    ['FAILED_PRECONDITION', 'failed_precondition', ErrorKind.ERROR_KIND_FAILED_PRECONDITION, 0, undefined],
    ['RESOURCE_EXHAUSTED', 'resource_exhausted', ErrorKind.ERROR_KIND_RESOURCE_EXHAUSTED, 2_500, 2_500],
    ['UNAVAILABLE', 'unavailable', ErrorKind.ERROR_KIND_UNAVAILABLE, 0, undefined],
    ['DEADLINE_EXCEEDED', 'deadline_exceeded', ErrorKind.ERROR_KIND_DEADLINE_EXCEEDED, 0, undefined],
    ['CANCELLED', 'cancelled', ErrorKind.ERROR_KIND_CANCELLED, 0, undefined],
    ['INTERNAL', 'internal', ErrorKind.ERROR_KIND_INTERNAL, 0, undefined],
    ['UNSPECIFIED', 'unavailable', ErrorKind.ERROR_KIND_UNSPECIFIED, 0, undefined],
    ['an unknown kind', 'unavailable', 99 as ErrorKind, 0, undefined],
  ])('maps ExecutionError kind %s to %s, with the routing record in x-routing-bin and the reservation kept', async (_name, appKind, kind, retryAfterMs, expectedRetry) => {
    const { pipeline, downstream } = setup();
    const routing = { ...ROUTING, chosenModel: '', fallbackUsed: true };
    downstream.chatResult = async () =>
      ExecuteChatResponse.fromPartial({
        response: { id: 'r', model: '', provider: '', usage: { inputTokens: 0, outputTokens: 0 }, routing },
        error: execError(kind, 'what the executor said', retryAfterMs),
      });
    const err = await rejection(pipeline.chat(chatReq(), makeCtx()));
    expect(err.kind).toBe(appKind);
    expect(err.message).toBe('what the executor said');
    expect(err.opts.retryAfterMs).toBe(expectedRetry);
    expect(routingOf(err)).toEqual(routing);
    // The executor had the request and publishes its usage, which reconciles the reservation.
    expect(downstream.calls.releaseQuota).toHaveLength(0);
  });

  it('reads only the typed kind, not the deprecated string code', async () => {
    const { pipeline, downstream } = setup();
    downstream.chatResult = async () => ExecuteChatResponse.fromPartial({ error: { code: 'INVALID_ARGUMENT', message: 'old executor', kind: ErrorKind.ERROR_KIND_UNSPECIFIED } });
    expect((await rejection(pipeline.chat(chatReq(), makeCtx()))).kind).toBe('unavailable');
  });

  it('fails without a routing trailer when the executor answers with an error only', async () => {
    const { pipeline, downstream } = setup();
    downstream.chatResult = async () => ExecuteChatResponse.fromPartial({ error: execError(ErrorKind.ERROR_KIND_UNAVAILABLE, 'down') });
    const err = await rejection(pipeline.chat(chatReq(), makeCtx()));
    expect(err).toMatchObject({ kind: 'unavailable', message: 'down' });
    expect(err.opts.trailers).toEqual({});
  });

  it('refuses an executor answer with neither response nor error as INTERNAL', async () => {
    const { pipeline, downstream } = setup();
    downstream.chatResult = async () => ExecuteChatResponse.fromPartial({});
    expect((await rejection(pipeline.chat(chatReq(), makeCtx()))).kind).toBe('internal');
  });

  it('releases the reservation when the executor is unreachable', async () => {
    const { pipeline, downstream } = setup();
    downstream.chatResult = async () => {
      throw new AppError('unavailable', 'executor unreachable');
    };
    const ctx = makeCtx();
    const err = await rejection(pipeline.chat(chatReq(), ctx));
    expect(err.kind).toBe('unavailable');
    expect(downstream.calls.releaseQuota).toHaveLength(1);
    expect(downstream.calls.releaseQuota[0]!.req).toEqual({ requestId: ctx.requestId, tenantId: 'acme' });
  });

  it.each(['deadline_exceeded', 'unavailable'] as const)('gives back a reservation whose answer was lost (%s) by request id', async (kind) => {
    const { pipeline, downstream } = setup();
    downstream.reserveQuota = async (req, opts) => {
      downstream.calls.reserveQuota.push({ req, opts });
      throw new AppError(kind, 'quota answer lost');
    };
    const ctx = makeCtx();
    expect((await rejection(pipeline.chat(chatReq(), ctx))).kind).toBe(kind);
    await vi.waitFor(() => expect(downstream.calls.releaseQuota).toHaveLength(1));
    expect(downstream.calls.releaseQuota[0]!.req).toEqual({ requestId: ctx.requestId, tenantId: 'acme' });
    expect(downstream.calls.executeChat).toHaveLength(0);
  });

  it('releases nothing when quota refused the request outright', async () => {
    const { pipeline, downstream } = setup();
    downstream.reserveQuota = async () => {
      throw new AppError('not_found', 'unknown tenant');
    };
    expect((await rejection(pipeline.chat(chatReq(), makeCtx()))).kind).toBe('not_found');
    await new Promise((r) => setImmediate(r));
    expect(downstream.calls.releaseQuota).toHaveLength(0);
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

  it('keeps the reservation when the executor answer is lost (deadline): money may have been spent', async () => {
    const { pipeline, downstream } = setup();
    downstream.chatResult = async () => {
      throw new AppError('deadline_exceeded', 'deadline exceeded');
    };
    const err = await rejection(pipeline.chat(chatReq(), makeCtx()));
    expect(err.kind).toBe('deadline_exceeded');
    expect(downstream.calls.releaseQuota).toHaveLength(0);
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

  it('gives the reservation back when the deadline passes before the executor is called', async () => {
    let t = T0;
    const { pipeline, downstream } = setup({ now: () => (t += 100) });
    const err = await rejection(pipeline.chat(chatReq(), makeCtx(`Bearer ${GOOD_KEY}`, { remainingMs: () => 50 })));
    expect(err.kind).toBe('deadline_exceeded');
    expect(downstream.calls.executeChat).toHaveLength(0);
    expect(downstream.calls.releaseQuota).toHaveLength(1);
  });
});

describe('the access log: one line per request, never its prompt', () => {
  const accessLines = (lines: Record<string, unknown>[]) => lines.filter((l) => l.msg === 'access');

  it('records who, where, which model and attempts, tokens, cost, latency and outcome of an answered request', async () => {
    let t = T0;
    const { pipeline } = setup({ now: () => (t += 10) });
    const { ctx, lines } = loggedCtx();
    await pipeline.chat(chatReq(), ctx);
    const [line, ...more] = accessLines(lines);
    expect(more).toHaveLength(0);
    // The call's logger adds the request id, RPC and tenant (callContext); the line adds the rest.
    expect(line).toMatchObject({
      access: {
        operation: 'chat',
        keyId: PRINCIPAL.keyId,
        route: 'chat',
        rule: 'default',
        intent: '',
        promptVersion: '',
        model: 'small-fast',
        fallbackUsed: true,
        attempts: ['claude:failed:http_5xx', 'small-fast:success'],
        inputTokens: USAGE.inputTokens,
        outputTokens: USAGE.outputTokens,
        costMicros: USAGE.costMicros,
        outcome: 'ok',
      },
    });
    expect((line?.access as { latencyMs: number }).latencyMs).toBeGreaterThan(0);
    expect(JSON.stringify(lines)).not.toContain('whole wide world');
  });

  it('records a stream once, with the last chunk\'s routing and usage', async () => {
    const { pipeline, downstream } = setup();
    downstream.stream = [streamMsg(chunk({ contentDelta: 'Hel' })), streamMsg(chunk({ contentDelta: 'lo', routing: ROUTING, usage: USAGE }))];
    const { ctx, lines } = loggedCtx();
    await pipeline.chatStream(chatReq(), ctx, async () => undefined);
    expect(accessLines(lines)).toEqual([expect.objectContaining({ access: expect.objectContaining({ operation: 'chat_stream', model: 'small-fast', costMicros: USAGE.costMicros, outcome: 'ok' }) })]);
  });

  it('records refused and failed requests with their status, and what a failure was billed', async () => {
    const { pipeline, downstream } = setup();
    const unauthenticated = loggedCtx('Bearer ');
    await rejection(pipeline.chat(chatReq(), unauthenticated.ctx));
    expect(accessLines(unauthenticated.lines)).toEqual([expect.objectContaining({ access: expect.objectContaining({ outcome: 'unauthenticated', route: '', model: '' }) })]);

    downstream.quota = ReserveQuotaResponse.fromPartial({ decision: QuotaDecision.QUOTA_DECISION_DENIED, limit: 'requests_per_minute', retryAfterMs: 5 });
    const denied = loggedCtx();
    await rejection(pipeline.chat(chatReq(), denied.ctx));
    expect(accessLines(denied.lines)).toEqual([expect.objectContaining({ access: expect.objectContaining({ outcome: 'resource_exhausted', route: 'chat', costMicros: 0 }) })]);

    downstream.quota = allowed;
    downstream.chatResult = async () => ExecuteChatResponse.fromPartial({ response: { routing: ROUTING, usage: USAGE }, error: execError(ErrorKind.ERROR_KIND_UNAVAILABLE, 'down') });
    const failed = loggedCtx();
    await rejection(pipeline.chat(chatReq(), failed.ctx));
    expect(accessLines(failed.lines)).toEqual([expect.objectContaining({ access: expect.objectContaining({ outcome: 'unavailable', costMicros: USAGE.costMicros, attempts: ['claude:failed:http_5xx', 'small-fast:success'] }) })]);
  });

  it('writes nothing when switched off', async () => {
    const downstream = new FakeDownstream();
    const pipeline = new GatewayPipeline({ config: () => edgeTestSections(), downstream, authCache: new AuthCache({ now: () => T0 }), planCache: new PlanCache({ ttlMs: 0, now: () => T0 }), now: () => T0, accessLog: false, intents: new IntentClassifier({ logger: silentLogger() }) });
    const { ctx, lines } = loggedCtx();
    await pipeline.chat(chatReq(), ctx);
    expect(accessLines(lines)).toHaveLength(0);
  });
});

describe('prompt logging by tenant policy', () => {
  const CHATTY: Principal = { ...PRINCIPAL, tenantId: 'chatty', keyId: 'k-chatty' };

  it('logs nothing of the prompt for a tenant without log_prompts', async () => {
    const { pipeline } = setup();
    const { ctx, lines, promptLines } = loggedCtx();
    await pipeline.chat(chatReq(), ctx);
    expect(promptLines()).toHaveLength(0);
    expect(JSON.stringify(lines)).not.toContain('whole wide world');
  });

  it('logs the prompt and the completion, unredacted, for a tenant with log_prompts', async () => {
    const { pipeline, downstream } = setup();
    downstream.auth = { principal: CHATTY, cacheTtlMs: 0 };
    const { ctx, promptLines } = loggedCtx();
    await pipeline.chat(chatReq(), ctx);
    expect(promptLines()).toHaveLength(1);
    expect(promptLines()[0]).toMatchObject({
      route: 'chat',
      promptLog: {
        turns: [
          { role: Role.ROLE_SYSTEM, text: 'You are terse.' },
          { role: Role.ROLE_USER, text: 'Say hello to the whole wide world, please.' },
        ],
        completion: 'Hello, world.',
      },
    });
  });

  it('logs the relayed text of a stream, and nothing for a failed request', async () => {
    const { pipeline, downstream } = setup();
    downstream.auth = { principal: CHATTY, cacheTtlMs: 0 };
    downstream.stream = [streamMsg(chunk({ contentDelta: 'Hel' })), streamMsg(chunk({ contentDelta: 'lo', routing: ROUTING }))];
    const streamed = loggedCtx();
    await pipeline.chatStream(chatReq(), streamed.ctx, async () => undefined);
    expect(streamed.promptLines()[0]).toMatchObject({ promptLog: { completion: 'Hello' } });

    downstream.chatResult = async () => ExecuteChatResponse.fromPartial({ error: execError(ErrorKind.ERROR_KIND_UNAVAILABLE, 'down') });
    const failed = loggedCtx();
    await rejection(pipeline.chat(chatReq(), failed.ctx));
    expect(failed.promptLines()).toHaveLength(0);
  });

  it('follows the current policy: a reloaded log_prompts applies to the next request', async () => {
    const { pipeline, state } = setup();
    const before = loggedCtx();
    await pipeline.chat(chatReq(), before.ctx);
    expect(before.promptLines()).toHaveLength(0);
    state.sections = edgeTestSections('tenants:\n  acme: { tier: startup, log_prompts: true }\n');
    const after = loggedCtx();
    await pipeline.chat(chatReq(), after.ctx);
    expect(after.promptLines()).toHaveLength(1);
  });
});

describe('content policy', () => {
  const POLICIES = `${TEST_CONFIG_YAML.replace('  acme: { tier: startup }', '  acme: { tier: startup, log_prompts: true, content_policy: guard, route_policies: { strict-route: strict } }')}
content_policies:
  guard:
    detectors: { email: redact, phone: redact_logs, card: block }
    apply_to: [request, response]
  strict:
    detectors: { email: block }
    block_status: invalid_argument
`;
  const ask = (content: string, over: Partial<ChatRequest> = {}) => chatReq({ messages: [msg(Role.ROLE_USER, content)], ...over });

  function policed() {
    const s = setup({ sections: edgeTestSections(POLICIES) });
    const seen: string[] = [];
    const pipeline = new GatewayPipeline({
      config: () => s.state.sections,
      downstream: s.downstream,
      authCache: new AuthCache({ now: () => T0 }),
      planCache: new PlanCache({ ttlMs: 0, now: () => T0 }),
      now: () => T0,
      intents: new IntentClassifier({ logger: silentLogger() }),
      policyMetrics: { enforced: (...labels) => seen.push(labels.join('/')) },
    });
    return { ...s, pipeline, seen };
  }

  it('blocks a request with a blocking match before planning or reserving, naming the policy and not the match', async () => {
    const { pipeline, downstream, seen } = policed();
    const { ctx, lines } = loggedCtx();
    const err = await rejection(pipeline.chat(ask('charge 4111 1111 1111 1111'), ctx));
    expect(err).toMatchObject({ kind: 'permission_denied', message: 'content policy "guard" blocks this request: it matched "card"' });
    expect(downstream.calls.planRoute).toHaveLength(0);
    expect(downstream.calls.reserveQuota).toHaveLength(0);
    expect(seen).toEqual(['guard/card/block/request']);
    expect(lines.find((l) => l.msg === 'content policy enforced')).toMatchObject({ policy: 'guard', detector: 'card', action: 'block', direction: 'request', matches: 1 });
    expect(JSON.stringify(lines)).not.toContain('4111');
  });

  it('applies to texts to embed: a blocking match reserves nothing, a redacted one reaches the executor as its placeholder', async () => {
    const { pipeline, downstream, seen } = policed();
    downstream.plan = testPlan('embeddings', ['embed-small']);
    const err = await rejection(pipeline.embed(EmbedRequest.fromPartial({ route: 'embeddings', inputs: ['fine', 'card 4111 1111 1111 1111'] }), makeCtx()));
    expect(err).toMatchObject({ kind: 'permission_denied', message: 'content policy "guard" blocks this request: it matched "card"' });
    expect(downstream.calls.reserveQuota).toHaveLength(0);
    await pipeline.embed(EmbedRequest.fromPartial({ route: 'embeddings', inputs: ['mail a@b.com', 'and a@b.com again'] }), makeCtx());
    expect(downstream.calls.executeEmbed[0]!.req.request?.inputs).toEqual(['mail [EMAIL_1]', 'and [EMAIL_1] again']);
    expect(seen).toEqual(['guard/card/block/request', 'guard/email/redact/request']);
  });

  it('takes the route\'s policy and its status (INVALID_ARGUMENT)', async () => {
    const { pipeline } = policed();
    const err = await rejection(pipeline.chat(ask('write to a@b.com', { route: 'strict-route' }), makeCtx()));
    expect(err).toMatchObject({ kind: 'invalid_argument', message: 'content policy "strict" blocks this request: it matched "email"' });
  });

  it('sends the executor the redacted messages, keeps log-only matches out of the prompt log, and redacts the answer', async () => {
    const { pipeline, downstream, seen } = policed();
    downstream.chatResult = async () => ExecuteChatResponse.fromPartial({ response: { message: { role: Role.ROLE_ASSISTANT, content: 'I will mail c@d.com' }, routing: ROUTING } });
    const { ctx, lines, promptLines } = loggedCtx();
    const res = await pipeline.chat(ask('mail a@b.com, a@b.com or call +1 415 555 0132'), ctx);
    expect(downstream.calls.executeChat[0]?.req.params?.messages.map((m) => m.content)).toEqual(['mail [EMAIL_1], [EMAIL_1] or call +1 415 555 0132']);
    expect(res.message?.content).toBe('I will mail [EMAIL_1]');
    expect(promptLines()[0]).toMatchObject({ promptLog: { turns: [{ text: 'mail [EMAIL_1], [EMAIL_1] or call [PHONE_1]' }], completion: 'I will mail [EMAIL_1]' } });
    expect(seen).toEqual(['guard/email/redact/request', 'guard/phone/redact_logs/request', 'guard/email/redact/response']);
    for (const secret of ['a@b.com', 'c@d.com', '555 0132']) expect(JSON.stringify(lines)).not.toContain(secret);
  });

  it('polices a stream as it flows: an address split across chunks reaches the caller as its placeholder, counted once', async () => {
    const { pipeline, downstream, seen } = policed();
    downstream.stream = [streamMsg(chunk({ contentDelta: 'at e@f' })), streamMsg(chunk({ contentDelta: '.com', routing: ROUTING }))];
    const sent: string[] = [];
    const { ctx, promptLines } = loggedCtx();
    await pipeline.chatStream(ask('hello'), ctx, async (c) => void sent.push(c.contentDelta));
    expect(sent.join('')).toBe('at [EMAIL_1]');
    expect(promptLines()[0]).toMatchObject({ promptLog: { completion: 'at [EMAIL_1]' } });
    expect(seen).toEqual(['guard/email/redact/response']);
  });

  describe('tool calls\' arguments', () => {
    const call = (argumentsJson: string, id = 'call-1') => ({ id, name: 'send_mail', argumentsJson });
    const history = (content: string, argumentsJson: string) => [
      msg(Role.ROLE_USER, content),
      { ...msg(Role.ROLE_ASSISTANT, ''), toolCalls: [call(argumentsJson)] },
      { ...msg(Role.ROLE_TOOL, 'sent'), toolCallId: 'call-1' },
    ];

    it('redacts a tool call in the history before the executor sees it, valid JSON with the contents\' placeholders', async () => {
      const { pipeline, downstream, seen } = policed();
      await pipeline.chat(chatReq({ messages: history('mail a@b.com and c@d.com', JSON.stringify({ to: ['c@d.com'], body: { text: 'hi a@b.com' } })) }), makeCtx());
      const sent = downstream.calls.executeChat[0]?.req.params?.messages;
      expect(sent?.[0]?.content).toBe('mail [EMAIL_1] and [EMAIL_2]');
      expect(JSON.parse(sent?.[1]?.toolCalls[0]?.argumentsJson ?? '')).toEqual({ to: ['[EMAIL_2]'], body: { text: 'hi [EMAIL_1]' } });
      expect(seen).toEqual(['guard/email/redact/request']);
    });

    it('refuses a request whose tool call\'s arguments match a blocking rule, before planning', async () => {
      const { pipeline, downstream } = policed();
      const err = await rejection(pipeline.chat(chatReq({ messages: history('pay it', '{"card":"4111 1111 1111 1111"}') }), makeCtx()));
      expect(err).toMatchObject({ kind: 'permission_denied', message: 'content policy "guard" blocks this request: it matched "card"' });
      expect(downstream.calls.planRoute).toHaveLength(0);
    });

    it('redacts a unary answer\'s tool call, and fails an answer whose tool call matches a blocking rule', async () => {
      const { pipeline, downstream } = policed();
      const answer = (argumentsJson: string) => async () =>
        ExecuteChatResponse.fromPartial({ response: { message: { role: Role.ROLE_ASSISTANT, content: 'mailing e@f.com', toolCalls: [call(argumentsJson)] }, routing: ROUTING } });
      downstream.chatResult = answer('{"to":"e@f.com","cc":"g@h.com"}');
      const res = await pipeline.chat(ask('hello'), makeCtx());
      expect(res.message?.content).toBe('mailing [EMAIL_1]');
      expect(JSON.parse(res.message?.toolCalls[0]?.argumentsJson ?? '')).toEqual({ to: '[EMAIL_1]', cc: '[EMAIL_2]' });
      downstream.chatResult = answer('{"card":"4111 1111 1111 1111"}');
      const err = await rejection(pipeline.chat(ask('hello'), makeCtx()));
      expect(err).toMatchObject({ kind: 'permission_denied', message: 'content policy "guard" blocks this response: it matched "card"' });
    });

    it('holds a stream\'s tool-call deltas and sends each call whole and policed just before the last message', async () => {
      const { pipeline, downstream, seen } = policed();
      const delta = (index: number, argumentsJsonDelta: string, id = '', name = '') => ({ index, id, name, argumentsJsonDelta });
      downstream.stream = [
        streamMsg(chunk({ contentDelta: 'to e@f.com' })),
        streamMsg(chunk({ toolCallDeltas: [delta(0, '{"to":"e@', 'call-1', 'send_mail')] })),
        streamMsg(chunk({ toolCallDeltas: [delta(0, 'f.com"}'), delta(1, '{"q":"x"}', 'call-2', 'search')] })),
        streamMsg(chunk({ finishReason: FinishReason.FINISH_REASON_TOOL_CALLS, usage: USAGE, routing: ROUTING })),
      ];
      const sent: ChatStreamResponse[] = [];
      await pipeline.chatStream(ask('hello'), makeCtx(), async (c) => void sent.push(c));
      expect(sent).toHaveLength(2);
      // The held text comes first, in the message of the tool calls: the answer's order.
      expect(sent[0]).toMatchObject({ id: 'resp-s', contentDelta: 'to [EMAIL_1]', toolCallDeltas: [delta(0, '{"to":"[EMAIL_1]"}', 'call-1', 'send_mail'), delta(1, '{"q":"x"}', 'call-2', 'search')] });
      expect(sent[1]).toMatchObject({ contentDelta: '', toolCallDeltas: [], routing: ROUTING });
      expect(seen).toEqual(['guard/email/redact/response']);
    });

    it('ends a stream whose tool call matches a blocking rule with the policy\'s status, the call not sent', async () => {
      const { pipeline, downstream } = policed();
      downstream.stream = [
        streamMsg(chunk({ toolCallDeltas: [{ index: 0, id: 'call-1', name: 'pay', argumentsJsonDelta: '{"card":"4111 1111 1111 1111"}' }] })),
        streamMsg(chunk({ routing: ROUTING })),
      ];
      const sent: ChatStreamResponse[] = [];
      const err = await rejection(pipeline.chatStream(ask('hello'), makeCtx(), async (c) => void sent.push(c)));
      expect(err).toMatchObject({ kind: 'permission_denied', message: 'content policy "guard" blocks this response: it matched "card"' });
      expect(sent).toEqual([]);
    });
  });
});

describe('GatewayPipeline.chatStream', () => {
  const finalChunk = chunk({ model: 'small-fast', provider: 'sim-openai', finishReason: FinishReason.FINISH_REASON_STOP, usage: USAGE, routing: ROUTING });

  it('relays chunks in order, with the plan and the normalised params sent to the executor', async () => {
    const { pipeline, downstream } = setup();
    const parts = [chunk({ contentDelta: 'Hel' }), chunk({ contentDelta: 'lo' }), finalChunk];
    downstream.stream = parts.map((c) => streamMsg(c));
    const sent: ChatStreamResponse[] = [];
    const ctx = makeCtx();
    await pipeline.chatStream(chatReq(), ctx, async (m) => {
      sent.push(m);
    });
    expect(sent).toEqual(parts);
    const req = downstream.calls.executeChatStream[0]!.req;
    expect(req).toMatchObject({ requestId: ctx.requestId, tenantId: 'acme', keyId: 'k-acme', plan: downstream.plan, request: undefined });
    expect(req.params).toMatchObject({ maxTokens: 256, messages: MESSAGES, batch: false });
    expect(downstream.order).toEqual(['authenticate', 'planRoute', 'reserveQuota', 'executeChatStream']);
    expect(downstream.calls.releaseQuota).toHaveLength(0);
  });

  it('sends every chunk, then throws the error carried by the last message, with its routing record', async () => {
    const { pipeline, downstream } = setup();
    const errChunk = chunk({ finishReason: FinishReason.FINISH_REASON_ERROR, usage: { ...USAGE, outputTokens: 2 }, routing: ROUTING, model: 'small-fast' });
    downstream.stream = [streamMsg(chunk({ contentDelta: 'He' })), streamMsg(errChunk, execError(ErrorKind.ERROR_KIND_UNAVAILABLE, 'provider stream ended early'))];
    const sent: ChatStreamResponse[] = [];
    const err = await rejection(
      pipeline.chatStream(chatReq(), makeCtx(), async (m) => {
        sent.push(m);
      }),
    );
    expect(err.kind).toBe('unavailable');
    expect(err.message).toBe('provider stream ended early');
    expect(routingOf(err)).toEqual(ROUTING);
    expect(sent).toEqual([chunk({ contentDelta: 'He' }), errChunk]);
    expect(downstream.calls.releaseQuota).toHaveLength(0);
  });

  it('keeps retryAfterMs of a RESOURCE_EXHAUSTED stream error', async () => {
    const { pipeline, downstream } = setup();
    downstream.stream = [streamMsg(chunk({ routing: ROUTING }), execError(ErrorKind.ERROR_KIND_RESOURCE_EXHAUSTED, 'slow down', 700))];
    const err = await rejection(pipeline.chatStream(chatReq(), makeCtx(), async () => undefined));
    expect(err.kind).toBe('resource_exhausted');
    expect(err.opts.retryAfterMs).toBe(700);
  });

  it('does not report success when the executor sends an error without a chunk', async () => {
    const { pipeline, downstream } = setup();
    downstream.stream = [streamMsg(chunk({ contentDelta: 'Hi', routing: ROUTING })), streamMsg(undefined, execError(ErrorKind.ERROR_KIND_INVALID_ARGUMENT, 'bad'))];
    const err = await rejection(pipeline.chatStream(chatReq(), makeCtx(), async () => undefined));
    expect(err).toMatchObject({ kind: 'invalid_argument', message: 'bad' });
    // The routing of the chunks before still reaches the caller.
    expect(routingOf(err)).toEqual(ROUTING);
  });

  it('keeps the reservation when the stream breaks after some chunks (the executor had the request)', async () => {
    const { pipeline, downstream } = setup();
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
    expect(downstream.calls.releaseQuota).toHaveLength(0);
  });

  it('reports CANCELLED when the caller went away mid-stream', async () => {
    const { pipeline, downstream } = setup();
    const ctx = makeCtx();
    downstream.stream = [streamMsg(chunk({ contentDelta: 'partial' })), { throws: new Error('stream aborted') }];
    const err = await rejection(
      pipeline.chatStream(chatReq(), ctx, async () => {
        ctx.abort();
      }),
    );
    expect(err.kind).toBe('cancelled');
    expect(downstream.calls.releaseQuota).toHaveLength(0);
  });

  it('releases the reservation when the executor is unreachable before any chunk', async () => {
    const { pipeline, downstream } = setup();
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
  });

  it('refuses a quota denial without opening the stream', async () => {
    const { pipeline, downstream } = setup();
    downstream.quota = ReserveQuotaResponse.fromPartial({ decision: QuotaDecision.QUOTA_DECISION_DENIED, limit: 'tokens_per_day', retryAfterMs: 9 });
    expect((await rejection(pipeline.chatStream(chatReq(), makeCtx(), async () => undefined))).kind).toBe('resource_exhausted');
    expect(downstream.calls.executeChatStream).toHaveLength(0);
  });

  it('refuses a guardrail of the plan before quota, without opening the stream', async () => {
    const { pipeline, downstream } = setup();
    downstream.plan = testPlan('tiny-prompt', ['small-fast']);
    expect((await rejection(pipeline.chatStream(chatReq({ route: 'tiny-prompt' }), makeCtx(), async () => undefined))).kind).toBe('invalid_argument');
    expect(downstream.order).toEqual(['authenticate', 'planRoute']);
  });

  it('gives the reservation back when the deadline passes before the executor is called', async () => {
    let t = T0;
    const { pipeline, downstream } = setup({ now: () => (t += 100) });
    const err = await rejection(pipeline.chatStream(chatReq(), makeCtx(`Bearer ${GOOD_KEY}`, { remainingMs: () => 50 }), async () => undefined));
    expect(err.kind).toBe('deadline_exceeded');
    expect(downstream.calls.executeChatStream).toHaveLength(0);
    expect(downstream.calls.releaseQuota).toHaveLength(1);
  });
});

describe('usage labels: who, which prompt and which feature a request is spent on', () => {
  it('hands the executor the user, the prompt version and the value of the allowlisted metadata key only', async () => {
    const { pipeline, downstream } = setup();
    await pipeline.chat(chatReq({ user: 'u-1', promptVersion: 'triage-v3', metadata: { feature: 'search', secretish: 'not a label' } }), makeCtx());
    await pipeline.chatStream(chatReq({ user: 'u-2', metadata: { feature: 'summaries' } }), makeCtx(), async () => undefined);
    expect(downstream.calls.executeChat[0]!.req.labels).toEqual({ user: 'u-1', promptVersion: 'triage-v3', feature: 'search' });
    expect(downstream.calls.executeChatStream[0]!.req.labels).toEqual({ user: 'u-2', promptVersion: '', feature: 'summaries' });
    downstream.plan = testPlan('embeddings', ['embed-small']);
    await pipeline.embed(EmbedRequest.fromPartial({ route: 'embeddings', inputs: ['x'], user: 'u-3', metadata: { feature: 'indexing' } }), makeCtx());
    expect(downstream.calls.executeEmbed[0]!.req.labels).toEqual({ user: 'u-3', promptVersion: '', feature: 'indexing' });
  });

  it('labels no feature when the config names no key', async () => {
    const { pipeline, downstream } = setup({ sections: edgeTestSections(TEST_CONFIG_YAML.replace('usage_labels: { feature_key: feature }', '')) });
    await pipeline.chat(chatReq({ metadata: { feature: 'search' } }), makeCtx());
    expect(downstream.calls.executeChat[0]!.req.labels).toEqual({ user: '', promptVersion: '', feature: '' });
  });

  it('refuses a feature label over 64 characters or a prompt version over 128 bytes, naming the field, before planning', async () => {
    const { pipeline, downstream } = setup();
    const long = await rejection(pipeline.chat(chatReq({ metadata: { feature: 'f'.repeat(65) } }), makeCtx()));
    expect(long).toMatchObject({ kind: 'invalid_argument' });
    expect(long.message).toContain('metadata.feature');
    const version = await rejection(pipeline.chat(chatReq({ promptVersion: 'v'.repeat(129) }), makeCtx()));
    expect(version.message).toContain('prompt_version');
    expect(downstream.calls.planRoute).toHaveLength(0);
    await pipeline.chat(chatReq({ metadata: { feature: 'f'.repeat(64) } }), makeCtx());
    expect(downstream.calls.executeChat[0]!.req.labels?.feature).toHaveLength(64);
  });
});

describe('GatewayPipeline.embed and getUsage', () => {
  const inputs = ['first text', 'second text'];

  it('plans an embedding, reserves the inputs\' tokens only, priced at the plan, and executes', async () => {
    const { pipeline, downstream } = setup();
    downstream.plan = testPlan('embeddings', ['embed-small']);
    const ctx = makeCtx();
    const res = await pipeline.embed(EmbedRequest.fromPartial({ route: 'embeddings', inputs }), ctx);
    expect(res.embeddings).toHaveLength(1);
    expect(downstream.calls.planRoute[0]!.req).toMatchObject({
      operation: Operation.OPERATION_EMBED,
      requiredCapabilities: ['embeddings'],
      route: 'embeddings',
      tier: 'startup',
      promptTokens: inputs.reduce((n, t) => n + countTokens(t, 'approx'), 0),
    });
    const tokens = inputs.reduce((n, t) => n + countTokens(t, 'openai'), 0);
    expect(downstream.calls.reserveQuota[0]!.req).toMatchObject({ model: 'embed-small', estimatedTokens: tokens, estimatedCostMicros: costMicros(MODELS['embed-small'].pricing, { inputTokens: tokens, outputTokens: 0 }) });
    expect(downstream.calls.executeEmbed[0]!.req).toMatchObject({ requestId: ctx.requestId, tenantId: 'acme', keyId: 'k-acme', plan: downstream.plan, request: { inputs } });
    expect(downstream.calls.executeEmbed[0]!.opts.timeoutMs).toBe(4_000);
    expect(downstream.order).toEqual(['authenticate', 'planRoute', 'reserveQuota', 'executeEmbed']);
  });

  it('reserves the UTF-8 bytes of the inputs for an approx-tokenized embedding model', async () => {
    const { pipeline, downstream } = setup();
    downstream.plan = testPlan('embeddings', ['embed-approx']);
    await pipeline.embed(EmbedRequest.fromPartial({ route: 'embeddings', inputs: ['naïve', 'café'] }), makeCtx());
    expect(downstream.calls.reserveQuota[0]!.req.estimatedTokens).toBe(6 + 5);
  });

  it('refuses a badly shaped embedding before anything downstream but auth', async () => {
    const { pipeline, downstream } = setup();
    const err = await rejection(pipeline.embed(EmbedRequest.fromPartial({ inputs: ['a', ''] }), makeCtx()));
    expect(err).toMatchObject({ kind: 'invalid_argument', message: 'inputs[1]: must not be empty' });
    expect(downstream.order).toEqual(['authenticate']);
  });

  it('maps an embed ExecutionError by its kind, and releases when the executor is unreachable', async () => {
    const { pipeline, downstream } = setup();
    downstream.plan = testPlan('embeddings', ['embed-small']);
    downstream.embedResult = async () => ExecuteEmbedResponse.fromPartial({ error: execError(ErrorKind.ERROR_KIND_INVALID_ARGUMENT, 'input too long') });
    expect(await rejection(pipeline.embed(EmbedRequest.fromPartial({ inputs }), makeCtx()))).toMatchObject({ kind: 'invalid_argument', message: 'input too long' });
    expect(downstream.calls.releaseQuota).toHaveLength(0);
    downstream.embedResult = async () => {
      throw new AppError('unavailable', 'executor unreachable');
    };
    expect((await rejection(pipeline.embed(EmbedRequest.fromPartial({ inputs }), makeCtx()))).kind).toBe('unavailable');
    expect(downstream.calls.releaseQuota).toHaveLength(1);
  });

  it('forwards the caller authorization to the accountant, and refuses a call without one', async () => {
    const { pipeline, downstream } = setup();
    expect((await rejection(pipeline.getUsage(GetUsageRequest.fromPartial({}), makeCtx(null)))).kind).toBe('unauthenticated');
    expect(downstream.calls.getUsage).toHaveLength(0);
    await pipeline.getUsage(GetUsageRequest.fromPartial({}), makeCtx(`Bearer ${GOOD_KEY}`));
    expect(downstream.calls.getUsage[0]!.opts.metadata).toEqual({ authorization: `Bearer ${GOOD_KEY}` });
    expect(downstream.calls.getUsage[0]!.opts.timeoutMs).toBe(10_000);
    expect(downstream.calls.authenticate).toHaveLength(0);
  });

  // Found by the fuzz test: a Timestamp past the range of a Date decoded to an invalid Date,
  // and forwarding it failed to encode ("cannot convert NaN to a BigInt"): INTERNAL.
  it.each(['startTime', 'endTime'] as const)('refuses a %s that is not a valid date as INVALID_ARGUMENT naming it, without calling the accountant', async (field) => {
    const { pipeline, downstream } = setup();
    const err = await rejection(pipeline.getUsage(GetUsageRequest.fromPartial(field === 'startTime' ? { startTime: new Date(NaN) } : { endTime: new Date(NaN) }), makeCtx(`Bearer ${GOOD_KEY}`)));
    expect(err.kind).toBe('invalid_argument');
    expect(err.message).toBe(`${field === 'startTime' ? 'start_time' : 'end_time'}: not a valid timestamp`);
    expect(downstream.calls.getUsage).toHaveLength(0);
  });

  it('forwards a query with valid times', async () => {
    const { pipeline, downstream } = setup();
    await pipeline.getUsage(GetUsageRequest.fromPartial({ startTime: new Date(0), endTime: new Date(8.64e15) }), makeCtx(`Bearer ${GOOD_KEY}`));
    expect(downstream.calls.getUsage).toHaveLength(1);
  });
});

describe('semantic routing at the edge', () => {
  const sections = () =>
    edgeTestSections(`${TEST_CONFIG_YAML}
intents:
  support:
    embed_route: embeddings
    tenant: startup-co
    intents:
      billing: { examples: [refund my invoice], keywords: [invoice] }
`);

  it('classifies a request to a route with a classifier before planning: its text for its tenant, the examples for the classifier\'s', async () => {
    const { pipeline, downstream } = setup({ sections: sections() });
    // The router's plan names the intent it was made for.
    downstream.plan = { ...downstream.plan, intent: 'billing' };
    const { ctx, lines } = loggedCtx();
    // The fake executor answers one vector however many texts: the examples fail, the keyword decides.
    const res = await pipeline.chat(chatReq({ route: 'support', messages: [msg(Role.ROLE_USER, 'where is my invoice?')] }), ctx);
    const chatPlan = downstream.calls.planRoute.find((c) => c.req.operation === Operation.OPERATION_CHAT)!.req;
    expect(chatPlan).toMatchObject({ route: 'support', intent: 'billing' });
    expect(res.routing?.intentScore).toBe(1);
    expect(lines.filter((l) => l.msg === 'access')).toEqual([expect.objectContaining({ access: expect.objectContaining({ route: 'chat', intent: 'billing' }) })]);
    const embeds = downstream.calls.executeEmbed.map((c) => [c.req.requestId.startsWith('intent-exemplars-') ? 'exemplars' : c.req.requestId, c.req.tenantId, c.req.request?.inputs]);
    expect(embeds).toEqual(
      expect.arrayContaining([
        [`${ctx.requestId}-intent`, 'acme', ['where is my invoice?']],
        ['exemplars', 'startup-co', ['refund my invoice']],
      ]),
    );
    // The embeddings' rate-limit trailers are not the chat's.
    expect(downstream.calls.reserveQuota.map((c) => c.req.requestId)).toContain(`${ctx.requestId}-intent`);
  });

  it.each(['chat', 'constructor', '__proto__', 'toString'])('leaves a request to route "%s" (no classifier) unclassified', async (route) => {
    const { pipeline, downstream } = setup({ sections: sections() });
    await pipeline.chat(chatReq({ route }), makeCtx());
    expect(downstream.calls.executeEmbed).toHaveLength(0);
    expect(downstream.calls.planRoute[0]!.req.intent).toBe('');
  });
});

describe('prompt templates', () => {
  const templated = (over: Partial<ChatRequest> = {}) => chatReq({ messages: [msg(Role.ROLE_USER, 'Where is my order?')], template: 'answer', ...over });

  it('pins: a request naming a version gets it, one naming none the rollout pick or the pinned version', async () => {
    const { pipeline, downstream } = setup();
    await pipeline.chat(templated({ templateVersion: 'v2', templateVariables: { product: 'Acme', plan: 'pro' } }), makeCtx());
    expect(downstream.calls.executeChat[0]!.req.params?.messages[0]).toMatchObject({ role: Role.ROLE_SYSTEM, content: 'You help Acme customers on pro.' });
    expect(downstream.calls.executeChat[0]!.req.labels?.promptVersion).toBe('answer@v2');
    // A user outside every rollout arm (70% of them) gets the pinned v1.
    const user = Array.from({ length: 100 }, (_, i) => `pinned-${i}`).find((u) => stickyBucket(`answer\n${u}`) >= 3_000)!;
    await pipeline.chat(templated({ user, templateVariables: { product: 'Acme' } }), makeCtx());
    expect(downstream.calls.executeChat[1]!.req.labels?.promptVersion).toBe('answer@v1');
  });

  it('applies the version\'s defaults where the request leaves fields unset, before planning', async () => {
    const { pipeline, downstream } = setup();
    await pipeline.chat(templated({ templateVersion: 'v1', templateVariables: { product: 'Acme' } }), makeCtx());
    expect(downstream.calls.planRoute[0]!.req).toMatchObject({ route: 'support-chat', model: '', requiredCapabilities: expect.arrayContaining(['json_object']) });
    expect(downstream.calls.executeChat[0]!.req.params).toMatchObject({ temperature: 0.2, maxTokens: 300, stop: ['END'], responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT } });
    await pipeline.chat(
      templated({ templateVersion: 'v1', templateVariables: { product: 'Acme' }, route: 'chat', temperature: 0.9, maxTokens: 50, stop: ['STOP'], responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT, jsonSchema: '', schemaName: '' } }),
      makeCtx(),
    );
    expect(downstream.calls.planRoute[1]!.req.route).toBe('chat');
    expect(downstream.calls.executeChat[1]!.req.params).toMatchObject({ temperature: 0.9, maxTokens: 50, stop: ['STOP'] });
    expect(downstream.calls.executeChat[1]!.req.params?.responseFormat?.type).toBe(ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT);
  });

  it('puts the template\'s system prompt before the request\'s own messages, its own system message kept', async () => {
    const { pipeline, downstream } = setup();
    await pipeline.chat(templated({ templateVersion: 'v3', messages: [msg(Role.ROLE_SYSTEM, 'Reply in French.'), msg(Role.ROLE_USER, 'hi')] }), makeCtx());
    expect(downstream.calls.executeChat[0]!.req.params?.messages.map((m) => m.content)).toEqual(['Be brief.', 'Reply in French.', 'hi']);
    expect(downstream.calls.planRoute[0]!.req.model).toBe('small-fast');
  });

  it('records the prompt version on the routing record, of answers, streams and failures', async () => {
    const { pipeline, downstream } = setup();
    const res = await pipeline.chat(templated({ templateVersion: 'v3' }), makeCtx());
    expect(res.routing?.promptVersion).toBe('answer@v3');
    const chunks: ChatStreamResponse[] = [];
    downstream.stream = [streamMsg(chunk({ contentDelta: 'Hi', routing: ROUTING, usage: USAGE }))];
    await pipeline.chatStream(templated({ templateVersion: 'v3' }), makeCtx(), async (c) => void chunks.push(c));
    expect(chunks.at(-1)?.routing?.promptVersion).toBe('answer@v3');
    downstream.chatResult = async () => ExecuteChatResponse.fromPartial({ error: execError(ErrorKind.ERROR_KIND_UNAVAILABLE, 'all attempts failed'), response: { routing: ROUTING } });
    const err = await rejection(pipeline.chat(templated({ templateVersion: 'v3' }), makeCtx()));
    expect(routingOf(err).promptVersion).toBe('answer@v3');
  });

  it.each<[string, Partial<ChatRequest>, string]>([
    ['a missing variable, naming every one', { templateVersion: 'v2', templateVariables: {} }, 'template_variables: missing product, plan'],
    ['an unknown variable', { templateVersion: 'v1', templateVariables: { product: 'Acme', colour: 'red' } }, 'template_variables: unknown "colour"'],
    ['a variable value over 4096 bytes', { templateVersion: 'v1', templateVariables: { product: 'x'.repeat(4_097) } }, 'template_variables.product: over 4096 bytes'],
    ['an unknown template', { template: 'nope' }, 'template: unknown template "nope"'],
    ['a template named like an Object.prototype property', { template: 'constructor' }, 'template: unknown template "constructor"'],
    ['an unknown version', { templateVersion: 'toString' }, 'template "answer" has no version "toString"'],
    ['its own prompt version', { templateVersion: 'v3', promptVersion: 'mine' }, 'prompt_version: a templated request gets'],
    ['variables without a template', { template: '', templateVariables: { product: 'Acme' } }, 'template: template_version and template_variables need a template'],
  ])('refuses %s as INVALID_ARGUMENT before planning', async (_name, over, message) => {
    const { pipeline, downstream } = setup();
    const err = await rejection(pipeline.chat(templated(over), makeCtx()));
    expect(err.kind).toBe('invalid_argument');
    expect(err.message).toContain(message);
    expect(err.message).not.toContain('xxxx');
    expect(downstream.calls.planRoute).toHaveLength(0);
  });
});
