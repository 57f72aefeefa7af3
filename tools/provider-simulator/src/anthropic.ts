import type { IncomingMessage } from 'node:http';
import { SseWriter, sendJson } from './http.js';
import { buildReply, chunkTokens, chunkToolArgs, countPromptTokens, usageParts, type Reply, type ToolSpec, type UsageParts } from './reply.js';
import { BAD_KEY, type ErrorReply, type RequestContext, type WireFormat } from './request-context.js';
import { isRecord } from './schema-sample.js';

/** Anthropic Messages API: `POST /v1/messages` (JSON and SSE) and `/v1/messages/count_tokens`. */

function anthropicErrorType(status: number): string {
  switch (status) {
    case 400:
      return 'invalid_request_error';
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 529:
      return 'overloaded_error';
    default:
      return status >= 500 ? 'api_error' : 'invalid_request_error';
  }
}

export function anthropicError(status: number, message: string, retryAfterS?: number): ErrorReply {
  const reply: ErrorReply = {
    status,
    body: { type: 'error', error: { type: anthropicErrorType(status), message }, request_id: 'req_simulator' },
    headers: { 'request-id': 'req_simulator' },
  };
  if (retryAfterS !== undefined) reply.headers = { ...reply.headers, 'retry-after': String(retryAfterS) };
  return reply;
}

export const anthropicFormat: WireFormat = {
  name: 'anthropic',
  checkAuth(req: IncomingMessage) {
    const key = req.headers['x-api-key'];
    if (typeof key !== 'string' || key.trim().length === 0) return anthropicError(401, 'x-api-key header is required');
    if (key.trim() === BAD_KEY) return anthropicError(401, 'invalid x-api-key');
    if (!req.headers['anthropic-version']) return anthropicError(400, 'anthropic-version: header is required');
    return undefined;
  },
  error: anthropicError,
};

function blocksText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  const parts: string[] = [];
  for (const block of content) {
    if (!isRecord(block)) continue;
    if (block['type'] === 'text' && typeof block['text'] === 'string') parts.push(block['text']);
    else if (block['type'] === 'tool_use') parts.push(`${String(block['name'] ?? '')}${JSON.stringify(block['input'] ?? {})}`);
    else if (block['type'] === 'tool_result') parts.push(blocksText(block['content']));
  }
  return parts.join('\n');
}

interface Summary {
  texts: string[];
  lastUserText: string;
  endsWithToolResult: boolean;
}

function summarize(body: Record<string, unknown>, messages: readonly unknown[]): Summary {
  const texts: string[] = [];
  const system = blocksText(body['system']);
  if (system.length > 0) texts.push(system);
  let lastUserText = '';
  let endsWithToolResult = false;
  for (const m of messages) {
    if (!isRecord(m)) continue;
    const text = blocksText(m['content']);
    texts.push(text);
    const content = m['content'];
    endsWithToolResult = Array.isArray(content) && content.some((b) => isRecord(b) && b['type'] === 'tool_result');
    if (m['role'] === 'user') lastUserText = text;
  }
  return { texts, lastUserText, endsWithToolResult };
}

function toolSpecs(tools: unknown): ToolSpec[] {
  if (!Array.isArray(tools)) return [];
  const out: ToolSpec[] = [];
  for (const t of tools) {
    if (isRecord(t) && typeof t['name'] === 'string' && t['input_schema'] !== undefined) {
      out.push({ name: t['name'], schema: t['input_schema'] });
    }
  }
  return out;
}

function stopReason(reply: Reply): 'end_turn' | 'max_tokens' | 'tool_use' | 'refusal' {
  if (reply.kind === 'refusal') return 'refusal';
  if (reply.kind === 'tool') return 'tool_use';
  return reply.truncated ? 'max_tokens' : 'end_turn';
}

function validate(ctx: RequestContext, requireMaxTokens: boolean): unknown[] | undefined {
  const messages = ctx.body['messages'];
  let message: string | undefined;
  if (!Array.isArray(messages) || messages.length === 0) message = 'messages: Field required';
  else if (requireMaxTokens) {
    const maxTokens = ctx.body['max_tokens'];
    if (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens) || maxTokens < 1) message = 'max_tokens: Field required';
  }
  if (message !== undefined || !Array.isArray(messages)) {
    const err = anthropicError(400, message ?? 'invalid request');
    sendJson(ctx.res, err.status, err.body, err.headers);
    return undefined;
  }
  return messages;
}

function promptTokensOf(ctx: RequestContext, summary: Summary): number {
  const tools = ctx.body['tools'];
  return countPromptTokens(summary.texts, Array.isArray(tools) && tools.length > 0 ? JSON.stringify(tools) : '');
}

