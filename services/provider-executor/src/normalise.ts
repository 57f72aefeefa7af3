import type { Capability, ModelConfig } from '@llmgw/config';
import { AppError } from '@llmgw/errors';
import { ResponseFormatType, type ChatRequest } from '@llmgw/proto/v1';
import type { Plan } from '@llmgw/proto/router';
import type { ChatParams, ResponseFormatSpec, ToolChoice, ToolSpec } from './providers/types.js';

function parseSchema(text: string, field: string): Record<string, unknown> {
  if (!text) return { type: 'object', properties: {} };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new AppError('invalid_argument', `${field} is not valid JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new AppError('invalid_argument', `${field} must be a JSON object`);
  return v as Record<string, unknown>;
}

function toolChoiceOf(choice: string, tools: readonly ToolSpec[]): ToolChoice {
  switch (choice) {
    case '':
    case 'auto':
      return { type: 'auto' };
    case 'none':
      return { type: 'none' };
    case 'required':
      return { type: 'required' };
    default:
      if (!tools.some((t) => t.name === choice)) throw new AppError('invalid_argument', `tool_choice names unknown tool "${choice}"`);
      return { type: 'tool', name: choice };
  }
}

/** One ChatRequest → provider-neutral params, once per request (not per attempt). */
export function toChatParams(req: ChatRequest, plan: Plan): ChatParams {
  const tools: ToolSpec[] = req.tools.map((t, i) => ({
    name: t.name,
    description: t.description,
    parameters: parseSchema(t.parametersJsonSchema, `tools[${i}].parameters_json_schema`),
  }));
  let responseFormat: ResponseFormatSpec = { type: 'text' };
  const rf = req.responseFormat;
  if (rf?.type === ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT) responseFormat = { type: 'json_object' };
  else if (rf?.type === ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA) {
    responseFormat = { type: 'json_schema', name: rf.schemaName || 'response', schema: parseSchema(rf.jsonSchema, 'response_format.json_schema') };
  }
  const maxTokens = req.maxTokens !== undefined && req.maxTokens > 0 ? req.maxTokens : plan.defaultMaxTokens > 0 ? plan.defaultMaxTokens : 1024;
  return {
    messages: req.messages,
    maxTokens,
    temperature: req.temperature,
    topP: req.topP,
    stop: req.stop,
    responseFormat,
    tools,
    toolChoice: toolChoiceOf(req.toolChoice, tools),
    user: req.user,
  };
}

/** Capabilities (config names) a chat request needs, each with the request parameter that needs it. */
export function requiredCapabilities(params: ChatParams, streaming: boolean): Array<[Capability, string]> {
  const out: Array<[Capability, string]> = [];
  if (params.tools.length > 0) out.push(['tools', 'tools']);
  if (params.responseFormat.type === 'json_object') out.push(['json_object', 'response_format']);
  if (params.responseFormat.type === 'json_schema') out.push(['json_schema', 'response_format']);
  if (streaming) out.push(['streaming', 'stream']);
  return out;
}

/**
 * Defence in depth behind the router: the parameter this model cannot honour, or undefined.
 * An explicit max_tokens above the model's output limit counts too; never silently dropped.
 */
export function unsupportedParameter(model: ModelConfig, needs: ReadonlyArray<[Capability, string]>, explicitMaxTokens: number | undefined): string | undefined {
  for (const [cap, param] of needs) {
    if (!model.capabilities.includes(cap)) return `${param} (model lacks capability "${cap}")`;
  }
  if (explicitMaxTokens !== undefined && explicitMaxTokens > model.max_output_tokens) {
    return `max_tokens (${explicitMaxTokens} exceeds the model's limit of ${model.max_output_tokens})`;
  }
  return undefined;
}
