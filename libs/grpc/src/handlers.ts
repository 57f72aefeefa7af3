import { Metadata, status, type handleServerStreamingCall, type handleUnaryCall, type ServerWritableStream, type StatusObject } from '@grpc/grpc-js';
import { AppError, errorMessage } from '@llmgw/errors';
import type { Logger } from '@llmgw/logging';
import { TRACE_ID_HEADER, within } from '@llmgw/tracing';
import { createCallContext, type CallContext, type HandlerOptions } from './context.js';
import { toStatusObject } from './status-map.js';
import { endRpcSpan, serverSpan } from './tracing.js';

/** Records one finished call of one method (bound once per method, so a call does no label work). */
export interface RpcMethodRecorder {
  handled(code: number, seconds: number): void;
}

/** Where the adapters report each call; `Metrics.rpc` of @llmgw/metrics is one. */
export interface RpcMetricsHook {
  forMethod(method: string): RpcMethodRecorder;
}

export interface AdapterOptions extends HandlerOptions {
  /** Records grpc_server_handled_total / grpc_server_handling_seconds; none records nothing. */
  metrics?: RpcMetricsHook;
}

/**
 * What a request message that did not decode becomes (see tolerantDecoding): the adapters below
 * answer it with INVALID_ARGUMENT without calling the handler.
 */
export class MalformedRequest {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {}

  toAppError(): AppError {
    return new AppError('invalid_argument', `the request is not a valid message for ${this.path}: ${this.reason}`);
  }
}

interface DecodableMethod {
  path: string;
  requestDeserialize(bytes: Buffer): unknown;
}

/**
 * The same service definition with total request decoders. grpc-js answers a request decoder that
 * throws (truncated or corrupt protobuf, a wrong wire type, an int64 beyond 2^53) with INTERNAL
 * "Error deserializing request", which says the server failed; it is the caller's bytes that are
 * wrong. Here the decoder returns a MalformedRequest instead, and unary() and serverStream()
 * answer INVALID_ARGUMENT. Register every service through it:
 * `server.addService(tolerantDecoding(QuotaServiceService), impl)`.
 */
export function tolerantDecoding<D extends { [method: string]: DecodableMethod }>(def: D): D {
  const out: { [method: string]: DecodableMethod } = {};
  for (const [name, m] of Object.entries(def)) {
    out[name] = {
      ...m,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return m.requestDeserialize(bytes);
        } catch (err) {
          return new MalformedRequest(m.path, errorMessage(err));
        }
      },
    };
  }
  // Same keys and method shapes; only the decoders' failure mode differs.
  return out as D;
}

/** The handler's promise; a malformed request or a handler that throws synchronously become a rejection. */
function invoke<Req, Res>(req: Req, run: (req: Req) => Promise<Res>): Promise<Res> {
  if (req instanceof MalformedRequest) return Promise.reject(req.toAppError());
  try {
    return run(req);
  } catch (err) {
    return Promise.reject(err);
  }
}

/** A unary call's outcome: its response, or the status it failed with (already logged and counted). */
export type UnaryOutcome<Res> = { ok: true; res: Res } | { ok: false; status: Partial<StatusObject> };

/** What unary() keeps beside the grpc-js handler, so the multiplexer runs the very same method. */
export const UNARY_METHOD = Symbol('llmgw.unary');

export interface UnaryMethod<Req, Res> {
  /** The method's name as the adapters log and count it. */
  name: string;
  opts: AdapterOptions;
  settle(req: Req, ctx: CallContext): Promise<UnaryOutcome<Res>>;
}

export type UnaryHandler<Req, Res> = handleUnaryCall<Req, Res> & { [UNARY_METHOD]: UnaryMethod<Req, Res> };

