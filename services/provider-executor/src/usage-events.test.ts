import { costMicros } from '@llmgw/pricing';
import { LONG_REPLY_TOKENS, startSimulator, type Simulator } from '@llmgw/provider-simulator';
import type { ExecuteChatRequest, ExecuteChatStreamResponse } from '@llmgw/proto/executor';
import { Tokenizer, type PlannedAttempt } from '@llmgw/proto/router';
import { AttemptOutcome, AttemptUsage, TokenSource, Usage, type UsageRecorded } from '@llmgw/proto/v1';
import { countChatTokens, countTokens, familyOf } from '@llmgw/tokens';
import { AppError } from '@llmgw/errors';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { CircuitBreaker } from './circuit-breaker.js';
import { attempt, chatRequest, ctxOf, embedRequest, executorFor, price, testProviders, user, type TestExecutor } from './test-helpers.js';

/**
 * The executor records the money: exactly one usage event per request it received, whatever
 * happened, listing every attempt that reached a provider with what it cost. Where the provider
 * reported its counts, the event agrees with the simulator's own bill exactly.
 */

const ESTIMATED = TokenSource.TOKEN_SOURCE_ESTIMATED;
const PROVIDER = TokenSource.TOKEN_SOURCE_PROVIDER;

let sim: Simulator;
/** Streams slowly enough for a caller to leave half-way. */
let slow: Simulator;
let fast: TestExecutor;
let slowly: TestExecutor;

const neverOpens = () => new CircuitBreaker({ failureThreshold: 1_000_000, openMs: 1, now: Date.now });

beforeAll(async () => {
  sim = await startSimulator();
  slow = await startSimulator({ streamChunkDelayMs: 20 });
  fast = executorFor(testProviders(sim.url), { breaker: neverOpens() });
  slowly = executorFor(testProviders(slow.url), { breaker: neverOpens() });
});
afterAll(async () => {
  await fast.registry.close();
  await slowly.registry.close();
  await sim.close();
  await slow.close();
});

