import { randomUUID } from 'node:crypto';
import { credentials, Metadata, status, type Client, type ClientDuplexStream, type handleBidiStreamingCall, type ServerDuplexStream, type StatusObject } from '@grpc/grpc-js';
import { AppError, quoted } from '@llmgw/errors';
import type { Logger } from '@llmgw/logging';
import { MultiplexerServiceClient, MultiplexerServiceService, type CallsRequest, type CallsResponse } from '@llmgw/proto/mux';
import type { MethodAccess } from './authorize.js';
import type { CallOpts } from './client.js';
import { callContext, REQUEST_ID_HEADER, TENANT_ID_HEADER, type CallContext } from './context.js';
import { MalformedRequest, STREAM_METHOD, tolerantDecoding, UNARY_METHOD, type StreamHandler, type StreamMethod, type UnaryHandler, type UnaryMethod } from './handlers.js';
import { peerIdentity } from './mesh-tls.js';
import type { GrpcServer } from './server.js';
import { fromServiceError, fromStatus } from './status-map.js';
import { tracedCall, tracedStream } from './tracing.js';

/**
 * Unary and server-streaming calls multiplexed over long-lived streams (llmgateway.mux.v1.MultiplexerService): the
 * grpc.io performance guide's advice for high-rate internal flows. A call is one message each
 * way on a stream that is already open, instead of an HTTP/2 stream with its headers, its
 * per-call TLS identity check and grpc-js's per-call machinery on both sides. Each inner call
 * keeps what the unary call has: the server's access policy per method, a deadline, cancellation,
 * its status and trailers, and backpressure: a streaming call sends at most 16 messages ahead of
 * what its reader has taken (credit), and a client whose stream is full queues its writes.
 */
export const MULTIPLEXER_SERVICE_NAME = 'llmgateway.mux.v1.MultiplexerService';

interface Route {
  requestDeserialize(bytes: Buffer): unknown;
  responseSerialize(value: unknown): Buffer;
  unary?: UnaryMethod<unknown, unknown>;
  stream?: StreamMethod<unknown, unknown>;
  logger: Logger;
}

/** A server's multiplexed methods by full path. */
export type MultiplexedRoutes = ReadonlyMap<string, Route>;

interface MethodDefinition {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestDeserialize(bytes: Buffer): unknown;
  responseSerialize(value: never): Buffer;
}

/** Messages of a server-streaming call the server may send before the client grants more. */
const STREAM_WINDOW = 16;

/**
 * Serves the multiplexer on `g` for the unary and server-streaming methods of one service, with
 * the handlers registered for it (made by unary() and serverStream()); `definition` should be
 * the tolerantDecoding one.
 */
export function serveMultiplexed(g: GrpcServer, logger: Logger, definition: Record<string, MethodDefinition>, handlers: Record<string, unknown>): void {
  const routes = new Map<string, Route>();
  for (const [name, m] of Object.entries(definition)) {
    const h = handlers[name] as Partial<UnaryHandler<unknown, unknown> & StreamHandler<unknown, unknown>> | undefined;
    const unaryMethod = !m.requestStream && !m.responseStream ? h?.[UNARY_METHOD] : undefined;
    const streamMethod = !m.requestStream && m.responseStream ? h?.[STREAM_METHOD] : undefined;
    if (!unaryMethod && !streamMethod) continue;
    routes.set(m.path, { requestDeserialize: m.requestDeserialize, responseSerialize: m.responseSerialize as (v: unknown) => Buffer, unary: unaryMethod, stream: streamMethod, logger });
  }
  g.multiplexed = routes;
  g.server.addService(tolerantDecoding(MultiplexerServiceService), { calls: multiplexerHandler(routes, g.access) });
}

const EMPTY = Buffer.alloc(0);

/** One call under way on a server's stream. */
interface ServedCall {
  controller: AbortController;
  /** Messages it may still send (server-streaming calls). */
  window: number;
  granted?: () => void;
}

