import { Role } from '@llmgw/proto/v1';
import type { ChatParams } from '../types.js';
import type { AnthropicContentBlock, AnthropicMessage, AnthropicRequest, AnthropicToolChoice } from './wire.js';

/**
 * Anthropic has no response_format. json_schema is honoured with a forced tool whose input
 * schema is the caller's schema (Anthropic's documented JSON technique); its input is turned
 * back into the message text by response.ts / stream.ts. json_object adds a system instruction.
 */
export const STRUCTURED_OUTPUT_TOOL = 'json_response';
export const JSON_OBJECT_INSTRUCTION = 'Respond only with a single valid JSON object, without any text before or after it.';

function parseArgs(json: string): unknown {
  if (!json) return {};
  try {
    return JSON.parse(json) as unknown;
  } catch {
    return { _raw: json };
  }
}

function push(out: AnthropicMessage[], role: 'user' | 'assistant', blocks: AnthropicContentBlock[]): void {
  const last = out[out.length - 1];
  // Consecutive turns of one role (e.g. the results of parallel tool calls) go into one message.
  if (last && last.role === role) {
    const prev = typeof last.content === 'string' ? [{ type: 'text' as const, text: last.content }] : last.content;
    last.content = prev.concat(blocks);
    return;
  }
  const only = blocks[0];
  out.push({ role, content: blocks.length === 1 && only?.type === 'text' ? only.text : blocks });
}

/** ChatParams → Anthropic Messages body. Pure. */
export function toAnthropicRequest(params: ChatParams, upstreamModel: string, stream: boolean): AnthropicRequest {
  const system: string[] = [];
  const messages: AnthropicMessage[] = [];
  for (const m of params.messages) {
    switch (m.role) {
      case Role.ROLE_SYSTEM:
        system.push(m.content);
        break;
      case Role.ROLE_ASSISTANT: {
        const blocks: AnthropicContentBlock[] = [];
        if (m.content) blocks.push({ type: 'text', text: m.content });
        for (const c of m.toolCalls) blocks.push({ type: 'tool_use', id: c.id, name: c.name, input: parseArgs(c.argumentsJson) });
        if (blocks.length === 0) blocks.push({ type: 'text', text: '' });
        push(messages, 'assistant', blocks);
        break;
      }
      case Role.ROLE_TOOL:
        push(messages, 'user', [{ type: 'tool_result', tool_use_id: m.toolCallId, content: m.content }]);
        break;
      default:
        push(messages, 'user', [{ type: 'text', text: m.content }]);
    }
  }
  const body: AnthropicRequest = { model: upstreamModel, max_tokens: params.maxTokens, messages };
  const rf = params.responseFormat;
  if (rf.type === 'json_object') system.push(JSON_OBJECT_INSTRUCTION);
  if (system.length > 0) body.system = system.join('\n\n');
  if (params.temperature !== undefined) body.temperature = params.temperature;
  if (params.topP !== undefined) body.top_p = params.topP;
  if (params.stop.length > 0) body.stop_sequences = [...params.stop];
  if (params.tools.length > 0) {
    body.tools = params.tools.map((t) =>
      t.description ? { name: t.name, description: t.description, input_schema: t.parameters } : { name: t.name, input_schema: t.parameters },
    );
    body.tool_choice = toolChoice(params);
  }
  if (rf.type === 'json_schema') {
    const tool = { name: STRUCTURED_OUTPUT_TOOL, description: `Answer with ${rf.name} as the tool input.`, input_schema: rf.schema };
    body.tools = body.tools ? [...body.tools, tool] : [tool];
    if (params.tools.length === 0) body.tool_choice = { type: 'tool', name: STRUCTURED_OUTPUT_TOOL };
  }
  if (params.user) body.metadata = { user_id: params.user };
  if (stream) body.stream = true;
  return body;
}

function toolChoice(params: ChatParams): AnthropicToolChoice {
  const tc = params.toolChoice;
  switch (tc.type) {
    case 'required':
      return { type: 'any' };
    case 'none':
      return { type: 'none' };
    case 'tool':
      return { type: 'tool', name: tc.name };
    default:
      return { type: 'auto' };
  }
}
