import { AppError } from '@llmgw/errors';
import { ToolChoiceMode, type ChatParams, type ResponseFormatSpec, type ToolChoice, type ToolSpec, type UsageLabels } from '@llmgw/proto/executor';
import type { Plan } from '@llmgw/proto/router';
import { LatencyClass, ResponseFormatType, Role, type ChatRequest, type EmbedRequest, type GetUsageRequest } from '@llmgw/proto/v1';

const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const MAX_MESSAGES = 1_000;
const MAX_STOP = 4;
const MAX_METADATA_ENTRIES = 32;
const MAX_TIMEOUT_MS = 600_000;
const MAX_EMBED_INPUTS = 2_048;
/** The largest embedding any provider we speak returns (OpenAI text-embedding-3-large). */
const MAX_EMBED_DIMENSIONS = 3_072;
/*
 * Sizes in UTF-8 bytes, checked before any JSON parser or tokenizer runs, so that the work a
 * request costs is bounded by these and not by the 4 MiB message limit alone.
 */
/** All message contents of a request together (about 500 k tokens of English). */
const MAX_CONTENT_BYTES = 2 * 1024 * 1024;
const MAX_TOOLS = 128;
/** One JSON schema (a tool's parameters, a response format). */
const MAX_SCHEMA_BYTES = 64 * 1024;
/** One tool call's arguments in the conversation. */
const MAX_ARGUMENTS_BYTES = 256 * 1024;
const MAX_STOP_BYTES = 256;
const MAX_USER_BYTES = 256;
const MAX_PROMPT_VERSION_BYTES = 128;
/** Longest feature label (the value of the metadata key `usage_labels.feature_key` names). */
export const MAX_FEATURE_CHARS = 64;
const FORMAT_NAMES: Partial<Record<ResponseFormatType, string>> = {
  [ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT]: 'text',
  [ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT]: 'json_object',
  [ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA]: 'json_schema',
};

/**
 * A chat request whose shape is valid, with everything parsed once: what the router needs to plan
 * it and what the executor will run, before the plan's caps and guardrails are applied.
 */
export interface ShapedChat {
  /** Capabilities the model must have: "tools", "json_object", "json_schema", "streaming". */
  requiredCapabilities: string[];
  tools: ToolSpec[];
  toolChoice: ToolChoice;
  responseFormat: ResponseFormatSpec;
}

/** INVALID_ARGUMENT naming the field first (`field: problem`), which the HTTP surface reports as its `param`. */
export function invalid(field: string, problem: string): AppError {
  return new AppError('invalid_argument', `${field}: ${problem}`);
}

function validateMetadata(metadata: Record<string, string>): void {
  const entries = Object.entries(metadata);
  if (entries.length > MAX_METADATA_ENTRIES) throw invalid('metadata', `at most ${MAX_METADATA_ENTRIES} entries`);
  for (const [k, v] of entries) {
    if (k.length === 0 || k.length > 64) throw invalid('metadata', `key "${k.slice(0, 64)}" must be 1 to 64 characters`);
    if (v.length > 512) throw invalid(`metadata.${k}`, 'value over 512 characters');
  }
}

