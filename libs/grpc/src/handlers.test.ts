import { credentials, makeGenericClientConstructor, Server, ServerCredentials, status, type Client, type ServiceDefinition, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '@llmgw/errors';
import { silentLogger } from '@llmgw/logging';
import { createMetrics } from '@llmgw/metrics';
import { serverStream, tolerantDecoding, unary } from './handlers.js';

interface Msg {
  text: string;
}
const ser = (m: Msg) => Buffer.from(JSON.stringify(m));
const de = (b: Buffer) => JSON.parse(b.toString()) as Msg;
const method = (name: string, responseStream: boolean) => ({
  path: `/test.Echo/${name}`,
  requestStream: false,
  responseStream,
  requestSerialize: ser,
  requestDeserialize: de,
  responseSerialize: ser,
  responseDeserialize: de,
});
const EchoService = { echo: method('Echo', false), plain: method('Plain', false), chunks: method('Chunks', true) } satisfies ServiceDefinition;

interface EchoClient extends Client {
  echo(req: Msg, cb: (err: ServiceError | null, res?: Msg) => void): void;
  plain(req: Msg, cb: (err: ServiceError | null, res?: Msg) => void): void;
  chunks(req: Msg): NodeJS.ReadableStream;
}
const EchoCtor = makeGenericClientConstructor(EchoService, 'Echo') as unknown as new (addr: string, creds: ReturnType<typeof credentials.createInsecure>) => EchoClient;

/** Fails with the AppError kind named in the request text, answers otherwise. */
async function behave(req: Msg): Promise<Msg> {
  if (req.text === 'deny') throw new AppError('resource_exhausted', 'slow down');
  if (req.text === 'bad') throw new AppError('invalid_argument', 'text: bad');
  return { text: req.text };
}

describe('unary/serverStream record RPC metrics', () => {
  const metrics = createMetrics('test', { defaultMetrics: false });
  const logger = silentLogger();
  let server: Server;
  let client: EchoClient;

  beforeAll(async () => {
    server = new Server();
    server.addService(EchoService, {
      echo: unary('Echo', logger, behave, { metrics: metrics.rpc }),
      plain: unary('Plain', logger, behave), // no hook: must keep working and record nothing
      chunks: serverStream('Chunks', logger, async (req: Msg, _ctx, send) => {
        await send({ text: 'first' });
        await behave(req);
      }, { metrics: metrics.rpc }),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    client = new EchoCtor(`127.0.0.1:${port}`, credentials.createInsecure());
  });
  afterAll(() => {
    client.close();
    server.forceShutdown();
  });

  const call = (fn: 'echo' | 'plain', text: string) =>
    new Promise<{ err: ServiceError | null; res?: Msg }>((resolve) => client[fn]({ text }, (err, res) => resolve({ err, res })));
  const stream = (text: string) =>
    new Promise<{ code: number; got: number }>((resolve) => {
      let got = 0;
      const s = client.chunks({ text });
      s.on('data', () => got++);
      s.on('error', (e: ServiceError) => resolve({ code: e.code, got }));
      s.on('end', () => resolve({ code: status.OK, got }));
    });
  const value = async (name: string, labels: Record<string, string>) => {
    const json = await metrics.registry.getMetricsAsJSON();
    const family = json.find((m) => m.name === name);
    const v = family?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
    return v?.value ?? 0;
  };

  it('counts a success as code OK and an AppError under its gRPC code, with handling time', async () => {
    expect((await call('echo', 'hi')).res).toEqual({ text: 'hi' });
    expect((await call('echo', 'hi')).res).toEqual({ text: 'hi' });
    expect((await call('echo', 'deny')).err?.code).toBe(status.RESOURCE_EXHAUSTED);

    expect(await value('grpc_server_handled_total', { method: 'Echo', code: 'OK' })).toBe(2);
    expect(await value('grpc_server_handled_total', { method: 'Echo', code: 'RESOURCE_EXHAUSTED' })).toBe(1);
    expect(await value('grpc_server_handled_total', { method: 'Echo', code: 'INVALID_ARGUMENT' })).toBe(0);
    expect(await value('grpc_server_handling_seconds', { method: 'Echo', le: '+Inf' })).toBe(3);
    const text = await metrics.registry.metrics();
    expect(text).toContain('grpc_server_handled_total{method="Echo",code="RESOURCE_EXHAUSTED",service="test"} 1');
  });

  it('a handler without a hook answers and records nothing', async () => {
    expect((await call('plain', 'x')).res).toEqual({ text: 'x' });
    expect((await call('plain', 'bad')).err?.code).toBe(status.INVALID_ARGUMENT);
    expect(await metrics.registry.metrics()).not.toContain('method="Plain"');
  });

  it('a stream is counted once, with its final status', async () => {
    expect(await stream('ok')).toEqual({ code: status.OK, got: 1 });
    expect(await stream('bad')).toEqual({ code: status.INVALID_ARGUMENT, got: 1 });
    expect(await value('grpc_server_handled_total', { method: 'Chunks', code: 'OK' })).toBe(1);
    expect(await value('grpc_server_handled_total', { method: 'Chunks', code: 'INVALID_ARGUMENT' })).toBe(1);
    expect(await value('grpc_server_handling_seconds', { method: 'Chunks', le: '+Inf' })).toBe(2);
  });
});

describe('tolerantDecoding: bytes that are not the request message', () => {
  const logger = silentLogger();
  let server: Server;
  let client: Client;
  let handled = 0;
  const raw = (b: Buffer) => b;

  beforeAll(async () => {
    server = new Server();
    const ok = async (req: Msg) => {
      handled++;
      return { text: req.text };
    };
    server.addService(tolerantDecoding(EchoService), {
      echo: unary('Echo', logger, ok),
      // A handler that throws before returning a promise is still an error status, not UNKNOWN.
      plain: unary('Plain', logger, (() => {
        throw new AppError('failed_precondition', 'not now');
      }) as (req: Msg) => Promise<Msg>),
      chunks: serverStream('Chunks', logger, async (req: Msg, _ctx, send) => {
        handled++;
        await send(req);
      }),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    client = new (makeGenericClientConstructor({}, 'Raw'))(`127.0.0.1:${port}`, credentials.createInsecure());
  });
  afterAll(() => {
    client.close();
    server.forceShutdown();
  });

  const unaryRaw = (path: string, bytes: Buffer) =>
    new Promise<ServiceError | null>((resolve) => client.makeUnaryRequest(path, raw, raw, bytes, (err) => resolve(err)));
  const streamRaw = (path: string, bytes: Buffer) =>
    new Promise<number>((resolve) => {
      const s = client.makeServerStreamRequest(path, raw, raw, bytes);
      s.on('data', () => undefined);
      s.on('error', () => undefined);
      s.on('status', (st: { code: number }) => resolve(st.code));
    });

  it.each([
    ['not JSON', Buffer.from('{"text":')],
    ['empty', Buffer.alloc(0)],
    ['binary', Buffer.from([0xff, 0x00, 0x80])],
  ])('%s: a unary call is INVALID_ARGUMENT naming the method, the handler never runs', async (_name, bytes) => {
    const before = handled;
    const err = await unaryRaw('/test.Echo/Echo', bytes);
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    expect(err?.details).toMatch(/^the request is not a valid message for \/test\.Echo\/Echo: /);
    expect(handled).toBe(before);
  });

  it('a stream whose request does not decode ends with INVALID_ARGUMENT', async () => {
    const before = handled;
    expect(await streamRaw('/test.Echo/Chunks', Buffer.from('nope'))).toBe(status.INVALID_ARGUMENT);
    expect(handled).toBe(before);
    expect(await streamRaw('/test.Echo/Chunks', Buffer.from('{"text":"a"}'))).toBe(status.OK);
  });

  it('a request that decodes still reaches the handler', async () => {
    expect(await unaryRaw('/test.Echo/Echo', Buffer.from('{"text":"hi"}'))).toBeNull();
  });

  it('a handler that throws synchronously is mapped like a rejection', async () => {
    const err = await unaryRaw('/test.Echo/Plain', Buffer.from('{"text":"hi"}'));
    expect(err?.code).toBe(status.FAILED_PRECONDITION);
    expect(err?.details).toBe('not now');
  });

  it('without it, grpc-js answers INTERNAL (why every service registers through it)', async () => {
    const bare = new Server();
    bare.addService(EchoService, { echo: unary('Echo', logger, async (req: Msg) => req), plain: unary('Plain', logger, async (req: Msg) => req), chunks: serverStream('Chunks', logger, async () => undefined) });
    const port = await new Promise<number>((resolve, reject) => bare.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    const c = new (makeGenericClientConstructor({}, 'Raw'))(`127.0.0.1:${port}`, credentials.createInsecure());
    try {
      const err = await new Promise<ServiceError | null>((resolve) => c.makeUnaryRequest('/test.Echo/Echo', raw, raw, Buffer.from('{'), (e) => resolve(e)));
      expect(err?.code).toBe(status.INTERNAL);
    } finally {
      c.close();
      bare.forceShutdown();
    }
  });
});

describe('a call its caller cancels', () => {
  it('makes the next send fail with CANCELLED, which is no unhandled error', async () => {
    const errors: unknown[] = [];
    const logger = silentLogger();
    logger.error = ((obj: unknown) => void errors.push(obj)) as typeof logger.error;
    let failure: unknown;
    const server = new Server();
    server.addService(EchoService, {
      echo: unary('Echo', logger, behave),
      plain: unary('Plain', logger, behave),
      chunks: serverStream('Chunks', logger, async (_req: Msg, ctx, send) => {
        try {
          for (;;) {
            await send({ text: 'more' });
            await new Promise((r) => setTimeout(r, 5));
          }
        } catch (err) {
          failure = err;
          throw err;
        }
      }),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const client = new EchoCtor(`127.0.0.1:${port}`, credentials.createInsecure());
    try {
      const s = client.chunks({ text: 'x' }) as NodeJS.ReadableStream & { cancel(): void };
      s.on('error', () => undefined);
      await new Promise<void>((resolve) => s.once('data', () => resolve()));
      s.cancel();
      await expect.poll(() => failure).toBeDefined();
      expect(failure).toMatchObject({ kind: 'cancelled' });
      expect(errors).toEqual([]);
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
