import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { RequestMeter } from './bill.js';
import type { IdSequence, StreamOptions } from './http.js';

/** An error response already shaped in one provider's wire format. */
export interface ErrorReply {
  status: number;
  body: unknown;
  headers?: OutgoingHttpHeaders;
}

/** What differs between providers outside the happy path: auth and error bodies. */
export interface WireFormat {
  readonly name: 'openai' | 'azure' | 'anthropic' | 'gemini';
  /** Returns the 401/400 reply when the request's credentials are missing or rejected. */
  checkAuth(req: IncomingMessage, query: URLSearchParams): ErrorReply | undefined;
  /** Error in the provider's own format; `retryAfterS` adds the retry headers. */
  error(status: number, message: string, retryAfterS?: number): ErrorReply;
}

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  query: URLSearchParams;
  body: Record<string, unknown>;
  model: string;
  stream: StreamOptions;
  /** This request's charges on the simulator's bill. */
  meter: RequestMeter;
  ids: IdSequence;
  /** Unix seconds, for `created` fields. */
  nowS: number;
}

export interface Route {
  format: WireFormat;
  /** Model taken from the path (Azure deployment, Gemini model); otherwise from body.model. */
  pathModel?: string;
  handle(ctx: RequestContext): Promise<void> | void;
}

/** The key the simulator treats as misconfigured (401). Any other non-empty key is accepted. */
export const BAD_KEY = 'bad-key';
