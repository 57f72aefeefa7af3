import { randomUUID } from 'node:crypto';
import { credentials, Metadata, status, type Client, type ClientDuplexStream, type handleBidiStreamingCall, type ServerDuplexStream } from '@grpc/grpc-js';
import { AppError, quoted } from '@llmgw/errors';
import type { Logger } from '@llmgw/logging';
import { MultiplexerServiceClient, MultiplexerServiceService, type CallsRequest, type CallsResponse } from '@llmgw/proto/mux';
import type { MethodAccess } from './authorize.js';
import type { CallOpts } from './client.js';
import { callContext, REQUEST_ID_HEADER, TENANT_ID_HEADER } from './context.js';
import { UNARY_METHOD, type UnaryHandler, type UnaryMethod } from './handlers.js';
import { peerIdentity } from './mesh-tls.js';
import type { GrpcServer } from './server.js';
import { fromServiceError, fromStatus } from './status-map.js';

/**
 * Unary calls multiplexed over long-lived streams (llmgateway.mux.v1.MultiplexerService): the
 * grpc.io performance guide's advice for high-rate internal flows. A call is one message each
 * way on a stream that is already open, instead of an HTTP/2 stream with its headers, its
 * per-call TLS identity check and grpc-js's per-call machinery on both sides. Each inner call
 * keeps what the unary call has: the server's access policy per method, a deadline, cancellation,
 * its status and trailers, and backpressure (a full stream stops reading or queues writes).
 */
export const MULTIPLEXER_SERVICE_NAME = 'llmgateway.mux.v1.MultiplexerService';

interface Route {
  requestDeserialize(bytes: Buffer): unknown;
  responseSerialize(value: unknown): Buffer;
  method: UnaryMethod<unknown, unknown>;
}

interface UnaryDefinition {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestDeserialize(bytes: Buffer): unknown;
  responseSerialize(value: never): Buffer;
}

/**
 * Serves the multiplexer on `g` for the unary methods of one service, with the handlers
 * registered for it (made by unary()); `definition` should be the tolerantDecoding one.
 */
export function serveMultiplexed(g: GrpcServer, logger: Logger, definition: Record<string, UnaryDefinition>, handlers: Record<string, unknown>): void {
  const routes = new Map<string, Route>();
  for (const [name, m] of Object.entries(definition)) {
    const method = (handlers[name] as Partial<UnaryHandler<unknown, unknown>> | undefined)?.[UNARY_METHOD];
    if (m.requestStream || m.responseStream || !method) continue;
    routes.set(m.path, { requestDeserialize: m.requestDeserialize, responseSerialize: m.responseSerialize as (v: unknown) => Buffer, method });
  }
  g.server.addService(MultiplexerServiceService, { calls: multiplexerHandler(routes, logger, g.access) });
}

const EMPTY = Buffer.alloc(0);

function multiplexerHandler(routes: Map<string, Route>, logger: Logger, access: MethodAccess | undefined): handleBidiStreamingCall<CallsRequest, CallsResponse> {
  return (stream: ServerDuplexStream<CallsRequest, CallsResponse>) => {
    // The stream's caller was authorized for the stream itself; each inner call is checked too.
    const caller = access ? peerIdentity(stream.getAuthContext().sslPeerCertificate) : undefined;
    const inFlight = new Map<number, AbortController>();
    let gone = false;
    let callerDone = false;
    const answer = (r: CallsResponse) => {
      if (gone) return;
      // A caller that reads slowly: stop taking calls until it has caught up.
      if (!stream.write(r)) {
        stream.pause();
        stream.once('drain', () => stream.resume());
      }
      if (callerDone && inFlight.size === 0) stream.end();
    };
    const fail = (id: number, code: status, message: string) => answer({ id, payload: EMPTY, code, message, trailers: {} });

    stream.on('data', (c: CallsRequest) => {
      if (c.cancel) {
        inFlight.get(c.id)?.abort(new AppError('cancelled', 'call cancelled by the caller'));
        return;
      }
      if (inFlight.has(c.id)) return fail(c.id, status.INVALID_ARGUMENT, `call id ${c.id} is already under way on this stream`);
      const route = routes.get(c.method);
      if (!route) return fail(c.id, status.UNIMPLEMENTED, `${quoted(c.method)} is not a multiplexed method of this server`);
      if (access) {
        const allowed = access(c.method);
        if (allowed !== 'public' && !(caller !== undefined && allowed?.includes(caller))) {
          return fail(c.id, status.PERMISSION_DENIED, `${caller ?? 'a caller without a mesh identity'} may not call ${quoted(c.method)}`);
        }
      }
      const metadata = new Metadata();
      try {
        for (const [k, v] of Object.entries(c.metadata)) metadata.set(k, v);
      } catch {
        return fail(c.id, status.INVALID_ARGUMENT, 'call metadata has an invalid key or value');
      }
      const controller = new AbortController();
      inFlight.set(c.id, controller);
      const ctx = callContext({
        method: route.method.name,
        logger,
        metadata,
        signal: controller.signal,
        deadlineMs: c.timeoutMs > 0 ? Date.now() + c.timeoutMs : Infinity,
        requestId: c.metadata[REQUEST_ID_HEADER] || randomUUID(),
        tenantId: c.metadata[TENANT_ID_HEADER] ?? '',
        clientRequestId: '',
      });
      void route.method.settle(route.requestDeserialize(c.payload), ctx).then((o) => {
        inFlight.delete(c.id);
        if (o.ok) answer({ id: c.id, payload: route.responseSerialize(o.res), code: status.OK, message: '', trailers: stringTrailers(ctx.trailers) });
        else answer({ id: c.id, payload: EMPTY, code: o.status.code ?? status.UNKNOWN, message: o.status.details ?? '', trailers: stringTrailers(o.status.metadata) });
      });
    });
    // The caller has sent its last call (it is recycling the stream): end once all are answered.
    stream.on('end', () => {
      callerDone = true;
      if (inFlight.size === 0 && !gone) stream.end();
    });
    const abandon = () => {
      gone = true;
      for (const c of inFlight.values()) c.abort(new AppError('cancelled', 'the caller closed the stream'));
      inFlight.clear();
    };
    stream.on('cancelled', abandon);
    stream.on('error', abandon);
  };
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
export class Multiplexer {
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
    const i = this.turn++ % this.pool.length;
    let s = this.pool[i];
    if (!s || s.broken || Date.now() - s.openedAt > this.recycleMs) {
      s?.retire();
      s = this.pool[i] = new MuxStream(this.client.calls());
    }
    return s.call(method, request, opts);
  }

  close(): void {
    for (const s of this.pool) s?.retire();
    this.client.close();
  }
}

