import { startSimulator, type Simulator } from '@llmgw/provider-simulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CircuitBreaker } from './circuit-breaker.js';
import { LatencyWindow } from './latency-window.js';
import type { ProviderRegistry } from './providers/registry.js';
import { attempt, chatRequest, ctxOf, executorFor, testProviders } from './test-helpers.js';
import type { Executor } from './execute.js';

function clocked(t0 = 1_000_000) {
  const clock = { t: t0 };
  return { clock, window: new LatencyWindow({ now: () => clock.t }) };
}

describe('LatencyWindow stats', () => {
  it('counts calls, errors and answered latencies per model, only models with calls', () => {
    const { window } = clocked();
    for (let i = 1; i <= 100; i++) window.observe('a', i * 10);
    window.call('a', true);
    window.call('a', false);
    window.call('b', true);
    const [a, b] = window.stats();
    expect(a).toMatchObject({ model: 'a', calls: 102, errors: 1 });
    // The true p95 of 10..1000 ms is 950 ms; the histogram answers within 5% above it.
    expect(a?.p95Ms).toBeGreaterThanOrEqual(950);
    expect(a?.p95Ms).toBeLessThanOrEqual(Math.ceil(950 * 1.05));
    // No answer at all: no latency to report.
    expect(b).toEqual({ model: 'b', calls: 1, errors: 1, p95Ms: 0 });
    expect(window.stats().map((s) => s.model)).toEqual(['a', 'b']);
  });

  it('forgets calls once they are older than the window (60 s in 5 s buckets)', () => {
    const { clock, window } = clocked(0);
    window.call('a', true);
    clock.t = 30_000;
    window.observe('a', 200);
    expect(window.stats()).toEqual([{ model: 'a', calls: 2, errors: 1, p95Ms: expect.any(Number) }]);
    // The window is the current bucket and the 11 before it: the first bucket [0, 5 s) slides
    // out when the bucket [60 s, 65 s) begins.
    clock.t = 59_999;
    expect(window.stats()).toEqual([{ model: 'a', calls: 2, errors: 1, p95Ms: expect.any(Number) }]);
    clock.t = 60_000;
    expect(window.stats()).toEqual([{ model: 'a', calls: 1, errors: 0, p95Ms: expect.any(Number) }]);
    clock.t = 95_000;
    expect(window.stats()).toEqual([]);
    // A reused bucket starts empty.
    window.call('a', false);
    expect(window.stats()).toEqual([{ model: 'a', calls: 1, errors: 0, p95Ms: 0 }]);
  });

  it('counts a broken stream as an error of its call, never more errors than calls', () => {
    const { clock, window } = clocked(0);
    window.observe('a', 100);
    window.error('a');
    expect(window.stats()).toEqual([{ model: 'a', calls: 1, errors: 1, p95Ms: 103 }]); // 100 ms, read back as its bin's upper bound
    clock.t = 62_000;
    window.error('a');
    expect(window.stats()).toEqual([]);
  });

  it('keeps the hedging p95 of the last successful calls, whatever their age', () => {
    const { clock, window } = clocked(0);
    for (let i = 0; i < 19; i++) window.observe('a', 100);
    expect(window.p95('a')).toBeUndefined();
    window.observe('a', 100);
    clock.t = 10 * 60_000;
    expect(window.p95('a')).toBe(100);
    expect(window.stats()).toEqual([]);
  });
});

describe('what the executor counts as calls and errors', () => {
  let sim: Simulator;
  let executor: Executor;
  let registry: ProviderRegistry;
  const window = new LatencyWindow({ now: Date.now });

  beforeAll(async () => {
    sim = await startSimulator();
    // A breaker that never opens: every call reaches the simulator.
    const breaker = new CircuitBreaker({ failureThreshold: 1_000_000, openMs: 1, now: Date.now });
    ({ executor, registry } = executorFor(testProviders(sim.url), { breaker, window }));
  });
  afterAll(async () => {
    await registry.close();
    await sim.close();
  });

  const stats = (model: string) => window.stats().find((s) => s.model === model);

  it.each([
    ['503', 'gpt-fail-503', { calls: 1, errors: 1 }],
    ['429', 'gpt-fail-429', { calls: 1, errors: 1 }],
    ['a dropped connection', 'gpt-drop', { calls: 1, errors: 1 }],
    ["the caller's 400", 'gpt-fail-400', { calls: 1, errors: 0 }],
    ["the caller's 422", 'gpt-fail-422', { calls: 1, errors: 0 }],
  ])('a call ending in %s', async (_what, upstream, want) => {
    const model = 'oa-gpt-4o-mini';
    const before = stats(model) ?? { calls: 0, errors: 0 };
    await executor.executeChat(chatRequest('hi', [attempt(model, upstream)]), ctxOf());
    const after = stats(model);
    expect({ calls: (after?.calls ?? 0) - before.calls, errors: (after?.errors ?? 0) - before.errors }).toEqual(want);
  });

  it('counts a timeout as an error, and the caller\'s own deadline as nothing', async () => {
    const model = 'az-my-deployment';
    await executor.executeChat(chatRequest('hi', [attempt(model, 'dep-hang', { timeoutMs: 50 })]), ctxOf());
    expect(stats(model)).toMatchObject({ calls: 1, errors: 1 });
    // The request's deadline (not the attempt's timeout) cut the call: no verdict on the backend.
    await executor.executeChat(chatRequest('hi', [attempt(model, 'dep-hang', { timeoutMs: 5_000 })], {}, { timeoutMs: 50 }), ctxOf());
    expect(stats(model)).toMatchObject({ calls: 1, errors: 1 });
  });

  it('counts a refusal and an answer as calls with their latency, a provider rejecting our key as a call', async () => {
    await executor.executeChat(chatRequest('[[refuse]] hi', [attempt('an-claude-haiku-4-5')]), ctxOf());
    await executor.executeChat(chatRequest('hi', [attempt('an-claude-haiku-4-5', 'claude-slow-40')]), ctxOf());
    expect(stats('an-claude-haiku-4-5')).toMatchObject({ calls: 2, errors: 0 });
    expect(stats('an-claude-haiku-4-5')?.p95Ms).toBeGreaterThanOrEqual(40);
    await executor.executeChat(chatRequest('hi', [attempt('oabad-gpt-4o-mini')]), ctxOf());
    expect(stats('oabad-gpt-4o-mini')).toMatchObject({ calls: 1, errors: 0 });
  });

  it('does not count a call the caller cancelled', async () => {
    const ctl = new AbortController();
    const done = executor.executeChatStream(chatRequest('hi', [attempt('ge-gemini-2.5-flash', 'gemini-slow-2000')]), ctxOf(ctl.signal), async () => undefined).catch(() => undefined);
    setTimeout(() => ctl.abort(), 30);
    await done;
    expect(stats('ge-gemini-2.5-flash')).toBeUndefined();
  });
});
