import { z } from 'zod';
import { AppError, quoted } from '@llmgw/errors';
import { CatalogEntryKind, Operation, type CatalogEntry } from '@llmgw/proto/router';
import {
  ChatRequest,
  EmbedRequest,
  FinishReason,
  ResponseFormatType,
  Role,
  type ChatResponse,
  type ChatStreamResponse,
  type Message,
  type ResponseFormat,
  type Usage,
} from '@llmgw/proto/v1';
import type { GatewayPipeline } from '../pipeline.js';
import { invalid } from '../validate.js';
import { gatewayFields, routingHeaders, routingJson, type HttpFailure } from './errors.js';
import type { Dialect, Exchange } from './exchange.js';
import { intentBodyFields, intentOf } from './intent.js';
import { parseBody, jsonText, textOfParts } from './parse.js';

const ERROR_TYPES: Record<number, [type: string, code: string | null]> = {
  400: ['invalid_request_error', null],
  401: ['authentication_error', 'invalid_api_key'],
  403: ['permission_error', 'permission_denied'],
  404: ['invalid_request_error', 'not_found'],
  405: ['invalid_request_error', 'method_not_allowed'],
  413: ['invalid_request_error', 'request_too_large'],
  429: ['rate_limit_error', 'rate_limit_exceeded'],
  499: ['invalid_request_error', 'client_closed_request'],
  500: ['server_error', 'internal_error'],
  503: ['server_error', 'service_unavailable'],
  504: ['server_error', 'timeout'],
};

/** OpenAI's error body: `{ error: { message, type, param, code } }`, and its `x-request-id` header. */
export const OPENAI: Dialect = {
  requestIdHeader: 'x-request-id',
  errorBody(f: HttpFailure) {
    const [type, code] = ERROR_TYPES[f.status] ?? ['server_error', null];
    return {
      error: { message: f.message, type, param: f.param ?? null, code: f.status === 404 && f.param === 'model' ? 'model_not_found' : code },
      ...(f.routing ? { llmgw: { routing: routingJson(f.routing) } } : {}),
    };
  },
};

/** The pipeline's names of fields that this API spells differently. */
function openAiField(field: string): string {
  return field
    .replace(/^tools\[(\d+)\]\.parameters_json_schema/, 'tools[$1].function.parameters')
    .replace(/^tools\[(\d+)\]\.name/, 'tools[$1].function.name')
    .replace(/\.tool_calls\[(\d+)\]\.arguments_json/, '.tool_calls[$1].function.arguments')
    .replace(/^inputs/, 'input');
}

const toolCall = z.strictObject({
  id: z.string(),
  type: z.literal('function'),
  function: z.strictObject({ name: z.string(), arguments: z.string() }),
});

const message = z.discriminatedUnion('role', [
  z.strictObject({ role: z.literal('system'), content: z.unknown(), name: z.string().optional() }),
  z.strictObject({ role: z.literal('developer'), content: z.unknown(), name: z.string().optional() }),
  z.strictObject({ role: z.literal('user'), content: z.unknown(), name: z.string().optional() }),
  z.strictObject({
    role: z.literal('assistant'),
    content: z.unknown().optional(),
    name: z.string().optional(),
    tool_calls: z.array(toolCall).optional(),
    refusal: z.string().nullable().optional(),
  }),
  z.strictObject({ role: z.literal('tool'), content: z.unknown(), tool_call_id: z.string() }),
]);

const jsonObject = z.record(z.string(), z.unknown());

const chatBody = z.strictObject({
  model: z.string().min(1),
  messages: z.array(message),
  stream: z.boolean().nullable().optional(),
  stream_options: z.strictObject({ include_usage: z.boolean().optional() }).nullable().optional(),
  max_tokens: z.number().int().nullable().optional(),
  max_completion_tokens: z.number().int().nullable().optional(),
  temperature: z.number().nullable().optional(),
  top_p: z.number().nullable().optional(),
  stop: z.union([z.string(), z.array(z.string())]).nullable().optional(),
  tools: z
    .array(
      z.strictObject({
        type: z.literal('function'),
        function: z.strictObject({ name: z.string(), description: z.string().optional(), parameters: jsonObject.optional(), strict: z.boolean().nullable().optional() }),
      }),
    )
    .optional(),
  tool_choice: z.union([z.enum(['none', 'auto', 'required']), z.strictObject({ type: z.literal('function'), function: z.strictObject({ name: z.string() }) })]).optional(),
  response_format: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('text') }),
      z.strictObject({ type: z.literal('json_object') }),
      z.strictObject({
        type: z.literal('json_schema'),
        json_schema: z.strictObject({ name: z.string(), description: z.string().optional(), schema: jsonObject.optional(), strict: z.boolean().nullable().optional() }),
      }),
    ])
    .optional(),
  user: z.string().optional(),
  // Accepted at their only supported value, so that SDKs and apps that send the default work.
  n: z.literal(1).nullable().optional(),
  parallel_tool_calls: z.boolean().optional(),
  ...intentBodyFields,
});

