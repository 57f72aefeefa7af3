import { badResponse, ProviderError, redact } from '../errors.js';
import { decodeSseBody, HttpTransport } from '../http.js';
import type { ChatCall, ChatResult, ChatStreamEvent, EmbedResult, ProviderAdapter } from '../types.js';
import { classifyAnthropicError } from './errors.js';
import { toAnthropicRequest } from './request.js';
import { fromAnthropicResponse } from './response.js';
import { AnthropicStreamDecoder } from './stream.js';
import type { AnthropicResponse } from './wire.js';

export interface AnthropicAdapterOptions {
  id: string;
  /** e.g. `https://api.anthropic.com` (no version path). */
  baseUrl: string;
  apiKey: string;
  /** `anthropic-version` header. */
  apiVersion?: string | undefined;
  timeoutMs: number;
  maxConnections: number;
}

export const DEFAULT_ANTHROPIC_VERSION = '2023-06-01';

/** Anthropic Messages API (`POST /v1/messages`, `x-api-key`, `anthropic-version`). */
export function createAnthropicAdapter(opts: AnthropicAdapterOptions): ProviderAdapter {
  const http = new HttpTransport({ provider: opts.id, baseUrl: opts.baseUrl, maxConnections: opts.maxConnections, timeoutMs: opts.timeoutMs });
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'anthropic-version': opts.apiVersion || DEFAULT_ANTHROPIC_VERSION,
  };
  if (opts.apiKey) headers['x-api-key'] = opts.apiKey;
  const path = `${http.basePath}/v1/messages`;
  const classify = (status: number, text: string, h: Record<string, string | string[] | undefined>) =>
    classifyAnthropicError(opts.id, status, redact(text, opts.apiKey), h);

  return {
    id: opts.id,
    async chat(call: ChatCall): Promise<ChatResult> {
      const body = JSON.stringify(toAnthropicRequest(call.params, call.upstreamModel, false));
      const json = (await http.postJson(path, headers, body, call.signal, classify)) as AnthropicResponse;
      const result = fromAnthropicResponse(json);
      if (!result) throw badResponse(opts.id, 200, 'no content');
      return result;
    },
    async chatStream(call: ChatCall): Promise<AsyncIterable<ChatStreamEvent>> {
      const body = JSON.stringify(toAnthropicRequest(call.params, call.upstreamModel, true));
      const answer = await http.post(path, headers, body, call.signal, classify);
      return decodeSseBody(opts.id, answer, new AnthropicStreamDecoder(opts.id), call.signal);
    },
    embed(): Promise<EmbedResult> {
      return Promise.reject(
        new ProviderError('invalid_argument', `${opts.id}: the Anthropic API has no embeddings endpoint`, 'invalid_request', 0),
      );
    },
    close: () => http.close(),
  };
}