/** Adapts an async function to a grpc-js unary handler; errors are mapped in exactly one place. */
export function unary<Req, Res>(
  method: string,
  logger: Logger,
  fn: (req: Req, ctx: CallContext) => Promise<Res>,
  opts: AdapterOptions = {},
): UnaryHandler<Req, Res> {
  const recorder = opts.metrics?.forMethod(method);
  const settle = (request: Req, ctx: CallContext): Promise<UnaryOutcome<Res>> => {
    const started = performance.now();
    const span = serverSpan(ctx, opts.publicEntry ?? false);
    return within(span, () =>
      invoke(request, (req) => fn(req, ctx)).then(
        (res) => {
          const durationMs = performance.now() - started;
          recorder?.handled(status.OK, durationMs / 1000);
          endRpcSpan(span, status.OK);
          if (ctx.logger.isLevelEnabled('debug')) ctx.logger.debug({ durationMs }, 'rpc ok');
          return { ok: true, res };
        },
        (err: unknown) => {
          const st = failedStatus(err, ctx);
          const durationMs = performance.now() - started;
          recorder?.handled(st.code ?? status.UNKNOWN, durationMs / 1000);
          ctx.logger.info({ durationMs, grpcCode: st.code, reason: st.details }, 'rpc failed');
          endRpcSpan(span, st.code ?? status.UNKNOWN);
          return { ok: false, status: st };
        },
      ),
    );
  };
  const handler: handleUnaryCall<Req, Res> = (call, callback) => {
    const { ctx, finished } = createCallContext(call, method, logger, opts);
    void settle(call.request, ctx).then((outcome) => {
      finished();
      if (outcome.ok) callback(null, outcome.res, ctx.trailers);
      else callback(outcome.status, null);
    });
  };
  return Object.assign(handler, { [UNARY_METHOD]: { name: method, opts, settle } });
}

/** The status a failed call answers; a public entry's keeps the trace id trailer its successes carry. */
function failedStatus(err: unknown, ctx: CallContext): Partial<StatusObject> {
  const st = toStatusObject(err, ctx.logger);
  const traceId = ctx.trailers?.get(TRACE_ID_HEADER)[0];
  if (traceId !== undefined) (st.metadata ??= new Metadata()).set(TRACE_ID_HEADER, traceId);
  return st;
}

/** Sends one message, waiting when the caller reads slowly, so nothing buffers without bound. */
export type StreamSink<Res> = (msg: Res) => Promise<void>;

/** What serverStream() keeps beside the grpc-js handler, so the multiplexer runs the very same method. */
export const STREAM_METHOD = Symbol('llmgw.serverStream');

export interface StreamMethod<Req, Res> {
  name: string;
  opts: AdapterOptions;
  /** Runs the method, sending through `send`; resolves with the outcome (ok: the stream ended well). */
  settle(req: Req, ctx: CallContext, send: StreamSink<Res>): Promise<UnaryOutcome<void>>;
}

export type StreamHandler<Req, Res> = handleServerStreamingCall<Req, Res> & { [STREAM_METHOD]: StreamMethod<Req, Res> };

export function serverStream<Req, Res>(
  method: string,
  logger: Logger,
  fn: (req: Req, ctx: CallContext, send: StreamSink<Res>) => Promise<void>,
  opts: AdapterOptions = {},
): StreamHandler<Req, Res> {
  const recorder = opts.metrics?.forMethod(method);
  const settle = (request: Req, ctx: CallContext, send: StreamSink<Res>): Promise<UnaryOutcome<void>> => {
    const started = recorder ? performance.now() : 0;
    const span = serverSpan(ctx, opts.publicEntry ?? false);
    return within(span, () =>
      invoke(request, (req) => fn(req, ctx, send)).then(
        () => {
          recorder?.handled(status.OK, (performance.now() - started) / 1000);
          endRpcSpan(span, status.OK);
          return { ok: true, res: undefined };
        },
        (err: unknown) => {
          const st = failedStatus(err, ctx);
          recorder?.handled(st.code ?? status.UNKNOWN, (performance.now() - started) / 1000);
          ctx.logger.info({ grpcCode: st.code, reason: st.details }, 'stream failed');
          endRpcSpan(span, st.code ?? status.UNKNOWN);
          return { ok: false, status: st };
        },
      ),
    );
  };
  const handler: handleServerStreamingCall<Req, Res> = (call) => {
    const { ctx, finished } = createCallContext(call, method, logger, opts);
    void settle(call.request, ctx, sinkFor(call, ctx)).then((outcome) => {
      finished();
      if (outcome.ok) call.end(ctx.trailers);
      else call.emit('error', outcome.status);
    });
  };
  return Object.assign(handler, { [STREAM_METHOD]: { name: method, opts, settle } });
}

function sinkFor<Req, Res>(call: ServerWritableStream<Req, Res>, ctx: CallContext): StreamSink<Res> {
  return async (msg) => {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (call.write(msg)) return;
    await new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        ctx.signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        call.off('drain', onDrain);
        reject(ctx.signal.reason);
      };
      call.once('drain', onDrain);
      ctx.signal.addEventListener('abort', onAbort, { once: true });
    });
  };
}