function parseJsonObject(text: string, field: string, maxBytes: number): Record<string, unknown> {
  checkBytes(text, field, maxBytes);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalid(field, 'is not valid JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw invalid(field, 'must be a JSON object');
  return parsed as Record<string, unknown>;
}

export function checkBytes(text: string, field: string, maxBytes: number): number {
  // A UTF-16 unit is at most 3 UTF-8 bytes: most texts pass without being measured.
  const bytes = text.length * 3 <= maxBytes ? text.length : Buffer.byteLength(text);
  if (bytes > maxBytes) throw invalid(field, `over ${maxBytes} bytes`);
  return bytes;
}

function toolChoiceOf(choice: string, tools: readonly ToolSpec[]): ToolChoice {
  switch (choice) {
    case '':
    case 'auto':
      return { mode: ToolChoiceMode.TOOL_CHOICE_MODE_AUTO, name: '' };
    case 'none':
      return { mode: ToolChoiceMode.TOOL_CHOICE_MODE_NONE, name: '' };
    case 'required':
      if (tools.length === 0) throw invalid('tool_choice', 'required needs at least one tool');
      return { mode: ToolChoiceMode.TOOL_CHOICE_MODE_REQUIRED, name: '' };
    default:
      if (!tools.some((t) => t.name === choice)) throw invalid('tool_choice', `"${choice.slice(0, 64)}" is not auto, none, required or the name of a given tool`);
      return { mode: ToolChoiceMode.TOOL_CHOICE_MODE_TOOL, name: choice };
  }
}

function responseFormatOf(req: ChatRequest): ResponseFormatSpec {
  const rf = req.responseFormat;
  const type = rf?.type ?? ResponseFormatType.RESPONSE_FORMAT_TYPE_UNSPECIFIED;
  switch (type) {
    case ResponseFormatType.RESPONSE_FORMAT_TYPE_UNSPECIFIED:
    case ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT:
      return { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT, name: '', schema: undefined };
    case ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT:
      return { type, name: '', schema: undefined };
    case ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA:
      if (!rf?.jsonSchema) throw invalid('response_format.json_schema', 'required for RESPONSE_FORMAT_TYPE_JSON_SCHEMA');
      return { type, name: rf.schemaName || 'response', schema: parseJsonObject(rf.jsonSchema, 'response_format.json_schema', MAX_SCHEMA_BYTES) };
    default:
      throw invalid('response_format.type', 'unknown response format');
  }
}

/**
 * Checks a chat request's shape before anything downstream is called, and parses its tools and
 * schemas once. Every failure is INVALID_ARGUMENT naming the field.
 */
export function shapeChat(req: ChatRequest, opts: { stream: boolean }): ShapedChat {
  if (req.messages.length === 0) throw invalid('messages', 'must contain at least one message');
  if (req.messages.length > MAX_MESSAGES) throw invalid('messages', `at most ${MAX_MESSAGES} messages`);
  let contentBytes = 0;
  for (const m of req.messages) contentBytes += Buffer.byteLength(m.content);
  if (contentBytes > MAX_CONTENT_BYTES) throw invalid('messages', `contents total ${contentBytes} bytes, over the limit of ${MAX_CONTENT_BYTES}`);
  if (req.tools.length > MAX_TOOLS) throw invalid('tools', `at most ${MAX_TOOLS} tools`);
  req.messages.forEach((m, i) => {
    const field = `messages[${i}]`;
    if (m.role === Role.ROLE_UNSPECIFIED || !(m.role in Role) || m.role === Role.UNRECOGNIZED) {
      throw invalid(`${field}.role`, 'unknown role; use ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT or ROLE_TOOL');
    }
    if (m.role === Role.ROLE_TOOL && !m.toolCallId) throw invalid(`${field}.tool_call_id`, 'required for ROLE_TOOL messages');
    if (m.content.length === 0 && m.toolCalls.length === 0 && m.role !== Role.ROLE_ASSISTANT) {
      throw invalid(`${field}.content`, 'must not be empty');
    }
    m.toolCalls.forEach((tc, j) => parseJsonObject(tc.argumentsJson || '{}', `${field}.tool_calls[${j}].arguments_json`, MAX_ARGUMENTS_BYTES));
  });
  if (req.maxTokens !== undefined && req.maxTokens <= 0) throw invalid('max_tokens', 'must be positive');
  if (req.temperature !== undefined && !(req.temperature >= 0 && req.temperature <= 2)) {
    throw invalid('temperature', `${req.temperature} is out of range [0, 2]`);
  }
  if (req.topP !== undefined && !(req.topP > 0 && req.topP <= 1)) throw invalid('top_p', `${req.topP} is out of range (0, 1]`);
  if (req.stop.length > MAX_STOP) throw invalid('stop', `at most ${MAX_STOP} sequences`);
  req.stop.forEach((st, i) => checkBytes(st, `stop[${i}]`, MAX_STOP_BYTES));
  checkBytes(req.user, 'user', MAX_USER_BYTES);
  checkBytes(req.promptVersion, 'prompt_version', MAX_PROMPT_VERSION_BYTES);
  validateTimeoutField(req.timeoutMs);
  validateMetadata(req.metadata);

  const required: string[] = [];
  if (opts.stream) required.push('streaming');
  const names = new Set<string>();
  const tools = req.tools.map((t, i): ToolSpec => {
    if (!TOOL_NAME.test(t.name)) throw invalid(`tools[${i}].name`, 'must be 1-64 letters, digits, _ or -');
    if (names.has(t.name)) throw invalid(`tools[${i}].name`, `duplicate tool "${t.name}"`);
    names.add(t.name);
    const parameters = t.parametersJsonSchema ? parseJsonObject(t.parametersJsonSchema, `tools[${i}].parameters_json_schema`, MAX_SCHEMA_BYTES) : { type: 'object', properties: {} };
    return { name: t.name, description: t.description, parameters };
  });
  if (tools.length > 0) required.push('tools');
  const toolChoice = toolChoiceOf(req.toolChoice, tools);
  const responseFormat = responseFormatOf(req);
  if (responseFormat.type === ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT) required.push('json_object');
  if (responseFormat.type === ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA) required.push('json_schema');
  return { requiredCapabilities: required, tools, toolChoice, responseFormat };
}

/**
 * Applies the plan's caps and the route's guardrails (both from the router) and resolves what
 * the executor runs with. `promptTokens` is counted with the plan's first tokenizer.
 */
export function applyPlan(req: ChatRequest, shaped: ShapedChat, plan: Plan, promptTokens: number): { params: ChatParams; timeoutMs: number } {
  const route = plan.route;
  const maxTokens = req.maxTokens ?? plan.defaultMaxTokens;
  if (maxTokens > plan.maxTokensCap) throw invalid('max_tokens', `${maxTokens} is over the cap of ${plan.maxTokensCap} for route "${route}"`);
  const guard = plan.guardrails;
  if (guard) {
    if (guard.maxPromptTokens > 0 && promptTokens > guard.maxPromptTokens) {
      throw invalid('messages', `prompt has ${promptTokens} tokens, over the limit of ${guard.maxPromptTokens} for route "${route}"`);
    }
    if (guard.restrictTools) {
      const allowed = new Set(guard.allowedTools);
      shaped.tools.forEach((t, i) => {
        if (!allowed.has(t.name)) throw invalid(`tools[${i}].name`, `tool "${t.name}" is not allowed on route "${route}"`);
      });
    }
    if (!guard.allowedResponseFormats.includes(shaped.responseFormat.type)) {
      throw invalid('response_format.type', `${FORMAT_NAMES[shaped.responseFormat.type] ?? 'this format'} is not allowed on route "${route}"`);
    }
  }
  return {
    params: {
      messages: req.messages,
      maxTokens,
      temperature: req.temperature,
      topP: req.topP,
      stop: req.stop,
      tools: shaped.tools,
      toolChoice: shaped.toolChoice,
      responseFormat: shaped.responseFormat,
      user: req.user,
      batch: req.latencyClass === LatencyClass.LATENCY_CLASS_BATCH,
      // The caller holds the prompt's counts (promptTokenCounts).
      promptTokens: [],
      noHedge: req.tools.some((t) => t.sideEffects),
      cache: req.cache,
    },
    timeoutMs: requestTimeout(req.timeoutMs, plan),
  };
}

function validateTimeoutField(timeoutMs: number): void {
  if (timeoutMs > MAX_TIMEOUT_MS) throw invalid('timeout_ms', `${timeoutMs} is over the maximum of ${MAX_TIMEOUT_MS}`);
}

/** The caller's deadline within the route's. */
export function requestTimeout(timeoutMs: number, plan: Plan): number {
  return timeoutMs > 0 ? Math.min(timeoutMs, plan.timeoutMs) : plan.timeoutMs;
}

export function shapeEmbed(req: EmbedRequest): void {
  if (req.inputs.length === 0) throw invalid('inputs', 'must contain at least one text');
  if (req.inputs.length > MAX_EMBED_INPUTS) throw invalid('inputs', `at most ${MAX_EMBED_INPUTS} texts`);
  let bytes = 0;
  req.inputs.forEach((t, i) => {
    if (t.length === 0) throw invalid(`inputs[${i}]`, 'must not be empty');
    bytes += Buffer.byteLength(t);
  });
  if (bytes > MAX_CONTENT_BYTES) throw invalid('inputs', `texts total ${bytes} bytes, over the limit of ${MAX_CONTENT_BYTES}`);
  if (req.dimensions > MAX_EMBED_DIMENSIONS) throw invalid('dimensions', `${req.dimensions} is over the maximum of ${MAX_EMBED_DIMENSIONS}`);
  checkBytes(req.user, 'user', MAX_USER_BYTES);
  validateTimeoutField(req.timeoutMs);
  validateMetadata(req.metadata);
}

/**
 * A usage query the edge can forward: a Timestamp beyond the range of a date (seconds past year
 * 275,760) decodes to an invalid Date, which cannot be encoded again for the accountant.
 */
export function shapeUsageQuery(req: GetUsageRequest): void {
  if (req.startTime && Number.isNaN(req.startTime.getTime())) throw invalid('start_time', 'not a valid timestamp');
  if (req.endTime && Number.isNaN(req.endTime.getTime())) throw invalid('end_time', 'not a valid timestamp');
}

/**
 * What the request's usage is labelled with (checked by shapeChat or shapeEmbed): its end user,
 * its prompt version, and its feature, the value of the metadata entry `featureKey` names
 * (config `usage_labels.feature_key`), at most MAX_FEATURE_CHARS long.
 */
export function usageLabels(req: { user: string; promptVersion?: string; metadata: Record<string, string> }, featureKey: string | undefined): UsageLabels {
  const feature = featureKey === undefined ? '' : (req.metadata[featureKey] ?? '');
  if (feature.length > MAX_FEATURE_CHARS) throw invalid(`metadata.${featureKey}`, `a feature label is at most ${MAX_FEATURE_CHARS} characters`);
  return { user: req.user, promptVersion: req.promptVersion ?? '', feature };
}
