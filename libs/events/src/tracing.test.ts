import { context, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer, type LocalServer } from '@llmgw/local-infra';
import { silentLogger } from '@llmgw/logging';
import { inSpan, installTracing, SpanKind, type Tracing } from '@llmgw/tracing';
import { connectNatsBus, MemoryEventBus, Subjects, type EventBus } from './index.js';

const exporter = new InMemorySpanExporter();
let tracing: Tracing;
let nats: LocalServer;
beforeAll(async () => {
  tracing = installTracing({ serviceName: 'test', processors: [new SimpleSpanProcessor({ exporter })] });
  nats = await startNatsServer();
});
afterAll(async () => {
  await nats?.stop();
  await tracing.shutdown();
});

let seq = 0;

describe.each([
  ['memory', async (): Promise<EventBus> => new MemoryEventBus()],
  ['nats', async (): Promise<EventBus> => connectNatsBus({ url: nats.url, name: 'trace-test', logger: silentLogger() })],
])('%s event bus: trace context in message headers', (_name, connect) => {
  it('publishes in a PRODUCER span and handles in a CONSUMER span of the same trace, its child', async () => {
    const bus = await connect();
    const id = `evt-trace-${++seq}-${Date.now()}`;
    let handlerTraceId = '';
    let handled!: () => void;
    const done = new Promise<void>((r) => (handled = r));
    const stop = await bus.consume(Subjects.usageRecorded, `trace-${seq}`, async (d) => {
      if (new TextDecoder().decode(d) !== id) return;
      handlerTraceId = trace.getSpan(context.active())?.spanContext().traceId ?? '';
      handled();
    });
    const traceId = await inSpan('request', SpanKind.SERVER, {}, async (span) => {
      await bus.publish(Subjects.usageRecorded, new TextEncoder().encode(id), id);
      return span!.spanContext().traceId;
    });
    await done;
    await expect.poll(() => exporter.getFinishedSpans().find((s) => s.name === `process ${Subjects.usageRecorded}` && s.spanContext().traceId === traceId)).toBeDefined();
    const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    const send = spans.find((s) => s.name === `send ${Subjects.usageRecorded}`)!;
    const processed = spans.find((s) => s.name === `process ${Subjects.usageRecorded}`)!;
    expect(send.kind).toBe(SpanKind.PRODUCER);
    expect(send.attributes).toMatchObject({ 'messaging.system': 'nats', 'messaging.destination.name': Subjects.usageRecorded, 'messaging.message.id': id });
    expect(processed.kind).toBe(SpanKind.CONSUMER);
    expect(processed.parentSpanContext?.spanId).toBe(send.spanContext().spanId);
    expect(processed.attributes).toMatchObject({ 'messaging.consumer.group.name': `trace-${seq}`, 'messaging.message.delivery_count': 1 });
    expect(handlerTraceId).toBe(traceId);
    await stop();
    await bus.close();
  });
});
