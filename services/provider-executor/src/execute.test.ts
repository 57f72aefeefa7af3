import { startSimulator, type Simulator } from '@llmgw/provider-simulator';
import { ErrorKind, UsageLabels, type ExecuteChatRequest, type ExecuteChatStreamResponse } from '@llmgw/proto/executor';
import { FallbackTrigger, SchemaFailurePolicy } from '@llmgw/proto/router';
import { AttemptOutcome, FinishReason, ResponseFormatType, Role, TokenSource } from '@llmgw/proto/v1';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CircuitBreaker } from './circuit-breaker.js';
import type { Executor } from './execute.js';
import { MAX_EMBED_INPUTS, MAX_PLAN_ATTEMPTS, MAX_PRICE_PER_MILLION_USD } from './request-check.js';
import type { ProviderRegistry } from './providers/registry.js';
import { attempt, chatRequest, ctxOf, embedRequest, executorFor, price, testProviders, tool, user, type RecordingUsage } from './test-helpers.js';

let sim: Simulator;
let executor: Executor;
let registry: ProviderRegistry;
let usage: RecordingUsage;

beforeAll(async () => {
  sim = await startSimulator();
  // A breaker that never opens: these tests fail the same model on purpose many times.
  const breaker = new CircuitBreaker({ failureThreshold: 1_000_000, openMs: 1, now: Date.now });
  ({ executor, registry, usage } = executorFor(testProviders(sim.url), { random: () => 0.5, breaker }));
});
afterAll(async () => {
  await registry.close();
  await sim.close();
});
beforeEach(() => usage.clear());

