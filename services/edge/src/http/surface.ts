import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Metadata } from '@grpc/grpc-js';
import { callContext, REQUEST_ID_HEADER, type CallContext } from '@llmgw/grpc';
import { AppError, quoted } from '@llmgw/errors';
import type { Logger } from '@llmgw/logging';
import type { HttpMetrics } from '@llmgw/metrics';
import { endSpan, extractContext, httpHeaderCarrier, openSpan, SpanKind, traceIdOf, TRACE_ID_HEADER, tracingOn, within, type OpenSpan } from '@llmgw/tracing';
import type { GatewayPipeline } from '../pipeline.js';
import { ANTHROPIC, anthropicModels, messages } from './anthropic.js';
import { badRequest, bodyTooLarge, failureOf, type HttpFailure } from './errors.js';
import { Exchange, type Dialect } from './exchange.js';
import { chatCompletions, embeddings, models, OPENAI, retrieveModel } from './openai.js';

export interface HttpSurfaceOptions {
  /** Largest request body; a larger one is 413 before it is read. */
  maxBodyBytes: number;
  metrics?: HttpMetrics;
}

type Handler = (pipeline: GatewayPipeline, x: Exchange, body: unknown, param: string) => Promise<void>;

interface Endpoint {
  /** Metric label and the `rpc` field of log lines. */
  name: string;
  method: 'GET' | 'POST';
  dialect: Dialect | 'by-header';
  handler: Handler;
}

/** Paths under /v1; `:id` matches one path segment, passed to the handler as `param`. */
const ENDPOINTS: Record<string, Endpoint> = {
  '/v1/chat/completions': { name: 'chat_completions', method: 'POST', dialect: OPENAI, handler: chatCompletions },
  '/v1/embeddings': { name: 'embeddings', method: 'POST', dialect: OPENAI, handler: embeddings },
  '/v1/messages': { name: 'messages', method: 'POST', dialect: ANTHROPIC, handler: messages },
  // Both SDKs list models here; the Anthropic one sends `anthropic-version`.
  '/v1/models': { name: 'models', method: 'GET', dialect: 'by-header', handler: (p, x) => (x.dialect === ANTHROPIC ? anthropicModels(p, x) : models(p, x)) },
  '/v1/models/:id': { name: 'models', method: 'GET', dialect: OPENAI, handler: retrieveModel },
};

/** Longest client request id we log. */
const MAX_CLIENT_ID = 128;

/** The endpoint of a path, with its route (the ENDPOINTS key, the span's http.route). */
function endpointOf(path: string): { endpoint: Endpoint; param: string; route: string } | undefined {
  const exact = ENDPOINTS[path];
  if (exact) return { endpoint: exact, param: '', route: path };
  const m = /^\/v1\/models\/([^/]{1,256})$/.exec(path);
  const byId = ENDPOINTS['/v1/models/:id'];
  return m?.[1] && byId ? { endpoint: byId, param: decodeURIComponent(m[1]), route: '/v1/models/:id' } : undefined;
}

/** The caller's key as the pipeline reads it: `Authorization: Bearer` as is, or Anthropic's `x-api-key`. */
function authMetadata(req: IncomingMessage): Metadata {
  const md = new Metadata();
  const authorization = req.headers.authorization;
  const apiKey = req.headers['x-api-key'];
  if (authorization) md.set('authorization', authorization);
  else if (typeof apiKey === 'string' && apiKey) md.set('authorization', `Bearer ${apiKey}`);
  return md;
}

/** Reads the body up to `limit` bytes; undefined when it is larger. A caller that hangs up mid-body cancels. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(chunks, size)));
    const gone = () => reject(new AppError('cancelled', 'the client closed the connection while sending the body'));
    req.once('error', gone);
    req.once('close', () => {
      if (!req.complete) gone();
    });
  });
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    // V8's message names the position, never more than a few characters of the body.
    const position = err instanceof SyntaxError ? / at position (\d+)/.exec(err.message)?.[1] : undefined;
    throw badRequest(`the body is not valid JSON${position ? ` (at byte ${position})` : ''}`);
  }
}

/**
 * The OpenAI- and Anthropic-compatible HTTP surface: each request becomes the same normalised
 * request the gRPC API takes and runs through the same pipeline (auth, validation, routing,
 * quota, execution; the executor publishes its usage). Only the wire format differs.
 */
