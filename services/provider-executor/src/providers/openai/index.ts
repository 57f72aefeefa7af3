import { badResponse, redact } from '../errors.js';
import { decodeSseBody, HttpTransport } from '../http.js';
import type { ChatCall, ChatResult, ChatStreamEvent, EmbedCall, EmbedResult, ProviderAdapter } from '../types.js';
import { classifyOpenAIError } from './errors.js';
import { toOpenAIEmbeddingRequest, toOpenAIRequest, type OpenAIRequestOptions } from './request.js';
import { fromOpenAIEmbeddingResponse, fromOpenAIResponse } from './response.js';
import { OpenAIStreamDecoder } from './stream.js';
import type { OpenAIChatResponse, OpenAIEmbeddingResponse } from './wire.js';

export interface OpenAIAdapterOptions {
  id: string;
  /** OpenAI: `https://api.openai.com/v1`; self-hosted: e.g. `http://vllm:8000/v1`; Azure: the resource URL. */
  baseUrl: string;
  /** Empty for a self-hosted server without auth: no Authorization header is sent. */
  apiKey: string;
  timeoutMs: number;
  maxConnections: number;
  /** Azure OpenAI: `{base}/openai/deployments/{deployment}/…?api-version=…` with an `api-key` header. */
  azure?: { apiVersion: string } | undefined;
  /** Defaults: `max_completion_tokens` for api.openai.com and Azure, `max_tokens` for other servers. */
  maxTokensField?: OpenAIRequestOptions['maxTokensField'] | undefined;
}

/** Azure's GA api-version used when the config gives none. */
export const DEFAULT_AZURE_API_VERSION = '2024-10-21';

/** OpenAI Chat Completions wire format: OpenAI, Azure OpenAI and OpenAI-compatible servers. */
export function createOpenAIAdapter(opts: OpenAIAdapterOptions): ProviderAdapter {
  const http = new HttpTransport({ provider: opts.id, baseUrl: opts.baseUrl, maxConnections: opts.maxConnections, timeoutMs: opts.timeoutMs });
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.apiKey) {
    if (opts.azure) headers['api-key'] = opts.apiKey;
    else headers['authorization'] = `Bearer ${opts.apiKey}`;
  }
  const official = opts.azure !== undefined || new URL(opts.baseUrl).hostname === 'api.openai.com';
  const reqOpts: OpenAIRequestOptions = {
    maxTokensField: opts.maxTokensField ?? (official ? 'max_completion_tokens' : 'max_tokens'),
    modelInBody: opts.azure === undefined,
  };
  const azureQuery = opts.azure ? `?api-version=${encodeURIComponent(opts.azure.apiVersion)}` : '';
  const paths = new Map<string, string>();
  const pathFor = (model: string, op: 'chat/completions' | 'embeddings'): string => {
    const key = `${op} ${model}`;
    let p = paths.get(key);
    if (p === undefined) {
      p = opts.azure
        ? `${http.basePath}/openai/deployments/${encodeURIComponent(model)}/${op}${azureQuery}`
        : `${http.basePath}/${op}`;
      paths.set(key, p);
    }
    return p;
  };
  const classify = (status: number, text: string, h: Record<string, string | string[] | undefined>) =>
    classifyOpenAIError(opts.id, status, redact(text, opts.apiKey), h);

  return {
    id: opts.id,
    async chat(call: ChatCall): Promise<ChatResult> {
      const body = JSON.stringify(toOpenAIRequest(call.params, call.upstreamModel, false, reqOpts));
      const json = (await http.postJson(pathFor(call.upstreamModel, 'chat/completions'), headers, body, call.signal, classify)) as OpenAIChatResponse;
      const result = fromOpenAIResponse(json);
      if (!result) throw badResponse(opts.id, 200, 'no choices');
      return result;
    },
    async chatStream(call: ChatCall): Promise<AsyncIterable<ChatStreamEvent>> {
      const body = JSON.stringify(toOpenAIRequest(call.params, call.upstreamModel, true, reqOpts));
      const answer = await http.post(pathFor(call.upstreamModel, 'chat/completions'), headers, body, call.signal, classify);
      return decodeSseBody(opts.id, answer, new OpenAIStreamDecoder(opts.id), call.signal);
    },
    async embed(call: EmbedCall): Promise<EmbedResult> {
      const body = JSON.stringify(toOpenAIEmbeddingRequest(call.upstreamModel, call.inputs, call.dimensions, call.user, reqOpts));
      const json = (await http.postJson(pathFor(call.upstreamModel, 'embeddings'), headers, body, call.signal, classify)) as OpenAIEmbeddingResponse;
      const result = fromOpenAIEmbeddingResponse(json, call.inputs.length);
      if (!result) throw badResponse(opts.id, 200, 'embeddings do not match the inputs');
      return result;
    },
    close: () => http.close(),
  };
}
