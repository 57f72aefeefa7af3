import { FinishReason, type ToolCallDelta } from '@llmgw/proto/v1';
import type { ChatStreamEvent, StreamDecoder } from '../types.js';
import { classifyOpenAIError } from './errors.js';
import { openAIFinishReason, openAIUsage } from './response.js';
import type { OpenAIChatChunk } from './wire.js';

/**
 * Decodes `chat.completion.chunk` events (with `stream_options.include_usage`: the last chunk
 * before `[DONE]` has empty choices and the usage). Pure apart from its own state.
 */
export class OpenAIStreamDecoder implements StreamDecoder {
  done = false;
  private refused = false;

  constructor(private readonly provider: string) {}

  decode(_event: string, data: string): ChatStreamEvent | undefined {
    if (data === '[DONE]') {
      this.done = true;
      return undefined;
    }
    let chunk: OpenAIChatChunk;
    try {
      chunk = JSON.parse(data) as OpenAIChatChunk;
    } catch {
      return undefined;
    }
    if (chunk.error) throw classifyOpenAIError(this.provider, 500, JSON.stringify({ error: chunk.error }), {});
    let out: ChatStreamEvent | undefined;
    const choice = chunk.choices?.[0];
    if (choice) {
      const delta = choice.delta;
      if (delta) {
        if (typeof delta.content === 'string' && delta.content.length > 0) out = { content: delta.content };
        if (typeof delta.refusal === 'string' && delta.refusal.length > 0) {
          this.refused = true;
          out = { content: delta.refusal };
        }
        if (delta.tool_calls && delta.tool_calls.length > 0) {
          const calls: ToolCallDelta[] = delta.tool_calls.map((c, i) => ({
            index: c.index ?? i,
            id: c.id ?? '',
            name: c.function?.name ?? '',
            argumentsJsonDelta: c.function?.arguments ?? '',
          }));
          out = out ? { ...out, toolCalls: calls } : { toolCalls: calls };
        }
      }
      if (choice.finish_reason) {
        const finishReason = this.refused ? FinishReason.FINISH_REASON_CONTENT_FILTER : openAIFinishReason(choice.finish_reason);
        out = out ? { ...out, finishReason } : { finishReason };
      }
    }
    if (chunk.usage) {
      const usage = openAIUsage(chunk.usage);
      out = out ? { ...out, usage } : { usage };
    }
    return out;
  }
}
