import { dial, callStream, callUnary } from '@llmgw/grpc';
import { silentLogger } from '@llmgw/logging';
import { BackendHealthChanged, BackendStatsReport, ErrorKind, ExecutorServiceClient, type ExecuteChatStreamResponse } from '@llmgw/proto/executor';
import { startSimulator, type Simulator } from '@llmgw/provider-simulator';
import { FinishReason, TokenSource, UsageRecorded } from '@llmgw/proto/v1';
import { MemoryEventBus, Subjects } from '@llmgw/events';
import { addrsFromEnv, type RunningService } from '@llmgw/runtime';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_OUTBOX_MAX_BYTES } from './config.js';
import { startProviderExecutor } from './index.js';
import { attempt, chatRequest, embedRequest, testProviders } from './test-helpers.js';

/** A memory bus that also keeps what was published on the usage subject, with its message id. */
class RecordingBus extends MemoryEventBus {
  readonly usage: { msgId: string; event: UsageRecorded }[] = [];

  override async publish(subject: string, data: Uint8Array, msgId: string): Promise<void> {
    if (subject === Subjects.usageRecorded) this.usage.push({ msgId, event: UsageRecorded.decode(data) });
    await super.publish(subject, data, msgId);
  }

  of(requestId: string): UsageRecorded[] {
    return this.usage.filter((u) => u.msgId === requestId).map((u) => u.event);
  }
}

async function start(s: Simulator, bus: RecordingBus): Promise<RunningService> {
  return startProviderExecutor({
    config: { sections: testProviders(s.url), outboxPath: undefined, outboxMaxBytes: DEFAULT_OUTBOX_MAX_BYTES, outboxSyncMs: 0, statsIntervalMs: 50 },
    configPath: 'test-config.yaml',
    logger: silentLogger(),
    listenAddr: '127.0.0.1:0',
    addrs: addrsFromEnv({}),
    bus,
    drainMs: 0,
    env: {},
  });
}

let sim: Simulator;
let bus: RecordingBus;
let svc: RunningService;
let client: ExecutorServiceClient;

beforeAll(async () => {
  sim = await startSimulator();
  bus = new RecordingBus();
  svc = await start(sim, bus);
  client = dial(ExecutorServiceClient, `127.0.0.1:${svc.port}`);
});
afterAll(async () => {
  client?.close();
  await svc?.close();
  await sim?.close();
  await bus?.close();
});
beforeEach(() => sim.resetBill());

/** The one usage event of a request, once the publisher has sent it (after the response). */
async function publishedOnce(b: RecordingBus, requestId: string): Promise<UsageRecorded> {
  await vi.waitFor(() => expect(b.of(requestId)).toHaveLength(1), { timeout: 3_000, interval: 10 });
  // Nothing more comes for it.
  await new Promise((r) => setTimeout(r, 50));
  expect(b.of(requestId)).toHaveLength(1);
  return b.of(requestId)[0]!;
}