async function waitFor(cond: () => boolean, ms = 3_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

beforeEach(async () => {
  // Nothing of an earlier test may still be billing.
  await waitFor(() => sim.stats().openRequests === 0 && slow.stats().openRequests === 0);
  sim.resetBill();
  slow.resetBill();
  sim.resetStats();
  slow.resetStats();
  fast.usage.clear();
  slowly.usage.clear();
});

/** The one event the request produced. */
function theEvent(t: TestExecutor, requestId: string): UsageRecorded {
  expect(t.usage.events).toHaveLength(1);
  const ev = t.usage.events[0]!;
  expect(ev).toMatchObject({ requestId, eventId: requestId, tenantId: 'acme', keyId: 'key-1', route: 'r' });
  expect(ev.occurredAt).toBeInstanceOf(Date);
  expect(ev.latencyMs).toBeGreaterThanOrEqual(0);
  return ev;
}

/** Totals are the sums of the attempts, and the response's usage is the event's. */
function expectTotals(ev: UsageRecorded, responseUsage: Usage | undefined): void {
  const sum = (k: 'inputTokens' | 'outputTokens' | 'costMicros') => ev.attempts.reduce((n, a) => n + a[k], 0);
  expect(ev.inputTokens).toBe(sum('inputTokens'));
  expect(ev.outputTokens).toBe(sum('outputTokens'));
  expect(ev.costMicros).toBe(sum('costMicros'));
  expect(ev.tokenSource).toBe(ev.attempts.some((a) => a.tokenSource === ESTIMATED) ? ESTIMATED : PROVIDER);
  expect(responseUsage).toEqual({
    inputTokens: ev.inputTokens,
    outputTokens: ev.outputTokens,
    cachedInputTokens: ev.cachedInputTokens,
    cacheWriteInputTokens: ev.cacheWriteInputTokens,
    reasoningTokens: ev.reasoningTokens,
    costMicros: ev.costMicros,
    costUsd: ev.costMicros / 1e6,
    tokensEstimated: ev.tokenSource === ESTIMATED,
  });
}

/** Each attempt is priced with its plan pricing. */
function expectPriced(ev: UsageRecorded, planned: readonly PlannedAttempt[]): void {
  for (const a of ev.attempts) {
    const p = planned.find((x) => x.model === a.model)!;
    expect(a.costMicros, a.model).toBe(costMicros(p.pricing!, { inputTokens: a.inputTokens, outputTokens: a.outputTokens }));
  }
}

/** The simulator billed exactly these attempts (upstream name → the attempt's tokens), nothing else. */
function expectBill(s: Simulator, lines: Record<string, { inputTokens: number; outputTokens: number; cachedInputTokens?: number; cacheWriteInputTokens?: number; reasoningTokens?: number }>): void {
  const models = Object.fromEntries(
    Object.entries(lines).map(([m, a]) => [
      m,
      {
        requests: 1,
        input_tokens: a.inputTokens,
        output_tokens: a.outputTokens,
        cached_input_tokens: a.cachedInputTokens ?? 0,
        cache_write_input_tokens: a.cacheWriteInputTokens ?? 0,
        reasoning_tokens: a.reasoningTokens ?? 0,
      },
    ]),
  );
  expect(s.bill().models).toEqual(models);
}

async function stream(t: TestExecutor, r: ExecuteChatRequest, signal?: AbortSignal, onMsg?: (n: number) => void): Promise<ExecuteChatStreamResponse[]> {
  const out: ExecuteChatStreamResponse[] = [];
  await t.executor.executeChatStream(r, ctxOf(signal), async (m) => {
    out.push(m);
    onMsg?.(out.length);
  });
  return out;
}

const lastOf = (msgs: ExecuteChatStreamResponse[]) => msgs[msgs.length - 1]!;

const CHAT_MODELS = [
  ['oa-gpt-4o-mini', 'gpt-4o-mini'],
  ['az-my-deployment', 'my-deployment'],
  ['an-claude-haiku-4-5', 'claude-haiku-4-5'],
  ['ge-gemini-2.5-flash', 'gemini-2.5-flash'],
] as const;

describe('a request that succeeds', () => {
  it.each(CHAT_MODELS)('ExecuteChat through %s: one event, billed as the provider billed', async (model, upstream) => {
    const r = chatRequest('hello there', [attempt(model)], {}, {}, 'ok-chat');
    const res = await fast.executor.executeChat(r, ctxOf());
    const ev = theEvent(fast, 'ok-chat');
    expect(ev).toMatchObject({
      model,
      provider: model.split('-')[0],
      success: true,
      errorCode: '',
      fallbackUsed: false,
      attemptCount: 1,
      streamed: false,
      operation: 'chat',
      tokenSource: PROVIDER,
    });
    expect(ev.attempts).toEqual([
      AttemptUsage.fromPartial({ model, provider: model.split('-')[0], inputTokens: ev.inputTokens, outputTokens: ev.outputTokens, costMicros: ev.costMicros, tokenSource: PROVIDER, outcome: AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS, reason: '' }),
    ]);
    expect(ev.costMicros).toBeGreaterThan(0);
    expectTotals(ev, res.response?.usage);
    expectPriced(ev, r.plan!.attempts);
    expectBill(sim, { [upstream]: ev });
  });

  it.each(CHAT_MODELS)('ExecuteChatStream through %s: one event, billed as the provider billed', async (model, upstream) => {
    const r = chatRequest('[[long]] tell me', [attempt(model)], { maxTokens: 1000 }, {}, 'ok-stream');
    const msgs = await stream(fast, r);
    const ev = theEvent(fast, 'ok-stream');
    expect(ev).toMatchObject({ model, success: true, errorCode: '', streamed: true, operation: 'chat', attemptCount: 1, tokenSource: PROVIDER });
    expect(ev.outputTokens).toBeGreaterThan(300);
    expectTotals(ev, lastOf(msgs).chunk?.usage);
    expectPriced(ev, r.plan!.attempts);
    expectBill(sim, { [upstream]: ev });
  });

  it('ExecuteEmbed: one event, billed as the provider billed', async () => {
    const r = embedRequest(['first text', 'second one'], [attempt('oa-embed')], {}, 'ok-embed');
    const res = await fast.executor.executeEmbed(r, ctxOf());
    const ev = theEvent(fast, 'ok-embed');
    expect(ev).toMatchObject({ model: 'oa-embed', provider: 'oa', success: true, operation: 'embed', streamed: false, outputTokens: 0, tokenSource: PROVIDER });
    expect(ev.inputTokens).toBeGreaterThan(0);
    expectTotals(ev, res.response?.usage);
    expectPriced(ev, r.plan!.attempts);
    expectBill(sim, { 'text-embedding-3-small': ev });
  });

  it('names the plan\'s split arm, so an experiment is priced arm by arm; none without a split', async () => {
    const arm = { split: 'canary-20', stickyBucketMin: 0, stickyBucketMax: 1_999 };
    await fast.executor.executeChat(chatRequest('hi', [attempt('oa-gpt-4o-mini')], {}, arm, 'split-arm'), ctxOf());
    await stream(fast, chatRequest('hi', [attempt('oa-gpt-4o-mini')], {}, arm, 'split-arm-stream'));
    await fast.executor.executeChat(chatRequest('hi', [attempt('oa-gpt-4o-mini')], {}, {}, 'split-none'), ctxOf());
    expect(fast.usage.events.map((e) => [e.requestId, e.split])).toEqual([['split-arm', 'canary-20'], ['split-arm-stream', 'canary-20'], ['split-none', '']]);
  });

  it('carries the plan\'s intent, so cost can be told apart by what was asked', async () => {
    await fast.executor.executeChat(chatRequest('hi', [attempt('oa-gpt-4o-mini')], {}, { intent: 'billing' }, 'intent-billing'), ctxOf());
    await fast.executor.executeChat(chatRequest('hi', [attempt('oa-gpt-4o-mini')], {}, {}, 'intent-none'), ctxOf());
    expect(fast.usage.events.map((e) => [e.requestId, e.intent])).toEqual([['intent-billing', 'billing'], ['intent-none', '']]);
  });

  it('one event per request, each under its own request id', async () => {
    await Promise.all(['a', 'b', 'c'].map((id) => fast.executor.executeChat(chatRequest('hi', [attempt('oa-gpt-4o-mini')], {}, {}, id), ctxOf())));
    expect(fast.usage.events.map((e) => e.requestId).sort()).toEqual(['a', 'b', 'c']);
    expect(sim.bill().total.requests).toBe(3);
    expect(sim.bill().total.input_tokens).toBe(fast.usage.events.reduce((n, e) => n + e.inputTokens, 0));
    expect(sim.bill().total.output_tokens).toBe(fast.usage.events.reduce((n, e) => n + e.outputTokens, 0));
  });
});

describe('write-ahead notes', () => {
  it('each provider call is preceded by a note of the event a crash at that moment would leave', async () => {
    const atNote: number[] = [];
    const note = fast.usage.note.bind(fast.usage);
    vi.spyOn(fast.usage, 'note').mockImplementation(async (e) => {
      atNote.push(sim.stats().totalRequests);
      await note(e);
    });
    const r = chatRequest('note me first', [attempt('oa-gpt-4o-mini', 'gpt-4o-mini-fail-503'), attempt('an-claude-haiku-4-5')], {}, {}, 'wal');
    await fast.executor.executeChat(r, ctxOf());
    vi.restoreAllMocks();
    // Noted before the provider saw the request: none for the first attempt, one for the second.
    expect(atNote).toEqual([0, 1]);
    const [first, second] = fast.usage.notes;
    const interrupted = (model: string) => {
      const planned = r.plan!.attempts.find((a) => a.model === model)!;
      const prompt = countChatTokens(r.params!.messages, familyOf(planned.tokenizer));
      const a = { model, provider: planned.provider, inputTokens: prompt, outputTokens: 0, costMicros: costMicros(planned.pricing!, { inputTokens: prompt, outputTokens: 0 }) };
      return AttemptUsage.fromPartial({ ...a, tokenSource: ESTIMATED, outcome: AttemptOutcome.ATTEMPT_OUTCOME_FAILED, reason: 'executor_restarted' });
    };
    expect(first).toMatchObject({ requestId: 'wal', eventId: 'wal', success: false, errorCode: 'UNAVAILABLE', model: 'oa-gpt-4o-mini', tokenSource: ESTIMATED, attemptCount: 1, fallbackUsed: false });
    expect(first!.attempts).toEqual([interrupted('oa-gpt-4o-mini')]);
    const ev = theEvent(fast, 'wal');
    expect(second).toMatchObject({ model: 'an-claude-haiku-4-5', attemptCount: 2, fallbackUsed: true, tokenSource: ESTIMATED });
    // The attempt that already failed as it did, the one under way charged its prompt.
    expect(second!.attempts).toEqual([ev.attempts[0], interrupted('an-claude-haiku-4-5')]);
    expect([second!.inputTokens, second!.costMicros]).toEqual([ev.attempts[0]!.inputTokens + second!.attempts[1]!.inputTokens, ev.attempts[0]!.costMicros + second!.attempts[1]!.costMicros]);
  });

  it.each([
    ['ExecuteChat', (r: ExecuteChatRequest) => fast.executor.executeChat(r, ctxOf())],
    ['ExecuteChatStream', (r: ExecuteChatRequest) => stream(fast, r)],
  ] as const)('%s: a full outbox refuses the request before any provider call, with UNAVAILABLE', async (_name, run) => {
    fast.usage.refuse = new AppError('unavailable', 'usage outbox full');
    await expect(run(chatRequest('no room', [attempt('oa-gpt-4o-mini')], {}, {}, 'full'))).rejects.toEqual(new AppError('unavailable', 'usage outbox full'));
    expect(sim.stats().totalRequests).toBe(0);
    expect(theEvent(fast, 'full')).toMatchObject({ success: false, errorCode: 'UNAVAILABLE', inputTokens: 0, costMicros: 0, attempts: [] });
  });
});

describe('a fallback after a 503', () => {
  const planned = () => [attempt('oa-gpt-4o-mini', 'gpt-4o-mini-fail-503'), attempt('an-claude-haiku-4-5')];

  /** Both attempts listed, the failed one at no cost; the model is the one that served. */
  function expectFallbackEvent(ev: UsageRecorded, served: string, failed: string): void {
    expect(ev).toMatchObject({ model: served, success: true, errorCode: '', fallbackUsed: true, attemptCount: 2 });
    expect(ev.attempts).toHaveLength(2);
    expect(ev.attempts[0]).toEqual(AttemptUsage.fromPartial({
      model: failed,
      provider: failed.split('-')[0],
      inputTokens: 0,
      outputTokens: 0,
      costMicros: 0,
      tokenSource: PROVIDER,
      outcome: AttemptOutcome.ATTEMPT_OUTCOME_FAILED,
      reason: 'http_5xx',
    }));
    expect(ev.attempts[1]).toMatchObject({ model: served, outcome: AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS });
    expect(ev.attempts[1]!.costMicros).toBeGreaterThan(0);
    expect(ev.costMicros).toBe(ev.attempts[1]!.costMicros);
  }

  it('ExecuteChat', async () => {
    const r = chatRequest('hi', planned(), {}, {}, 'fb-chat');
    const res = await fast.executor.executeChat(r, ctxOf());
    const ev = theEvent(fast, 'fb-chat');
    expectFallbackEvent(ev, 'an-claude-haiku-4-5', 'oa-gpt-4o-mini');
    expectTotals(ev, res.response?.usage);
    expectBill(sim, { 'claude-haiku-4-5': ev.attempts[1]! }); // the error reply billed nothing
  });

  it('ExecuteChatStream', async () => {
    const r = chatRequest('[[long]] hi', planned(), { maxTokens: 1000 }, {}, 'fb-stream');
    const msgs = await stream(fast, r);
    const ev = theEvent(fast, 'fb-stream');
    expectFallbackEvent(ev, 'an-claude-haiku-4-5', 'oa-gpt-4o-mini');
    expect(ev.streamed).toBe(true);
    expectTotals(ev, lastOf(msgs).chunk?.usage);
    expectBill(sim, { 'claude-haiku-4-5': ev.attempts[1]! });
  });

  it('ExecuteEmbed', async () => {
    const r = embedRequest(['embed me'], [attempt('ge-embed', 'emb-fail-503'), attempt('oa-embed', undefined, { pricing: price(100, 0) })], {}, 'fb-embed');
    const res = await fast.executor.executeEmbed(r, ctxOf());
    const ev = theEvent(fast, 'fb-embed');
    expectFallbackEvent(ev, 'oa-embed', 'ge-embed');
    expectTotals(ev, res.response?.usage);
    expectBill(sim, { 'text-embedding-3-small': ev.attempts[1]! });
  });
});

describe('an attempt that times out, then a fallback', () => {
  const planned = (hang: string) => [attempt('oa-gpt-4o-mini', hang, { timeoutMs: 200 }), attempt('an-claude-haiku-4-5')];

  /** The timed-out attempt may have been billed: it is charged its prompt, estimated. */
  function expectTimedOut(ev: UsageRecorded, prompt: number, pricing: PlannedAttempt['pricing']): void {
    expect(ev).toMatchObject({ model: 'an-claude-haiku-4-5', success: true, fallbackUsed: true, tokenSource: ESTIMATED });
    expect(ev.attempts[0]).toEqual(AttemptUsage.fromPartial({
      model: 'oa-gpt-4o-mini',
      provider: 'oa',
      inputTokens: prompt,
      outputTokens: 0,
      costMicros: costMicros(pricing!, { inputTokens: prompt, outputTokens: 0 }),
      tokenSource: ESTIMATED,
      outcome: AttemptOutcome.ATTEMPT_OUTCOME_FAILED,
      reason: 'timeout',
    }));
    expect(prompt).toBeGreaterThan(0);
    expect(ev.attempts[1]).toMatchObject({ model: 'an-claude-haiku-4-5', tokenSource: PROVIDER, outcome: AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS });
  }

  it('ExecuteChat', async () => {
    const r = chatRequest('hello, anyone?', planned('gpt-hang'), {}, {}, 'to-chat');
    const res = await fast.executor.executeChat(r, ctxOf());
    const ev = theEvent(fast, 'to-chat');
    expectTimedOut(ev, countChatTokens(r.params!.messages, familyOf(r.plan!.attempts[0]!.tokenizer)), r.plan!.attempts[0]!.pricing);
    expectTotals(ev, res.response?.usage);
    expect(res.response?.usage?.tokensEstimated).toBe(true);
    // The simulator billed the answer only (a hung request bills nothing there: we charge the worst case).
    expectBill(sim, { 'claude-haiku-4-5': ev.attempts[1]! });
  });

  it('ExecuteChatStream', async () => {
    const r = chatRequest('hello, anyone?', planned('gpt-hang'), {}, {}, 'to-stream');
    const msgs = await stream(fast, r);
    const ev = theEvent(fast, 'to-stream');
    expectTimedOut(ev, countChatTokens(r.params!.messages, 'openai'), r.plan!.attempts[0]!.pricing);
    expectTotals(ev, lastOf(msgs).chunk?.usage);
    expectBill(sim, { 'claude-haiku-4-5': ev.attempts[1]! });
  });

  it('ExecuteEmbed', async () => {
    const inputs = ['one text', 'and another'];
    const r = embedRequest(inputs, [attempt('oa-embed', 'emb-hang', { timeoutMs: 200 }), attempt('ge-embed')], {}, 'to-embed');
    const res = await fast.executor.executeEmbed(r, ctxOf());
    const ev = theEvent(fast, 'to-embed');
    const prompt = inputs.reduce((n, t) => n + countTokens(t, 'openai'), 0);
    expect(ev.attempts[0]).toMatchObject({ model: 'oa-embed', reason: 'timeout', inputTokens: prompt, tokenSource: ESTIMATED, costMicros: costMicros(r.plan!.attempts[0]!.pricing!, { inputTokens: prompt, outputTokens: 0 }) });
    expect(ev).toMatchObject({ model: 'ge-embed', success: true, tokenSource: ESTIMATED });
    expectTotals(ev, res.response?.usage);
  });
});

describe("the edge's prompt counts", () => {
  // Counts no tokenizer gives for these prompts: the event can only carry them if they were used.
  const sent = [{ tokenizer: Tokenizer.TOKENIZER_OPENAI, tokens: 4321 }];

  it('are what a timed-out chat attempt is charged: the executor does not count the prompt again', async () => {
    const r = chatRequest('hello, anyone?', [attempt('oa-gpt-4o-mini', 'gpt-hang', { timeoutMs: 200 }), attempt('an-claude-haiku-4-5')], { promptTokens: sent }, {}, 'edge-count-chat');
    await fast.executor.executeChat(r, ctxOf());
    expect(theEvent(fast, 'edge-count-chat').attempts[0]).toMatchObject({ reason: 'timeout', inputTokens: 4321, tokenSource: ESTIMATED });
  });

  it('are what a timed-out embedding attempt is charged', async () => {
    const r = { ...embedRequest(['one text'], [attempt('oa-embed', 'emb-hang', { timeoutMs: 200 }), attempt('ge-embed')], {}, 'edge-count-embed'), promptTokens: sent };
    await fast.executor.executeEmbed(r, ctxOf());
    expect(theEvent(fast, 'edge-count-embed').attempts[0]).toMatchObject({ reason: 'timeout', inputTokens: 4321 });
  });

  it('count only for their tokenizer: another attempt\'s prompt is counted here', async () => {
    const r = chatRequest('hello, anyone?', [attempt('an-claude-haiku-4-5', 'claude-hang', { timeoutMs: 150 }), attempt('oa-gpt-4o-mini')], { promptTokens: sent }, {}, 'edge-count-other');
    await fast.executor.executeChat(r, ctxOf());
    const first = theEvent(fast, 'edge-count-other').attempts[0]!;
    expect(first.reason).toBe('timeout');
    expect(first.inputTokens).toBe(countChatTokens(r.params!.messages, familyOf(r.plan!.attempts[0]!.tokenizer)));
  });
});

describe('a request whose attempts all fail', () => {
  const planned = () => [attempt('oa-gpt-4o-mini', 'a-fail-503'), attempt('an-claude-haiku-4-5', 'b-fail-500')];

  function expectFailed(ev: UsageRecorded, lastTried: string): void {
    expect(ev).toMatchObject({ success: false, errorCode: 'UNAVAILABLE', model: lastTried, inputTokens: 0, outputTokens: 0, costMicros: 0, fallbackUsed: false, attemptCount: 2 });
    expect(ev.attempts.map((a) => [a.model, a.outcome, a.reason, a.costMicros])).toEqual([
      [ev.attempts[0]!.model, AttemptOutcome.ATTEMPT_OUTCOME_FAILED, 'http_5xx', 0],
      [lastTried, AttemptOutcome.ATTEMPT_OUTCOME_FAILED, 'http_5xx', 0],
    ]);
  }

  it('ExecuteChat', async () => {
    const res = await fast.executor.executeChat(chatRequest('hi', planned(), {}, {}, 'fail-chat'), ctxOf());
    const ev = theEvent(fast, 'fail-chat');
    expectFailed(ev, 'an-claude-haiku-4-5');
    expectTotals(ev, res.response?.usage);
    expectBill(sim, {});
  });

  it('ExecuteChatStream', async () => {
    const msgs = await stream(fast, chatRequest('hi', planned(), {}, {}, 'fail-stream'));
    const ev = theEvent(fast, 'fail-stream');
    expectFailed(ev, 'an-claude-haiku-4-5');
    expect(ev.streamed).toBe(true);
    expectTotals(ev, lastOf(msgs).chunk?.usage);
    expectBill(sim, {});
  });

  it('ExecuteEmbed', async () => {
    const res = await fast.executor.executeEmbed(embedRequest(['x'], [attempt('oa-embed', 'e-fail-503'), attempt('ge-embed', 'f-fail-500')], {}, 'fail-embed'), ctxOf());
    const ev = theEvent(fast, 'fail-embed');
    expectFailed(ev, 'ge-embed');
    expect(ev.operation).toBe('embed');
    expectTotals(ev, res.response?.usage);
    expectBill(sim, {});
  });
});

describe('a unary caller that cancels mid-attempt', () => {
  it('ExecuteChat: the attempt under way completes, its cost is recorded as the provider billed it, with CANCELLED', async () => {
    const ctl = new AbortController();
    const r = chatRequest('patience please', [attempt('oa-gpt-4o-mini', 'gpt-4o-mini-slow-300'), attempt('an-claude-haiku-4-5')], {}, {}, 'cancel-chat');
    const started = Date.now();
    setTimeout(() => ctl.abort(), 50);
    const res = await fast.executor.executeChat(r, ctxOf(ctl.signal));
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    const ev = theEvent(fast, 'cancel-chat');
    expect(ev).toMatchObject({ success: false, errorCode: 'CANCELLED', model: 'oa-gpt-4o-mini', attemptCount: 1, tokenSource: PROVIDER });
    expect(ev.attempts).toHaveLength(1);
    expect(ev.attempts[0]).toMatchObject({ outcome: AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS });
    expect(ev.outputTokens).toBeGreaterThan(0);
    expectTotals(ev, res.response?.usage);
    expectBill(sim, { 'gpt-4o-mini-slow-300': ev });
  });

  it('ExecuteChat: a failing attempt under way is not followed by another', async () => {
    const ctl = new AbortController();
    const r = chatRequest('patience please', [attempt('oa-gpt-4o-mini', 'gpt-slow-300-fail-503'), attempt('an-claude-haiku-4-5')], {}, {}, 'cancel-fail');
    setTimeout(() => ctl.abort(), 50);
    await expect(fast.executor.executeChat(r, ctxOf(ctl.signal))).rejects.toMatchObject({ kind: 'cancelled' });
    const ev = theEvent(fast, 'cancel-fail');
    expect(ev).toMatchObject({ success: false, errorCode: 'CANCELLED', costMicros: 0, attemptCount: 1 });
    expect(ev.attempts.map((a) => [a.model, a.reason])).toEqual([['oa-gpt-4o-mini', 'http_5xx']]);
    expect(sim.stats().byModel['claude-haiku-4-5']).toBeUndefined();
    expectBill(sim, {});
  });

  it('ExecuteChat: a caller gone before the start gets no attempt and one CANCELLED event', async () => {
    const ctl = new AbortController();
    ctl.abort();
    await expect(fast.executor.executeChat(chatRequest('hi', [attempt('oa-gpt-4o-mini')], {}, {}, 'gone'), ctxOf(ctl.signal))).rejects.toMatchObject({ kind: 'cancelled' });
    const ev = theEvent(fast, 'gone');
    expect(ev).toMatchObject({ success: false, errorCode: 'CANCELLED', attempts: [], costMicros: 0 });
    expect(sim.stats().totalRequests).toBe(0);
  });

  it('ExecuteEmbed: the attempt under way completes and is recorded with CANCELLED', async () => {
    const ctl = new AbortController();
    const r = embedRequest(['wait for me'], [attempt('oa-embed', 'text-embedding-3-small-slow-300')], {}, 'cancel-embed');
    setTimeout(() => ctl.abort(), 50);
    const res = await fast.executor.executeEmbed(r, ctxOf(ctl.signal));
    const ev = theEvent(fast, 'cancel-embed');
    expect(ev).toMatchObject({ success: false, errorCode: 'CANCELLED', model: 'oa-embed', tokenSource: PROVIDER });
    expect(ev.inputTokens).toBeGreaterThan(0);
    expectTotals(ev, res.response?.usage);
    expectBill(sim, { 'text-embedding-3-small-slow-300': ev });
  });
});

describe('a stream that ends early', () => {
  it.each(['oa-gpt-4o-mini', 'an-claude-haiku-4-5'])('cancelled by the caller mid-stream on %s: what was sent is billed, with CANCELLED', async (model) => {
    const ctl = new AbortController();
    const r = chatRequest('[[long]] go on', [attempt(model)], { maxTokens: 1000 }, {}, 'cut-by-caller');
    const run = stream(slowly, r, ctl.signal, (n) => {
      if (n === 4) ctl.abort();
    });
    await expect(run).rejects.toMatchObject({ kind: 'cancelled' });
    const ev = theEvent(slowly, 'cut-by-caller');
    expect(ev).toMatchObject({ success: false, errorCode: 'CANCELLED', model, streamed: true, attemptCount: 1 });
    expect(ev.attempts).toHaveLength(1);
    expect(ev.attempts[0]).toMatchObject({ model, outcome: AttemptOutcome.ATTEMPT_OUTCOME_FAILED, reason: 'cancelled' });
    expect(ev.inputTokens).toBeGreaterThan(0);
    expect(ev.outputTokens).toBeGreaterThan(0);
    expect(ev.outputTokens).toBeLessThan(LONG_REPLY_TOKENS);
    expect(ev.costMicros).toBe(costMicros(r.plan!.attempts[0]!.pricing!, { inputTokens: ev.inputTokens, outputTokens: ev.outputTokens }));
    // No last message reaches a caller that left: the event alone says what it cost.
    expectTotals(ev, Usage.fromPartial({ inputTokens: ev.inputTokens, outputTokens: ev.outputTokens, costMicros: ev.costMicros, costUsd: ev.costMicros / 1e6, tokensEstimated: ev.tokenSource === ESTIMATED }));
    // The provider stopped: it billed one request, part of an answer.
    await waitFor(() => slow.stats().openRequests === 0);
    const billed = slow.bill().total;
    expect(billed.requests).toBe(1);
    expect(billed.output_tokens).toBeLessThan(LONG_REPLY_TOKENS);
  });

  it.each([
    ['oa-gpt-4o-mini', 'gpt-slow-300'],
    ['an-claude-haiku-4-5', 'claude-slow-300'],
  ])('cancelled by the caller before its first token on %s: the attempt is charged its prompt, estimated', async (model, upstream) => {
    const ctl = new AbortController();
    const r = chatRequest('hello there', [attempt(model, upstream), attempt('ge-gemini-2.5-flash')], {}, {}, 'cut-early');
    setTimeout(() => ctl.abort(), 50);
    await expect(stream(fast, r, ctl.signal)).rejects.toMatchObject({ kind: 'cancelled' });
    const ev = theEvent(fast, 'cut-early');
    const prompt = countChatTokens(r.params!.messages, familyOf(r.plan!.attempts[0]!.tokenizer));
    expect(ev).toMatchObject({ success: false, errorCode: 'CANCELLED', model, attemptCount: 1, tokenSource: ESTIMATED });
    expect(ev.attempts).toEqual([
      AttemptUsage.fromPartial({
        model,
        provider: model.split('-')[0],
        inputTokens: prompt,
        outputTokens: 0,
        costMicros: costMicros(r.plan!.attempts[0]!.pricing!, { inputTokens: prompt, outputTokens: 0 }),
        tokenSource: ESTIMATED,
        outcome: AttemptOutcome.ATTEMPT_OUTCOME_FAILED,
        reason: 'cancelled',
      }),
    ]);
    // The provider did bill the prompt of the request it started (and nothing was sent by the fallback).
    await waitFor(() => sim.bill().total.requests === 1);
    await waitFor(() => sim.stats().openRequests === 0);
    expect(sim.bill().models[upstream]).toMatchObject({ requests: 1, output_tokens: 0 });
    // The openai tokenizer counts as the provider does: the estimate is the bill; approx only estimates it.
    if (familyOf(r.plan!.attempts[0]!.tokenizer) === 'openai') expect(sim.bill().models[upstream]?.input_tokens).toBe(prompt);
    else expect(sim.bill().models[upstream]?.input_tokens).toBeGreaterThan(0);
    expect(sim.stats().byModel['gemini-2.5-flash']).toBeUndefined();
  });

  it('a caller gone while a chunk is being sent (the transport throws its own error) is billed with CANCELLED', async () => {
    const ctl = new AbortController();
    const r = chatRequest('[[long]] go on', [attempt('an-claude-haiku-4-5')], { maxTokens: 1000 }, {}, 'send-failed');
    let n = 0;
    // What the gRPC sink does once the call is cancelled: the signal aborts, send rejects with a plain Error.
    const run = slowly.executor.executeChatStream(r, ctxOf(ctl.signal), async () => {
      if (++n === 3) {
        ctl.abort(new Error('call cancelled by the caller'));
        throw new Error('call cancelled by the caller');
      }
    });
    await expect(run).rejects.toThrow('call cancelled by the caller');
    const ev = theEvent(slowly, 'send-failed');
    expect(ev).toMatchObject({ success: false, errorCode: 'CANCELLED', attemptCount: 1, streamed: true });
    expect(ev.attempts).toHaveLength(1);
    expect(ev.attempts[0]).toMatchObject({ outcome: AttemptOutcome.ATTEMPT_OUTCOME_FAILED, reason: 'cancelled' });
    expect(ev.outputTokens).toBeGreaterThan(0);
    expect(ev.outputTokens).toBeLessThan(LONG_REPLY_TOKENS);
    await waitFor(() => slow.stats().openRequests === 0); // the upstream request was aborted
  });

  it('cut by the provider (-dropmid): partial output billed, UNAVAILABLE', async () => {
    const r = chatRequest('[[long]] go', [attempt('oa-gpt-4o-mini', 'gpt-dropmid'), attempt('an-claude-haiku-4-5')], { maxTokens: 1000 }, {}, 'cut-by-provider');
    const msgs = await stream(fast, r);
    const last = lastOf(msgs);
    expect(last.error).toBeDefined();
    const ev = theEvent(fast, 'cut-by-provider');
    expect(ev).toMatchObject({ success: false, errorCode: 'UNAVAILABLE', model: 'oa-gpt-4o-mini', streamed: true, tokenSource: ESTIMATED, attemptCount: 1 });
    expect(ev.attempts).toHaveLength(1); // no fallback after the first delta
    expect(ev.attempts[0]).toMatchObject({ outcome: AttemptOutcome.ATTEMPT_OUTCOME_FAILED, reason: 'connection_error' });
    expect(ev.outputTokens).toBeGreaterThan(0);
    expect(ev.outputTokens).toBeLessThan(LONG_REPLY_TOKENS);
    expectTotals(ev, last.chunk?.usage);
    expect(sim.stats().byModel['claude-haiku-4-5']).toBeUndefined();
  });

  it('cut by the provider on Gemini, which reports counts as it goes: billed as the provider billed', async () => {
    const r = chatRequest('[[long]] go', [attempt('ge-gemini-2.5-flash', 'gemini-dropmid')], { maxTokens: 1000 }, {}, 'ge-cut');
    const msgs = await stream(fast, r);
    const ev = theEvent(fast, 'ge-cut');
    expect(ev).toMatchObject({ success: false, errorCode: 'UNAVAILABLE', tokenSource: PROVIDER });
    expect(ev.outputTokens).toBeGreaterThan(0);
    expectTotals(ev, lastOf(msgs).chunk?.usage);
    expectBill(sim, { 'gemini-dropmid': ev });
  });
});

describe('the event of a refusal and of a retried batch request', () => {
  it('a content-filtered answer is one successful event for the refusing model', async () => {
    const r = chatRequest('[[refuse]] no', [attempt('an-claude-haiku-4-5'), attempt('oa-gpt-4o-mini')], {}, {}, 'refused');
    const res = await fast.executor.executeChat(r, ctxOf());
    const ev = theEvent(fast, 'refused');
    expect(ev).toMatchObject({ success: true, model: 'an-claude-haiku-4-5', attemptCount: 1 });
    expectTotals(ev, res.response?.usage);
    expectBill(sim, { 'claude-haiku-4-5': ev });
  });

  it('a multi-message prompt is counted over every message when nothing answers in time', async () => {
    const messages = [user('first part of a long question'), user('and the second part')];
    const r = chatRequest('', [attempt('an-claude-haiku-4-5', 'claude-hang', { timeoutMs: 150 })], { messages }, {}, 'multi');
    const res = await fast.executor.executeChat(r, ctxOf());
    const ev = theEvent(fast, 'multi');
    expect(ev).toMatchObject({ success: false, errorCode: 'DEADLINE_EXCEEDED', tokenSource: ESTIMATED, inputTokens: countChatTokens(messages, 'approx') });
    expectTotals(ev, res.response?.usage);
  });
});
