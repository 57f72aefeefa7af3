import type { IncomingMessage } from 'node:http';
import { dimensionsOr, embedText, embeddingToBase64 } from './embedding.js';
import { SseWriter, sendJson } from './http.js';
import type { BilledParts } from './bill.js';
import { buildReply, chunkTokens, chunkToolArgs, countPromptTokens, countTokens, usageParts, type Reply, type ToolSpec } from './reply.js';
import { BAD_KEY, type ErrorReply, type RequestContext, type WireFormat } from './request-context.js';
import { isRecord } from './schema-sample.js';

/** OpenAI (and Azure OpenAI) chat completions and embeddings. */

function openaiErrorType(status: number): { type: string; code: string | null } {
  if (status === 401) return { type: 'invalid_request_error', code: 'invalid_api_key' };
  if (status === 404) return { type: 'invalid_request_error', code: 'not_found' };
  if (status === 429) return { type: 'requests', code: 'rate_limit_exceeded' };
  if (status >= 500) return { type: 'server_error', code: null };
  return { type: 'invalid_request_error', code: null };
}

export function openaiError(status: number, message: string, retryAfterS?: number): ErrorReply {
  const { type, code } = openaiErrorType(status);
  const reply: ErrorReply = { status, body: { error: { message, type, param: null, code } } };
  if (retryAfterS !== undefined) {
    reply.headers = { 'retry-after': String(retryAfterS), 'retry-after-ms': String(Math.round(retryAfterS * 1000)) };
  }
  return reply;
}

function keyError(key: string | undefined, missingMessage: string): ErrorReply | undefined {
  if (key === undefined || key.length === 0) return openaiError(401, missingMessage);
  if (key === BAD_KEY) return openaiError(401, 'Incorrect API key provided: bad-key.');
  return undefined;
}

export const openaiFormat: WireFormat = {
  name: 'openai',
  checkAuth(req: IncomingMessage) {
    const header = req.headers.authorization;
    const key = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
    return keyError(key, "You didn't provide an API key. Provide it in the Authorization header (Bearer auth).");
  },
  error: openaiError,
};

export const azureFormat: WireFormat = {
  name: 'azure',
  checkAuth(req: IncomingMessage, query: URLSearchParams) {
    const header = req.headers['api-key'];
    const authError = keyError(
      typeof header === 'string' ? header.trim() : undefined,
      'Access denied due to missing subscription key. Make sure to include an api-key header.',
    );
    if (authError) return authError;
    if (!query.get('api-version')) return openaiError(400, 'Missing required query parameter: api-version.');
    return undefined;
  },
  error: openaiError,
};

interface OpenAIMessageSummary {
  texts: string[];
  lastUserText: string;
  endsWithToolResult: boolean;
}

function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  const parts: string[] = [];
  for (const part of content) {
    if (isRecord(part) && typeof part['text'] === 'string') parts.push(part['text']);
    else if (isRecord(part) && typeof part['refusal'] === 'string') parts.push(part['refusal']);
  }
  return parts.join('\n');
}

function summarizeMessages(messages: readonly unknown[]): OpenAIMessageSummary {
  const texts: string[] = [];
  let lastUserText = '';
  let lastRole = '';
  for (const m of messages) {
    if (!isRecord(m)) continue;
    let text = contentText(m['content']);
    const toolCalls = m['tool_calls'];
    if (Array.isArray(toolCalls)) {
      for (const call of toolCalls) {
        const fn = isRecord(call) ? call['function'] : undefined;
        if (isRecord(fn)) text += `${String(fn['name'] ?? '')}${String(fn['arguments'] ?? '')}`;
      }
    }
    texts.push(text);
    lastRole = typeof m['role'] === 'string' ? m['role'] : '';
    if (lastRole === 'user') lastUserText = text;
  }
  return { texts, lastUserText, endsWithToolResult: lastRole === 'tool' || lastRole === 'function' };
}

function toolSpecs(tools: unknown): ToolSpec[] {
  if (!Array.isArray(tools)) return [];
  const out: ToolSpec[] = [];
  for (const t of tools) {
    const fn = isRecord(t) ? t['function'] : undefined;
    if (isRecord(fn) && typeof fn['name'] === 'string') out.push({ name: fn['name'], schema: fn['parameters'] });
  }
  return out;
}

function jsonRequest(responseFormat: unknown): { schema?: unknown } | undefined {
  if (!isRecord(responseFormat)) return undefined;
  if (responseFormat['type'] === 'json_object') return {};
  if (responseFormat['type'] === 'json_schema') {
    const js = responseFormat['json_schema'];
    return isRecord(js) && js['schema'] !== undefined ? { schema: js['schema'] } : {};
  }
  return undefined;
}

function maxTokensOf(body: Record<string, unknown>): number | undefined {
  const v = body['max_completion_tokens'] ?? body['max_tokens'];
  return typeof v === 'number' ? v : undefined;
}

function finishReason(reply: Reply): 'stop' | 'length' | 'tool_calls' | 'content_filter' {
  if (reply.kind === 'refusal') return 'content_filter';
  if (reply.kind === 'tool') return 'tool_calls';
  return reply.truncated ? 'length' : 'stop';
}

/** OpenAI reports no cache writes: its parts are cache reads and reasoning. */
function openaiParts(lastUserText: string, promptTokens: number): BilledParts {
  return { ...usageParts(lastUserText, promptTokens), cacheWriteTokens: 0 };
}