interface Pending {
  resolve(res: CallsResponse): void;
  reject(err: AppError): void;
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

  constructor(private readonly stream: ClientDuplexStream<CallsRequest, CallsResponse>) {
    stream.on('data', (r: CallsResponse) => {
      const p = this.settle(r.id);
      p?.resolve(r);
    });
    stream.on('error', (err) => this.failAll(fromServiceError(err)));
    stream.on('end', () => this.failAll(new AppError('unavailable', 'the multiplexed stream ended with calls under way')));
    stream.on('drain', () => this.flush());
  }

  call<Req, Res>(method: MultiplexedMethod<Req, Res>, request: Req, opts: CallOpts): Promise<Res> {
    const id = this.nextId++;
    const timeoutMs = Math.max(1, Math.ceil(opts.timeoutMs));
    return new Promise<CallsResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.settle(id);
        this.send({ id, method: '', payload: EMPTY, metadata: {}, timeoutMs: 0, cancel: true });
        reject(new AppError('deadline_exceeded', `${method.path}: deadline of ${timeoutMs} ms exceeded`));
      }, timeoutMs);
      const p: Pending = { resolve, reject, timer };
      if (opts.signal) {
        p.signal = opts.signal;
        p.onAbort = () => {
          this.settle(id);
          this.send({ id, method: '', payload: EMPTY, metadata: {}, timeoutMs: 0, cancel: true });
          reject(new AppError('cancelled', 'call cancelled'));
        };
        opts.signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.pending.set(id, p);
      this.send({ id, method: method.path, payload: method.requestSerialize(request), metadata: metadataOf(opts), timeoutMs, cancel: false });
    }).then((r) => {
      if (r.code !== status.OK) throw fromStatus(r.code, r.message, r.trailers);
      return method.responseDeserialize(r.payload);
    });
  }

  /** Takes no new calls; ends (half-closes) once the calls under way are answered. */
  retire(): void {
    this.retired = true;
    if (this.pending.size === 0 && !this.broken) this.stream.end();
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    if (this.retired && this.pending.size === 0 && !this.broken) this.stream.end();
    return p;
  }

  private failAll(err: AppError): void {
    this.broken = true;
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(err);
  }

  private send(msg: CallsRequest): void {
    if (this.broken) return;
    if (this.blocked) this.queue.push(msg);
    else if (!this.stream.write(msg)) this.blocked = true;
  }

  private flush(): void {
    this.blocked = false;
    while (this.queue.length > 0 && !this.blocked) {
      if (!this.stream.write(this.queue.shift()!)) this.blocked = true;
    }
  }
}

function metadataOf(opts: CallOpts): Record<string, string> {
  const md: Record<string, string> = { ...opts.metadata };
  if (opts.requestId) md[REQUEST_ID_HEADER] = opts.requestId;
  if (opts.tenantId) md[TENANT_ID_HEADER] = opts.tenantId;
  return md;
}