async function waitFor(cond: () => boolean, ms = 2_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const req = chatRequest;

async function collect(r: ExecuteChatRequest, signal?: AbortSignal, onMsg?: (m: ExecuteChatStreamResponse) => void | Promise<void>, ex: Executor = executor): Promise<ExecuteChatStreamResponse[]> {
  const out: ExecuteChatStreamResponse[] = [];
  await ex.executeChatStream(r, ctxOf(signal), async (m) => {
    out.push(m);
    await onMsg?.(m);
  });
  return out;
}

const weather = tool('get_weather', { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }, 'weather');

describe('ExecuteChat against the simulator', () => {
  it.each(['oa-gpt-4o-mini', 'az-my-deployment', 'an-claude-haiku-4-5', 'ge-gemini-2.5-flash'])('answers through %s with usage and cost', async (model) => {
    const res = await executor.executeChat(req('hello there', [attempt(model)]), ctxOf());
    expect(res.error).toBeUndefined();
    const r = res.response!;
    expect(r.id).toBe('req-1');
    expect(r.model).toBe(model);
    expect(r.provider).toBe(model.split('-')[0]);
    expect(r.message?.content.length).toBeGreaterThan(0);
    expect(r.finishReason).toBe(FinishReason.FINISH_REASON_STOP);
    expect(r.usage?.inputTokens).toBeGreaterThan(0);
    expect(r.usage?.outputTokens).toBeGreaterThan(0);
    expect(r.usage?.tokensEstimated).toBe(false);
    expect(r.usage?.costMicros).toBeGreaterThan(0);
    expect(r.usage?.costUsd).toBeCloseTo((r.usage?.costMicros ?? 0) / 1e6, 12);
    expect(r.routing).toMatchObject({ rule: 'default', route: 'r', chosenModel: model, fallbackUsed: false });
    expect(r.routing?.attempts).toHaveLength(1);
    expect(r.routing?.attempts[0]).toMatchObject({ model, outcome: AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS, providerStatus: 200 });
  });

  it('computes cost with the pricing the plan carries', async () => {
    const res = await executor.executeChat(req('[[long]] write a lot', [attempt('oa-gpt-4o-mini')], { maxTokens: 1000 }), ctxOf());
    const u = res.response!.usage!;
    expect(u.outputTokens).toBeGreaterThan(300);
    expect(u.costMicros).toBe(Math.round(u.inputTokens * 0.15 + u.outputTokens * 0.6));
    // The same model priced differently by the plan costs differently: the executor holds no prices.
    const repriced = await executor.executeChat(
      req('[[long]] write a lot', [attempt('oa-gpt-4o-mini', undefined, { pricing: price(10, 20) })], { maxTokens: 1000 }),
      ctxOf(),
    );
    const v = repriced.response!.usage!;
    expect(v.costMicros).toBe(v.inputTokens * 10 + v.outputTokens * 20);
  });

  it('refuses a plan with an unpriced attempt before any provider is called: a model is never billed $0 for want of a price', async () => {
    const unpriced = [attempt('oa-gpt-4o-mini'), attempt('oa-gpt-4o-mini', undefined, { pricing: undefined })];
    const before = sim.bill().total.requests;
    await expect(executor.executeChat(req('hi', unpriced), ctxOf())).rejects.toMatchObject({ kind: 'invalid_argument', message: 'plan.attempts[1].pricing is required (model oa-gpt-4o-mini)' });
    expect(sim.bill().total.requests).toBe(before);
  });

  it.each(['oa-gpt-4o-mini', 'an-claude-haiku-4-5', 'ge-gemini-2.5-flash'])('returns tool calls from %s (tools with parsed parameters)', async (model) => {
    const res = await executor.executeChat(req('[[tool]] weather in Paris?', [attempt(model)], { tools: [weather] }), ctxOf());
    const r = res.response!;
    expect(r.finishReason).toBe(FinishReason.FINISH_REASON_TOOL_CALLS);
    expect(r.message?.toolCalls).toHaveLength(1);
    expect(r.message?.toolCalls[0]?.name).toBe('get_weather');
    expect(JSON.parse(r.message?.toolCalls[0]?.argumentsJson ?? '')).toHaveProperty('city');
    expect(r.message?.toolCalls[0]?.id).not.toBe('');
  });

  // Anthropic's json_schema is a forced tool, which the simulator does not honour: covered by the adapter tests.
  it.each(['oa-gpt-4o-mini', 'ge-gemini-2.5-flash'])('answers a json_schema response format with its parsed schema on %s', async (model) => {
    const schema = { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city', 'days'] };
    const res = await executor.executeChat(
      req('forecast please', [attempt(model)], { responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, name: 'forecast', schema } }),
      ctxOf(),
    );
    expect(res.error).toBeUndefined();
    const body = JSON.parse(res.response?.message?.content ?? '') as Record<string, unknown>;
    expect(typeof body.city).toBe('string');
    expect(Number.isInteger(body.days)).toBe(true);
  });

  it('answers a json_object response format with JSON', async () => {
    const res = await executor.executeChat(
      req('hi', [attempt('oa-gpt-4o-mini')], { responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT, name: '', schema: undefined } }),
      ctxOf(),
    );
    expect(() => JSON.parse(res.response?.message?.content ?? '')).not.toThrow();
  });

  it('moves on only on a listed trigger: with http_429 alone, a 503 stops at the first attempt and a 429 falls back', async () => {
    const only429 = { fallbackTriggers: [FallbackTrigger.FALLBACK_TRIGGER_HTTP_429] };
    const stopped = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'p-fail-503'), attempt('an-claude-haiku-4-5')], {}, only429), ctxOf());
    expect(stopped.error?.kind).toBe(ErrorKind.ERROR_KIND_UNAVAILABLE);
    expect(stopped.response?.routing?.attempts.map((a) => a.reason)).toEqual(['http_5xx']);
    const moved = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'p-fail-429'), attempt('an-claude-haiku-4-5')], {}, only429), ctxOf());
    expect(moved.error).toBeUndefined();
    expect(moved.response?.routing?.attempts.map((a) => a.reason)).toEqual(['http_429', '']);
  });

  describe('a json_schema answer that does not match', () => {
    const schema = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'], additionalProperties: false };
    const asJson = { responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, name: 'reply', schema } };

    it('is repaired once by the same model, and both calls are billed', async () => {
      const res = await executor.executeChat(req('[[badjson]] hi', [attempt('oa-gpt-4o-mini')], asJson), ctxOf());
      expect(res.error).toBeUndefined();
      expect(JSON.parse(res.response?.message?.content ?? '')).toEqual({ answer: expect.any(String) });
      expect(res.response?.routing?.attempts.map((a) => [a.model, a.reason])).toEqual([['oa-gpt-4o-mini', 'schema_failure'], ['oa-gpt-4o-mini', '']]);
      const event = usage.events[0]!;
      expect(event.attempts.map((a) => a.reason)).toEqual(['schema_failure', '']);
      expect(event.attempts[0]!.outputTokens).toBeGreaterThan(0);
      expect(event.costMicros).toBe(event.attempts[0]!.costMicros + event.attempts[1]!.costMicros);
    });

    it('fails closed when the repair does not match either and schema_failure is not a trigger: no answer is returned', async () => {
      const res = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'gpt-badjson'), attempt('an-claude-haiku-4-5')], asJson, { fallbackTriggers: [] }), ctxOf());
      expect(res.error?.kind).toBe(ErrorKind.ERROR_KIND_UNAVAILABLE);
      expect(res.error?.message).toMatch(/did not match the response schema/);
      expect(res.response?.message).toBeUndefined();
      expect(res.response?.routing?.attempts.map((a) => a.reason)).toEqual(['schema_failure', 'schema_failure']);
    });

    it('moves to the next model at once under policy fail with the schema_failure trigger', async () => {
      const res = await executor.executeChat(
        req('hi', [attempt('oa-gpt-4o-mini', 'gpt-badjson'), attempt('az-my-deployment')], asJson, {
          fallbackTriggers: [FallbackTrigger.FALLBACK_TRIGGER_SCHEMA_FAILURE],
          schemaFailurePolicy: SchemaFailurePolicy.SCHEMA_FAILURE_POLICY_FAIL,
        }),
        ctxOf(),
      );
      expect(res.error).toBeUndefined();
      expect(res.response?.model).toBe('az-my-deployment');
      expect(JSON.parse(res.response?.message?.content ?? '')).toEqual({ answer: expect.any(String) });
      expect(res.response?.routing?.attempts.map((a) => a.reason)).toEqual(['schema_failure', '']);
    });

    it('returns a refusal as it is, without validating or rerouting it', async () => {
      const res = await executor.executeChat(req('[[refuse]]', [attempt('oa-gpt-4o-mini'), attempt('an-claude-haiku-4-5')], asJson), ctxOf());
      expect(res.error).toBeUndefined();
      expect(res.response?.finishReason).toBe(FinishReason.FINISH_REASON_CONTENT_FILTER);
      expect(res.response?.routing?.attempts).toHaveLength(1);
    });

    it('streamed: output cannot be taken back, so a mismatch ends the stream on UNAVAILABLE, never a finish, and is billed', async () => {
      const msgs = await collect(req('[[badjson]] hi', [attempt('oa-gpt-4o-mini'), attempt('an-claude-haiku-4-5')], asJson));
      const last = msgs.at(-1)!;
      expect(msgs.slice(0, -1).map((m) => m.chunk?.contentDelta).join('')).not.toBe('');
      expect(last.error?.kind).toBe(ErrorKind.ERROR_KIND_UNAVAILABLE);
      expect(last.error?.message).toMatch(/does not match the response schema/);
      expect(last.chunk?.finishReason).toBe(FinishReason.FINISH_REASON_ERROR);
      expect(last.chunk?.routing?.attempts.map((a) => [a.model, a.reason])).toEqual([['oa-gpt-4o-mini', 'schema_failure']]);
      const event = usage.events[0]!;
      expect(event).toMatchObject({ success: false, errorCode: 'UNAVAILABLE' });
      expect(event.attempts[0]!.outputTokens).toBeGreaterThan(0);
    });

    it('streamed: a matching answer finishes as usual', async () => {
      const msgs = await collect(req('hi', [attempt('oa-gpt-4o-mini')], asJson));
      const last = msgs.at(-1)!;
      expect(last.error).toBeUndefined();
      expect(last.chunk?.finishReason).toBe(FinishReason.FINISH_REASON_STOP);
      expect(JSON.parse(msgs.map((m) => m.chunk?.contentDelta ?? '').join(''))).toEqual({ answer: expect.any(String) });
    });

    it('refuses a schema ajv cannot compile before any provider call', async () => {
      const before = usage.events.length;
      const bad = { responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, name: 'x', schema: { type: 'no-such-type' } } };
      await expect(executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini')], bad), ctxOf())).rejects.toThrow(/response_format.json_schema/);
      await expect(collect(req('hi', [attempt('oa-gpt-4o-mini')], bad))).rejects.toThrow(/response_format.json_schema/);
      expect(usage.events.length).toBe(before);
    });
  });

  describe('hedging', () => {
    const hedgeNext = { hedge: { delayMs: 40, delayP95: false, delayMsMin: 0, delayMsMax: 0, sameModel: false } };

    it('sends the next model after the delay; the first good answer wins, the slow call is cancelled and billed', async () => {
      const started = Date.now();
      const res = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'gpt-slow-1500'), attempt('an-claude-haiku-4-5')], {}, hedgeNext), ctxOf());
      expect(Date.now() - started).toBeLessThan(1_000);
      expect(res.error).toBeUndefined();
      expect(res.response?.model).toBe('an-claude-haiku-4-5');
      expect(res.response?.routing?.attempts.map((a) => [a.model, a.reason, a.hedge])).toEqual([
        ['oa-gpt-4o-mini', 'hedge_lost', false],
        ['an-claude-haiku-4-5', '', true],
      ]);
      const event = usage.events[0]!;
      expect(event.attempts.map((a) => [a.model, a.tokenSource])).toEqual([
        ['oa-gpt-4o-mini', TokenSource.TOKEN_SOURCE_ESTIMATED],
        ['an-claude-haiku-4-5', TokenSource.TOKEN_SOURCE_PROVIDER],
      ]);
      expect(event.attempts[0]!.inputTokens).toBeGreaterThan(0);
      expect(event.costMicros).toBe(event.attempts[0]!.costMicros + event.attempts[1]!.costMicros);
    });

    it('does not hedge a fast answer, a request whose tools have side effects, or a batch request', async () => {
      const fast = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini'), attempt('an-claude-haiku-4-5')], {}, hedgeNext), ctxOf());
      expect(fast.response?.routing?.attempts).toHaveLength(1);
      for (const extra of [{ noHedge: true }, { batch: true }]) {
        const res = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'gpt-slow-150'), attempt('an-claude-haiku-4-5')], extra, hedgeNext), ctxOf());
        expect(res.response?.model).toBe('oa-gpt-4o-mini');
        expect(res.response?.routing?.attempts.map((a) => a.hedge)).toEqual([false]);
      }
    });

    it('waits for the other call when the first to end failed', async () => {
      const res = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'gpt-slow-200'), attempt('an-claude-haiku-4-5', 'claude-fail-500')], {}, hedgeNext), ctxOf());
      expect(res.error).toBeUndefined();
      expect(res.response?.model).toBe('oa-gpt-4o-mini');
      expect(res.response?.routing?.attempts.map((a) => [a.model, a.reason])).toEqual([['an-claude-haiku-4-5', 'http_5xx'], ['oa-gpt-4o-mini', '']]);
    });
  });

  it('falls back on a 500 and records the failed attempt', async () => {
    const res = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'gpt-4o-mini-fail-500'), attempt('an-claude-haiku-4-5')]), ctxOf());
    expect(res.error).toBeUndefined();
    const routing = res.response!.routing!;
    expect(routing.fallbackUsed).toBe(true);
    expect(routing.chosenModel).toBe('an-claude-haiku-4-5');
    expect(res.response!.model).toBe('an-claude-haiku-4-5');
    expect(routing.attempts[0]).toMatchObject({ model: 'oa-gpt-4o-mini', outcome: AttemptOutcome.ATTEMPT_OUTCOME_FAILED, providerStatus: 500, reason: 'http_5xx', hedge: false });
    expect(routing.attempts[0]?.error).toContain('500');
    expect(routing.attempts[1]).toMatchObject({ outcome: AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS });
  });

  it('names the plan\'s split arm in the routing record, unary and streamed; none without a split', async () => {
    const arm = { split: 'canary-20', stickyBucketMin: 0, stickyBucketMax: 1_999 };
    const unary = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini')], {}, arm), ctxOf());
    expect(unary.response?.routing).toMatchObject({ split: 'canary-20', chosenModel: 'oa-gpt-4o-mini' });
    const streamed = await collect(req('hi', [attempt('oa-gpt-4o-mini')], {}, arm, 'req-split-stream'));
    expect(streamed.at(-1)?.chunk?.routing?.split).toBe('canary-20');
    const plain = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini')], {}, {}, 'req-split-none'), ctxOf());
    expect(plain.response?.routing?.split).toBe('');
  });

  it('does not fall back on a 400: INVALID_ARGUMENT with the provider message', async () => {
    const res = await executor.executeChat(req('hi', [attempt('an-claude-haiku-4-5', 'claude-fail-400'), attempt('oa-gpt-4o-mini')]), ctxOf());
    expect(res.error?.kind).toBe(ErrorKind.ERROR_KIND_INVALID_ARGUMENT);
    expect(res.error?.code).toBe(''); // deprecated: kind replaces it
    expect(res.error?.message).toContain('Simulated 400');
    expect(res.response?.routing?.attempts).toHaveLength(1);
    expect(res.response?.routing?.attempts[0]).toMatchObject({ providerStatus: 400, reason: 'invalid_request', hedge: false });
    expect(usage.events[0]).toMatchObject({ success: false, errorCode: 'INVALID_ARGUMENT', costMicros: 0 });
  });

  it.each(['oa-gpt-4o-mini', 'an-claude-haiku-4-5', 'ge-gemini-2.5-flash'])('never falls back around a refusal from %s', async (model) => {
    const res = await executor.executeChat(req('[[refuse]] something bad', [attempt(model), attempt('oa-gpt-4o-mini')]), ctxOf());
    expect(res.error).toBeUndefined();
    expect(res.response?.finishReason).toBe(FinishReason.FINISH_REASON_CONTENT_FILTER);
    expect(res.response?.routing?.attempts).toHaveLength(1);
    expect(res.response?.routing?.attempts[0]).toMatchObject({ outcome: AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS, reason: 'content_filter' });
    // A refusal is an answer the provider bills: one successful event for the refusing model.
    expect(usage.events).toHaveLength(1);
    expect(usage.events[0]).toMatchObject({ success: true, model, attemptCount: 1 });
    expect(usage.events[0]?.inputTokens).toBe(res.response?.usage?.inputTokens);
  });

  it('carries retry-after of a 429 when every attempt is rate limited', async () => {
    const res = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'gpt-fail-429')]), ctxOf());
    expect(res.error).toMatchObject({ kind: ErrorKind.ERROR_KIND_RESOURCE_EXHAUSTED, retryAfterMs: 1000 });
    expect(res.response?.routing?.attempts[0]).toMatchObject({ providerStatus: 429, reason: 'http_429', hedge: false });
    expect(usage.events[0]).toMatchObject({ success: false, errorCode: 'RESOURCE_EXHAUSTED' });
  });

  it('falls back on a 429 for interactive requests without waiting', async () => {
    const started = Date.now();
    const res = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'gpt-fail-429', { maxRetries: 3 }), attempt('ge-gemini-2.5-flash')]), ctxOf());
    expect(res.response?.model).toBe('ge-gemini-2.5-flash');
    expect(res.response?.routing?.attempts).toHaveLength(2);
    expect(Date.now() - started).toBeLessThan(900);
  });

  it('retries a batch attempt with backoff that honours retry-after', async () => {
    sim.resetStats();
    const started = Date.now();
    const res = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'gpt-batch-fail-429', { maxRetries: 1 }), attempt('an-claude-haiku-4-5')], { batch: true }), ctxOf());
    expect(sim.stats().byModel['gpt-batch-fail-429']).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000); // retry-after: 1 s beats the 20 ms backoff
    const attempts = res.response!.routing!.attempts;
    expect(attempts.map((a) => a.reason)).toEqual(['http_429', 'http_429', '']);
    expect(res.response?.model).toBe('an-claude-haiku-4-5');
    // Every try is listed in the usage event, the 429s at no cost.
    expect(usage.events).toHaveLength(1);
    expect(usage.events[0]?.attempts.map((a) => [a.model, a.reason, a.costMicros])).toEqual([
      ['oa-gpt-4o-mini', 'http_429', 0],
      ['oa-gpt-4o-mini', 'http_429', 0],
      ['an-claude-haiku-4-5', '', res.response?.usage?.costMicros],
    ]);
  });

  it('retries a batch attempt on 5xx with exponential backoff', async () => {
    sim.resetStats();
    const started = Date.now();
    const res = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'gpt-b-fail-503', { maxRetries: 2 })], { batch: true }, { retryBackoffMs: 50 }), ctxOf());
    expect(sim.stats().byModel['gpt-b-fail-503']).toBe(3);
    // random()=0.5 → jitter factor 0.75: 37.5 + 75 ms of backoff
    expect(Date.now() - started).toBeGreaterThanOrEqual(110);
    expect(res.error?.kind).toBe(ErrorKind.ERROR_KIND_UNAVAILABLE);
    expect(res.response?.routing?.attempts).toHaveLength(3);
  });

  it('does not retry an interactive attempt', async () => {
    sim.resetStats();
    const res = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'gpt-i-fail-503', { maxRetries: 2 })]), ctxOf());
    expect(sim.stats().byModel['gpt-i-fail-503']).toBe(1);
    expect(res.error?.kind).toBe(ErrorKind.ERROR_KIND_UNAVAILABLE);
  });

  it('times out a hanging attempt at its per-attempt timeout and falls back', async () => {
    const started = Date.now();
    const res = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'gpt-hang', { timeoutMs: 200 }), attempt('an-claude-haiku-4-5')]), ctxOf());
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(2_000);
    expect(res.response?.routing?.attempts[0]).toMatchObject({ reason: 'timeout', providerStatus: 0, outcome: AttemptOutcome.ATTEMPT_OUTCOME_FAILED });
    expect(res.response?.model).toBe('an-claude-haiku-4-5');
    await waitFor(() => sim.stats().openRequests === 0);
  });

  it('stops at the caller deadline with DEADLINE_EXCEEDED', async () => {
    const res = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'gpt-hang'), attempt('an-claude-haiku-4-5')]), ctxOf(undefined, 300));
    expect(res.error?.kind).toBe(ErrorKind.ERROR_KIND_DEADLINE_EXCEEDED);
    expect(res.response?.routing?.attempts).toHaveLength(1);
    // The provider may bill an attempt we stopped waiting for: its prompt is charged, estimated.
    expect(usage.events[0]).toMatchObject({ success: false, errorCode: 'DEADLINE_EXCEEDED', tokenSource: TokenSource.TOKEN_SOURCE_ESTIMATED });
    expect(usage.events[0]?.inputTokens).toBeGreaterThan(0);
    await waitFor(() => sim.stats().openRequests === 0);
  });

  it('stops at the plan timeout with DEADLINE_EXCEEDED', async () => {
    const started = Date.now();
    const res = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'gpt-hang'), attempt('an-claude-haiku-4-5')], {}, { timeoutMs: 250 }), ctxOf());
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(res.error?.kind).toBe(ErrorKind.ERROR_KIND_DEADLINE_EXCEEDED);
    expect(res.response?.routing?.attempts.map((a) => a.reason)).toEqual(['deadline_exceeded']);
    await waitFor(() => sim.stats().openRequests === 0);
  });

  it('falls back on a dropped connection', async () => {
    const res = await executor.executeChat(req('hi', [attempt('ge-gemini-2.5-flash', 'gemini-drop'), attempt('oa-gpt-4o-mini')]), ctxOf());
    expect(res.response?.routing?.attempts[0]).toMatchObject({ reason: 'connection_error', providerStatus: 0 });
    expect(res.response?.model).toBe('oa-gpt-4o-mini');
  });

  it('does not fall back on a failure that is not one of the plan triggers', async () => {
    const res = await executor.executeChat(
      req('hi', [attempt('oa-gpt-4o-mini', 'gpt-t-fail-503'), attempt('an-claude-haiku-4-5')], {}, { fallbackTriggers: [] }),
      ctxOf(),
    );
    expect(res.error?.kind).toBe(ErrorKind.ERROR_KIND_UNAVAILABLE);
    expect(res.response?.routing?.attempts).toHaveLength(1);
  });

  it('reports every failure when all attempts fail', async () => {
    const res = await executor.executeChat(
      req('hi', [attempt('oa-gpt-4o-mini', 'a-fail-500'), attempt('an-claude-haiku-4-5', 'b-fail-502'), attempt('ge-gemini-2.5-flash', 'c-drop')], {}, {
        skipped: [{ model: 'x', provider: 'p', outcome: AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED, error: 'not allowed', latencyMs: 0, providerStatus: 0, reason: 'unhealthy', hedge: false }],
      }),
      ctxOf(),
    );
    expect(res.error?.kind).toBe(ErrorKind.ERROR_KIND_UNAVAILABLE);
    expect(res.error?.message).toContain('ge-gemini-2.5-flash');
    const attempts = res.response!.routing!.attempts;
    expect(attempts.map((a) => [a.model, a.reason])).toEqual([
      ['x', 'unhealthy'],
      ['oa-gpt-4o-mini', 'http_5xx'],
      ['an-claude-haiku-4-5', 'http_5xx'],
      ['ge-gemini-2.5-flash', 'connection_error'],
    ]);
    expect(res.response?.usage).toMatchObject({ inputTokens: 0, outputTokens: 0, costMicros: 0 });
  });

  it('treats a rejected key as a gateway configuration fault: UNAVAILABLE, no key in the text', async () => {
    const res = await executor.executeChat(req('hi', [attempt('oabad-gpt-4o-mini')]), ctxOf());
    expect(res.error?.kind).toBe(ErrorKind.ERROR_KIND_UNAVAILABLE);
    expect(res.response?.routing?.attempts[0]).toMatchObject({ providerStatus: 401, reason: 'auth_config', hedge: false });
    expect(JSON.stringify(res)).not.toContain('bad-key');
    expect(JSON.stringify(usage.events)).not.toContain('bad-key');
  });

  it('skips an attempt whose provider this replica does not have', async () => {
    const res = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', undefined, { provider: 'nope' }), attempt('an-claude-haiku-4-5')]), ctxOf());
    expect(res.response?.model).toBe('an-claude-haiku-4-5');
    expect(res.response?.routing?.attempts[0]).toMatchObject({ outcome: AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED, reason: 'config_error' });
    expect(usage.events[0]?.attempts.map((a) => a.model)).toEqual(['an-claude-haiku-4-5']);
  });

  it('refuses a max_tokens above the planned model output limit: INVALID_ARGUMENT naming it', async () => {
    sim.resetStats();
    const res = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'gpt-limited', { maxOutputTokens: 100 })], { maxTokens: 200 }), ctxOf());
    expect(res.error?.kind).toBe(ErrorKind.ERROR_KIND_INVALID_ARGUMENT);
    expect(res.error?.message).toContain('max_tokens');
    expect(res.error?.message).toContain('100');
    expect(res.response?.routing?.attempts[0]).toMatchObject({ outcome: AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED, reason: 'unsupported_parameter' });
    expect(sim.stats().byModel['gpt-limited']).toBeUndefined();
    // Nothing reached a provider, and still one event: the request was received.
    expect(usage.events).toHaveLength(1);
    expect(usage.events[0]).toMatchObject({ success: false, errorCode: 'INVALID_ARGUMENT', attempts: [], costMicros: 0 });
  });

  it('skips a model whose output limit is below max_tokens and uses the next', async () => {
    const res = await executor.executeChat(req('hi', [attempt('an-claude-haiku-4-5', undefined, { maxOutputTokens: 100 }), attempt('oa-gpt-4o-mini')], { maxTokens: 200 }), ctxOf());
    expect(res.error).toBeUndefined();
    expect(res.response?.model).toBe('oa-gpt-4o-mini');
    expect(res.response?.routing?.attempts[0]).toMatchObject({ model: 'an-claude-haiku-4-5', reason: 'unsupported_parameter' });
  });

  it('leaves capabilities to the router: a plan attempt is tried whatever the request needs', async () => {
    // The router only plans models with the needed capabilities; the executor no longer second-guesses it.
    const res = await executor.executeChat(req('[[tool]] weather?', [attempt('an-claude-haiku-4-5')], { tools: [weather] }), ctxOf());
    expect(res.error).toBeUndefined();
    expect(res.response?.routing?.attempts).toHaveLength(1);
  });

  it('skips a model whose circuit breaker is open', async () => {
    let now = 0;
    const breaker = new CircuitBreaker({ failureThreshold: 2, openMs: 1_000, now: () => now });
    const { executor: ex, registry: reg } = executorFor(testProviders(sim.url), { breaker });
    try {
      const r = () => ex.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'gpt-cb-fail-500'), attempt('an-claude-haiku-4-5')]), ctxOf());
      await r();
      await r();
      sim.resetStats();
      const third = await r();
      expect(sim.stats().byModel['gpt-cb-fail-500']).toBeUndefined();
      expect(third.response?.routing?.attempts[0]).toMatchObject({ outcome: AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED, reason: 'unhealthy' });
      now = 1_000;
      await r();
      expect(sim.stats().byModel['gpt-cb-fail-500']).toBe(1); // half-open probe
    } finally {
      await reg.close();
    }
  });

  it('passes a multi-turn tool conversation to each provider', async () => {
    const messages = [
      { role: Role.ROLE_SYSTEM, content: 'be brief', name: '', toolCalls: [], toolCallId: '' },
      user('[[tool]] weather?'),
      { role: Role.ROLE_ASSISTANT, content: '', name: '', toolCalls: [{ id: 'call_1', name: 'get_weather', argumentsJson: '{"city":"Paris"}' }], toolCallId: '' },
      { role: Role.ROLE_TOOL, content: '{"temp":21}', name: '', toolCalls: [], toolCallId: 'call_1' },
    ];
    for (const model of ['oa-gpt-4o-mini', 'an-claude-haiku-4-5', 'ge-gemini-2.5-flash']) {
      const res = await executor.executeChat(req('', [attempt(model)], { tools: [weather], messages }), ctxOf());
      expect(res.error, model).toBeUndefined();
      expect(res.response?.finishReason, model).toBe(FinishReason.FINISH_REASON_STOP);
    }
  });

  it('rejects a request without params or plan as INVALID_ARGUMENT, before any event', async () => {
    await expect(executor.executeChat({ ...req('hi', [attempt('oa-gpt-4o-mini')]), params: undefined }, ctxOf())).rejects.toMatchObject({ kind: 'invalid_argument' });
    await expect(executor.executeChat({ ...req('hi', [attempt('oa-gpt-4o-mini')]), plan: undefined }, ctxOf())).rejects.toMatchObject({ kind: 'invalid_argument' });
    expect(usage.events).toEqual([]);
  });

  // Found by the fuzz test: a plan price of NaN, Infinity or 1e200 failed the cost arithmetic
  // (BigInt of NaN, an int64 beyond range) after the provider had answered: INTERNAL.
  it.each([
    ['NaN input', price(NaN, 1), 'plan.attempts[1].pricing.input_per_million_usd'],
    ['infinite output', price(1, Infinity), 'plan.attempts[1].pricing.output_per_million_usd'],
    ['negative input', price(-1, 1), 'plan.attempts[1].pricing.input_per_million_usd'],
    ['absurd output', price(1, 1e200), 'plan.attempts[1].pricing.output_per_million_usd'],
    ['negative cached input', { ...price(1, 1), cachedInputPerMillionUsd: -1 }, 'plan.attempts[1].pricing.cached_input_per_million_usd'],
    ['NaN cache write', { ...price(1, 1), cacheWriteInputPerMillionUsd: NaN }, 'plan.attempts[1].pricing.cache_write_input_per_million_usd'],
  ])('refuses a plan whose price is not a bounded number (%s): INVALID_ARGUMENT naming it, no provider called, no event', async (_name, pricing, field) => {
    const attempts = [attempt('oa-gpt-4o-mini'), attempt('oa-gpt-4o-mini', undefined, { pricing })];
    for (const run of [
      () => executor.executeChat(req('hi', attempts), ctxOf()),
      () => collect(req('hi', attempts)),
      () => executor.executeEmbed(embedRequest(['hi'], [attempt('oa-embed'), attempt('oa-embed', undefined, { pricing })]), ctxOf()),
    ]) {
      const err: unknown = await run().then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ kind: 'invalid_argument' });
      expect((err as Error).message).toContain(field);
    }
    expect(usage.events).toEqual([]);
  });

  // Found by the fuzz test: a request id with a CR/LF is no valid JetStream message id; publishing
  // its usage event threw, and the executor process died of the unhandled rejection.
  it.each(['', 'a\r\nb', 'with space', 'x'.repeat(129), 'é'])('refuses the request id %j as INVALID_ARGUMENT, before any provider call or event', async (requestId) => {
    for (const run of [
      () => executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini')], {}, {}, requestId), ctxOf()),
      () => collect(req('hi', [attempt('oa-gpt-4o-mini')], {}, {}, requestId)),
      () => executor.executeEmbed(embedRequest(['hi'], [attempt('oa-embed')], {}, requestId), ctxOf()),
    ]) {
      await expect(run()).rejects.toMatchObject({ kind: 'invalid_argument', message: expect.stringMatching(/^request_id: /) as string });
    }
    expect(usage.events).toEqual([]);
  });

  // Found by the fuzz test: a 1 MB tenant id (or thousands of attempts) made a usage event larger
  // than a NATS message: it stayed in the outbox for ever; one without a tenant was dead-lettered.
  it.each([
    ['no tenant', { tenantId: '' }, {}, /^tenant_id is required$/],
    ['a huge tenant id', { tenantId: 't'.repeat(1_000_000) }, {}, /^tenant_id: at most 256 characters$/],
    ['a huge key id', { keyId: 'k'.repeat(257) }, {}, /^key_id: at most 256 characters$/],
    ['a huge user label', { labels: UsageLabels.fromPartial({ user: 'u'.repeat(257) }) }, {}, /^labels\.user: at most 256 characters$/],
    ['a huge feature label', { labels: UsageLabels.fromPartial({ feature: 'f'.repeat(257) }) }, {}, /^labels\.feature: at most 256 characters$/],
    ['a huge route', {}, { route: 'r'.repeat(257) }, /^plan\.route: at most 256 characters$/],
    ['too many attempts', {}, { attempts: Array.from({ length: MAX_PLAN_ATTEMPTS + 1 }, () => attempt('oa-gpt-4o-mini')) }, /^plan\.attempts: at most 32, got 33$/],
  ])('refuses %s as INVALID_ARGUMENT naming the field, before any provider call or event', async (_name, fields, planFields, message) => {
    const base = req('hi', [attempt('oa-gpt-4o-mini')]);
    const r = { ...base, ...fields, plan: { ...base.plan!, ...planFields } };
    await expect(executor.executeChat(r, ctxOf())).rejects.toMatchObject({ kind: 'invalid_argument', message: expect.stringMatching(message) as string });
    await expect(collect(r)).rejects.toMatchObject({ kind: 'invalid_argument' });
    expect(usage.events).toEqual([]);
  });

  it('refuses a model name over 256 characters in any attempt', async () => {
    const r = req('hi', [attempt('oa-gpt-4o-mini'), { ...attempt('oa-gpt-4o-mini'), upstreamModel: 'u'.repeat(257) }]);
    await expect(executor.executeChat(r, ctxOf())).rejects.toMatchObject({ kind: 'invalid_argument', message: 'plan.attempts[1].upstream_model: at most 256 characters' });
  });

  it('accepts free and the highest allowed prices', async () => {
    const res = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', undefined, { pricing: price(0, MAX_PRICE_PER_MILLION_USD) })]), ctxOf());
    expect(res.error).toBeUndefined();
    expect(res.response?.usage?.costMicros).toBe((res.response?.usage?.outputTokens ?? 0) * MAX_PRICE_PER_MILLION_USD);
  });
});

