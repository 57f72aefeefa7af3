import { z } from 'zod';
import { ChatRequest, FinishReason, Role, type ChatResponse, type ChatStreamResponse, type Message, type Usage } from '@llmgw/proto/v1';
import type { GatewayPipeline } from '../pipeline.js';
import { gatewayFields, routingHeaders, routingJson, type HttpFailure } from './errors.js';
import type { Dialect, Exchange } from './exchange.js';
import { intentBodyFields, intentOf } from './intent.js';
import { jsonText, parseBody, textOfParts } from './parse.js';

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  405: 'invalid_request_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  499: 'invalid_request_error',
  500: 'api_error',
  503: 'overloaded_error',
  504: 'timeout_error',
};

/** Anthropic's error body: `{ type: "error", error: { type, message } }`, and its `request-id` header. */
export const ANTHROPIC: Dialect = {
  requestIdHeader: 'request-id',
  errorBody(f: HttpFailure) {
    return {
      type: 'error',
      error: { type: ERROR_TYPES[f.status] ?? 'api_error', message: f.message },
      ...(f.routing ? { llmgw: { routing: routingJson(f.routing) } } : {}),
    };
  },
};

const cacheControl = z.unknown().optional();
const textBlock = z.strictObject({ type: z.literal('text'), text: z.string(), cache_control: cacheControl, citations: z.unknown().optional() });

const block = z.discriminatedUnion('type', [
  textBlock,
  z.strictObject({ type: z.literal('tool_use'), id: z.string(), name: z.string(), input: z.record(z.string(), z.unknown()), cache_control: cacheControl }),
  z.strictObject({
    type: z.literal('tool_result'),
    tool_use_id: z.string(),
    content: z.unknown().optional(),
    is_error: z.boolean().optional(),
    cache_control: cacheControl,
  }),
]);

const messagesBody = z.strictObject({
  model: z.string().min(1),
  max_tokens: z.number().int(),
  messages: z.array(z.strictObject({ role: z.enum(['user', 'assistant']), content: z.union([z.string(), z.array(block)]) })),
  system: z.union([z.string(), z.array(textBlock)]).optional(),
  stop_sequences: z.array(z.string()).optional(),
  temperature: z.number().optional(),
  top_p: z.number().optional(),
  stream: z.boolean().optional(),
  tools: z
    .array(z.strictObject({ name: z.string(), description: z.string().optional(), input_schema: z.record(z.string(), z.unknown()), type: z.literal('custom').optional(), cache_control: cacheControl }))
    .optional(),
  tool_choice: z
    .strictObject({ type: z.enum(['auto', 'any', 'none', 'tool']), name: z.string().optional(), disable_parallel_tool_use: z.boolean().optional() })
    .optional(),
  ...intentBodyFields,
  // Anthropic's `metadata.user_id` is the end user; other string entries are the gateway's metadata.
  metadata: z.record(z.string(), z.string()).optional(),
});

type MessagesBody = z.infer<typeof messagesBody>;

const TOOL_CHOICE: Record<string, string> = { auto: 'auto', any: 'required', none: 'none' };

const msg = (role: Role, content: string, over: Partial<Message> = {}): Message => ({ role, content, name: '', toolCalls: [], toolCallId: '', ...over });

/**
 * Anthropic's messages as the normalised conversation: the system prompt first, tool results as
 * tool messages, tool uses as the assistant's tool calls. `origins[k]` is the Anthropic field a
 * normalised message came from, so that an error names what the caller sent.
 */
