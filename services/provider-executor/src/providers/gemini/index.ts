import { badResponse, redact } from '../errors.js';
import { decodeSseBody, HttpTransport } from '../http.js';
import type { ChatCall, ChatResult, ChatStreamEvent, EmbedCall, EmbedResult, ProviderAdapter } from '../types.js';
import { classifyGeminiError } from './errors.js';
import { toGeminiBatchEmbedRequest, toGeminiRequest } from './request.js';
import { fromGeminiBatchEmbedResponse, fromGeminiResponse } from './response.js';
import { GeminiStreamDecoder } from './stream.js';
import type { GeminiBatchEmbedResponse, GeminiResponse } from './wire.js';

export interface GeminiAdapterOptions {
  id: string;
  /** e.g. `https://generativelanguage.googleapis.com` (no version path). */
  baseUrl: string;
  /** Sent in the `x-goog-api-key` header, never in the URL (URLs end up in logs). */
  apiKey: string;
  /** API version path segment; default v1beta. */
  apiVersion?: string | undefined;
  timeoutMs: number;
  maxConnections: number;
}

/** Gemini API: generateContent, streamGenerateContent?alt=sse, batchEmbedContents. */
export function createGeminiAdapter(opts: GeminiAdapterOptions): ProviderAdapter {
  const http = new HttpTransport({ provider: opts.id, baseUrl: opts.baseUrl, maxConnections: opts.maxConnections, timeoutMs: opts.timeoutMs });
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.apiKey) headers['x-goog-api-key'] = opts.apiKey;
  const prefix = `${http.basePath}/${opts.apiVersion || 'v1beta'}/models/`;
  const paths = new Map<string, string>();
  const pathFor = (model: string, method: 'generateContent' | 'streamGenerateContent?alt=sse' | 'batchEmbedContents'): string => {
    const key = `${method} ${model}`;
    let p = paths.get(key);
    if (p === undefined) {
      p = `${prefix}${encodeURIComponent(model)}:${method}`;
      paths.set(key, p);
    }
    return p;
  };
  const classify = (status: number, text: string, h: Record<string, string | string[] | undefined>) =>
    classifyGeminiError(opts.id, status, redact(text, opts.apiKey), h);

  return {
    id: opts.id,
    async chat(call: ChatCall): Promise<ChatResult> {
      const body = JSON.stringify(toGeminiRequest(call.params));
      const json = (await http.postJson(pathFor(call.upstreamModel, 'generateContent'), headers, body, call.signal, classify)) as GeminiResponse;
      const result = fromGeminiResponse(json);
      if (!result) throw badResponse(opts.id, 200, 'no candidates');
      return result;
    },
    async chatStream(call: ChatCall): Promise<AsyncIterable<ChatStreamEvent>> {
      const body = JSON.stringify(toGeminiRequest(call.params));
      const answer = await http.post(pathFor(call.upstreamModel, 'streamGenerateContent?alt=sse'), headers, body, call.signal, classify);
      return decodeSseBody(opts.id, answer, new GeminiStreamDecoder(opts.id), call.signal);
    },
    async embed(call: EmbedCall): Promise<EmbedResult> {
      const body = JSON.stringify(toGeminiBatchEmbedRequest(call.upstreamModel, call.inputs, call.dimensions));
      const json = (await http.postJson(pathFor(call.upstreamModel, 'batchEmbedContents'), headers, body, call.signal, classify)) as GeminiBatchEmbedResponse;
      const vectors = fromGeminiBatchEmbedResponse(json, call.inputs.length);
      if (!vectors) throw badResponse(opts.id, 200, 'embeddings do not match the inputs');
      return { vectors, usage: {} };
    },
    close: () => http.close(),
  };
}
