import { FinishReason, type ToolCall } from '@llmgw/proto/v1';
import type { ChatResult, ProviderUsage } from '../types.js';
import type { GeminiBatchEmbedResponse, GeminiResponse, GeminiUsageMetadata } from './wire.js';

const SAFETY_REASONS = new Set(['SAFETY', 'RECITATION', 'BLOCKLIST', 'PROHIBITED_CONTENT', 'SPII', 'IMAGE_SAFETY', 'LANGUAGE']);

export function geminiFinishReason(reason: string | undefined, hasToolCalls: boolean): FinishReason {
  if (reason && SAFETY_REASONS.has(reason)) return FinishReason.FINISH_REASON_CONTENT_FILTER;
  if (reason === 'MAX_TOKENS') return FinishReason.FINISH_REASON_LENGTH;
  return hasToolCalls ? FinishReason.FINISH_REASON_TOOL_CALLS : FinishReason.FINISH_REASON_STOP;
}

/** Thinking tokens are billed as output: the output count adds them to the candidates', as their reasoning part. */
export function geminiUsage(u: GeminiUsageMetadata | undefined): ProviderUsage {
  if (!u) return {};
  const out = (u.candidatesTokenCount ?? 0) + (u.thoughtsTokenCount ?? 0);
  return {
    inputTokens: typeof u.promptTokenCount === 'number' ? u.promptTokenCount : undefined,
    outputTokens: u.candidatesTokenCount === undefined && u.thoughtsTokenCount === undefined ? (u.promptTokenCount !== undefined ? 0 : undefined) : out,
    cachedInputTokens: u.cachedContentTokenCount,
    reasoningTokens: u.thoughtsTokenCount,
  };
}

export function geminiToolCallId(id: string | undefined, index: number): string {
  return id || `call_${index}`;
}

/** Gemini generateContent body → ChatResult. A blocked prompt (no candidate) is CONTENT_FILTER. Pure. */
export function fromGeminiResponse(body: GeminiResponse): ChatResult | undefined {
  const candidate = body.candidates?.[0];
  if (!candidate) {
    if (body.promptFeedback?.blockReason) {
      return { content: '', toolCalls: [], finishReason: FinishReason.FINISH_REASON_CONTENT_FILTER, usage: geminiUsage(body.usageMetadata), model: body.modelVersion };
    }
    return undefined;
  }
  let content = '';
  const toolCalls: ToolCall[] = [];
  for (const part of candidate.content?.parts ?? []) {
    if (typeof part.text === 'string' && !part.thought) content += part.text;
    if (part.functionCall) {
      toolCalls.push({
        id: geminiToolCallId(part.functionCall.id, toolCalls.length),
        name: part.functionCall.name ?? '',
        argumentsJson: JSON.stringify(part.functionCall.args ?? {}),
      });
    }
  }
  return { content, toolCalls, finishReason: geminiFinishReason(candidate.finishReason, toolCalls.length > 0), usage: geminiUsage(body.usageMetadata), model: body.modelVersion };
}

/** batchEmbedContents body → vectors; Gemini reports no token usage for embeddings. Pure. */
export function fromGeminiBatchEmbedResponse(body: GeminiBatchEmbedResponse, count: number): number[][] | undefined {
  const e = body.embeddings;
  if (!Array.isArray(e) || e.length !== count) return undefined;
  const out: number[][] = [];
  for (const item of e) {
    if (!Array.isArray(item.values)) return undefined;
    out.push(item.values);
  }
  return out;
}
