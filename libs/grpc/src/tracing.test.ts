import { Writable } from 'node:stream';
import {
  credentials,
  makeGenericClientConstructor,
  Metadata,
  ServerCredentials,
  type Client,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ServiceDefinition,
  type ServiceError,
  type StatusObject,
} from '@grpc/grpc-js';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AppError } from '@llmgw/errors';
import { createLogger } from '@llmgw/logging';
import { installTracing, SpanKind, TRACE_ID_HEADER, type Tracing } from '@llmgw/tracing';
import { callStream, callUnary, dial } from './client.js';
import { serverStream, tolerantDecoding, unary } from './handlers.js';
import { LocalCalls, Multiplexer, serveMultiplexed } from './mux.js';
import { createGrpcServer, type GrpcServer } from './server.js';

interface Msg {
  text: string;
}
const ser = (m: Msg) => Buffer.from(JSON.stringify(m));
const de = (b: Buffer) => JSON.parse(b.toString()) as Msg;
const method = (name: string, responseStream = false) => ({ path: `/test.v1.EchoService/${name}`, requestStream: false, responseStream, requestSerialize: ser, requestDeserialize: de, responseSerialize: ser, responseDeserialize: de });
const EchoService = { front: method('Front'), echo: method('Echo'), chunks: method('Chunks', true) } satisfies ServiceDefinition;
type Callback = (err: ServiceError | null, res: Msg) => void;
type EchoClient = Client & {
  front(req: Msg, md: Metadata, opts: object, cb: Callback): ClientUnaryCall;
  echo(req: Msg, md: Metadata, opts: object, cb: Callback): ClientUnaryCall;
  chunks(req: Msg, md: Metadata, opts: object): ClientReadableStream<Msg>;
};
const EchoCtor = makeGenericClientConstructor(EchoService, 'EchoService') as unknown as new (addr: string, creds: ReturnType<typeof credentials.createInsecure>) => EchoClient;

const exporter = new InMemorySpanExporter();
const lines: Record<string, unknown>[] = [];
const logger = createLogger({
  service: 'test',
  destination: new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  }),
});

const spanNamed = (name: string, kind: SpanKind): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.name === name && s.kind === kind);
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

