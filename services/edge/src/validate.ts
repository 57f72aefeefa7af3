import type { GatewayConfig, ResponseFormatName, RouteConfig } from '@llmgw/config';
import { AppError } from '@llmgw/errors';
import { ResponseFormatType, Role, type ChatRequest, type EmbedRequest } from '@llmgw/proto/v1';

const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const FORMAT_NAMES: Partial<Record<ResponseFormatType, ResponseFormatName>> = {
  [ResponseFormatType.RESPONSE_FORMAT_TYPE_UNSPECIFIED]: 'text',
  [ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT]: 'text',
  [ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT]: 'json_object',
  [ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA]: 'json_schema',
};
const MAX_MESSAGES = 1_000;
const MAX_STOP = 4;
const MAX_METADATA_ENTRIES = 32;
const MAX_TIMEOUT_MS = 600_000;
const MAX_EMBED_INPUTS = 2_048;

/** The request after validation, with the route's defaults applied. */
export interface ValidChat {
  routeName: string;
  route: RouteConfig;
  maxTokens: number;
  timeoutMs: number;
  /** Capabilities the model must have: "tools", "json_object", "json_schema", "streaming". */
  requiredCapabilities: string[];
}

function invalid(field: string, problem: string): AppError {
  return new AppError('invalid_argument', `${field}: ${problem}`);
}

function resolveRoute(config: GatewayConfig, route: string): [string, RouteConfig] {
  const name = route || config.default_route;
  const found = config.routes[name];
  if (!found) throw invalid('route', `unknown route "${name}"`);
  return [name, found];
}

function validateTimeout(timeoutMs: number, route: RouteConfig): number {
  if (timeoutMs > MAX_TIMEOUT_MS) throw invalid('timeout_ms', `${timeoutMs} is over the maximum of ${MAX_TIMEOUT_MS}`);
  return timeoutMs > 0 ? Math.min(timeoutMs, route.timeout_ms) : route.timeout_ms;
}

function validateMetadata(metadata: Record<string, string>): void {
  const entries = Object.entries(metadata);
  if (entries.length > MAX_METADATA_ENTRIES) throw invalid('metadata', `at most ${MAX_METADATA_ENTRIES} entries`);
  for (const [k, v] of entries) {
    if (k.length === 0 || k.length > 64) throw invalid('metadata', `key "${k.slice(0, 64)}" must be 1 to 64 characters`);
    if (v.length > 512) throw invalid(`metadata.${k}`, 'value over 512 characters');
  }
}