type ChatBody = z.infer<typeof chatBody>;

function messageOf(m: ChatBody['messages'][number], i: number): Message {
  const field = `messages[${i}].content`;
  const base = { name: 'name' in m ? (m.name ?? '') : '', toolCalls: [], toolCallId: '' };
  switch (m.role) {
    case 'system':
    case 'developer':
      return { ...base, role: Role.ROLE_SYSTEM, content: textOfParts(m.content, field) };
    case 'user':
      return { ...base, role: Role.ROLE_USER, content: textOfParts(m.content, field) };
    case 'assistant':
      return {
        ...base,
        role: Role.ROLE_ASSISTANT,
        content: textOfParts(m.content, field),
        toolCalls: (m.tool_calls ?? []).map((tc) => ({ id: tc.id, name: tc.function.name, argumentsJson: tc.function.arguments })),
      };
    case 'tool':
      return { ...base, role: Role.ROLE_TOOL, content: textOfParts(m.content, field), toolCallId: m.tool_call_id };
  }
}

function responseFormatOf(rf: ChatBody['response_format']): ResponseFormat | undefined {
  switch (rf?.type) {
    case undefined:
      return undefined;
    case 'text':
      return { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT, jsonSchema: '', schemaName: '' };
    case 'json_object':
      return { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT, jsonSchema: '', schemaName: '' };
    case 'json_schema':
      return {
        type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
        jsonSchema: rf.json_schema.schema ? jsonText(rf.json_schema.schema, 'response_format.json_schema.schema') : '',
        schemaName: rf.json_schema.name,
      };
  }
}

/** An OpenAI chat completion request as the gateway's normalised request. */
export function chatRequestOf(b: ChatBody, headers: Exchange['req']['headers']): ChatRequest {
  const stop = b.stop ?? [];
  return ChatRequest.fromPartial({
    messages: b.messages.map(messageOf),
    maxTokens: b.max_completion_tokens ?? b.max_tokens ?? undefined,
    temperature: b.temperature ?? undefined,
    topP: b.top_p ?? undefined,
    stop: typeof stop === 'string' ? [stop] : stop,
    tools: (b.tools ?? []).map((t, i) => ({
      name: t.function.name,
      description: t.function.description ?? '',
      parametersJsonSchema: t.function.parameters ? jsonText(t.function.parameters, `tools[${i}].function.parameters`) : '',
    })),
    toolChoice: typeof b.tool_choice === 'object' ? b.tool_choice.function.name : (b.tool_choice ?? ''),
    responseFormat: responseFormatOf(b.response_format),
    user: b.user ?? '',
    ...intentOf(b, headers),
  });
}

const FINISH: Record<number, string> = {
  [FinishReason.FINISH_REASON_STOP]: 'stop',
  [FinishReason.FINISH_REASON_LENGTH]: 'length',
  [FinishReason.FINISH_REASON_TOOL_CALLS]: 'tool_calls',
  [FinishReason.FINISH_REASON_CONTENT_FILTER]: 'content_filter',
};

/** OpenAI's usage: cached tokens within prompt_tokens, reasoning tokens within completion_tokens. */
function usageJson(u: Usage | undefined) {
  const input = u?.inputTokens ?? 0;
  const output = u?.outputTokens ?? 0;
  return {
    prompt_tokens: input,
    completion_tokens: output,
    total_tokens: input + output,
    prompt_tokens_details: { cached_tokens: u?.cachedInputTokens ?? 0 },
    completion_tokens_details: { reasoning_tokens: u?.reasoningTokens ?? 0 },
  };
}

function completionOf(r: ChatResponse, created: number, llmgw: ReturnType<typeof gatewayFields>) {
  const m = r.message;
  const toolCalls = (m?.toolCalls ?? []).map((tc) => ({ id: tc.id, type: 'function', function: { name: tc.name, arguments: tc.argumentsJson } }));
  return {
    id: r.id,
    object: 'chat.completion',
    created,
    model: r.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: m?.content || (toolCalls.length > 0 ? null : ''), refusal: null, ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}) },
        logprobs: null,
        finish_reason: FINISH[r.finishReason] ?? 'stop',
      },
    ],
    usage: usageJson(r.usage),
    llmgw,
  };
}

