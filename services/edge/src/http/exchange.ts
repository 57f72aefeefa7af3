import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CallContext } from '@llmgw/grpc';
import { failureHeaders, type HttpFailure } from './errors.js';

/** How one provider API shapes its errors and names its request-id header. */
export interface Dialect {
  requestIdHeader: string;
  errorBody(f: HttpFailure): unknown;
}

/**
 * One HTTP request and its answer: JSON, or a server-sent event stream whose writes wait for a
 * slow reader (so nothing buffers without bound) and stop when the caller has gone.
 */
export class Exchange {
  private streaming = false;
  /** The pipeline's name of a request field in this API's terms; set by the handler that mapped the body. */
  fieldName: (field: string) => string = (field) => field;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly ctx: CallContext,
    readonly dialect: Dialect,
  ) {}

  /** True once a status line was sent: a failure can then only be reported inside the stream. */
  get started(): boolean {
    return this.res.headersSent;
  }

  json(status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    this.res.writeHead(status, {
      ...this.commonHeaders(),
      ...headers,
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    });
    this.res.end(text);
  }

  fail(f: HttpFailure): void {
    this.json(f.status, this.dialect.errorBody(this.inOwnTerms(f)), failureHeaders(f));
  }

  /** The failure as this API's error body, for a stream that already started. */
  errorEvent(f: HttpFailure): string {
    return JSON.stringify(this.dialect.errorBody(this.inOwnTerms(f)));
  }

  private inOwnTerms(f: HttpFailure): HttpFailure {
    if (!f.param) return f;
    const param = this.fieldName(f.param);
    return param === f.param ? f : { ...f, param, message: param + f.message.slice(f.param.length) };
  }

  /** Sends one event (with an `event:` line when named), opening the stream on first use. */
  async event(data: string, name?: string): Promise<void> {
    if (this.ctx.signal.aborted) throw this.ctx.signal.reason;
    if (!this.streaming) {
      this.streaming = true;
      this.res.writeHead(200, { ...this.commonHeaders(), 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    }
    if (this.res.write(name ? `event: ${name}\ndata: ${data}\n\n` : `data: ${data}\n\n`)) return;
    await new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        this.ctx.signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        this.res.off('drain', onDrain);
        reject(this.ctx.signal.reason);
      };
      this.res.once('drain', onDrain);
      this.ctx.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  end(): void {
    this.res.end();
  }

  /** The request id, and the limit headers the pipeline set on an admitted request. */
  private commonHeaders(): Record<string, string> {
    const headers: Record<string, string> = { [this.dialect.requestIdHeader]: this.ctx.requestId };
    for (const [k, v] of Object.entries(this.ctx.trailers?.getMap() ?? {})) if (typeof v === 'string') headers[k] = v;
    return headers;
  }
}
