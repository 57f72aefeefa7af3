import { FinishReason, type ToolCall } from '@llmgw/proto/v1';
import type { ChatResult, ProviderUsage } from '../types.js';
import { STRUCTURED_OUTPUT_TOOL } from './request.js';
import type { AnthropicResponse, AnthropicUsage } from './wire.js';

/** stop_reason → FinishReason; a refusal is a safety outcome (CONTENT_FILTER). */
export function anthropicFinishReason(stopReason: string | null | undefined, structured: boolean): FinishReason {
  switch (stopReason) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return FinishReason.FINISH_REASON_LENGTH;
    case 'tool_use':
      return structured ? FinishReason.FINISH_REASON_STOP : FinishReason.FINISH_REASON_TOOL_CALLS;
    case 'refusal':
      return FinishReason.FINISH_REASON_CONTENT_FILTER;
    default:
      return FinishReason.FINISH_REASON_STOP;
  }
}

/**
 * Anthropic's input_tokens leaves out the prompt-cache reads and writes, which it bills apart:
 * the input count is their sum, with the reads and writes as its parts. Extended thinking is in
 * output_tokens and not reported apart.
 */
export function anthropicUsage(u: AnthropicUsage | undefined, withOutput: boolean): ProviderUsage {
  const out: ProviderUsage = {};
  if (typeof u?.input_tokens === 'number') {
    const written = u.cache_creation_input_tokens ?? 0;
    const read = u.cache_read_input_tokens ?? 0;
    out.inputTokens = u.input_tokens + written + read;
    out.cachedInputTokens = read;
    out.cacheWriteInputTokens = written;
  }
  if (withOutput && typeof u?.output_tokens === 'number') out.outputTokens = u.output_tokens;
  return out;
}

/** Anthropic Messages body → ChatResult; undefined when it is not a message. Pure. */
export function fromAnthropicResponse(body: AnthropicResponse): ChatResult | undefined {
  if (!Array.isArray(body.content)) return undefined;
  let content = '';
  let structured = false;
  const toolCalls: ToolCall[] = [];
  for (const block of body.content) {
    if (block.type === 'text' && typeof block.text === 'string') content += block.text;
    else if (block.type === 'tool_use') {
      const args = JSON.stringify(block.input ?? {});
      if (block.name === STRUCTURED_OUTPUT_TOOL) {
        structured = true;
        content = args;
      } else toolCalls.push({ id: block.id ?? '', name: block.name ?? '', argumentsJson: args });
    }
  }
  return {
    content,
    toolCalls,
    finishReason: anthropicFinishReason(body.stop_reason, structured && toolCalls.length === 0),
    usage: anthropicUsage(body.usage, true),
    model: typeof body.model === 'string' ? body.model : undefined,
  };
}
