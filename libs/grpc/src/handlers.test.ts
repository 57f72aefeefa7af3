import { credentials, makeGenericClientConstructor, Server, ServerCredentials, status, type Client, type ServiceDefinition, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '@llmgw/errors';
import { silentLogger } from '@llmgw/logging';
import { createMetrics } from '@llmgw/metrics';
import { serverStream, unary } from './handlers.js';

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