describe('ExecutorService over gRPC', () => {
  it('ExecuteChat answers with routing, and failures come back in the response', async () => {
    const ok = await callUnary(client.executeChat.bind(client), chatRequest('hi', [attempt('an-claude-haiku-4-5')], {}, {}, 'g1'), { timeoutMs: 5_000 });
    expect(ok.error).toBeUndefined();
    expect(ok.response).toMatchObject({ id: 'g1', model: 'an-claude-haiku-4-5', provider: 'an', finishReason: FinishReason.FINISH_REASON_STOP });
    const failed = await callUnary(client.executeChat.bind(client), chatRequest('hi', [attempt('oa-gpt-4o-mini', 'x-fail-500')], {}, {}, 'g2'), { timeoutMs: 5_000 });
    expect(failed.error?.kind).toBe(ErrorKind.ERROR_KIND_UNAVAILABLE);
    expect(failed.error?.code).toBe('');
    expect(failed.response?.routing?.attempts[0]?.providerStatus).toBe(500);
  });

  it('publishes one usage event per request on the bus, keyed by the request id', async () => {
    const res = await callUnary(client.executeChat.bind(client), chatRequest('hi', [attempt('oa-gpt-4o-mini')], {}, {}, 'u1'), { timeoutMs: 5_000 });
    const ev = await publishedOnce(bus, 'u1');
    expect(ev).toMatchObject({ eventId: 'u1', tenantId: 'acme', keyId: 'key-1', model: 'oa-gpt-4o-mini', success: true, tokenSource: TokenSource.TOKEN_SOURCE_PROVIDER });
    expect(ev.inputTokens).toBe(res.response?.usage?.inputTokens);
    expect(ev.outputTokens).toBe(res.response?.usage?.outputTokens);
    expect(ev.costMicros).toBe(res.response?.usage?.costMicros);
    expect(sim.bill().models).toEqual({ 'gpt-4o-mini': { requests: 1, input_tokens: ev.inputTokens, output_tokens: ev.outputTokens, cached_input_tokens: 0, cache_write_input_tokens: 0, reasoning_tokens: 0 } });

    await callUnary(client.executeChat.bind(client), chatRequest('hi', [attempt('oa-gpt-4o-mini', 'y-fail-503')], {}, {}, 'u2'), { timeoutMs: 5_000 });
    expect(await publishedOnce(bus, 'u2')).toMatchObject({ success: false, errorCode: 'UNAVAILABLE', costMicros: 0 });
  });

  it('a unary call the caller cancels mid-attempt is still published, with the provider bill and CANCELLED', async () => {
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(), 50);
    await expect(
      callUnary(client.executeChat.bind(client), chatRequest('patience', [attempt('oa-gpt-4o-mini', 'gpt-slow-300'), attempt('an-claude-haiku-4-5')], {}, {}, 'u3'), {
        timeoutMs: 5_000,
        signal: ctl.signal,
      }),
    ).rejects.toMatchObject({ kind: 'cancelled' });
    const ev = await publishedOnce(bus, 'u3');
    expect(ev).toMatchObject({ success: false, errorCode: 'CANCELLED', model: 'oa-gpt-4o-mini', attemptCount: 1 });
    expect(ev.outputTokens).toBeGreaterThan(0);
    expect(sim.bill().models).toEqual({ 'gpt-slow-300': { requests: 1, input_tokens: ev.inputTokens, output_tokens: ev.outputTokens, cached_input_tokens: 0, cache_write_input_tokens: 0, reasoning_tokens: 0 } });
  });

  it('honours the incoming gRPC deadline', async () => {
    const started = Date.now();
    const res = await callUnary(client.executeChat.bind(client), chatRequest('hi', [attempt('oa-gpt-4o-mini', 'x-hang', { timeoutMs: 30_000 })], {}, {}, 'g3'), { timeoutMs: 400 }).catch(
      (e: unknown) => e,
    );
    expect(Date.now() - started).toBeLessThan(2_000);
    // Either our DEADLINE_EXCEEDED answer arrives in time, or the caller's own deadline fires first.
    const kind = (res as { error?: { kind: ErrorKind } }).error?.kind ?? (res as { kind?: string }).kind;
    expect([ErrorKind.ERROR_KIND_DEADLINE_EXCEEDED, 'deadline_exceeded']).toContain(kind);
    // Either way the request is billed once: its prompt, estimated (the provider may charge a request we stopped waiting for).
    const ev = await publishedOnce(bus, 'g3');
    expect(ev).toMatchObject({ success: false, errorCode: 'DEADLINE_EXCEEDED', tokenSource: TokenSource.TOKEN_SOURCE_ESTIMATED });
  });

  it('ExecuteChatStream streams deltas then usage and routing', async () => {
    const msgs: ExecuteChatStreamResponse[] = [];
    for await (const m of callStream(client.executeChatStream.bind(client), chatRequest('[[long]] hi', [attempt('ge-gemini-2.5-flash')], { maxTokens: 1000 }, {}, 's1'), { timeoutMs: 5_000 })) {
      msgs.push(m);
    }
    const last = msgs[msgs.length - 1];
    expect(msgs.length).toBeGreaterThan(2);
    expect(msgs[0]?.chunk?.contentDelta.length).toBeGreaterThan(0);
    expect(last?.chunk?.usage?.outputTokens).toBeGreaterThan(300);
    expect(last?.chunk?.routing?.chosenModel).toBe('ge-gemini-2.5-flash');
    const ev = await publishedOnce(bus, 's1');
    expect(ev).toMatchObject({ streamed: true, success: true, outputTokens: last?.chunk?.usage?.outputTokens });
  });

  it('cancelling the gRPC stream aborts the upstream request and publishes CANCELLED', async () => {
    const slow = await startSimulator({ streamChunkDelayMs: 30 });
    const bus2 = new RecordingBus();
    const svc2 = await start(slow, bus2);
    const c2 = dial(ExecutorServiceClient, `127.0.0.1:${svc2.port}`);
    try {
      let n = 0;
      for await (const _m of callStream(c2.executeChatStream.bind(c2), chatRequest('[[long]] hi', [attempt('oa-gpt-4o-mini')], { maxTokens: 1000 }, {}, 's2'), { timeoutMs: 10_000 })) {
        if (++n === 2) break;
      }
      expect(slow.stats().totalRequests).toBe(1);
      const until = Date.now() + 2_000;
      while (slow.stats().openRequests !== 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      expect(slow.stats().openRequests).toBe(0);
      const ev = await publishedOnce(bus2, 's2');
      expect(ev).toMatchObject({ success: false, errorCode: 'CANCELLED', streamed: true, model: 'oa-gpt-4o-mini' });
      expect(ev.outputTokens).toBeGreaterThan(0);
    } finally {
      c2.close();
      await svc2.close();
      await slow.close();
      await bus2.close();
    }
  });

  it('ExecuteEmbed returns vectors', async () => {
    const res = await callUnary(client.executeEmbed.bind(client), embedRequest(['a', 'b', 'c'], [attempt('oa-embed')], { dimensions: 64 }, 'e1'), { timeoutMs: 5_000 });
    expect(res.response?.embeddings.map((e) => e.values.length)).toEqual([64, 64, 64]);
    expect(await publishedOnce(bus, 'e1')).toMatchObject({ operation: 'embed', success: true, inputTokens: res.response?.usage?.inputTokens });
  });

  it('rejects a request without a plan as INVALID_ARGUMENT', async () => {
    await expect(callUnary(client.executeChat.bind(client), { ...chatRequest('hi', [], {}, {}, 'x'), plan: undefined }, { timeoutMs: 5_000 })).rejects.toMatchObject({
      kind: 'invalid_argument',
    });
  });

  it('broadcasts an opened breaker with the provider the plan named', async () => {
    const got: BackendHealthChanged[] = [];
    const stop = bus.onBroadcast(Subjects.backendHealth, (d) => got.push(BackendHealthChanged.decode(d)));
    try {
      const planned = [attempt('an-claude-haiku-4-5', 'claude-cb-fail-500')];
      for (let i = 0; i < 5; i++) await callUnary(client.executeChat.bind(client), chatRequest('hi', planned, {}, {}, `cb-${i}`), { timeoutMs: 5_000 });
      expect(got).toHaveLength(1);
      expect(got[0]).toMatchObject({ model: 'an-claude-haiku-4-5', provider: 'an', healthy: false });
    } finally {
      stop();
    }
  });

  it('broadcasts its calls per model every stats interval, with the replica id of its health broadcasts', async () => {
    const health: BackendHealthChanged[] = [];
    const reports: BackendStatsReport[] = [];
    const stopHealth = bus.onBroadcast(Subjects.backendHealth, (d) => health.push(BackendHealthChanged.decode(d)));
    const stopStats = bus.onBroadcast(Subjects.backendStats, (d) => reports.push(BackendStatsReport.decode(d)));
    try {
      const of = (r: BackendStatsReport | undefined, model: string) => r?.models.find((m) => m.model === model) ?? { calls: 0, errors: 0, p95Ms: 0 };
      // Earlier tests' calls are in the window too: count from the last report before these.
      await vi.waitFor(() => expect(reports.length).toBeGreaterThan(0), { timeout: 3_000, interval: 10 });
      const before = reports.at(-1);
      const planned = [attempt('ge-gemini-2.5-flash', 'gemini-stats-fail-503'), attempt('az-my-deployment')];
      for (let i = 0; i < 5; i++) await callUnary(client.executeChat.bind(client), chatRequest('hi', planned, {}, {}, `st-${i}`), { timeoutMs: 5_000 });
      await vi.waitFor(() => expect(of(reports.at(-1), 'az-my-deployment').calls - of(before, 'az-my-deployment').calls).toBe(5), { timeout: 3_000, interval: 20 });
      const last = reports.at(-1) as BackendStatsReport;
      expect(last).toMatchObject({ windowMs: 60_000, intervalMs: 50 });
      expect(of(last, 'ge-gemini-2.5-flash').calls - of(before, 'ge-gemini-2.5-flash').calls).toBe(5);
      expect(of(last, 'ge-gemini-2.5-flash').errors - of(before, 'ge-gemini-2.5-flash').errors).toBe(5);
      expect(of(last, 'az-my-deployment').errors).toBe(0);
      expect(of(last, 'az-my-deployment').p95Ms).toBeGreaterThan(0);
      // The fifth failure opened the breaker: the same replica speaks in both.
      expect(health.find((h) => h.model === 'ge-gemini-2.5-flash')?.replicaId).toBe(last.replicaId);
    } finally {
      stopHealth();
      stopStats();
    }
  });
});
