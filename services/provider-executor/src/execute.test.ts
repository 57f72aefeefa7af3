import { startSimulator, type Simulator } from '@llmgw/provider-simulator';
import type { ExecuteChatStreamResponse } from '@llmgw/proto/executor';
import { AttemptOutcome, FinishReason, LatencyClass, ResponseFormatType, Role } from '@llmgw/proto/v1';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CircuitBreaker } from './circuit-breaker.js';
import type { Executor } from './execute.js';
import type { ProviderRegistry } from './providers/registry.js';
import { attempt, chat, ctxOf, executorFor, plan, testConfig, user } from './test-helpers.js';

let sim: Simulator;
let executor: Executor;
let registry: ProviderRegistry;

beforeAll(async () => {
  sim = await startSimulator();
  // A breaker that never opens: these tests fail the same config model on purpose many times.
  const breaker = new CircuitBreaker({ failureThreshold: 1_000_000, openMs: 1, now: Date.now });
  ({ executor, registry } = executorFor(testConfig(sim.url), { random: () => 0.5, breaker }));
});
afterAll(async () => {
  await registry.close();
  await sim.close();
});

async function waitFor(cond: () => boolean, ms = 2_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function req(content: string, attempts: ReturnType<typeof attempt>[], extra: Parameters<typeof chat>[1] = {}, planExtra: Parameters<typeof plan>[1] = {}) {
  return { requestId: 'req-1', tenantId: 'acme', request: chat(content, extra), plan: plan(attempts, planExtra) };
}

async function collect(r: ReturnType<typeof req>, signal?: AbortSignal, onMsg?: (m: ExecuteChatStreamResponse) => void | Promise<void>): Promise<ExecuteChatStreamResponse[]> {
  const out: ExecuteChatStreamResponse[] = [];
  await executor.executeChatStream(r, ctxOf(signal), async (m) => {
    out.push(m);
    await onMsg?.(m);
  });
  return out;
}

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
    expect(r.usage?.costMicros).toBeGreaterThanOrEqual(0);
    expect(r.usage?.costUsd).toBeCloseTo((r.usage?.costMicros ?? 0) / 1e6, 12);
    expect(r.routing).toMatchObject({ rule: 'default', route: 'r', chosenModel: model, fallbackUsed: false });
    expect(r.routing?.attempts).toHaveLength(1);
    expect(r.routing?.attempts[0]).toMatchObject({ model, outcome: AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS, providerStatus: 200 });
  });

  it('computes cost from the model pricing', async () => {
    const res = await executor.executeChat(req('[[long]] write a lot', [attempt('oa-gpt-4o-mini')], { maxTokens: 1000 }), ctxOf());
    const u = res.response!.usage!;
    expect(u.outputTokens).toBeGreaterThan(300);
    expect(u.costMicros).toBe(Math.round((u.inputTokens * 0.15 + u.outputTokens * 0.6) / 1));
  });

  it.each(['oa-gpt-4o-mini', 'an-claude-haiku-4-5', 'ge-gemini-2.5-flash'])('returns tool calls from %s', async (model) => {
    const tools = [{ name: 'get_weather', description: 'weather', parametersJsonSchema: '{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}' }];
    const res = await executor.executeChat(req('[[tool]] weather in Paris?', [attempt(model)], { tools }), ctxOf());
    const r = res.response!;
    expect(r.finishReason).toBe(FinishReason.FINISH_REASON_TOOL_CALLS);
    expect(r.message?.toolCalls).toHaveLength(1);
    expect(r.message?.toolCalls[0]?.name).toBe('get_weather');
    expect(JSON.parse(r.message?.toolCalls[0]?.argumentsJson ?? '')).toHaveProperty('city');
    expect(r.message?.toolCalls[0]?.id).not.toBe('');
  });

  it('falls back on a 500 and records the failed attempt', async () => {
    const res = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'gpt-4o-mini-fail-500'), attempt('an-claude-haiku-4-5')]), ctxOf());
    expect(res.error).toBeUndefined();
    const routing = res.response!.routing!;
    expect(routing.fallbackUsed).toBe(true);
    expect(routing.chosenModel).toBe('an-claude-haiku-4-5');
    expect(res.response!.model).toBe('an-claude-haiku-4-5');
    expect(routing.attempts[0]).toMatchObject({ model: 'oa-gpt-4o-mini', outcome: AttemptOutcome.ATTEMPT_OUTCOME_FAILED, providerStatus: 500, reason: 'http_5xx' });
    expect(routing.attempts[0]?.error).toContain('500');
    expect(routing.attempts[1]).toMatchObject({ outcome: AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS });
  });

  it('does not fall back on a 400: INVALID_ARGUMENT with the provider message', async () => {
    const res = await executor.executeChat(req('hi', [attempt('an-claude-haiku-4-5', 'claude-fail-400'), attempt('oa-gpt-4o-mini')]), ctxOf());
    expect(res.error?.code).toBe('INVALID_ARGUMENT');
    expect(res.error?.message).toContain('Simulated 400');
    expect(res.response?.routing?.attempts).toHaveLength(1);
    expect(res.response?.routing?.attempts[0]).toMatchObject({ providerStatus: 400, reason: 'invalid_request' });
  });

  it.each(['oa-gpt-4o-mini', 'an-claude-haiku-4-5', 'ge-gemini-2.5-flash'])('never falls back around a refusal from %s', async (model) => {
    const res = await executor.executeChat(req('[[refuse]] something bad', [attempt(model), attempt('oa-gpt-4o-mini')]), ctxOf());
    expect(res.error).toBeUndefined();
    expect(res.response?.finishReason).toBe(FinishReason.FINISH_REASON_CONTENT_FILTER);
    expect(res.response?.routing?.attempts).toHaveLength(1);
    expect(res.response?.routing?.attempts[0]).toMatchObject({ outcome: AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS, reason: 'content_filter' });
  });

  it('carries retry-after of a 429 when every attempt is rate limited', async () => {
    const res = await executor.executeChat(req('hi', [attempt('oa-gpt-4o-mini', 'gpt-fail-429')]), ctxOf());
    expect(res.error).toMatchObject({ code: 'RESOURCE_EXHAUSTED', retryAfterMs: 1000 });
    expect(res.response?.routing?.attempts[0]).toMatchObject({ providerStatus: 429, reason: 'http_429' });
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
    const res = await executor.executeChat(
      req('hi', [attempt('oa-gpt-4o-mini', 'gpt-batch-fail-429', { maxRetries: 1 }), attempt('an-claude-haiku-4-5')], { latencyClass: LatencyClass.LATENCY_CLASS_BATCH }),
      ctxOf(),
    );
    expect(sim.stats().byModel['gpt-batch-fail-429']).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000); // retry-after: 1 s beats the 20 ms backoff
    const attempts = res.response!.routing!.attempts;
    expect(attempts.map((a) => a.reason)).toEqual(['http_429', 'http_429', '']);
    expect(res.response?.model).toBe('an-claude-haiku-4-5');
  });

  it('retries a batch attempt on 5xx with exponential backoff', async () => {
    sim.resetStats();
    const started = Date.now();
    const res = await executor.executeChat(
      req('hi', [attempt('oa-gpt-4o-mini', 'gpt-b-fail-503', { maxRetries: 2 })], { latencyClass: LatencyClass.LATENCY_CLASS_BATCH }, { retryBackoffMs: 50 }),
      ctxOf(),
    );
    expect(sim.stats().byModel['gpt-b-fail-503']).toBe(3);
    // random()=0.5 → jitter factor 0.75: 37.5 + 75 ms of backoff
    expect(Date.now() - started).toBeGreaterThanOrEqual(110);
    expect(res.error?.code).toBe('UNAVAILABLE');
    expect(res.response?.routing?.attempts).toHaveLength(3);
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
    expect(res.error?.code).toBe('DEADLINE_EXCEEDED');
    expect(res.response?.routing?.attempts).toHaveLength(1);
    await waitFor(() => sim.stats().openRequests === 0);
  });

  it('falls back on a dropped connection', async () => {
    const res = await executor.executeChat(req('hi', [attempt('ge-gemini-2.5-flash', 'gemini-drop'), attempt('oa-gpt-4o-mini')]), ctxOf());
    expect(res.response?.routing?.attempts[0]).toMatchObject({ reason: 'connection_error', providerStatus: 0 });
    expect(res.response?.model).toBe('oa-gpt-4o-mini');
  });

  it('reports every failure when all attempts fail', async () => {
    const res = await executor.executeChat(
      req('hi', [attempt('oa-gpt-4o-mini', 'a-fail-500'), attempt('an-claude-haiku-4-5', 'b-fail-502'), attempt('ge-gemini-2.5-flash', 'c-drop')], {}, {
        skipped: [{ model: 'x', provider: 'p', outcome: AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED, error: 'not allowed', latencyMs: 0, providerStatus: 0, reason: 'unhealthy' }],
      }),
      ctxOf(),
    );
    expect(res.error?.code).toBe('UNAVAILABLE');
    expect(res.error?.message).toContain('ge-gemini-2.5-flash');
    const attempts = res.response!.routing!.attempts;
    expect(attempts.map((a) => [a.model, a.reason])).toEqual([
      ['x', 'unhealthy'],
      ['oa-gpt-4o-mini', 'http_5xx'],
      ['an-claude-haiku-4-5', 'http_5xx'],
      ['ge-gemini-2.5-flash', 'connection_error'],
    ]);
    expect(res.response?.usage).toMatchObject({ inputTokens: 0, outputTokens: 0 });
  });

  it('treats a rejected key as a gateway configuration fault: UNAVAILABLE, no key in the text', async () => {
    const res = await executor.executeChat(req('hi', [attempt('oabad-gpt-4o-mini')]), ctxOf());
    expect(res.error?.code).toBe('UNAVAILABLE');
    expect(res.response?.routing?.attempts[0]).toMatchObject({ providerStatus: 401, reason: 'auth_config' });
    expect(JSON.stringify(res)).not.toContain('bad-key');
  });

  it('refuses a parameter the model cannot honour: INVALID_ARGUMENT naming it', async () => {
    const tools = [{ name: 'f', description: '', parametersJsonSchema: '{"type":"object"}' }];
    const res = await executor.executeChat(req('hi', [attempt('oa-notools')], { tools }), ctxOf());
    expect(res.error?.code).toBe('INVALID_ARGUMENT');
    expect(res.error?.message).toContain('tools');
    expect(res.response?.routing?.attempts[0]).toMatchObject({ outcome: AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED, reason: 'unsupported_parameter' });
  });

  it('skips a model that cannot honour the request and uses the next', async () => {
    const res = await executor.executeChat(
      req('hi', [attempt('oa-notools'), attempt('oa-gpt-4o-mini')], { responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT, jsonSchema: '', schemaName: '' } }),
      ctxOf(),
    );
    expect(res.response?.model).toBe('oa-gpt-4o-mini');
    expect(() => JSON.parse(res.response?.message?.content ?? '')).not.toThrow();
  });

  it('skips a model whose circuit breaker is open', async () => {
    let now = 0;
    const breaker = new CircuitBreaker({ failureThreshold: 2, openMs: 1_000, now: () => now });
    const { executor: ex, registry: reg } = executorFor(testConfig(sim.url), { breaker });
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
    const tools = [{ name: 'get_weather', description: 'weather', parametersJsonSchema: '{"type":"object","properties":{"city":{"type":"string"}}}' }];
    const messages = [
      { role: Role.ROLE_SYSTEM, content: 'be brief', name: '', toolCalls: [], toolCallId: '' },
      user('[[tool]] weather?'),
      { role: Role.ROLE_ASSISTANT, content: '', name: '', toolCalls: [{ id: 'call_1', name: 'get_weather', argumentsJson: '{"city":"Paris"}' }], toolCallId: '' },
      { role: Role.ROLE_TOOL, content: '{"temp":21}', name: '', toolCalls: [], toolCallId: 'call_1' },
    ];
    for (const model of ['oa-gpt-4o-mini', 'an-claude-haiku-4-5', 'ge-gemini-2.5-flash']) {
      const res = await executor.executeChat(req('', [attempt(model)], { tools, messages }), ctxOf());
      expect(res.error, model).toBeUndefined();
      expect(res.response?.finishReason, model).toBe(FinishReason.FINISH_REASON_STOP);
    }
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
    const tools = [{ name: 'get_weather', description: 'weather', parametersJsonSchema: '{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}' }];
    const msgs = await collect(req('[[tool]] weather?', [attempt(model)], { tools }));
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
    expect(last.chunk?.routing?.attempts[0]).toMatchObject({ providerStatus: 500, reason: 'http_5xx' });
  });

  it('reports a mid-stream drop: partial output, error, estimated usage', async () => {
    const msgs = await collect(req('[[long]] go', [attempt('oa-gpt-4o-mini', 'gpt-dropmid'), attempt('an-claude-haiku-4-5')]));
    const last = msgs[msgs.length - 1]!;
    const text = msgs.slice(0, -1).map((m) => m.chunk!.contentDelta).join('');
    expect(text.length).toBeGreaterThan(0);
    expect(last.error?.code).toBe('UNAVAILABLE');
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
    expect(last.error?.code).toBe('UNAVAILABLE');
    expect(last.chunk?.usage?.tokensEstimated).toBe(false);
    expect(last.chunk?.usage?.outputTokens).toBeGreaterThan(0);
  });

  it('returns a refusal as CONTENT_FILTER without fallback', async () => {
    const msgs = await collect(req('[[refuse]] x', [attempt('an-claude-haiku-4-5'), attempt('oa-gpt-4o-mini')]));
    const last = msgs[msgs.length - 1]!;
    expect(last.chunk?.finishReason).toBe(FinishReason.FINISH_REASON_CONTENT_FILTER);
    expect(last.chunk?.routing?.attempts).toHaveLength(1);
  });

  it('all attempts failing gives one message with the error and routing', async () => {
    const msgs = await collect(req('x', [attempt('oa-gpt-4o-mini', 'a-fail-503')]));
    expect(msgs).toHaveLength(1);
    expect(msgs[0]?.error?.code).toBe('UNAVAILABLE');
    expect(msgs[0]?.chunk?.routing?.attempts[0]).toMatchObject({ providerStatus: 503 });
  });

  it('aborts the upstream request when the caller cancels', async () => {
    const slowSim = await startSimulator({ streamChunkDelayMs: 20 });
    const { executor: ex, registry: reg } = executorFor(testConfig(slowSim.url));
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
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toBe(1);
    expect(sim.stats().openRequests).toBe(1); // the provider is held by backpressure, not drained into memory
    release();
    const msgs = await run;
    expect(msgs[msgs.length - 1]?.chunk?.usage?.outputTokens).toBe(50_000);
  });
});