function parseJsonObject(text: string, field: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalid(field, 'is not valid JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw invalid(field, 'must be a JSON object');
}

/**
 * Checks a chat request before anything downstream is called. Every failure is
 * INVALID_ARGUMENT naming the field, so a caller can fix it without reading our code.
 */
export function validateChat(req: ChatRequest, config: GatewayConfig, opts: { stream: boolean }): ValidChat {
  const [routeName, route] = resolveRoute(config, req.route);
  if (req.messages.length === 0) throw invalid('messages', 'must contain at least one message');
  if (req.messages.length > MAX_MESSAGES) throw invalid('messages', `at most ${MAX_MESSAGES} messages`);
  req.messages.forEach((m, i) => {
    const field = `messages[${i}]`;
    if (m.role === Role.ROLE_UNSPECIFIED || !(m.role in Role) || m.role === Role.UNRECOGNIZED) {
      throw invalid(`${field}.role`, 'unknown role; use ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT or ROLE_TOOL');
    }
    if (m.role === Role.ROLE_TOOL && !m.toolCallId) throw invalid(`${field}.tool_call_id`, 'required for ROLE_TOOL messages');
    if (m.content.length === 0 && m.toolCalls.length === 0 && m.role !== Role.ROLE_ASSISTANT) {
      throw invalid(`${field}.content`, 'must not be empty');
    }
    m.toolCalls.forEach((tc, j) => parseJsonObject(tc.argumentsJson || '{}', `${field}.tool_calls[${j}].arguments_json`));
  });

  const maxTokens = req.maxTokens ?? route.default_max_tokens;
  if (req.maxTokens !== undefined && req.maxTokens <= 0) throw invalid('max_tokens', 'must be positive');
  if (maxTokens > route.max_tokens) {
    throw invalid('max_tokens', `${maxTokens} is over the cap of ${route.max_tokens} for route "${routeName}"`);
  }
  if (req.temperature !== undefined && !(req.temperature >= 0 && req.temperature <= 2)) {
    throw invalid('temperature', `${req.temperature} is out of range [0, 2]`);
  }
  if (req.topP !== undefined && !(req.topP > 0 && req.topP <= 1)) throw invalid('top_p', `${req.topP} is out of range (0, 1]`);
  if (req.stop.length > MAX_STOP) throw invalid('stop', `at most ${MAX_STOP} sequences`);
  validateMetadata(req.metadata);

  const required: string[] = [];
  if (opts.stream) required.push('streaming');
  const names = new Set<string>();
  req.tools.forEach((t, i) => {
    if (!TOOL_NAME.test(t.name)) throw invalid(`tools[${i}].name`, 'must be 1-64 letters, digits, _ or -');
    if (names.has(t.name)) throw invalid(`tools[${i}].name`, `duplicate tool "${t.name}"`);
    names.add(t.name);
    if (t.parametersJsonSchema) parseJsonObject(t.parametersJsonSchema, `tools[${i}].parameters_json_schema`);
  });
  if (req.tools.length > 0) required.push('tools');
  if (route.allowed_tools !== undefined) {
    const allowed = new Set(route.allowed_tools);
    req.tools.forEach((t, i) => {
      if (!allowed.has(t.name)) throw invalid(`tools[${i}].name`, `tool "${t.name}" is not allowed on route "${routeName}"`);
    });
  }
  const choice = req.toolChoice;
  if (choice && !['auto', 'none', 'required'].includes(choice) && !names.has(choice)) {
    throw invalid('tool_choice', `"${choice}" is not auto, none, required or the name of a given tool`);
  }
  if (choice === 'required' && req.tools.length === 0) throw invalid('tool_choice', 'required needs at least one tool');

  const format = req.responseFormat?.type ?? ResponseFormatType.RESPONSE_FORMAT_TYPE_UNSPECIFIED;
  if (format === ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT) required.push('json_object');
  else if (format === ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA) {
    if (!req.responseFormat?.jsonSchema) throw invalid('response_format.json_schema', 'required for RESPONSE_FORMAT_TYPE_JSON_SCHEMA');
    parseJsonObject(req.responseFormat.jsonSchema, 'response_format.json_schema');
    required.push('json_schema');
  } else if (format === ResponseFormatType.UNRECOGNIZED || !(format in ResponseFormatType)) {
    throw invalid('response_format.type', 'unknown response format');
  }
  const formatName = FORMAT_NAMES[format] ?? 'text';
  if (!route.allowed_response_formats.includes(formatName)) {
    throw invalid('response_format.type', `${formatName} is not allowed on route "${routeName}"`);
  }
  return { routeName, route, maxTokens, timeoutMs: validateTimeout(req.timeoutMs, route), requiredCapabilities: required };
}

export interface ValidEmbed {
  routeName: string;
  route: RouteConfig;
  timeoutMs: number;
}

export function validateEmbed(req: EmbedRequest, config: GatewayConfig): ValidEmbed {
  const [routeName, route] = resolveRoute(config, req.route);
  if (req.inputs.length === 0) throw invalid('inputs', 'must contain at least one text');
  if (req.inputs.length > MAX_EMBED_INPUTS) throw invalid('inputs', `at most ${MAX_EMBED_INPUTS} texts`);
  req.inputs.forEach((t, i) => {
    if (t.length === 0) throw invalid(`inputs[${i}]`, 'must not be empty');
  });
  validateMetadata(req.metadata);
  return { routeName, route, timeoutMs: validateTimeout(req.timeoutMs, route) };
}

/** Guardrail: prompts over the route's token limit are refused before anything is spent. */
export function checkPromptSize(promptTokens: number, v: { route: RouteConfig; routeName: string }): void {
  const limit = v.route.max_prompt_tokens;
  if (limit !== undefined && promptTokens > limit) {
    throw invalid('messages', `prompt has ${promptTokens} tokens, over the limit of ${limit} for route "${v.routeName}"`);
  }
}
