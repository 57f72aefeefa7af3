import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '@llmgw/provider-simulator';
import { inSpan, installTracing, SpanKind, type Tracing } from '@llmgw/tracing';
import { CircuitBreaker } from './circuit-breaker.js';
import type { Executor } from './execute.js';
import type { ProviderRegistry } from './providers/registry.js';
import { attempt, chatRequest, ctxOf, embedRequest, executorFor, testProviders } from './test-helpers.js';

const exporter = new InMemorySpanExporter();
let tracing: Tracing;
let sim: Simulator;
let executor: Executor;
let registry: ProviderRegistry;

beforeAll(async () => {
  tracing = installTracing({ serviceName: 'test', processors: [new SimpleSpanProcessor({ exporter })] });
  sim = await startSimulator();
  const breaker = new CircuitBreaker({ failureThreshold: 1_000_000, openMs: 1, now: Date.now });
  ({ executor, registry } = executorFor(testProviders(sim.url), { random: () => 0.5, breaker }));
});
afterAll(async () => {
  await registry.close();
  await sim.close();
  await tracing.shutdown();
});
beforeEach(() => exporter.reset());

/** Runs `fn` inside a server span, as the gRPC adapters do; the provider spans of the call, in order. */
async function providerSpans(fn: () => Promise<unknown>): Promise<{ spans: ReadableSpan[]; parent: string }> {
  const parent = await inSpan('server', SpanKind.SERVER, {}, async (span) => {
    await fn();
    return span!.spanContext().spanId;
  });
  const spans = exporter.getFinishedSpans().filter((s) => s.attributes['gen_ai.operation.name'] !== undefined);
  return { spans: spans.sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]), parent };
}

describe('the provider call span (OpenTelemetry GenAI conventions)', () => {
  it('is a CLIENT span "chat {model}" with the request, response and usage attributes', async () => {
    let usage: { inputTokens: number; outputTokens: number } | undefined;
    const { spans, parent } = await providerSpans(async () => {
      usage = (await executor.executeChat(chatRequest('hello there', [attempt('oa-gpt-4o-mini')]), ctxOf())).response?.usage;
    });
    expect(spans).toHaveLength(1);
    const [s] = spans;
    expect(s!.name).toBe('chat gpt-4o-mini');
    expect(s!.kind).toBe(SpanKind.CLIENT);
    expect(s!.parentSpanContext?.spanId).toBe(parent);
    expect(s!.attributes).toEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'oa',
      'gen_ai.request.model': 'gpt-4o-mini',
      'gen_ai.response.model': 'gpt-4o-mini',
      'gen_ai.usage.input_tokens': usage!.inputTokens,
      'gen_ai.usage.output_tokens': usage!.outputTokens,
      'gen_ai.response.finish_reasons': ['stop'],
    });
  });

  it('is one span per attempt: a failed one carries error.type, the fallback its answer', async () => {
    const { spans } = await providerSpans(() => executor.executeChat(chatRequest('hi', [attempt('oa-gpt-4o-mini', 'gpt-4o-mini-fail-500'), attempt('an-claude-haiku-4-5')]), ctxOf()));
    expect(spans.map((s) => s.name)).toEqual(['chat gpt-4o-mini-fail-500', 'chat claude-haiku-4-5']);
    expect(spans[0]!.attributes).toMatchObject({ 'gen_ai.provider.name': 'oa', 'error.type': 'http_5xx' });
    expect(spans[0]!.attributes).not.toHaveProperty('gen_ai.usage.output_tokens');
    expect(spans[1]!.attributes).toMatchObject({ 'gen_ai.provider.name': 'an', 'gen_ai.response.finish_reasons': ['stop'] });
    expect(spans[1]!.attributes).not.toHaveProperty('error.type');
  });

  it('lasts a stream until its end, with the usage the stream reported', async () => {
    const { spans } = await providerSpans(() => executor.executeChatStream(chatRequest('stream me', [attempt('an-claude-haiku-4-5')]), ctxOf(), async () => undefined));
    expect(spans).toHaveLength(1);
    expect(spans[0]!.name).toBe('chat claude-haiku-4-5');
    expect(spans[0]!.attributes).toMatchObject({ 'gen_ai.usage.input_tokens': expect.any(Number), 'gen_ai.usage.output_tokens': expect.any(Number), 'gen_ai.response.finish_reasons': ['stop'] });
  });

  it('names embeddings calls "embeddings {model}"', async () => {
    const { spans } = await providerSpans(() => executor.executeEmbed(embedRequest(['a', 'b'], [attempt('oa-embed')]), ctxOf()));
    expect(spans.map((s) => [s.name, s.attributes['gen_ai.operation.name']])).toEqual([['embeddings text-embedding-3-small', 'embeddings']]);
  });
});
