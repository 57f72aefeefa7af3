import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { RequestMeter, type BillRecorder } from './bill.js';
import { handleCountTokens as handleAnthropicCountTokens, handleMessages, anthropicFormat } from './anthropic.js';
import { planFaults, retryAfterSeconds, type FaultSpec } from './faults.js';
import {
  GEMINI_METHODS,
  geminiFormat,
  handleBatchEmbedContents,
  handleCountTokens as handleGeminiCountTokens,
  handleEmbedContent,
  handleGenerateContent,
} from './gemini.js';
import { BodyTooLargeError, IdSequence, readBody, sendJson } from './http.js';
import { azureFormat, handleChatCompletions, handleEmbeddings, openaiError, openaiFormat } from './openai.js';
import type { ErrorReply, RequestContext, Route } from './request-context.js';
import { isRecord } from './schema-sample.js';

export interface SimulatorStats {
  totalRequests: number;
  /** Requests whose response has not finished and whose client has not disconnected. */
  openRequests: number;
  /** Requests per model name (counted once the model is known, i.e. after auth and body parsing). */
  byModel: Record<string, number>;
}

export interface SimulatorServerOptions {
  latencyMs: number;
  streamChunkDelayMs: number;
  faults?: Readonly<Record<string, FaultSpec>> | undefined;
}

/** A request body the simulator received, as parsed (what a provider would have been sent). */
export interface ReceivedRequest {
  path: string;
  model: string;
  body: Record<string, unknown>;
}

/** How many received bodies are kept, newest last: enough for tests, bounded for soaks. */
export const RECEIVED_KEPT = 1_000;

/** Mutable counters behind `Simulator.stats()`, and the last bodies behind `Simulator.received()`. */
export class StatsRecorder {
  totalRequests = 0;
  openRequests = 0;
  private byModel = new Map<string, number>();
  private bodies: ReceivedRequest[] = [];
  private idleWaiters: Array<() => void> = [];

  requestOpened(): void {
    this.totalRequests++;
    this.openRequests++;
  }

