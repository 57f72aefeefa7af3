import { context, defaultTextMapGetter, propagation, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { installedTracer, tracingOn } from './state.js';

export { SpanKind, type Attributes, type Context, type Span, type TextMapGetter, type TextMapSetter };

/** The header (gRPC trailer, HTTP response header) in which the edge tells a caller its trace id. */
export const TRACE_ID_HEADER = 'x-trace-id';

/** A started span and the context it is the active span of. */
export interface OpenSpan {
  span: Span;
  context: Context;
}

/**
 * Starts a span, a child of `parent` (default: the active context); undefined when tracing is
 * off, so that the hot path allocates nothing. End it with endSpan.
 */
export function openSpan(name: string, kind: SpanKind, attributes?: Attributes, parent?: Context): OpenSpan | undefined {
  const tracer = installedTracer();
  if (!tracer) return undefined;
  const ctx = parent ?? context.active();
  const span = tracer.startSpan(name, { kind, attributes }, ctx);
  return { span, context: trace.setSpan(ctx, span) };
}

/** Runs `fn` with the span as the active one (log lines and outgoing calls then carry it). */
export function within<T>(s: OpenSpan | undefined, fn: () => T): T {
  return s ? context.with(s.context, fn) : fn();
}

/** Ends the span; an `errorType` marks it failed (error.type, status ERROR). */
export function endSpan(s: OpenSpan | undefined, errorType?: string): void {
  if (!s) return;
  if (errorType) {
    s.span.setAttribute('error.type', errorType);
    s.span.setStatus({ code: SpanStatusCode.ERROR, message: errorType });
  }
  s.span.end();
}

/**
 * What a failure is called in error.type: an AppError's kind, a ProviderError's reason, else the
 * error's class. Never its message, which may quote a provider's body.
 */
function errorTypeOf(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const { reason, kind, name } = err as { reason?: unknown; kind?: unknown; name?: unknown };
    if (typeof reason === 'string' && reason) return reason;
    if (typeof kind === 'string' && kind) return kind;
    if (typeof name === 'string' && name) return name;
  }
  return '_OTHER';
}

/** Runs `fn` in a new span that ends when it settles; a rejection marks the span failed. */
export async function inSpan<T>(name: string, kind: SpanKind, attributes: Attributes, fn: (span: Span | undefined) => Promise<T>, parent?: Context): Promise<T> {
  const s = openSpan(name, kind, attributes, parent);
  if (!s) return fn(undefined);
  try {
    const v = await context.with(s.context, () => fn(s.span));
    endSpan(s);
    return v;
  } catch (err) {
    endSpan(s, errorTypeOf(err));
    throw err;
  }
}

/** The remote context a carrier (gRPC metadata, message headers) brings; the active one when tracing is off. */
export function extractContext<C>(carrier: C, getter: TextMapGetter<C>): Context {
  return tracingOn() ? propagation.extract(context.active(), carrier, getter) : context.active();
}

/** Writes `traceparent`/`tracestate` of the active span (or of `ctx`) into a carrier; nothing when tracing is off. */
export function injectContext<C>(carrier: C, setter: TextMapSetter<C>, ctx?: Context): void {
  if (tracingOn()) propagation.inject(ctx ?? context.active(), carrier, setter);
}

/** The span's trace id when it is a real (sampled or recording) one, else ''. */
export function traceIdOf(s: OpenSpan | undefined): string {
  const sc = s?.span.spanContext();
  return sc && trace.isSpanContextValid(sc) ? sc.traceId : '';
}

/** A carrier that is a plain string record (multiplexed call metadata). */
export const recordCarrier: TextMapGetter<Record<string, string>> & TextMapSetter<Record<string, string>> = {
  keys: (c) => Object.keys(c),
  get: (c, key) => c[key],
  set: (c, key, value) => {
    c[key] = value;
  },
};

/** A carrier that is Node's incoming HTTP headers (lower-case names). */
export const httpHeaderCarrier: TextMapGetter<NodeJS.Dict<string | string[]>> = defaultTextMapGetter;