function conversationOf(b: MessagesBody): { messages: Message[]; origins: string[] } {
  const messages: Message[] = [];
  const origins: string[] = [];
  const system = typeof b.system === 'string' ? b.system : (b.system ?? []).map((t) => t.text).join('\n');
  if (system) {
    messages.push(msg(Role.ROLE_SYSTEM, system));
    origins.push('system');
  }
  b.messages.forEach((m, i) => {
    const field = `messages[${i}]`;
    const push = (message: Message) => {
      messages.push(message);
      origins.push(field);
    };
    if (typeof m.content === 'string') return push(msg(m.role === 'user' ? Role.ROLE_USER : Role.ROLE_ASSISTANT, m.content));
    const texts: string[] = [];
    const toolCalls: Message['toolCalls'] = [];
    m.content.forEach((blk, j) => {
      if (blk.type === 'text') texts.push(blk.text);
      else if (blk.type === 'tool_use') toolCalls.push({ id: blk.id, name: blk.name, argumentsJson: jsonText(blk.input, `${field}.content[${j}].input`) });
      else push(msg(Role.ROLE_TOOL, textOfParts(blk.content, `${field}.content[${j}].content`), { toolCallId: blk.tool_use_id }));
    });
    if (m.role === 'assistant') push(msg(Role.ROLE_ASSISTANT, texts.join('\n'), { toolCalls }));
    else if (texts.length > 0) push(msg(Role.ROLE_USER, texts.join('\n')));
  });
  return { messages, origins };
}

function chatRequestOf(b: MessagesBody, headers: Exchange['req']['headers']): { req: ChatRequest; origins: string[] } {
  const { messages, origins } = conversationOf(b);
  const { user_id: user, ...metadata } = b.metadata ?? {};
  const choice = b.tool_choice;
  const req = ChatRequest.fromPartial({
    messages,
    maxTokens: b.max_tokens,
    temperature: b.temperature,
    topP: b.top_p,
    stop: b.stop_sequences ?? [],
    tools: (b.tools ?? []).map((t, i) => ({ name: t.name, description: t.description ?? '', parametersJsonSchema: jsonText(t.input_schema, `tools[${i}].input_schema`) })),
    toolChoice: choice ? (choice.type === 'tool' ? (choice.name ?? '') : (TOOL_CHOICE[choice.type] ?? '')) : '',
    user: user ?? '',
    ...intentOf({ ...b, metadata }, headers),
  });
  return { req, origins };
}

/** The pipeline's field names in this API's terms (messages renumbered around the lifted system prompt). */
function anthropicField(origins: readonly string[]): (field: string) => string {
  return (field) =>
    field
      .replace(/^messages\[(\d+)\]/, (whole, k: string) => origins[Number(k)] ?? whole)
      .replace(/^tools\[(\d+)\]\.parameters_json_schema/, 'tools[$1].input_schema')
      .replace(/^stop/, 'stop_sequences');
}

const STOP_REASON: Record<number, string> = {
  [FinishReason.FINISH_REASON_STOP]: 'end_turn',
  [FinishReason.FINISH_REASON_LENGTH]: 'max_tokens',
  [FinishReason.FINISH_REASON_TOOL_CALLS]: 'tool_use',
  [FinishReason.FINISH_REASON_CONTENT_FILTER]: 'refusal',
};

function argumentsOf(json: string): unknown {
  try {
    return JSON.parse(json || '{}');
  } catch {
    return {};
  }
}

/** Anthropic's usage: input_tokens leaves out the prompt-cache reads and writes, reported beside it. */
function usageJson(u: Usage | undefined) {
  const cached = u?.cachedInputTokens ?? 0;
  const written = u?.cacheWriteInputTokens ?? 0;
  return {
    input_tokens: Math.max(0, (u?.inputTokens ?? 0) - cached - written),
    cache_read_input_tokens: cached,
    cache_creation_input_tokens: written,
    output_tokens: u?.outputTokens ?? 0,
  };
}

function messageOf(r: ChatResponse, llmgw: ReturnType<typeof gatewayFields>) {
  const m = r.message;
  const content: unknown[] = [];
  if (m?.content) content.push({ type: 'text', text: m.content });
  for (const tc of m?.toolCalls ?? []) content.push({ type: 'tool_use', id: tc.id, name: tc.name, input: argumentsOf(tc.argumentsJson) });
  return {
    id: r.id,
    type: 'message',
    role: 'assistant',
    model: r.model,
    content,
    stop_reason: STOP_REASON[r.finishReason] ?? 'end_turn',
    stop_sequence: null,
    usage: usageJson(r.usage),
    llmgw,
  };
}