describe('ExecuteChatStream against the simulator', () => {
  afterEach(async () => {
    await waitFor(() => sim.stats().openRequests === 0);
  });

  it.each(['oa-gpt-4o-mini', 'az-my-deployment', 'an-claude-haiku-4-5', 'ge-gemini-2.5-flash'])('streams deltas from %s with usage at the end', async (model) => {
    const msgs = await collect(req('[[long]] tell me', [attempt(model)], { maxTokens: 1000 }));
    expect(msgs.length).toBeGreaterThan(3);
    const last = msgs[msgs.length - 1]!;
    const deltas = msgs.slice(0, -1);
    expect(deltas.every((m) => m.chunk!.contentDelta.length > 0 && m.chunk!.usage === undefined)).toBe(true);
    expect(last.error).toBeUndefined();
    expect(last.chunk?.finishReason).toBe(FinishReason.FINISH_REASON_STOP);
    expect(last.chunk?.usage?.outputTokens).toBeGreaterThan(300);
    expect(last.chunk?.usage?.inputTokens).toBeGreaterThan(0);
    expect(last.chunk?.usage?.tokensEstimated).toBe(false);
    expect(last.chunk?.routing?.chosenModel).toBe(model);
    const nonStream = await executor.executeChat(req('[[long]] tell me', [attempt(model)], { maxTokens: 1000 }), ctxOf());
    expect(deltas.map((m) => m.chunk!.contentDelta).join('')).toBe(nonStream.response?.message?.content);
  });

  it.each(['oa-gpt-4o-mini', 'an-claude-haiku-4-5', 'ge-gemini-2.5-flash'])('streams tool-call deltas from %s', async (model) => {
    const msgs = await collect(req('[[tool]] weather?', [attempt(model)], { tools: [weather] }));
    const deltas = msgs.flatMap((m) => m.chunk!.toolCallDeltas);
    expect(deltas[0]).toMatchObject({ index: 0, name: 'get_weather' });
    expect(deltas[0]?.id).not.toBe('');
    expect(JSON.parse(deltas.map((d) => d.argumentsJsonDelta).join(''))).toHaveProperty('city');
    expect(msgs[msgs.length - 1]?.chunk?.finishReason).toBe(FinishReason.FINISH_REASON_TOOL_CALLS);
  });

  it('falls back before the first token', async () => {
    const msgs = await collect(req('hello', [attempt('oa-gpt-4o-mini', 'gpt-fail-500'), attempt('an-claude-haiku-4-5')]));
    const last = msgs[msgs.length - 1]!;
    expect(last.error).toBeUndefined();
    expect(msgs[0]?.chunk?.model).toBe('an-claude-haiku-4-5');
    expect(last.chunk?.routing).toMatchObject({ fallbackUsed: true, chosenModel: 'an-claude-haiku-4-5' });
    expect(last.chunk?.routing?.attempts[0]).toMatchObject({ providerStatus: 500, reason: 'http_5xx', hedge: false });
  });

  it('reports a mid-stream drop: partial output, error, estimated usage', async () => {
    const msgs = await collect(req('[[long]] go', [attempt('oa-gpt-4o-mini', 'gpt-dropmid'), attempt('an-claude-haiku-4-5')]));
    const last = msgs[msgs.length - 1]!;
    const text = msgs.slice(0, -1).map((m) => m.chunk!.contentDelta).join('');
    expect(text.length).toBeGreaterThan(0);
    expect(last.error?.kind).toBe(ErrorKind.ERROR_KIND_UNAVAILABLE);
    expect(last.error?.message).toContain('provider stream ended early');
    expect(last.chunk?.finishReason).toBe(FinishReason.FINISH_REASON_ERROR);
    expect(last.chunk?.usage?.tokensEstimated).toBe(true);
    expect(last.chunk?.usage?.outputTokens).toBeGreaterThan(0);
    expect(last.chunk?.usage?.inputTokens).toBeGreaterThan(0);
    expect(last.chunk?.routing?.attempts).toHaveLength(1); // no fallback after the first delta
    expect(last.chunk?.routing?.attempts[0]).toMatchObject({ outcome: AttemptOutcome.ATTEMPT_OUTCOME_FAILED, reason: 'connection_error' });
  });

  it('uses the provider counts of a Gemini stream that drops mid-way', async () => {
    const msgs = await collect(req('[[long]] go', [attempt('ge-gemini-2.5-flash', 'gemini-dropmid')]));
    const last = msgs[msgs.length - 1]!;
    expect(last.error?.kind).toBe(ErrorKind.ERROR_KIND_UNAVAILABLE);
    expect(last.chunk?.usage?.tokensEstimated).toBe(false);
    expect(last.chunk?.usage?.outputTokens).toBeGreaterThan(0);
  });

  it('returns a refusal as CONTENT_FILTER without fallback', async () => {
    const msgs = await collect(req('[[refuse]] x', [attempt('an-claude-haiku-4-5'), attempt('oa-gpt-4o-mini')]));
    const last = msgs[msgs.length - 1]!;
    expect(last.chunk?.finishReason).toBe(FinishReason.FINISH_REASON_CONTENT_FILTER);
    expect(last.chunk?.routing?.attempts).toHaveLength(1);
    expect(usage.events).toHaveLength(1);
    expect(usage.events[0]).toMatchObject({ success: true, streamed: true, model: 'an-claude-haiku-4-5' });
  });

  it('all attempts failing gives one message with the error and routing', async () => {
    const msgs = await collect(req('x', [attempt('oa-gpt-4o-mini', 'a-fail-503')]));
    expect(msgs).toHaveLength(1);
    expect(msgs[0]?.error?.kind).toBe(ErrorKind.ERROR_KIND_UNAVAILABLE);
    expect(msgs[0]?.chunk?.routing?.attempts[0]).toMatchObject({ providerStatus: 503 });
  });

  it('refuses a max_tokens above the planned output limit', async () => {
    const msgs = await collect(req('x', [attempt('oa-gpt-4o-mini', undefined, { maxOutputTokens: 10 })], { maxTokens: 11 }));
    expect(msgs).toHaveLength(1);
    expect(msgs[0]?.error?.kind).toBe(ErrorKind.ERROR_KIND_INVALID_ARGUMENT);
  });

  it('aborts the upstream request when the caller cancels', async () => {
    const slowSim = await startSimulator({ streamChunkDelayMs: 20 });
    const { executor: ex, registry: reg, usage: slowUsage } = executorFor(testProviders(slowSim.url));
    try {
      const ctl = new AbortController();
      let got = 0;
      const run = ex.executeChatStream(req('[[long]] go', [attempt('an-claude-haiku-4-5')]), ctxOf(ctl.signal), async () => {
        got++;
        if (got === 2) ctl.abort();
      });
      await expect(run).rejects.toMatchObject({ kind: 'cancelled' });
      await waitFor(() => slowSim.stats().openRequests === 0);
      expect(got).toBe(2);
      expect(slowUsage.events).toHaveLength(1);
      expect(slowUsage.events[0]).toMatchObject({ success: false, errorCode: 'CANCELLED', streamed: true });
    } finally {
      await reg.close();
      await slowSim.close();
    }
  });

  it('reads the upstream only as fast as the caller takes messages', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let got = 0;
    const run = collect(req('[[tokens:50000]] go', [attempt('oa-gpt-4o-mini')], { maxTokens: 60_000 }), undefined, async () => {
      got++;
      if (got === 1) await gate;
    });
    await waitFor(() => got === 1, 5_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toBe(1); // held: no further message while the first is not taken
    expect(sim.stats().openRequests).toBe(1); // the provider is held by backpressure, not drained into memory
    expect(usage.events).toHaveLength(0); // billed once the request is over, not before
    release();
    const msgs = await run;
    expect(msgs[msgs.length - 1]?.chunk?.usage?.outputTokens).toBe(50_000);
    expect(usage.events[0]?.outputTokens).toBe(50_000);
  });
});