export function handleCountTokens(ctx: RequestContext): void {
  const messages = validate(ctx, false);
  if (!messages) return;
  sendJson(ctx.res, 200, { input_tokens: promptTokensOf(ctx, summarize(ctx.body, messages)) });
}

export async function handleMessages(ctx: RequestContext): Promise<void> {
  const messages = validate(ctx, true);
  if (!messages) return;
  const { body, model } = ctx;
  const summary = summarize(body, messages);
  const inputTokens = promptTokensOf(ctx, summary);
  const reply = buildReply({
    model,
    lastUserText: summary.lastUserText,
    endsWithToolResult: summary.endsWithToolResult,
    maxTokens: body['max_tokens'] as number,
    tools: toolSpecs(body['tools']),
  });
  const parts = usageParts(summary.lastUserText, inputTokens);
  const id = ctx.ids.next('msg_');
  const toolId = reply.kind === 'tool' ? ctx.ids.next('toolu_') : '';
  const headers = { 'request-id': `req_${id}` };

  if (body['stream'] === true) {
    await streamMessages(ctx, { id, toolId, reply, inputTokens, parts, headers });
    return;
  }
  ctx.meter.complete(inputTokens, reply.outputTokens + parts.reasoningTokens, reported(parts));
  const content: unknown[] = [];
  if (reply.kind === 'text') content.push({ type: 'text', text: reply.text });
  if (reply.kind === 'tool') content.push({ type: 'tool_use', id: toolId, name: reply.name, input: reply.args });
  sendJson(
    ctx.res,
    200,
    {
      id,
      type: 'message',
      role: 'assistant',
      model,
      content,
      stop_reason: stopReason(reply),
      stop_sequence: null,
      usage: { ...inputUsage(inputTokens, parts), output_tokens: reply.outputTokens + parts.reasoningTokens, service_tier: 'standard' },
    },
    headers,
  );
}

/**
 * Anthropic's input_tokens leaves out the prompt-cache reads and writes, reported beside it.
 * Extended thinking is in output_tokens and not reported apart.
 */
function inputUsage(inputTokens: number, parts: UsageParts): Record<string, number> {
  return {
    input_tokens: inputTokens - parts.cachedTokens - parts.cacheWriteTokens,
    cache_creation_input_tokens: parts.cacheWriteTokens,
    cache_read_input_tokens: parts.cachedTokens,
  };
}

/** What the bill keeps apart: Anthropic reports no reasoning count of its own. */
function reported(parts: UsageParts): UsageParts {
  return { ...parts, reasoningTokens: 0 };
}

interface StreamArgs {
  id: string;
  toolId: string;
  reply: Reply;
  inputTokens: number;
  parts: UsageParts;
  headers: Record<string, string>;
}

function event(type: string, data: unknown): string {
  return `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

async function streamMessages(ctx: RequestContext, a: StreamArgs): Promise<void> {
  const writer = new SseWriter(ctx.res, ctx.stream, ctx.meter);
  writer.start(a.inputTokens, a.headers, reported(a.parts));
  // Thinking comes before the answer: billed with the input, as output.
  ctx.meter.output(a.parts.reasoningTokens);
  const { reply } = a;
  const start = {
    type: 'message_start',
    message: {
      id: a.id,
      type: 'message',
      role: 'assistant',
      model: ctx.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { ...inputUsage(a.inputTokens, a.parts), output_tokens: 1, service_tier: 'standard' },
    },
  };
  if (!(await writer.send(event('message_start', start)))) return;

  if (reply.kind !== 'refusal') {
    const block =
      reply.kind === 'tool' ? { type: 'tool_use', id: a.toolId, name: reply.name, input: {} } : { type: 'text', text: '' };
    if (!(await writer.send(event('content_block_start', { type: 'content_block_start', index: 0, content_block: block })))) return;
    if (!(await writer.send(event('ping', { type: 'ping' })))) return;
    for (const piece of reply.kind === 'tool' ? chunkToolArgs(reply) : chunkTokens(reply.tokens)) {
      const delta = reply.kind === 'tool' ? { type: 'input_json_delta', partial_json: piece.text } : { type: 'text_delta', text: piece.text };
      if (!(await writer.send(event('content_block_delta', { type: 'content_block_delta', index: 0, delta }), piece.tokenCount))) return;
    }
    if (!(await writer.send(event('content_block_stop', { type: 'content_block_stop', index: 0 })))) return;
  }
  const messageDelta = {
    type: 'message_delta',
    delta: { stop_reason: stopReason(reply), stop_sequence: null },
    usage: { output_tokens: reply.outputTokens + a.parts.reasoningTokens },
  };
  if (!(await writer.send(event('message_delta', messageDelta)))) return;
  await writer.finish(event('message_stop', { type: 'message_stop' }));
}