function multiplexerHandler(routes: MultiplexedRoutes, access: MethodAccess | undefined): handleBidiStreamingCall<CallsRequest, CallsResponse> {
  return (stream: ServerDuplexStream<CallsRequest, CallsResponse>) => {
    // The stream's caller was authorized for the stream itself; each inner call is checked too.
    const caller = access ? peerIdentity(stream.getAuthContext().sslPeerCertificate) : undefined;
    const inFlight = new Map<number, ServedCall>();
    let gone = false;
    let callerDone = false;
    // Unbounded buffering is not possible: a unary call answers once, a streaming one at most its window ahead.
    const answer = (r: CallsResponse) => {
      if (gone) return;
      stream.write(r);
      if (callerDone && inFlight.size === 0) stream.end();
    };
    const fail = (id: number, code: status, message: string) => answer({ id, payload: EMPTY, code, message, trailers: {}, more: false });

    stream.on('data', (c: CallsRequest | MalformedRequest) => {
      // Bytes that are not a CallsRequest carry no call id to answer: the stream itself is refused.
      if (c instanceof MalformedRequest) {
        abandon();
        stream.emit('error', { code: status.INVALID_ARGUMENT, details: c.toAppError().message });
        return;
      }
      const underWay = inFlight.get(c.id);
      if (c.credit > 0) {
        if (underWay) {
          underWay.window += c.credit;
          underWay.granted?.();
        }
        return;
      }
      if (c.cancel) {
        underWay?.controller.abort(new AppError('cancelled', 'call cancelled by the caller'));
        return;
      }
      if (underWay) return fail(c.id, status.INVALID_ARGUMENT, `call id ${c.id} is already under way on this stream`);
      const route = routes.get(c.method);
      if (!route) return fail(c.id, status.UNIMPLEMENTED, `${quoted(c.method)} is not a multiplexed method of this server`);
      if (access) {
        const allowed = access(c.method);
        if (allowed !== 'public' && !(caller !== undefined && allowed?.includes(caller))) {
          return fail(c.id, status.PERMISSION_DENIED, `${caller ?? 'a caller without a mesh identity'} may not call ${quoted(c.method)}`);
        }
      }
      const call: ServedCall = { controller: new AbortController(), window: STREAM_WINDOW };
      let ctx: CallContext;
      try {
        ctx = innerContext(route, c.method, c.metadata, call.controller.signal, c.timeoutMs);
      } catch {
        return fail(c.id, status.INVALID_ARGUMENT, 'call metadata has an invalid key or value');
      }
      inFlight.set(c.id, call);
      const request = route.requestDeserialize(c.payload);
      const outcome = route.unary
        ? route.unary.settle(request, ctx)
        : route.stream!.settle(request, ctx, async (msg) => {
            while (call.window <= 0) await credit(call);
            if (ctx.signal.aborted) throw ctx.signal.reason;
            call.window--;
            answer({ id: c.id, payload: route.responseSerialize(msg), code: status.OK, message: '', trailers: {}, more: true });
          });
      void outcome.then((o) => {
        inFlight.delete(c.id);
        if (o.ok) answer({ id: c.id, payload: o.res === undefined ? EMPTY : route.responseSerialize(o.res), code: status.OK, message: '', trailers: stringTrailers(ctx.trailers), more: false });
        else answer({ id: c.id, payload: EMPTY, code: o.status.code ?? status.UNKNOWN, message: o.status.details ?? '', trailers: stringTrailers(o.status.metadata), more: false });
      });
    });
    // The caller has sent its last call (it is recycling the stream): end once all are answered.
    stream.on('end', () => {
      callerDone = true;
      if (inFlight.size === 0 && !gone) stream.end();
    });
    const abandon = () => {
      gone = true;
      for (const c of inFlight.values()) c.controller.abort(new AppError('cancelled', 'the caller closed the stream'));
      inFlight.clear();
    };
    stream.on('cancelled', abandon);
    stream.on('error', abandon);
  };
}

/**
 * An inner call's context on the serving side: its metadata (request and tenant ids) and its
 * deadline, counted from now (0: none). Throws on metadata grpc-js would not accept.
 */
function innerContext(route: Route, path: string, md: Record<string, string>, signal: AbortSignal, timeoutMs: number): CallContext {
  const metadata = new Metadata();
  for (const [k, v] of Object.entries(md)) metadata.set(k, v);
  return callContext({
    method: (route.unary ?? route.stream)!.name,
    path,
    logger: route.logger,
    metadata,
    signal,
    deadlineMs: timeoutMs > 0 ? Date.now() + timeoutMs : Infinity,
    requestId: md[REQUEST_ID_HEADER] || randomUUID(),
    tenantId: md[TENANT_ID_HEADER] ?? '',
    clientRequestId: '',
  });
}