export function createHttpSurface(pipeline: GatewayPipeline, logger: Logger, opts: HttpSurfaceOptions): Server {
  const server = createServer({ keepAliveTimeout: 65_000, headersTimeout: 30_000, requestTimeout: 60_000 }, (req, res) => {
    void handle(req, res);
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const found = endpointOf(path);
    const dialect = !found || found.endpoint.dialect === 'by-header' ? (req.headers['anthropic-version'] ? ANTHROPIC : OPENAI) : found.endpoint.dialect;
    const controller = new AbortController();
    const clientId = req.headers[REQUEST_ID_HEADER];
    const ctx = callContext({
      method: `http.${found?.endpoint.name ?? 'unknown'}`,
      logger,
      metadata: authMetadata(req),
      signal: controller.signal,
      deadlineMs: Infinity,
      requestId: randomUUID(),
      tenantId: '',
      clientRequestId: typeof clientId === 'string' ? clientId.slice(0, MAX_CLIENT_ID) : '',
    });
    // A caller that goes away cancels the request, and with it the provider call.
    res.once('close', () => {
      if (!res.writableFinished) controller.abort(new AppError('cancelled', 'the client closed the connection'));
    });
    const span = httpSpan(req, path, found?.route);
    // The caller's handle on the trace: a header of every answer, success or failure.
    const traceId = traceIdOf(span);
    if (traceId) ctx.setTrailer(TRACE_ID_HEADER, traceId);
    await within(span, () => serve(req, res, ctx, dialect, found, path, started));
    const code = res.headersSent ? res.statusCode : 499;
    span?.span.setAttribute('http.response.status_code', code);
    endSpan(span, code >= 500 ? String(code) : undefined);
    // A caller that left before any answer is counted as nginx counts it: 499.
    opts.metrics?.handled(found?.endpoint.name ?? 'unknown', code, (performance.now() - started) / 1000);
  }

  async function serve(req: IncomingMessage, res: ServerResponse, ctx: CallContext, dialect: Dialect, found: ReturnType<typeof endpointOf>, path: string, started: number): Promise<void> {
    const x = new Exchange(req, res, ctx, dialect);
    try {
      if (!found) throw { ...badRequest(`no such endpoint: ${String(req.method).slice(0, 16)} ${quoted(path)}`), status: 404, kind: 'not_found' } satisfies HttpFailure;
      const { endpoint, param } = found;
      if (req.method !== endpoint.method) {
        res.setHeader('allow', endpoint.method);
        throw { ...badRequest(`${path} takes ${endpoint.method}, not ${String(req.method).slice(0, 16)}`), status: 405 } satisfies HttpFailure;
      }
      let body: unknown;
      if (endpoint.method === 'POST') {
        const declared = Number(req.headers['content-length'] ?? 0);
        const raw = declared > opts.maxBodyBytes ? undefined : await readBody(req, opts.maxBodyBytes);
        if (!raw) {
          // The rest of the body is not read: close the connection rather than drain it.
          res.setHeader('connection', 'close');
          throw bodyTooLarge(opts.maxBodyBytes);
        }
        body = parseJson(raw);
      }
      await endpoint.handler(pipeline, x, body, param);
    } catch (err) {
      const f = isFailure(err) ? err : failureOf(err, ctx.logger);
      // As the gRPC adapters do: one line per failure, its message never echoing unbounded input.
      ctx.logger.info({ durationMs: performance.now() - started, status: f.status, reason: f.message }, 'http request failed');
      if (x.started) await streamFailure(x, f);
      else if (!res.destroyed) x.fail(f);
    }
  }

  return server;
}

/** The request's SERVER span, "{method} {route}", a child of the caller's trace context; none while tracing is off. */
function httpSpan(req: IncomingMessage, path: string, route: string | undefined): OpenSpan | undefined {
  if (!tracingOn()) return undefined;
  const method = String(req.method).slice(0, 16);
  return openSpan(
    route ? `${method} ${route}` : method,
    SpanKind.SERVER,
    { 'http.request.method': method, 'url.path': path.slice(0, 256), ...(route ? { 'http.route': route } : {}) },
    extractContext(req.headers, httpHeaderCarrier),
  );
}

function isFailure(err: unknown): err is HttpFailure {
  return typeof err === 'object' && err !== null && 'status' in err && 'rateLimit' in err && !(err instanceof Error);
}

/** After the status line, an error can only be one more event, in the dialect's shape. */
async function streamFailure(x: Exchange, f: HttpFailure): Promise<void> {
  if (x.res.destroyed) return;
  try {
    await x.event(x.errorEvent(f), x.dialect === ANTHROPIC ? 'error' : undefined);
  } catch {
    // The caller is gone; nothing more to tell it.
  }
  x.end();
}

/** Listens on `host:port`; resolves with the bound port. */
export function listenHttp(server: Server, addr: string): Promise<number> {
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  const port = Number(addr.slice(i + 1));
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(new Error(`cannot listen on ${addr} (EDGE_HTTP_ADDR): ${err.message}`));
    server.once('error', onError);
    server.listen(port, host || undefined, () => {
      server.off('error', onError);
      const bound = server.address();
      resolve(typeof bound === 'object' && bound ? bound.port : port);
    });
  });
}

/** After `drainMs`, stops accepting, lets requests under way finish (streams included) within `graceMs`, then cuts the rest. */
export async function closeHttp(server: Server, drainMs: number, graceMs: number): Promise<void> {
  if (drainMs > 0) await new Promise((r) => setTimeout(r, drainMs));
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const force = setTimeout(() => server.closeAllConnections(), graceMs);
  await closed;
  clearTimeout(force);
}
