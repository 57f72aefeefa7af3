import { credentials, makeGenericClientConstructor, Metadata, ServerCredentials, status, type Client, type ServiceDefinition, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '@llmgw/errors';
import { silentLogger } from '@llmgw/logging';
import { callUnary } from './client.js';
import { serverStream, tolerantDecoding, unary } from './handlers.js';
import { LocalCalls, Multiplexer, serveMultiplexed } from './mux.js';
import { createGrpcServer, type GrpcServer } from './server.js';
import { fromStatus } from './status-map.js';

interface Msg {
  text: string;
  ms?: number;
}
const ser = (m: Msg) => Buffer.from(JSON.stringify(m));
const de = (b: Buffer) => JSON.parse(b.toString()) as Msg;
const method = (name: string) => ({ path: `/test.Echo/${name}`, requestStream: false, responseStream: false, requestSerialize: ser, requestDeserialize: de, responseSerialize: ser, responseDeserialize: de });
const EchoService = { echo: method('Echo'), slow: method('Slow'), chunks: { ...method('Chunks'), responseStream: true } } satisfies ServiceDefinition;
type EchoClient = Client & { echo(req: Msg, md: Metadata, opts: object, cb: (err: ServiceError | null, res: Msg) => void): void };
const EchoCtor = makeGenericClientConstructor(EchoService, 'Echo') as unknown as new (addr: string, creds: ReturnType<typeof credentials.createInsecure>) => EchoClient;

describe('Multiplexer: unary calls over long-lived streams', () => {
  const logger = silentLogger();
  let g: GrpcServer;
  let client: EchoClient;
  let mux: Multiplexer;
  /** What the slow handler saw: its signal's abort reason, by request text. */
  const aborted = new Map<string, unknown>();
  const seen: { requestId: string; tenantId: string }[] = [];
  let streamsOpened = 0;
  /** Messages the streaming handler has sent so far, and how it ended, by request text. */
  const sent = new Map<string, number>();
  const ended = new Map<string, unknown>();

  beforeAll(async () => {
    g = createGrpcServer(['test.Echo'], { reflection: false });
    const handlers = {
      echo: unary('Echo', logger, async (req: Msg, ctx) => {
        seen.push({ requestId: ctx.requestId, tenantId: ctx.tenantId });
        if (req.text === 'deny') throw new AppError('resource_exhausted', 'slow down', { retryAfterMs: 1500, trailers: { 'x-ratelimit-limit-requests': '10' } });
        if (req.text === 'bad') throw new AppError('invalid_argument', 'text: bad');
        if (req.text === 'trailer') ctx.setTrailer('x-ratelimit-remaining-requests', '7');
        return { text: req.text.toUpperCase() };
      }),
      slow: unary('Slow', logger, (req: Msg, ctx) =>
        new Promise<Msg>((resolve, reject) => {
          const t = setTimeout(() => resolve({ text: req.text }), req.ms ?? 0);
          ctx.signal.addEventListener('abort', () => {
            clearTimeout(t);
            aborted.set(req.text, ctx.signal.reason);
            reject(ctx.signal.reason);
          });
        }),
      ),
    };
    const withChunks = {
      ...handlers,
      // Sends `ms` numbered messages (as text), then fails if asked to.
      chunks: serverStream('Chunks', logger, async (req: Msg, ctx, send) => {
        sent.set(req.text, 0);
        try {
          for (let i = 0; i < (req.ms ?? 0); i++) {
            await send({ text: `${req.text}-${i}` });
            sent.set(req.text, i + 1);
          }
          if (req.text.startsWith('fail')) throw new AppError('unavailable', 'provider went away');
          ended.set(req.text, 'ok');
        } catch (err) {
          ended.set(req.text, err);
          throw err;
        }
      }),
    };
    g.server.addService(tolerantDecoding(EchoService), withChunks);
    serveMultiplexed(g, logger, tolerantDecoding(EchoService), withChunks);
    const port = await new Promise<number>((resolve, reject) => g.server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    client = new EchoCtor(`127.0.0.1:${port}`, credentials.createInsecure());
    mux = new Multiplexer(client, { streams: 2 });
    // grpc-js opens each stream as one call on the channel: count them from the client side.
    const calls = (mux as unknown as { client: { calls: () => unknown } }).client;
    const open = calls.calls.bind(calls);
    calls.calls = () => {
      streamsOpened++;
      return open();
    };
  });
  afterAll(() => {
    mux.close();
    client.close();
    g.server.forceShutdown();
  });

  const opts = { timeoutMs: 5_000, requestId: 'req-1', tenantId: 'acme' };

  it('answers many concurrent calls, each with its own response, ids and tenant, on the streams of the pool', async () => {
    const before = streamsOpened;
    const texts = Array.from({ length: 200 }, (_, i) => `m${i}`);
    const res = await Promise.all(texts.map((text, i) => mux.call(EchoService.echo, { text }, { ...opts, requestId: `r-${i}` })));
    expect(res.map((r) => r.text)).toEqual(texts.map((t) => t.toUpperCase()));
    expect(seen.filter((s) => s.requestId.startsWith('r-'))).toHaveLength(200);
    expect(new Set(seen.map((s) => s.tenantId))).toEqual(new Set(['acme']));
    expect(streamsOpened - before).toBeLessThanOrEqual(2);
  });

  it.each(['deny', 'bad', 'trailer'])('fails or answers "%s" exactly as the unary call does: kind, message, retry-after, rate-limit trailers', async (text) => {
    const viaUnary = await callUnary<Msg, Msg>((req, md, o, cb) => client.echo(req, md, o, cb) as never, { text }, opts).then((r) => ({ ok: r }), (e: AppError) => ({ kind: e.kind, message: e.message, opts: { retryAfterMs: e.opts.retryAfterMs, trailers: e.opts.trailers } }));
    const viaMux = await mux.call(EchoService.echo, { text }, opts).then((r) => ({ ok: r }), (e: AppError) => ({ kind: e.kind, message: e.message, opts: { retryAfterMs: e.opts.retryAfterMs, trailers: e.opts.trailers } }));
    expect(viaMux).toEqual(viaUnary);
  });

  it('gives up at the deadline with DEADLINE_EXCEEDED and cancels the call on the server', async () => {
    const started = Date.now();
    const err = await mux.call(EchoService.slow, { text: 'late', ms: 5_000 }, { ...opts, timeoutMs: 100 }).catch((e: AppError) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).kind).toBe('deadline_exceeded');
    expect(Date.now() - started).toBeLessThan(1_000);
    await expect.poll(() => aborted.has('late')).toBe(true);
  });

  it('is cancelled by the caller\'s signal, and the server\'s handler sees it as a cancellation', async () => {
    const controller = new AbortController();
    const call = mux.call(EchoService.slow, { text: 'gone', ms: 5_000 }, { ...opts, signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await expect(call).rejects.toMatchObject({ kind: 'cancelled' });
    await expect.poll(() => aborted.get('gone')).toMatchObject({ kind: 'cancelled' });
  });

  it('answers a method it does not multiplex with UNIMPLEMENTED naming it', async () => {
    const err = await mux.call({ ...EchoService.echo, path: '/test.Echo/Nope' }, { text: 'x' }, opts).catch((e: AppError) => e);
    expect(err).toMatchObject({ kind: fromStatus(status.UNIMPLEMENTED, '', {}).kind });
    expect((err as AppError).message).toContain('/test.Echo/Nope');
  });

  it('opens new streams after recycleMs and lets a retired one finish its calls', async () => {
    const quick = new Multiplexer(client, { streams: 1, recycleMs: 50 });
    const calls = (quick as unknown as { client: { calls: () => unknown } }).client;
    let opened = 0;
    const open = calls.calls.bind(calls);
    calls.calls = () => {
      opened++;
      return open();
    };
    // Under way on the first stream while it is retired: still answered.
    const slow = quick.call(EchoService.slow, { text: 'kept', ms: 200 }, opts);
    await new Promise((r) => setTimeout(r, 80));
    expect((await quick.call(EchoService.echo, { text: 'next' }, opts)).text).toBe('NEXT');
    expect((await slow).text).toBe('kept');
    expect(opened).toBe(2);
    quick.close();
  });

  it('streams a server-streaming call\'s messages in order, then its end', async () => {
    const got: string[] = [];
    for await (const m of mux.stream(EchoService.chunks, { text: 'all', ms: 100 }, opts)) got.push(m.text);
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => `all-${i}`));
    expect(ended.get('all')).toBe('ok');
  });

  it('holds a stream to its window while the reader waits, and goes on as it reads', async () => {
    const it = mux.stream(EchoService.chunks, { text: 'slowreader', ms: 100 }, opts)[Symbol.asyncIterator]();
    expect((await it.next()).value).toEqual({ text: 'slowreader-0' });
    await new Promise((r) => setTimeout(r, 200));
    // 16 sent before any credit; the reader has taken 1 (credit goes in halves of the window).
    expect(sent.get('slowreader')).toBe(16);
    let n = 1;
    while (!(await it.next()).done) n++;
    expect(n).toBe(100);
  });

  it('cancels the call on the server when the reader stops early', async () => {
    for await (const m of mux.stream(EchoService.chunks, { text: 'quit', ms: 1000 }, opts)) {
      if (m.text === 'quit-3') break;
    }
    await expect.poll(() => ended.get('quit')).toMatchObject({ kind: 'cancelled' });
  });

  it('gives the messages sent before a failure, then the failure as the unary path would', async () => {
    const got: string[] = [];
    const err = await (async () => {
      for await (const m of mux.stream(EchoService.chunks, { text: 'failing', ms: 3 }, opts)) got.push(m.text);
    })().catch((e: AppError) => e);
    expect(got).toEqual(['failing-0', 'failing-1', 'failing-2']);
    expect(err).toMatchObject({ kind: 'unavailable', message: 'provider went away' });
  });

  it('refuses a stream that sends bytes which are not a CallsRequest with INVALID_ARGUMENT', async () => {
    const raw = (b: Buffer) => b;
    const s = client.makeBidiStreamRequest('/llmgateway.mux.v1.MultiplexerService/Calls', raw, raw);
    const err = await new Promise<ServiceError>((resolve) => {
      s.on('data', () => undefined);
      s.on('error', resolve);
      s.write(Buffer.from([0xff, 0x00, 0x80]));
    });
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('/llmgateway.mux.v1.MultiplexerService/Calls');
    // The server is unharmed: calls go on.
    expect(await mux.call(EchoService.echo, { text: 'after' }, opts)).toEqual({ text: 'AFTER' });
  });

  describe('in process (monolithic mode: LocalCalls)', () => {
    const local = new LocalCalls();
    const here = () => {
      local.register('in-process:1', g.multiplexed!);
      return local.at('in-process:1')!;
    };

    it('answers, and fails, exactly as the multiplexer does', async () => {
      const calls = here();
      expect(await calls.call(EchoService.echo, { text: 'hi' }, opts)).toEqual({ text: 'HI' });
      const viaMux = await mux.call(EchoService.echo, { text: 'deny' }, opts).catch((e: AppError) => ({ kind: e.kind, message: e.message, retry: e.opts.retryAfterMs, trailers: e.opts.trailers }));
      const inProcess = await calls.call(EchoService.echo, { text: 'deny' }, opts).catch((e: AppError) => ({ kind: e.kind, message: e.message, retry: e.opts.retryAfterMs, trailers: e.opts.trailers }));
      expect(inProcess).toEqual(viaMux);
    });

    it('keeps deadlines and cancellation, and the handler sees both', async () => {
      const calls = here();
      await expect(calls.call(EchoService.slow, { text: 'local-late', ms: 5_000 }, { ...opts, timeoutMs: 80 })).rejects.toMatchObject({ kind: 'deadline_exceeded' });
      await expect.poll(() => aborted.get('local-late')).toMatchObject({ kind: 'deadline_exceeded' });
      const controller = new AbortController();
      const call = calls.call(EchoService.slow, { text: 'local-gone', ms: 5_000 }, { ...opts, signal: controller.signal });
      setTimeout(() => controller.abort(), 30);
      await expect(call).rejects.toMatchObject({ kind: 'cancelled' });
      await expect.poll(() => aborted.get('local-gone')).toMatchObject({ kind: 'cancelled' });
    });

    it('streams with the same window, and a reader that stops cancels the handler', async () => {
      const calls = here();
      const it = calls.stream(EchoService.chunks, { text: 'local-slow', ms: 40 }, opts)[Symbol.asyncIterator]();
      expect((await it.next()).value).toEqual({ text: 'local-slow-0' });
      await new Promise((r) => setTimeout(r, 100));
      expect(sent.get('local-slow')).toBe(17);
      let n = 1;
      while (!(await it.next()).done) n++;
      expect(n).toBe(40);
      for await (const m of calls.stream(EchoService.chunks, { text: 'local-quit', ms: 1000 }, opts)) if (m.text === 'local-quit-2') break;
      await expect.poll(() => ended.get('local-quit')).toMatchObject({ kind: 'cancelled' });
    });

    it('is unavailable once the server has drained', async () => {
      const calls = here();
      local.unregister(g.multiplexed!);
      expect(local.at('in-process:1')).toBeUndefined();
      await expect(calls.call(EchoService.echo, { text: 'x' }, opts)).rejects.toMatchObject({ kind: 'unavailable' });
    });
  });
});