/** `completionTokens` excludes the reasoning; completion_tokens includes it, as its part reasoning_tokens. */
function usage(promptTokens: number, completionTokens: number, parts: BilledParts): Record<string, unknown> {
  const completion = completionTokens + parts.reasoningTokens;
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completion,
    total_tokens: promptTokens + completion,
    prompt_tokens_details: { cached_tokens: parts.cachedTokens, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: parts.reasoningTokens,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

export async function handleChatCompletions(ctx: RequestContext): Promise<void> {
  const { body, res, model } = ctx;
  const messages = body['messages'];
  if (!Array.isArray(messages) || messages.length === 0) {
    const err = openaiError(400, "'messages' must be a non-empty array.");
    sendJson(res, err.status, err.body);
    return;
  }
  const summary = summarizeMessages(messages);
  const tools = toolSpecs(body['tools']);
  const promptTokens = countPromptTokens(summary.texts, tools.length > 0 ? JSON.stringify(body['tools']) : '');
  const reply = buildReply({
    model,
    lastUserText: summary.lastUserText,
    endsWithToolResult: summary.endsWithToolResult,
    maxTokens: maxTokensOf(body),
    tools,
    json: jsonRequest(body['response_format']),
  });
  const parts = openaiParts(summary.lastUserText, promptTokens);
  const id = ctx.ids.next('chatcmpl-');
  const callId = reply.kind === 'tool' ? ctx.ids.next('call_') : '';
  const headers = { 'x-request-id': id, 'openai-processing-ms': '0' };

  if (body['stream'] === true) {
    const streamOptions = body['stream_options'];
    const includeUsage = isRecord(streamOptions) && streamOptions['include_usage'] === true;
    await streamChat(ctx, { id, callId, reply, promptTokens, parts, includeUsage, headers });
    return;
  }

  ctx.meter.complete(promptTokens, reply.outputTokens, parts);
  const message: Record<string, unknown> = { role: 'assistant', content: null, refusal: null, annotations: [] };
  if (reply.kind === 'text') message['content'] = reply.text;
  if (reply.kind === 'tool') {
    message['tool_calls'] = [{ id: callId, type: 'function', function: { name: reply.name, arguments: reply.argsJson } }];
  }
  sendJson(
    res,
    200,
    {
      id,
      object: 'chat.completion',
      created: ctx.nowS,
      model,
      choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason(reply) }],
      usage: usage(promptTokens, reply.outputTokens, parts),
      service_tier: 'default',
      system_fingerprint: 'fp_simulator',
    },
    headers,
  );
}

interface StreamChatArgs {
  id: string;
  callId: string;
  reply: Reply;
  promptTokens: number;
  parts: BilledParts;
  includeUsage: boolean;
  headers: Record<string, string>;
}

async function streamChat(ctx: RequestContext, a: StreamChatArgs): Promise<void> {
  const writer = new SseWriter(ctx.res, ctx.stream, ctx.meter);
  writer.start(a.promptTokens, a.headers, a.parts);
  const base = { id: a.id, object: 'chat.completion.chunk', created: ctx.nowS, model: ctx.model, system_fingerprint: 'fp_simulator' };
  const frame = (delta: Record<string, unknown>, finish: string | null): string => {
    const chunk: Record<string, unknown> = { ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] };
    if (a.includeUsage) chunk['usage'] = null;
    return `data: ${JSON.stringify(chunk)}\n\n`;
  };
  const { reply } = a;

  if (reply.kind === 'tool') {
    const first = { index: 0, id: a.callId, type: 'function', function: { name: reply.name, arguments: '' } };
    if (!(await writer.send(frame({ role: 'assistant', content: null, tool_calls: [first] }, null)))) return;
    for (const piece of chunkToolArgs(reply)) {
      if (!(await writer.send(frame({ tool_calls: [{ index: 0, function: { arguments: piece.text } }] }, null), piece.tokenCount))) return;
    }
  } else {
    if (!(await writer.send(frame({ role: 'assistant', content: '', refusal: null }, null)))) return;
    if (reply.kind === 'text') {
      for (const piece of chunkTokens(reply.tokens)) {
        if (!(await writer.send(frame({ content: piece.text }, null), piece.tokenCount))) return;
      }
    }
  }
  if (!(await writer.send(frame({}, finishReason(reply))))) return;
  if (a.includeUsage) {
    const usageChunk = { ...base, choices: [], usage: usage(a.promptTokens, reply.outputTokens, a.parts) };
    if (!(await writer.send(`data: ${JSON.stringify(usageChunk)}\n\n`))) return;
  }
  await writer.finish('data: [DONE]\n\n');
}

/** Default vector size: 3072 for `*large*` models, else 1536; `dimensions` overrides. */
export function handleEmbeddings(ctx: RequestContext): void {
  const { body, res, model } = ctx;
  const input = body['input'];
  let items: Array<string | number[]>;
  if (typeof input === 'string') items = [input];
  else if (Array.isArray(input) && input.length > 0 && input.every((x) => typeof x === 'number')) items = [input as number[]];
  else if (Array.isArray(input) && input.length > 0 && input.every((x) => typeof x === 'string' || Array.isArray(x))) {
    items = input as Array<string | number[]>;
  } else {
    const err = openaiError(400, "'input' must be a string, an array of strings or an array of token arrays.");
    sendJson(res, err.status, err.body);
    return;
  }
  const dims = dimensionsOr(body['dimensions'], model.includes('large') ? 3072 : 1536);
  const base64 = body['encoding_format'] === 'base64';
  let promptTokens = 0;
  const data = items.map((item, index) => {
    const text = typeof item === 'string' ? item : item.join(',');
    promptTokens += typeof item === 'string' ? countTokens(item) : item.length;
    const vector = embedText(text, dims);
    return { object: 'embedding', index, embedding: base64 ? embeddingToBase64(vector) : Array.from(vector) };
  });
  ctx.meter.complete(promptTokens, 0);
  sendJson(res, 200, { object: 'list', data, model, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } });
}
