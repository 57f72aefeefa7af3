import { status, type handleServerStreamingCall, type handleUnaryCall, type ServerWritableStream } from '@grpc/grpc-js';
import type { Logger } from '@llmgw/logging';
import { createCallContext, type CallContext, type HandlerOptions } from './context.js';
import { toStatusObject } from './status-map.js';

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

/** Adapts an async function to a grpc-js unary handler; errors are mapped in exactly one place. */
export function unary<Req, Res>(
  method: string,
  logger: Logger,
  fn: (req: Req, ctx: CallContext) => Promise<Res>,
  opts: AdapterOptions = {},
): handleUnaryCall<Req, Res> {
  const recorder = opts.metrics?.forMethod(method);
  return (call, callback) => {
    const ctx = createCallContext(call, method, logger, opts);
    const started = performance.now();
    fn(call.request, ctx).then(
      (res) => {
        const durationMs = performance.now() - started;
        recorder?.handled(status.OK, durationMs / 1000);
        if (ctx.logger.isLevelEnabled('debug')) ctx.logger.debug({ durationMs }, 'rpc ok');
        callback(null, res, ctx.trailers);
      },
      (err: unknown) => {
        const st = toStatusObject(err, ctx.logger);
        const durationMs = performance.now() - started;
        recorder?.handled(st.code ?? status.UNKNOWN, durationMs / 1000);
        ctx.logger.info({ durationMs, grpcCode: st.code, reason: st.details }, 'rpc failed');
        callback(st, null);
      },
    );
  };
}

/** Sends one message, waiting when the caller reads slowly, so nothing buffers without bound. */
export type StreamSink<Res> = (msg: Res) => Promise<void>;

export function serverStream<Req, Res>(
  method: string,
  logger: Logger,
  fn: (req: Req, ctx: CallContext, send: StreamSink<Res>) => Promise<void>,
  opts: AdapterOptions = {},
): handleServerStreamingCall<Req, Res> {
  const recorder = opts.metrics?.forMethod(method);
  return (call) => {
    const ctx = createCallContext(call, method, logger, opts);
    const started = recorder ? performance.now() : 0;
    const send = sinkFor(call, ctx);
    fn(call.request, ctx, send).then(
      () => {
        recorder?.handled(status.OK, (performance.now() - started) / 1000);
        call.end(ctx.trailers);
      },
      (err: unknown) => {
        const st = toStatusObject(err, ctx.logger);
        recorder?.handled(st.code ?? status.UNKNOWN, (performance.now() - started) / 1000);
        ctx.logger.info({ grpcCode: st.code, reason: st.details }, 'stream failed');
        call.emit('error', st);
      },
    );
  };
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
