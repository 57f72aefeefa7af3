import { dial, callStream, callUnary } from '@llmgw/grpc';
import { silentLogger } from '@llmgw/logging';
import { ExecutorServiceClient, type ExecuteChatStreamResponse } from '@llmgw/proto/executor';
import { startSimulator, type Simulator } from '@llmgw/provider-simulator';
import { FinishReason } from '@llmgw/proto/v1';
import { MemoryEventBus } from '@llmgw/events';
import { addrsFromEnv, type RunningService } from '@llmgw/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProviderExecutor } from './index.js';
import { attempt, chat, plan, testConfig } from './test-helpers.js';

let sim: Simulator;
let svc: RunningService;
let client: ExecutorServiceClient;

beforeAll(async () => {
  sim = await startSimulator();
  svc = await startProviderExecutor({
    config: testConfig(sim.url),
    logger: silentLogger(),
    listenAddr: '127.0.0.1:0',
    addrs: addrsFromEnv({}),
    bus: new MemoryEventBus(),
    drainMs: 0,
    env: {},
  });
  client = dial(ExecutorServiceClient, `127.0.0.1:${svc.port}`);
});
afterAll(async () => {
  client?.close();
  await svc?.close();
  await sim?.close();
});

describe('ExecutorService over gRPC', () => {
  it('ExecuteChat answers with routing, and failures come back in the response', async () => {
    const ok = await callUnary(client.executeChat.bind(client), { requestId: 'g1', tenantId: 'acme', request: chat('hi'), plan: plan([attempt('an-claude-haiku-4-5')]) }, { timeoutMs: 5_000 });
    expect(ok.error).toBeUndefined();
    expect(ok.response).toMatchObject({ id: 'g1', model: 'an-claude-haiku-4-5', provider: 'an', finishReason: FinishReason.FINISH_REASON_STOP });
    const failed = await callUnary(
      client.executeChat.bind(client),
      { requestId: 'g2', tenantId: 'acme', request: chat('hi'), plan: plan([attempt('oa-gpt-4o-mini', 'x-fail-500')]) },
      { timeoutMs: 5_000 },
    );
    expect(failed.error?.code).toBe('UNAVAILABLE');
    expect(failed.response?.routing?.attempts[0]?.providerStatus).toBe(500);
  });

  it('honours the incoming gRPC deadline', async () => {
    const started = Date.now();
    const res = await callUnary(
      client.executeChat.bind(client),
      { requestId: 'g3', tenantId: 'acme', request: chat('hi'), plan: plan([attempt('oa-gpt-4o-mini', 'x-hang', { timeoutMs: 30_000 })]) },
      { timeoutMs: 400 },
    ).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(2_000);
    // Either our DEADLINE_EXCEEDED answer arrives in time, or the caller's own deadline fires first.
    const code = (res as { error?: { code: string } }).error?.code ?? (res as { kind?: string }).kind;
    expect(['DEADLINE_EXCEEDED', 'deadline_exceeded']).toContain(code);
  });

  it('ExecuteChatStream streams deltas then usage and routing', async () => {
    const msgs: ExecuteChatStreamResponse[] = [];
    for await (const m of callStream(client.executeChatStream.bind(client), { requestId: 's1', tenantId: 'acme', request: chat('[[long]] hi', { maxTokens: 1000 }), plan: plan([attempt('ge-gemini-2.5-flash')]) }, { timeoutMs: 5_000 })) {
      msgs.push(m);
    }
    const last = msgs[msgs.length - 1];
    expect(msgs.length).toBeGreaterThan(2);
    expect(msgs[0]?.chunk?.contentDelta.length).toBeGreaterThan(0);
    expect(last?.chunk?.usage?.outputTokens).toBeGreaterThan(300);
    expect(last?.chunk?.routing?.chosenModel).toBe('ge-gemini-2.5-flash');
  });

  it('cancelling the gRPC stream aborts the upstream request', async () => {
    const slow = await startSimulator({ streamChunkDelayMs: 30 });
    const svc2 = await startProviderExecutor({
      config: testConfig(slow.url),
      logger: silentLogger(),
      listenAddr: '127.0.0.1:0',
      addrs: addrsFromEnv({}),
      bus: new MemoryEventBus(),
      drainMs: 0,
      env: {},
    });
    const c2 = dial(ExecutorServiceClient, `127.0.0.1:${svc2.port}`);
    try {
      let n = 0;
      for await (const _m of callStream(c2.executeChatStream.bind(c2), { requestId: 's2', tenantId: 'acme', request: chat('[[long]] hi', { maxTokens: 1000 }), plan: plan([attempt('oa-gpt-4o-mini')]) }, { timeoutMs: 10_000 })) {
        if (++n === 2) break;
      }
      expect(slow.stats().totalRequests).toBe(1);
      const until = Date.now() + 2_000;
      while (slow.stats().openRequests !== 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      expect(slow.stats().openRequests).toBe(0);
    } finally {
      c2.close();
      await svc2.close();
      await slow.close();
    }
  });

  it('ExecuteEmbed returns vectors', async () => {
    const res = await callUnary(
      client.executeEmbed.bind(client),
      { requestId: 'e1', tenantId: 'acme', request: { route: 'r', inputs: ['a', 'b', 'c'], model: '', user: '', timeoutMs: 0, metadata: {}, dimensions: 64 }, plan: plan([attempt('oa-embed')]) },
      { timeoutMs: 5_000 },
    );
    expect(res.response?.embeddings.map((e) => e.values.length)).toEqual([64, 64, 64]);
  });

  it('rejects a request without a plan as INVALID_ARGUMENT', async () => {
    await expect(callUnary(client.executeChat.bind(client), { requestId: 'x', tenantId: 'acme', request: chat('hi'), plan: undefined }, { timeoutMs: 5_000 })).rejects.toMatchObject({
      kind: 'invalid_argument',
    });
  });
});