describe('traces across gRPC hops', () => {
  let tracing: Tracing;
  let g: GrpcServer;
  let back: EchoClient;
  let mux: Multiplexer;
  let caller: EchoClient;
  const local = new LocalCalls();

  beforeAll(async () => {
    tracing = installTracing({ serviceName: 'test', processors: [new SimpleSpanProcessor({ exporter })] });
    g = createGrpcServer(['test.v1.EchoService'], { reflection: false });
    const opts = { timeoutMs: 5_000, requestId: 'r-1' };
    const handlers = {
      // A public entry that calls the back service three ways: a plain call, a stream and a multiplexed call.
      front: unary(
        'Front',
        logger,
        async (req: Msg, ctx) => {
          ctx.logger.info('front handling');
          if (req.text === 'deny') throw new AppError('resource_exhausted', 'slow down');
          const plain = await callUnary(back.echo.bind(back), req, opts);
          const chunks: string[] = [];
          for await (const m of callStream(back.chunks.bind(back), req, opts)) chunks.push(m.text);
          const muxed = await (req.text === 'local' ? local.at('in-process:1')! : mux).call(EchoService.echo, req, opts);
          return { text: [plain.text, ...chunks, muxed.text].join(' ') };
        },
        { publicEntry: true },
      ),
      echo: unary('Echo', logger, async (req: Msg) => ({ text: req.text.toUpperCase() })),
      chunks: serverStream('Chunks', logger, async (req: Msg, _ctx, send) => {
        await send({ text: `${req.text}-1` });
        await send({ text: `${req.text}-2` });
      }),
    };
    g.server.addService(tolerantDecoding(EchoService), handlers);
    serveMultiplexed(g, logger, tolerantDecoding(EchoService), handlers);
    local.register('in-process:1', g.multiplexed!);
    const port = await new Promise<number>((resolve, reject) => g.server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    back = dial(EchoCtor, `127.0.0.1:${port}`);
    mux = new Multiplexer(back);
    // An outside caller, not traced itself.
    caller = new EchoCtor(`127.0.0.1:${port}`, credentials.createInsecure());
  });
  afterAll(async () => {
    mux.close();
    back.close();
    caller.close();
    g.server.forceShutdown();
    await tracing.shutdown();
  });
  beforeEach(() => {
    exporter.reset();
    lines.length = 0;
  });

  function callFront(text: string, md = new Metadata()): Promise<{ err: ServiceError | null; trailers: Metadata }> {
    return new Promise((resolve) => {
      let err: ServiceError | null = null;
      const call = caller.front({ text }, md, { deadline: Date.now() + 5_000 }, (e) => (err = e));
      call.on('status', (st: StatusObject) => setImmediate(() => resolve({ err, trailers: st.metadata })));
    });
  }

  it.each(['muxed', 'local'])('makes one trace of a request: a server span per hop, a client span per call, the trace id in the trailer (%s)', async (text) => {
    const { err, trailers } = await callFront(text);
    expect(err).toBeNull();
    const [front] = spanNamed('test.v1.EchoService/Front', SpanKind.SERVER);
    expect(front).toBeDefined();
    const traceId = front!.spanContext().traceId;
    expect(trailers.get(TRACE_ID_HEADER)).toEqual([traceId]);
    expect(front!.parentSpanContext).toBeUndefined();
    expect(front!.attributes).toMatchObject({ 'rpc.system': 'grpc', 'rpc.service': 'test.v1.EchoService', 'rpc.method': 'Front', 'rpc.grpc.status_code': 0 });

    // Echo twice (a plain call, a multiplexed or in-process one), Chunks once: each a client span under Front and a server span under it.
    const echoClients = spanNamed('test.v1.EchoService/Echo', SpanKind.CLIENT);
    const echoServers = spanNamed('test.v1.EchoService/Echo', SpanKind.SERVER);
    const chunkClients = spanNamed('test.v1.EchoService/Chunks', SpanKind.CLIENT);
    const chunkServers = spanNamed('test.v1.EchoService/Chunks', SpanKind.SERVER);
    expect([echoClients.length, echoServers.length, chunkClients.length, chunkServers.length]).toEqual([2, 2, 1, 1]);
    for (const c of [...echoClients, ...chunkClients]) expect(parentOf(c)).toBe(front!.spanContext().spanId);
    const clientIds = [...echoClients, ...chunkClients].map((c) => c.spanContext().spanId).sort();
    expect([...echoServers, ...chunkServers].map(parentOf).sort()).toEqual(clientIds);
    for (const s of exporter.getFinishedSpans()) expect(s.spanContext().traceId).toBe(traceId);

    // The handler's log line carries the trace and its server span.
    expect(lines.find((l) => l.msg === 'front handling')).toMatchObject({ trace_id: traceId, span_id: front!.spanContext().spanId });
  });

  it('continues a trace the caller started (traceparent), and tells a failed caller its trace id', async () => {
    const md = new Metadata();
    md.set('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    const { err, trailers } = await callFront('deny', md);
    expect(err?.code).toBe(8);
    const [front] = spanNamed('test.v1.EchoService/Front', SpanKind.SERVER);
    expect(front!.spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(front!.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
    expect(front!.attributes).toMatchObject({ 'error.type': 'RESOURCE_EXHAUSTED', 'rpc.grpc.status_code': 8 });
    expect(trailers.get(TRACE_ID_HEADER)).toEqual(['0af7651916cd43dd8448eb211c80319c']);
  });

  it('keeps the trace id of a request its caller did not sample, and exports none of its spans', async () => {
    const md = new Metadata();
    md.set('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00');
    const { err, trailers } = await callFront('muxed', md);
    expect(err).toBeNull();
    expect(trailers.get(TRACE_ID_HEADER)).toEqual(['4bf92f3577b34da6a3ce929d0e0e4736']);
    expect(lines.find((l) => l.msg === 'front handling')).toMatchObject({ trace_id: '4bf92f3577b34da6a3ce929d0e0e4736' });
    expect(exporter.getFinishedSpans()).toEqual([]);
  });

  it('writes no trace fields outside a span', () => {
    logger.info('outside');
    expect(lines.find((l) => l.msg === 'outside')).not.toHaveProperty('trace_id');
  });
});