  requestClosed(): void {
    this.openRequests--;
    if (this.openRequests === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Resolves once no request is open. */
  whenIdle(): Promise<void> {
    if (this.openRequests === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  countModel(model: string): void {
    this.byModel.set(model, (this.byModel.get(model) ?? 0) + 1);
  }

  receive(r: ReceivedRequest): void {
    if (this.bodies.length >= RECEIVED_KEPT) this.bodies.shift();
    this.bodies.push(r);
  }

  received(): ReceivedRequest[] {
    return [...this.bodies];
  }

  snapshot(): SimulatorStats {
    return { totalRequests: this.totalRequests, openRequests: this.openRequests, byModel: Object.fromEntries(this.byModel) };
  }

  /** Clears totals, per-model counts and received bodies; open requests are live state and are kept. */
  reset(): void {
    this.totalRequests = 0;
    this.byModel.clear();
    this.bodies = [];
  }
}

interface MatchedRoute extends Route {
  /** True when the request streams regardless of the body (Gemini streamGenerateContent). */
  alwaysStreams?: boolean;
}

const OPENAI_CHAT: MatchedRoute = { format: openaiFormat, handle: handleChatCompletions };
const OPENAI_EMBEDDINGS: MatchedRoute = { format: openaiFormat, handle: handleEmbeddings };
const ANTHROPIC_MESSAGES: MatchedRoute = { format: anthropicFormat, handle: handleMessages };
const ANTHROPIC_COUNT: MatchedRoute = { format: anthropicFormat, handle: handleAnthropicCountTokens };
const AZURE_PREFIX = '/openai/deployments/';
const GEMINI_PREFIXES = ['/v1beta/models/', '/v1/models/'];
/** Outside every provider's path space (`/v1…`, `/v1beta…`, `/openai…`). */
const BILL_PATH = '/_simulator/bill';

/** Maps a POST path to its handler; undefined → 404. */
export function matchRoute(path: string): MatchedRoute | undefined {
  switch (path) {
    case '/v1/chat/completions':
      return OPENAI_CHAT;
    case '/v1/embeddings':
      return OPENAI_EMBEDDINGS;
    case '/v1/messages':
      return ANTHROPIC_MESSAGES;
    case '/v1/messages/count_tokens':
      return ANTHROPIC_COUNT;
  }
  if (path.startsWith(AZURE_PREFIX)) {
    const rest = path.slice(AZURE_PREFIX.length);
    const slash = rest.indexOf('/');
    if (slash <= 0) return undefined;
    const deployment = safeDecode(rest.slice(0, slash));
    const op = rest.slice(slash);
    if (deployment === undefined) return undefined;
    if (op === '/chat/completions') return { format: azureFormat, pathModel: deployment, handle: handleChatCompletions };
    if (op === '/embeddings') return { format: azureFormat, pathModel: deployment, handle: handleEmbeddings };
    return undefined;
  }
  for (const prefix of GEMINI_PREFIXES) {
    if (!path.startsWith(prefix)) continue;
    const rest = path.slice(prefix.length);
    const colon = rest.lastIndexOf(':');
    if (colon <= 0) return undefined;
    const model = safeDecode(rest.slice(0, colon));
    const method = rest.slice(colon + 1);
    if (model === undefined || !GEMINI_METHODS.has(method)) return undefined;
    switch (method) {
      case 'generateContent':
        return { format: geminiFormat, pathModel: model, handle: (ctx) => handleGenerateContent(ctx, false) };
      case 'streamGenerateContent':
        return { format: geminiFormat, pathModel: model, alwaysStreams: true, handle: (ctx) => handleGenerateContent(ctx, true) };
      case 'embedContent':
        return { format: geminiFormat, pathModel: model, handle: handleEmbedContent };
      case 'batchEmbedContents':
        return { format: geminiFormat, pathModel: model, handle: handleBatchEmbedContents };
      default:
        return { format: geminiFormat, pathModel: model, handle: handleGeminiCountTokens };
    }
  }
  return undefined;
}

function safeDecode(s: string): string | undefined {
  try {
    const decoded = decodeURIComponent(s);
    return decoded.length > 0 ? decoded : undefined;
  } catch {
    return undefined;
  }
}

function sendError(res: ServerResponse, err: ErrorReply): void {
  sendJson(res, err.status, err.body, err.headers);
}

/** Builds the node:http server; `index.ts` owns listen/close. */
export function createSimulatorServer(opts: SimulatorServerOptions, stats: StatsRecorder, bill: BillRecorder): Server {
  const ids = new IdSequence();
  /** Requests per model name so far, for `every` faults; not the stats' count, which resetStats clears. */
  const ordinals = new Map<string, number>();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q >= 0 ? url.slice(0, q) : url;
    const query = new URLSearchParams(q >= 0 ? url.slice(q + 1) : '');

    if (req.method === 'GET' && (path === '/healthz' || path === '/health')) {
      sendJson(res, 200, { status: 'ok' });
      return;
    }
    if (path === BILL_PATH && (req.method === 'GET' || req.method === 'DELETE')) {
      if (req.method === 'DELETE') bill.reset();
      sendJson(res, 200, bill.snapshot());
      return;
    }
    const route = req.method === 'POST' ? matchRoute(path) : undefined;
    if (!route) {
      req.resume();
      sendError(res, openaiError(404, `Unknown request URL: ${req.method ?? ''} ${path}.`));
      return;
    }
    const { format } = route;
    const authError = format.checkAuth(req, query);
    if (authError) {
      req.resume();
      sendError(res, authError);
      return;
    }

    let raw: Buffer;
    try {
      raw = await readBody(req);
    } catch (err) {
      if (err instanceof BodyTooLargeError) sendError(res, format.error(413, err.message));
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      sendError(res, format.error(400, 'Could not parse the request body as JSON.'));
      return;
    }
    if (!isRecord(body)) {
      sendError(res, format.error(400, 'The request body must be a JSON object.'));
      return;
    }
    const model = route.pathModel ?? body['model'];
    if (typeof model !== 'string' || model.length === 0) {
      sendError(res, format.error(400, "'model' is required."));
      return;
    }
    stats.countModel(model);
    stats.receive({ path, model, body });
    const nth = (ordinals.get(model) ?? 0) + 1;
    ordinals.set(model, nth);

    const plan = planFaults(model, opts.faults, nth);
    const latency = opts.latencyMs + plan.extraLatencyMs;
    // Not cut short by a disconnect: like a provider, the simulator notices that the client has
    // gone only when it writes, so it still produces (and bills) the answer it will not deliver.
    // Unref'd so that such leftover work does not keep a process alive after `close()`.
    if (latency > 0) await delay(latency, undefined, { ref: false });
    const streaming = route.alwaysStreams === true || body['stream'] === true;
    let dropAfterChunks: number | undefined;
    const fault = plan.fault;
    if (fault) {
      switch (fault.kind) {
        case 'status':
          sendError(res, format.error(fault.status, `Simulated ${fault.status} fault for model ${model}.`, retryAfterSeconds(fault)));
          return;
        case 'hang':
          return; // never answer: the request ends when the client disconnects (or the server closes)
        case 'drop':
          req.socket.destroy();
          return;
        case 'drop-mid-stream':
          if (!streaming) {
            req.socket.destroy();
            return;
          }
          dropAfterChunks = Math.max(0, fault.afterChunks);
          break;
      }
    }

    const ctx: RequestContext = {
      req,
      res,
      query,
      body,
      model,
      stream: { chunkDelayMs: opts.streamChunkDelayMs, dropAfterChunks },
      meter: new RequestMeter(bill, model),
      ids,
      nowS: Math.floor(Date.now() / 1000),
    };
    await route.handle(ctx);
  }

  return createServer((req, res) => {
    stats.requestOpened();
    res.once('close', () => stats.requestClosed());
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        const message = err instanceof Error ? err.message : 'internal error';
        sendError(res, openaiError(500, `Simulator internal error: ${message}`));
      } else {
        res.destroy();
      }
    });
  });
}
