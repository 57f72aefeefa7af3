import { InterceptingCall, Metadata, status, type Interceptor } from '@grpc/grpc-js';
import {
  endSpan,
  extractContext,
  injectContext,
  openSpan,
  recordCarrier,
  SpanKind,
  traceIdOf,
  TRACE_ID_HEADER,
  tracingOn,
  type Context,
  type OpenSpan,
  type TextMapGetter,
  type TextMapSetter,
} from '@llmgw/tracing';
import { AppError } from '@llmgw/errors';
import type { CallOpts } from './client.js';
import type { CallContext } from './context.js';
import { statusOf } from './status-map.js';

/** W3C trace context (`traceparent`, `tracestate`) in gRPC metadata. */
export const metadataCarrier: TextMapGetter<Metadata> & TextMapSetter<Metadata> = {
  keys: (md) => Object.keys(md.getMap()),
  get: (md, key) => {
    const v = md.get(key)[0];
    return typeof v === 'string' ? v : undefined;
  },
  set: (md, key, value) => md.set(key, value),
};

/** `/llmgateway.quota.v1.QuotaService/ReserveQuota` → span name and rpc.* attributes of the semantic conventions. */
function rpcSpan(path: string, kind: SpanKind, parent?: Context): OpenSpan | undefined {
  if (!tracingOn()) return undefined;
  const name = path.startsWith('/') ? path.slice(1) : path;
  const slash = name.lastIndexOf('/');
  return openSpan(name, kind, { 'rpc.system': 'grpc', 'rpc.service': name.slice(0, slash), 'rpc.method': name.slice(slash + 1) }, parent);
}

/** Ends an RPC span with its status code (error.type: the code's name when not OK). */
export function endRpcSpan(s: OpenSpan | undefined, code: number): void {
  if (!s) return;
  s.span.setAttribute('rpc.grpc.status_code', code);
  endSpan(s, code === status.OK ? undefined : (status[code] ?? String(code)));
}

/**
 * The client interceptor dial() installs while tracing is on: a CLIENT span per call, its
 * context in the call's metadata, ended with the call's status.
 */
export const traceClientCalls: Interceptor = (options, nextCall) => {
  const s = rpcSpan(options.method_definition.path, SpanKind.CLIENT);
  if (!s) return new InterceptingCall(nextCall(options));
  return new InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      injectContext(metadata, metadataCarrier, s.context);
      next(metadata, {
        onReceiveStatus(st, nextStatus) {
          endRpcSpan(s, st.code);
          nextStatus(st);
        },
      });
    },
  });
};

/** A CLIENT span for one multiplexed (or in-process) call; the options carry its trace context. */
function multiplexedSpan(path: string, opts: CallOpts): { span: OpenSpan; opts: CallOpts } | undefined {
  const span = rpcSpan(path, SpanKind.CLIENT);
  if (!span) return undefined;
  const metadata = { ...opts.metadata };
  injectContext(metadata, recordCarrier, span.context);
  return { span, opts: { ...opts, metadata } };
}

function codeOf(err: unknown): number {
  return err instanceof AppError ? statusOf(err.kind) : status.UNKNOWN;
}

/** Runs a multiplexed unary call in its CLIENT span (when tracing is on). */
export function tracedCall<T>(path: string, opts: CallOpts, run: (opts: CallOpts) => Promise<T>): Promise<T> {
  const traced = multiplexedSpan(path, opts);
  if (!traced) return run(opts);
  return run(traced.opts).then(
    (v) => {
      endRpcSpan(traced.span, status.OK);
      return v;
    },
    (err: unknown) => {
      endRpcSpan(traced.span, codeOf(err));
      throw err;
    },
  );
}

/** Runs a multiplexed server-streaming call in its CLIENT span (when tracing is on), ended with the stream. */
export function tracedStream<T>(path: string, opts: CallOpts, run: (opts: CallOpts) => AsyncGenerator<T>): AsyncGenerator<T> {
  const traced = multiplexedSpan(path, opts);
  return traced ? spanned(traced.span, run(traced.opts)) : run(opts);
}

async function* spanned<T>(span: OpenSpan, messages: AsyncGenerator<T>): AsyncGenerator<T> {
  // A reader that stops early cancels the call.
  let code: number = status.CANCELLED;
  try {
    yield* messages;
    code = status.OK;
  } catch (err) {
    code = codeOf(err);
    throw err;
  } finally {
    endRpcSpan(span, code);
  }
}

/**
 * The SERVER span of a call the adapters run, a child of the caller's trace context. A public
 * entry also tells its caller the trace id, in the `x-trace-id` trailer.
 */
export function serverSpan(ctx: CallContext, publicEntry: boolean): OpenSpan | undefined {
  if (!tracingOn()) return undefined;
  const s = rpcSpan(ctx.path || ctx.method, SpanKind.SERVER, extractContext(ctx.metadata, metadataCarrier));
  if (s && publicEntry) {
    const traceId = traceIdOf(s);
    if (traceId) ctx.setTrailer(TRACE_ID_HEADER, traceId);
  }
  return s;
}
