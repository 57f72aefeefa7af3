import type { ToolCallDelta } from '@llmgw/proto/v1';
import type { ChatStreamEvent, StreamDecoder } from '../types.js';
import { classifyGeminiError } from './errors.js';
import { geminiFinishReason, geminiToolCallId, geminiUsage } from './response.js';
import type { GeminiResponse } from './wire.js';

/**
 * Decodes `streamGenerateContent?alt=sse`: every event is a GenerateContentResponse with the
 * running usageMetadata; the one with a finishReason is the last. Function calls arrive whole.
 */
export class GeminiStreamDecoder implements StreamDecoder {
  done = false;
  private tools = 0;

  constructor(private readonly provider: string) {}

  decode(_event: string, data: string): ChatStreamEvent | undefined {
    let res: GeminiResponse;
    try {
      res = JSON.parse(data) as GeminiResponse;
    } catch {
      return undefined;
    }
    if (res.error) throw classifyGeminiError(this.provider, res.error.code ?? 500, data, {});
    const out: ChatStreamEvent = {};
    const candidate = res.candidates?.[0];
    if (candidate) {
      let text = '';
      let calls: ToolCallDelta[] | undefined;
      for (const part of candidate.content?.parts ?? []) {
        if (typeof part.text === 'string' && !part.thought) text += part.text;
        if (part.functionCall) {
          const index = this.tools++;
          (calls ??= []).push({
            index,
            id: geminiToolCallId(part.functionCall.id, index),
            name: part.functionCall.name ?? '',
            argumentsJsonDelta: JSON.stringify(part.functionCall.args ?? {}),
          });
        }
      }
      if (text) out.content = text;
      if (calls) out.toolCalls = calls;
      if (candidate.finishReason) {
        out.finishReason = geminiFinishReason(candidate.finishReason, this.tools > 0);
        this.done = true;
      }
    } else if (res.promptFeedback?.blockReason) {
      out.finishReason = geminiFinishReason('SAFETY', false);
      this.done = true;
    }
    if (res.usageMetadata) out.usage = geminiUsage(res.usageMetadata);
    return out.content !== undefined || out.toolCalls || out.finishReason !== undefined || out.usage ? out : undefined;
  }
}
