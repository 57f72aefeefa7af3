import { AppError } from '@llmgw/errors';
import { ToolChoiceMode, type ChatParams as ChatParamsProto, type ToolChoice as ToolChoiceProto } from '@llmgw/proto/executor';
import { ResponseFormatType } from '@llmgw/proto/v1';
import type { ChatParams, ResponseFormatSpec, ToolChoice } from './providers/types.js';

function toolChoiceOf(choice: ToolChoiceProto | undefined): ToolChoice {
  switch (choice?.mode) {
    case ToolChoiceMode.TOOL_CHOICE_MODE_NONE:
      return { type: 'none' };
    case ToolChoiceMode.TOOL_CHOICE_MODE_REQUIRED:
      return { type: 'required' };
    case ToolChoiceMode.TOOL_CHOICE_MODE_TOOL:
      return { type: 'tool', name: choice.name };
    default:
      return { type: 'auto' };
  }
}

/**
 * The edge's normalised request in the adapters' terms: a translation of types only. Tools and
 * schemas arrive parsed and max_tokens resolved; nothing is validated or decided again here.
 */
export function chatParamsOf(p: ChatParamsProto | undefined): ChatParams {
  if (!p) throw new AppError('invalid_argument', 'params is required');
  const rf = p.responseFormat;
  let responseFormat: ResponseFormatSpec = { type: 'text' };
  if (rf?.type === ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT) responseFormat = { type: 'json_object' };
  else if (rf?.type === ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA) responseFormat = { type: 'json_schema', name: rf.name, schema: rf.schema ?? {} };
  return {
    messages: p.messages,
    maxTokens: p.maxTokens,
    temperature: p.temperature,
    topP: p.topP,
    stop: p.stop,
    responseFormat,
    tools: p.tools.map((t) => ({ name: t.name, description: t.description, parameters: t.parameters ?? {} })),
    toolChoice: toolChoiceOf(p.toolChoice),
    user: p.user,
  };
}