/** POST /v1/messages: JSON, or Anthropic's event stream (message_start … message_stop). */
export async function messages(pipeline: GatewayPipeline, x: Exchange, body: unknown): Promise<void> {
  const b = parseBody(messagesBody, body);
  const { req, origins } = chatRequestOf(b, x.req.headers);
  x.fieldName = anthropicField(origins);
  if (!b.stream) {
    const r = await pipeline.chat(req, x.ctx, b.model);
    const llmgw = gatewayFields(r);
    x.json(200, messageOf(r, llmgw), routingHeaders(llmgw.routing));
    return;
  }
  const stream = new AnthropicEvents(x);
  await pipeline.chatStream(req, x.ctx, (c) => stream.chunk(c), b.model);
  x.end();
}

/** Turns the gateway's stream into Anthropic's content blocks: one text block, one block per tool call. */
class AnthropicEvents {
  private started = false;
  private blocks = 0;
  /** The open block: text, or the tool call of that stream index. */
  private open: { kind: 'text' } | { kind: 'tool'; toolIndex: number } | undefined;

  constructor(private readonly x: Exchange) {}

  async chunk(c: ChatStreamResponse): Promise<void> {
    if (!this.started) {
      this.started = true;
      await this.send('message_start', {
        type: 'message_start',
        message: { id: c.id, type: 'message', role: 'assistant', model: c.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0 } },
      });
    }
    if (c.contentDelta) {
      if (this.open?.kind !== 'text') await this.startBlock({ kind: 'text' }, { type: 'text', text: '' });
      await this.send('content_block_delta', { type: 'content_block_delta', index: this.blocks - 1, delta: { type: 'text_delta', text: c.contentDelta } });
    }
    for (const d of c.toolCallDeltas) {
      if (this.open?.kind !== 'tool' || this.open.toolIndex !== d.index) {
        await this.startBlock({ kind: 'tool', toolIndex: d.index }, { type: 'tool_use', id: d.id, name: d.name, input: {} });
      }
      if (d.argumentsJsonDelta) {
        await this.send('content_block_delta', { type: 'content_block_delta', index: this.blocks - 1, delta: { type: 'input_json_delta', partial_json: d.argumentsJsonDelta } });
      }
    }
    if (c.finishReason === FinishReason.FINISH_REASON_UNSPECIFIED) return;
    await this.closeBlock();
    // A stream that broke mid-way ends with the error event the pipeline's failure becomes.
    if (c.finishReason === FinishReason.FINISH_REASON_ERROR) return;
    await this.send('message_delta', {
      type: 'message_delta',
      delta: { stop_reason: STOP_REASON[c.finishReason] ?? 'end_turn', stop_sequence: null },
      usage: usageJson(c.usage),
      llmgw: gatewayFields(c),
    });
    await this.send('message_stop', { type: 'message_stop' });
  }

  private async startBlock(open: NonNullable<AnthropicEvents['open']>, contentBlock: object): Promise<void> {
    await this.closeBlock();
    this.open = open;
    await this.send('content_block_start', { type: 'content_block_start', index: this.blocks++, content_block: contentBlock });
  }

  private async closeBlock(): Promise<void> {
    if (!this.open) return;
    this.open = undefined;
    await this.send('content_block_stop', { type: 'content_block_stop', index: this.blocks - 1 });
  }

  private send(event: string, data: object): Promise<void> {
    return this.x.event(JSON.stringify(data), event);
  }
}

/** GET /v1/models as the Anthropic SDK reads it. */
export async function anthropicModels(pipeline: GatewayPipeline, x: Exchange): Promise<void> {
  const entries = await pipeline.listModels(x.ctx);
  const data = entries.map((e) => ({ type: 'model', id: e.name, display_name: e.name, created_at: '1970-01-01T00:00:00Z' }));
  x.json(200, { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null });
}