/** Waits until the client grants a streaming call more messages, or the call is cancelled. */
function credit(call: ServedCall): Promise<void> {
  const signal = call.controller.signal;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    call.granted = () => {
      call.granted = undefined;
      signal.removeEventListener('abort', onAbort);
      resolve();
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function stringTrailers(md: Metadata | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(md?.getMap() ?? {})) if (typeof v === 'string') out[k] = v;
  return out;
}

/** A unary method as the client side needs it: ts-proto's `XxxServiceService.method`. */
export interface MultiplexedMethod<Req, Res> {
  path: string;
  requestSerialize(value: Req): Buffer;
  responseDeserialize(bytes: Buffer): Res;
}

/** What the edge calls its upstreams through: a Multiplexer, or in monolithic mode InProcessCalls. */
export interface MultiplexedCalls {
  call<Req, Res>(method: MultiplexedMethod<Req, Res>, request: Req, opts: CallOpts): Promise<Res>;
  stream<Req, Res>(method: MultiplexedMethod<Req, Res>, request: Req, opts: CallOpts): AsyncGenerator<Res>;
  close(): void;
}

export interface MultiplexerOptions {
  /** Streams kept open (calls go round them), default 2: each is balanced onto a replica when it opens. */
  streams?: number;
  /** A stream takes no new calls after this (default 30 s), so that calls follow replicas as they scale. */
  recycleMs?: number;
}

/**
 * The client side: calls the unary methods of the server behind `client`'s channel (the same
 * HTTP/2 connection as its unary calls) over a few long-lived streams. Failures are the
 * AppErrors callUnary gives: the remote status, DEADLINE_EXCEEDED, CANCELLED, or UNAVAILABLE when
 * the stream itself breaks (every call then under way on it fails, as on a broken connection).
 */
export class Multiplexer implements MultiplexedCalls {
  private readonly client: MultiplexerServiceClient;
  private readonly pool: (MuxStream | undefined)[];
  private readonly recycleMs: number;
  private turn = 0;

  constructor(channelOf: Client, opts: MultiplexerOptions = {}) {
    this.client = new MultiplexerServiceClient('', credentials.createInsecure(), { channelOverride: channelOf.getChannel() });
    this.pool = new Array<MuxStream | undefined>(Math.max(1, opts.streams ?? 2));
    this.recycleMs = opts.recycleMs ?? 30_000;
  }

  call<Req, Res>(method: MultiplexedMethod<Req, Res>, request: Req, opts: CallOpts): Promise<Res> {
    if (opts.signal?.aborted) return Promise.reject(new AppError('cancelled', 'call cancelled'));
    return tracedCall(method.path, opts, (o) => this.next().call(method, request, o));
  }

  /** A server-streaming call over the pool's streams, as callStream() gives it. */
  stream<Req, Res>(method: MultiplexedMethod<Req, Res>, request: Req, opts: CallOpts): AsyncGenerator<Res> {
    if (opts.signal?.aborted) return rejected(new AppError('cancelled', 'call cancelled'));
    return tracedStream(method.path, opts, (o) => this.next().stream(method, request, o));
  }

  /** The pool's streams in turn, each replaced when it broke or grew old. */
  private next(): MuxStream {
    const i = this.turn++ % this.pool.length;
    let s = this.pool[i];
    if (!s || s.broken || Date.now() - s.openedAt > this.recycleMs) {
      s?.retire();
      s = this.pool[i] = new MuxStream(this.client.calls());
    }
    return s;
  }

  /** Retires the streams; the channel is its owner's (the client it was made from) to close. */
  close(): void {
    for (const s of this.pool) s?.retire();
  }
}

/** A call under way on a client's stream: a unary one settles once, a streaming one takes messages first. */
interface Pending {
  message?(payload: Buffer): void;
  finish(result: CallsResponse | AppError): void;
  timer: NodeJS.Timeout;
  onAbort?: () => void;
  signal?: AbortSignal;
}

class MuxStream {
  readonly openedAt = Date.now();
  broken = false;
  private retired = false;
  private nextId = 1;
  private blocked = false;
  private readonly queue: CallsRequest[] = [];
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly duplex: ClientDuplexStream<CallsRequest, CallsResponse>) {
    duplex.on('data', (r: CallsResponse) => {
      if (r.more) this.pending.get(r.id)?.message?.(r.payload);
      else this.settle(r.id)?.finish(r);
    });
    duplex.on('error', (err) => this.failAll(fromServiceError(err)));
    duplex.on('end', () => this.failAll(new AppError('unavailable', 'the multiplexed stream ended with calls under way')));
    duplex.on('drain', () => this.flush());
  }

  call<Req, Res>(method: MultiplexedMethod<Req, Res>, request: Req, opts: CallOpts): Promise<Res> {
    return new Promise<CallsResponse>((resolve, reject) => {
      this.start(method.path, method.requestSerialize(request), opts, { finish: (r) => (r instanceof AppError ? reject(r) : resolve(r)) });
    }).then((r) => {
      if (r.code !== status.OK) throw fromStatus(r.code, r.message, r.trailers);
      return method.responseDeserialize(r.payload);
    });
  }

  /** A server-streaming call: messages as they come; breaking out of the loop cancels it. */
  async *stream<Req, Res>(method: MultiplexedMethod<Req, Res>, request: Req, opts: CallOpts): AsyncGenerator<Res> {
    const arrived: Buffer[] = [];
    let end: CallsResponse | AppError | undefined;
    let wake: (() => void) | undefined;
    const id = this.start(method.path, method.requestSerialize(request), opts, {
      message: (payload) => {
        arrived.push(payload);
        wake?.();
      },
      finish: (r) => {
        end = r;
        wake?.();
      },
    });
    let taken = 0;
    try {
      for (;;) {
        const payload = arrived.shift();
        if (payload) {
          // Credit in halves of the window: the server never waits on a reader that keeps up.
          if (++taken >= STREAM_WINDOW / 2) {
            this.send(frame(id, { credit: taken }));
            taken = 0;
          }
          yield method.responseDeserialize(payload);
          continue;
        }
        if (end instanceof AppError) throw end;
        if (end) {
          if (end.code !== status.OK) throw fromStatus(end.code, end.message, end.trailers);
          return;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      if (!end && this.settle(id)) this.send(frame(id, { cancel: true }));
    }
  }

  /** Takes no new calls; ends (half-closes) once the calls under way are answered. */
  retire(): void {
    this.retired = true;
    if (this.pending.size === 0 && !this.broken) this.duplex.end();
  }

  private start(path: string, payload: Buffer, opts: CallOpts, handlers: Pick<Pending, 'message' | 'finish'>): number {
    const id = this.nextId++;
    const timeoutMs = Math.max(1, Math.ceil(opts.timeoutMs));
    const timer = setTimeout(() => {
      this.settle(id)?.finish(new AppError('deadline_exceeded', `${path}: deadline of ${timeoutMs} ms exceeded`));
      this.send(frame(id, { cancel: true }));
    }, timeoutMs);
    const p: Pending = { ...handlers, timer };
    if (opts.signal) {
      p.signal = opts.signal;
      p.onAbort = () => {
        this.settle(id)?.finish(new AppError('cancelled', 'call cancelled'));
        this.send(frame(id, { cancel: true }));
      };
      opts.signal.addEventListener('abort', p.onAbort, { once: true });
    }
    this.pending.set(id, p);
    this.send({ ...frame(id, {}), method: path, payload, metadata: metadataOf(opts), timeoutMs });
    return id;
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    if (this.retired && this.pending.size === 0 && !this.broken) this.duplex.end();
    return p;
  }

  private failAll(err: AppError): void {
    this.broken = true;
    for (const id of [...this.pending.keys()]) this.settle(id)?.finish(err);
  }

  private send(msg: CallsRequest): void {
    if (this.broken) return;
    if (this.blocked) this.queue.push(msg);
    else if (!this.duplex.write(msg)) this.blocked = true;
  }

  private flush(): void {
    this.blocked = false;
    while (this.queue.length > 0 && !this.blocked) {
      if (!this.duplex.write(this.queue.shift()!)) this.blocked = true;
    }
  }
}

function frame(id: number, fields: Partial<CallsRequest>): CallsRequest {
  return { id, method: '', payload: EMPTY, metadata: {}, timeoutMs: 0, cancel: false, credit: 0, ...fields };
}

function metadataOf(opts: CallOpts): Record<string, string> {
  const md: Record<string, string> = { ...opts.metadata };
  if (opts.requestId) md[REQUEST_ID_HEADER] = opts.requestId;
  if (opts.tenantId) md[TENANT_ID_HEADER] = opts.tenantId;
  return md;
}

async function* rejected<T>(err: AppError): AsyncGenerator<T> {
  throw err;
}

/**
 * Monolithic mode: the multiplexed methods of the servers this process runs, by the address each
 * listens on, so that a caller in the same process calls them directly (listen() registers them).
 */
export class LocalCalls {
  private readonly byAddr = new Map<string, MultiplexedRoutes>();

  register(addr: string, routes: MultiplexedRoutes): void {
    this.byAddr.set(addr, routes);
  }

  unregister(routes: MultiplexedRoutes): void {
    for (const [addr, r] of this.byAddr) if (r === routes) this.byAddr.delete(addr);
  }

  /** Calls to the server at `addr`, or undefined when it is not in this process. */
  at(addr: string): MultiplexedCalls | undefined {
    return this.byAddr.has(addr) ? new InProcessCalls(() => this.byAddr.get(addr)) : undefined;
  }
}

/**
 * Calls run by the serving method's own handler in this process: the same authorization-free
 * path a plaintext mesh has, the same deadline, cancellation, status and stream credit as the
 * multiplexer, with no HTTP/2 or TLS in between. Messages are still encoded and decoded each way,
 * so neither side can change the other's objects.
 */
class InProcessCalls implements MultiplexedCalls {
  constructor(private readonly routes: () => MultiplexedRoutes | undefined) {}

  call<Req, Res>(method: MultiplexedMethod<Req, Res>, request: Req, opts: CallOpts): Promise<Res> {
    return tracedCall(method.path, opts, (o) => this.callTraced(method, request, o));
  }

  stream<Req, Res>(method: MultiplexedMethod<Req, Res>, request: Req, opts: CallOpts): AsyncGenerator<Res> {
    return tracedStream(method.path, opts, (o) => this.streamTraced(method, request, o));
  }

  private async callTraced<Req, Res>(method: MultiplexedMethod<Req, Res>, request: Req, opts: CallOpts): Promise<Res> {
    const route = this.route(method.path, 'unary');
    const req = route.requestDeserialize(method.requestSerialize(request));
    const served = await this.run(route, method.path, opts, new AbortController(), (ctx) => route.unary!.settle(req, ctx));
    if (!served.outcome.ok) throw outcomeError(served.outcome.status);
    return method.responseDeserialize(route.responseSerialize(served.outcome.res));
  }

  private async *streamTraced<Req, Res>(method: MultiplexedMethod<Req, Res>, request: Req, opts: CallOpts): AsyncGenerator<Res> {
    const route = this.route(method.path, 'stream');
    const req = route.requestDeserialize(method.requestSerialize(request));
    const call: ServedCall = { controller: new AbortController(), window: STREAM_WINDOW };
    const arrived: Res[] = [];
    let end: { err?: unknown } | undefined;
    let wake: (() => void) | undefined;
    const sink = async (msg: unknown) => {
      while (call.window <= 0) await credit(call);
      if (call.controller.signal.aborted) throw call.controller.signal.reason;
      call.window--;
      arrived.push(method.responseDeserialize(route.responseSerialize(msg)));
      wake?.();
    };
    this.run(route, method.path, opts, call.controller, (ctx) => route.stream!.settle(req, ctx, sink)).then(
      ({ outcome }) => {
        end = outcome.ok ? {} : { err: outcomeError(outcome.status) };
        wake?.();
      },
      (err: unknown) => {
        end = { err };
        wake?.();
      },
    );
    try {
      for (;;) {
        const next = arrived.shift();
        if (next !== undefined) {
          call.window++;
          call.granted?.();
          yield next;
          continue;
        }
        if (end) {
          if (end.err) throw end.err;
          return;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      if (!end) call.controller.abort(new AppError('cancelled', 'call cancelled'));
    }
  }

  close(): void {}

  private route(path: string, kind: 'unary' | 'stream'): Route {
    const route = this.routes()?.get(path);
    if (!route?.[kind]) throw fromStatus(status.UNAVAILABLE, `${quoted(path)} is not served in this process`, {});
    return route;
  }

  /** Runs one call with its context; rejects at the deadline or when the caller cancels. */
  private run<T>(route: Route, path: string, opts: CallOpts, controller: AbortController, go: (ctx: CallContext) => Promise<T>): Promise<{ outcome: T }> {
    if (opts.signal?.aborted) return Promise.reject(new AppError('cancelled', 'call cancelled'));
    const timeoutMs = Math.max(1, Math.ceil(opts.timeoutMs));
    return new Promise((resolve, reject) => {
      const stop = (err: AppError) => {
        cleanup();
        controller.abort(err);
        reject(err);
      };
      const timer = setTimeout(() => stop(new AppError('deadline_exceeded', `${path}: deadline of ${timeoutMs} ms exceeded`)), timeoutMs);
      const onAbort = () => stop(new AppError('cancelled', 'call cancelled'));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const cleanup = () => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      go(innerContext(route, path, metadataOf(opts), controller.signal, timeoutMs)).then(
        (outcome) => {
          cleanup();
          resolve({ outcome });
        },
        (err: unknown) => {
          cleanup();
          reject(err);
        },
      );
    });
  }
}

function outcomeError(st: Partial<StatusObject>): AppError {
  return fromStatus(st.code ?? status.UNKNOWN, st.details ?? '', stringTrailers(st.metadata));
}
