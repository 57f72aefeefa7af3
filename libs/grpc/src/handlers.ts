import type { handleServerStreamingCall, handleUnaryCall, ServerWritableStream } from '@grpc/grpc-js';
import type { Logger } from '@llmgw/logging';
import { createCallContext, type CallContext, type HandlerOptions } from './context.js';
import { toStatusObject } from './status-map.js';

/** Adapts an async function to a grpc-js unary handler; errors are mapped in exactly one place. */
export function unary<Req, Res>(
  method: string,
  logger: Logger,
  fn: (req: Req, ctx: CallContext) => Promise<Res>,
  opts: HandlerOptions = {},
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const ctx = createCallContext(call, method, logger, opts);
    const started = performance.now();
    fn(call.request, ctx).then(
      (res) => {
        if (ctx.logger.isLevelEnabled('debug')) ctx.logger.debug({ durationMs: performance.now() - started }, 'rpc ok');
        callback(null, res);
      },
      (err: unknown) => {
        const st = toStatusObject(err, ctx.logger);
        ctx.logger.info({ durationMs: performance.now() - started, grpcCode: st.code, reason: st.details }, 'rpc failed');
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
  opts: HandlerOptions = {},
): handleServerStreamingCall<Req, Res> {
  return (call) => {
    const ctx = createCallContext(call, method, logger, opts);
    const send = sinkFor(call, ctx);
    fn(call.request, ctx, send).then(
      () => call.end(),
      (err: unknown) => {
        const st = toStatusObject(err, ctx.logger);
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