describe('ExecuteEmbed against the simulator', () => {
  it.each([
    ['oa-embed', false],
    ['ge-embed', true],
  ] as const)('embeds through %s (estimated usage: %s)', async (model, estimated) => {
    const res = await executor.executeEmbed(
      { requestId: 'e1', tenantId: 'acme', request: { route: 'r', inputs: ['one', 'two words'], model: '', user: '', timeoutMs: 0, metadata: {}, dimensions: 0 }, plan: plan([attempt(model)]) },
      ctxOf(),
    );
    expect(res.error).toBeUndefined();
    const r = res.response!;
    expect(r.embeddings).toHaveLength(2);
    expect(r.embeddings[1]?.index).toBe(1);
    expect(r.embeddings[0]?.values.length).toBeGreaterThan(100);
    expect(r.usage?.inputTokens).toBeGreaterThan(0);
    expect(r.usage?.tokensEstimated).toBe(estimated);
    expect(r.model).toBe(model);
  });

  it('refuses a chat model for embeddings', async () => {
    const res = await executor.executeEmbed(
      { requestId: 'e2', tenantId: 'acme', request: { route: 'r', inputs: ['x'], model: '', user: '', timeoutMs: 0, metadata: {}, dimensions: 0 }, plan: plan([attempt('oa-gpt-4o-mini')]) },
      ctxOf(),
    );
    expect(res.error?.code).toBe('INVALID_ARGUMENT');
  });
});
