import { Pool, type Dispatcher } from 'undici';
import { SseParser } from '../stream.js';
import { badResponse, classifyTransportError, streamEndedEarly, type HeaderBag, type ProviderError } from './errors.js';
import type { ChatStreamEvent, StreamDecoder } from './types.js';

export interface HttpTransportOptions {
  /** Provider id, for error messages. */
  provider: string;
  /** e.g. `https://api.openai.com/v1`; its path becomes the prefix of every request path. */
  baseUrl: string;
  maxConnections: number;
  /** Safety net under the executor's own timers: headers and gap between body chunks. */
  timeoutMs: number;
}

export interface HttpAnswer {
  status: number;
  headers: HeaderBag;
  body: Dispatcher.ResponseData['body'];
}

/** Classifies a non-2xx answer from its status, body text and headers (each provider's errors.ts). */
export type ErrorClassifier = (status: number, bodyText: string, headers: HeaderBag) => ProviderError;

const MAX_ERROR_BODY_CHARS = 16 * 1024;

/**
 * One keep-alive undici Pool per provider (per executor replica), `connections: max_connections`.
 * The only place that talks HTTP; adapters' index.ts files call it.
 */
export class HttpTransport {
  /** Path of base_url without a trailing slash ('' or e.g. '/v1'). */
  readonly basePath: string;
  private readonly pool: Pool;

  constructor(private readonly opts: HttpTransportOptions) {
    const url = new URL(opts.baseUrl);
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.pool = new Pool(url.origin, {
      connections: opts.maxConnections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 600_000,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
    });
  }

  /**
   * POSTs a JSON body. Resolves with a 2xx answer whose body is still unread; a non-2xx answer is
   * read (bounded), classified and thrown; transport failures are thrown classified.
   */
  async post(path: string, headers: Record<string, string>, body: string, signal: AbortSignal, classify: ErrorClassifier): Promise<HttpAnswer> {
    let res: Dispatcher.ResponseData;
    try {
      res = await this.pool.request({ method: 'POST', path, headers, body, signal });
    } catch (err) {
      throw classifyTransportError(this.opts.provider, err, signal);
    }
    if (res.statusCode >= 200 && res.statusCode < 300) return { status: res.statusCode, headers: res.headers, body: res.body };
    let text = '';
    try {
      text = await res.body.text();
    } catch {
      // the status alone classifies the failure
    }
    throw classify(res.statusCode, text.length > MAX_ERROR_BODY_CHARS ? text.slice(0, MAX_ERROR_BODY_CHARS) : text, res.headers);
  }

  /** POSTs and parses a JSON answer. */
  async postJson(path: string, headers: Record<string, string>, body: string, signal: AbortSignal, classify: ErrorClassifier): Promise<unknown> {
    const res = await this.post(path, headers, body, signal, classify);
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      throw classifyTransportError(this.opts.provider, err, signal);
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw badResponse(this.opts.provider, res.status, 'body is not JSON');
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/**
 * Decodes an SSE body with a provider's decoder, pulling the body only as fast as the consumer
 * pulls events (no unbounded buffering). Throws ProviderError on a broken body or when the body
 * ends before the decoder saw the provider's terminal event. Stopping the iteration early
 * destroys the body, which aborts the upstream request.
 */
export async function* decodeSseBody(
  provider: string,
  answer: HttpAnswer,
  decoder: StreamDecoder,
  signal: AbortSignal,
): AsyncGenerator<ChatStreamEvent> {
  const pending: ChatStreamEvent[] = [];
  const parser = new SseParser((event, data) => {
    const ev = decoder.decode(event, data);
    if (ev) pending.push(ev);
  });
  const body = answer.body;
  let complete = false;
  try {
    try {
      for await (const chunk of body as AsyncIterable<Uint8Array>) {
        parser.push(chunk);
        while (pending.length > 0) yield pending.shift() as ChatStreamEvent;
      }
      parser.end();
    } catch (err) {
      throw classifyTransportError(provider, err, signal);
    }
    while (pending.length > 0) yield pending.shift() as ChatStreamEvent;
    if (!decoder.done) throw streamEndedEarly(provider, 'no terminal event');
    complete = true;
  } finally {
    if (!complete && !body.destroyed) body.destroy();
  }
}