/** POST /v1/chat/completions: JSON, or SSE chunks ending with `data: [DONE]`. */
export async function chatCompletions(pipeline: GatewayPipeline, x: Exchange, body: unknown): Promise<void> {
  x.fieldName = openAiField;
  const b = parseBody(chatBody, body);
  const req = chatRequestOf(b, x.req.headers);
  const created = Math.floor(Date.now() / 1000);
  if (!b.stream) {
    const r = await pipeline.chat(req, x.ctx, b.model);
    const llmgw = gatewayFields(r);
    x.json(200, completionOf(r, created, llmgw), routingHeaders(llmgw.routing));
    return;
  }
  const includeUsage = b.stream_options?.include_usage === true;
  let first = true;
  const chunkOf = (c: ChatStreamResponse, choices: unknown[], extra: object = {}) =>
    JSON.stringify({ id: c.id, object: 'chat.completion.chunk', created, model: c.model, system_fingerprint: null, choices, ...extra });
  await pipeline.chatStream(
    req,
    x.ctx,
    async (c) => {
      const delta: Record<string, unknown> = {};
      if (first) delta.role = 'assistant';
      first = false;
      if (c.contentDelta) delta.content = c.contentDelta;
      if (c.toolCallDeltas.length > 0) {
        delta.tool_calls = c.toolCallDeltas.map((d) => ({
          index: d.index,
          ...(d.id ? { id: d.id, type: 'function' } : {}),
          function: { ...(d.name ? { name: d.name } : {}), arguments: d.argumentsJsonDelta },
        }));
      }
      const last = c.finishReason !== FinishReason.FINISH_REASON_UNSPECIFIED;
      if (!last || Object.keys(delta).length > 0) await x.event(chunkOf(c, [{ index: 0, delta, logprobs: null, finish_reason: null }]));
      if (!last) return;
      const extension = { llmgw: gatewayFields(c) };
      // A stream that broke mid-way reports its usage, then the error (thrown by the pipeline).
      if (c.finishReason !== FinishReason.FINISH_REASON_ERROR) {
        await x.event(chunkOf(c, [{ index: 0, delta: {}, logprobs: null, finish_reason: FINISH[c.finishReason] ?? 'stop' }], includeUsage ? {} : extension));
      }
      if (includeUsage) await x.event(chunkOf(c, [], { usage: usageJson(c.usage), ...extension }));
    },
    b.model,
  );
  await x.event('[DONE]');
  x.end();
}

const embedBody = z.strictObject({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(z.string()), z.array(z.number()), z.array(z.array(z.number()))]),
  encoding_format: z.enum(['float', 'base64']).optional(),
  dimensions: z.number().int().positive().optional(),
  user: z.string().optional(),
  timeout_ms: intentBodyFields.timeout_ms,
  metadata: intentBodyFields.metadata,
});

/** Little-endian float32, as OpenAI encodes `encoding_format: base64` (the SDK's default). */
function base64Floats(values: readonly number[]): string {
  return Buffer.from(new Float32Array(values).buffer).toString('base64');
}

/** POST /v1/embeddings. */
export async function embeddings(pipeline: GatewayPipeline, x: Exchange, body: unknown): Promise<void> {
  x.fieldName = openAiField;
  const b = parseBody(embedBody, body);
  const inputs = typeof b.input === 'string' ? [b.input] : b.input;
  if (!inputs.every((v): v is string => typeof v === 'string')) throw invalid('input', 'token arrays are not supported; send text');
  const intent = intentOf(b, x.req.headers);
  const req = EmbedRequest.fromPartial({ inputs, user: b.user ?? '', dimensions: b.dimensions ?? 0, timeoutMs: intent.timeoutMs, metadata: intent.metadata });
  const r = await pipeline.embed(req, x.ctx, b.model);
  const base64 = b.encoding_format === 'base64';
  const tokens = r.usage?.inputTokens ?? 0;
  const llmgw = gatewayFields(r);
  x.json(
    200,
    {
      object: 'list',
      data: r.embeddings.map((e) => ({ object: 'embedding', index: e.index, embedding: base64 ? base64Floats(e.values) : e.values })),
      model: r.model,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
      llmgw,
    },
    routingHeaders(llmgw.routing),
  );
}

function modelJson(e: CatalogEntry) {
  return {
    id: e.name,
    object: 'model',
    created: 0,
    owned_by: e.provider || 'llmgateway',
    llmgw: {
      kind: e.kind === CatalogEntryKind.CATALOG_ENTRY_KIND_ROUTE ? 'route' : 'model',
      operation: e.operation === Operation.OPERATION_EMBED ? 'embed' : 'chat',
      capabilities: e.capabilities,
    },
  };
}

/** GET /v1/models: the routes and models this key may name. */
export async function models(pipeline: GatewayPipeline, x: Exchange): Promise<void> {
  const entries = await pipeline.listModels(x.ctx);
  x.json(200, { object: 'list', data: entries.map(modelJson) });
}

/** GET /v1/models/{id}. */
export async function retrieveModel(pipeline: GatewayPipeline, x: Exchange, _body: unknown, id: string): Promise<void> {
  const entry = (await pipeline.listModels(x.ctx)).find((e) => e.name === id);
  if (!entry) throw notFoundModel(id);
  x.json(200, modelJson(entry));
}

function notFoundModel(id: string): AppError {
  return new AppError('not_found', `model: no route or model is named ${quoted(id)} for this key`);
}
