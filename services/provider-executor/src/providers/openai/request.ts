import { Role } from '@llmgw/proto/v1';
import type { ChatParams } from '../types.js';
import type { OpenAIChatRequest, OpenAIEmbeddingRequest, OpenAIMessage } from './wire.js';

export interface OpenAIRequestOptions {
  /** `max_completion_tokens` (OpenAI, Azure; required by reasoning models) or `max_tokens` (vLLM, Ollama…). */
  maxTokensField: 'max_completion_tokens' | 'max_tokens';
  /** Azure names the model in the URL; the body then carries none. */
  modelInBody: boolean;
}

export const DEFAULT_OPENAI_REQUEST_OPTIONS: OpenAIRequestOptions = { maxTokensField: 'max_completion_tokens', modelInBody: true };

function toMessages(params: ChatParams): OpenAIMessage[] {
  const out: OpenAIMessage[] = [];
  for (const m of params.messages) {
    switch (m.role) {
      case Role.ROLE_SYSTEM:
        out.push(m.name ? { role: 'system', content: m.content, name: m.name } : { role: 'system', content: m.content });
        break;
      case Role.ROLE_ASSISTANT: {
        const msg: OpenAIMessage = { role: 'assistant', content: m.content.length > 0 || m.toolCalls.length === 0 ? m.content : null };
        if (m.name) msg.name = m.name;
        if (m.toolCalls.length > 0) {
          msg.tool_calls = m.toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.argumentsJson || '{}' } }));
        }
        out.push(msg);
        break;
      }
      case Role.ROLE_TOOL:
        out.push({ role: 'tool', content: m.content, tool_call_id: m.toolCallId });
        break;
      default:
        out.push(m.name ? { role: 'user', content: m.content, name: m.name } : { role: 'user', content: m.content });
    }
  }
  return out;
}

/** ChatParams → OpenAI Chat Completions body. Pure. */
export function toOpenAIRequest(
  params: ChatParams,
  upstreamModel: string,
  stream: boolean,
  opts: OpenAIRequestOptions = DEFAULT_OPENAI_REQUEST_OPTIONS,
): OpenAIChatRequest {
  const body: OpenAIChatRequest = opts.modelInBody ? { model: upstreamModel, messages: toMessages(params) } : { messages: toMessages(params) };
  body[opts.maxTokensField] = params.maxTokens;
  if (params.temperature !== undefined) body.temperature = params.temperature;
  if (params.topP !== undefined) body.top_p = params.topP;
  if (params.stop.length > 0) body.stop = [...params.stop];
  const rf = params.responseFormat;
  if (rf.type === 'json_object') body.response_format = { type: 'json_object' };
  else if (rf.type === 'json_schema') body.response_format = { type: 'json_schema', json_schema: { name: rf.name, schema: rf.schema } };
  if (params.tools.length > 0) {
    body.tools = params.tools.map((t) => ({
      type: 'function',
      function: t.description ? { name: t.name, description: t.description, parameters: t.parameters } : { name: t.name, parameters: t.parameters },
    }));
    const tc = params.toolChoice;
    body.tool_choice = tc.type === 'tool' ? { type: 'function', function: { name: tc.name } } : tc.type;
  }
  if (params.user) body.user = params.user;
  if (stream) {
    body.stream = true;
    body.stream_options = { include_usage: true };
  }
  return body;
}

/** Embedding inputs → OpenAI /embeddings body. Pure. */
export function toOpenAIEmbeddingRequest(
  upstreamModel: string,
  inputs: readonly string[],
  dimensions: number,
  user: string,
  opts: OpenAIRequestOptions = DEFAULT_OPENAI_REQUEST_OPTIONS,
): OpenAIEmbeddingRequest {
  const body: OpenAIEmbeddingRequest = { input: [...inputs], encoding_format: 'float' };
  if (opts.modelInBody) body.model = upstreamModel;
  if (dimensions > 0) body.dimensions = dimensions;
  if (user) body.user = user;
  return body;
}