describe('ExecuteEmbed against the simulator', () => {
  it.each([
    ['oa-embed', false],
    ['ge-embed', true],
  ] as const)('embeds through %s (estimated usage: %s)', async (model, estimated) => {
    const res = await executor.executeEmbed(embedRequest(['one', 'two words'], [attempt(model)]), ctxOf());
    expect(res.error).toBeUndefined();
    const r = res.response!;
    expect(r.embeddings).toHaveLength(2);
    expect(r.embeddings[1]?.index).toBe(1);
    expect(r.embeddings[0]?.values.length).toBeGreaterThan(100);
    expect(r.usage?.inputTokens).toBeGreaterThan(0);
    expect(r.usage?.outputTokens).toBe(0);
    expect(r.usage?.tokensEstimated).toBe(estimated);
    expect(r.model).toBe(model);
  });

  // Found by the fuzz test: 5,000 texts took the simulator 160 MB of JSON and the call over 10 s.
  it('refuses more texts than the edge admits: INVALID_ARGUMENT naming request.inputs, no event', async () => {
    usage.clear();
    const err: unknown = await executor.executeEmbed(embedRequest(Array<string>(MAX_EMBED_INPUTS + 1).fill('hi'), [attempt('oa-embed')]), ctxOf()).then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ kind: 'invalid_argument', message: `request.inputs: at most ${MAX_EMBED_INPUTS} texts, got ${MAX_EMBED_INPUTS + 1}` });
    expect(usage.events).toEqual([]);
  });

  it('refuses more dimensions than any provider returns: INVALID_ARGUMENT naming request.dimensions', async () => {
    await expect(executor.executeEmbed(embedRequest(['hi'], [attempt('oa-embed')], { dimensions: 3_073 }), ctxOf())).rejects.toMatchObject({ kind: 'invalid_argument', message: 'request.dimensions: at most 3072, got 3073' });
  });

  it('passes the requested dimensions', async () => {
    const res = await executor.executeEmbed(embedRequest(['a', 'b'], [attempt('oa-embed')], { dimensions: 32 }), ctxOf());
    expect(res.response?.embeddings.map((e) => e.values.length)).toEqual([32, 32]);
  });

  it('falls back on a 503 and fails with UNAVAILABLE when nothing answers', async () => {
    const ok = await executor.executeEmbed(embedRequest(['x'], [attempt('oa-embed', 'emb-fail-503'), attempt('oa-embed')]), ctxOf());
    expect(ok.response?.routing).toMatchObject({ fallbackUsed: true, chosenModel: 'oa-embed' });
    const failed = await executor.executeEmbed(embedRequest(['x'], [attempt('oa-embed', 'emb-fail-503')]), ctxOf());
    expect(failed.error?.kind).toBe(ErrorKind.ERROR_KIND_UNAVAILABLE);
    expect(failed.response).toMatchObject({ model: '', embeddings: [] });
  });
});
