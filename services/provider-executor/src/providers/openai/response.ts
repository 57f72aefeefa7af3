import { FinishReason, type ToolCall } from '@llmgw/proto/v1';
import type { ChatResult, EmbedResult, ProviderUsage } from '../types.js';
import type { OpenAIChatResponse, OpenAIEmbeddingResponse, OpenAIUsage } from './wire.js';

export function openAIFinishReason(reason: string | null | undefined): FinishReason {
  switch (reason) {
    case 'length':
      return FinishReason.FINISH_REASON_LENGTH;
    case 'tool_calls':
    case 'function_call':
      return FinishReason.FINISH_REASON_TOOL_CALLS;
    case 'content_filter':
      return FinishReason.FINISH_REASON_CONTENT_FILTER;
    default:
      return FinishReason.FINISH_REASON_STOP;
  }
}

const countOf = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);

/** prompt_tokens includes prompt_tokens_details.cached_tokens; completion_tokens includes completion_tokens_details.reasoning_tokens. */
export function openAIUsage(u: OpenAIUsage | null | undefined): ProviderUsage {
  if (!u) return {};
  return {
    inputTokens: countOf(u.prompt_tokens),
    outputTokens: countOf(u.completion_tokens),
    cachedInputTokens: countOf(u.prompt_tokens_details?.cached_tokens),
    reasoningTokens: countOf(u.completion_tokens_details?.reasoning_tokens),
  };
}

/** OpenAI Chat Completions body → ChatResult; undefined when it has no choice. Pure. */
export function fromOpenAIResponse(body: OpenAIChatResponse): ChatResult | undefined {
  const choice = body.choices?.[0];
  if (!choice) return undefined;
  const msg = choice.message ?? {};
  const toolCalls: ToolCall[] = (msg.tool_calls ?? []).map((c) => ({ id: c.id, name: c.function.name, argumentsJson: c.function.arguments }));
  // A refusal (structured outputs) is a safety outcome: its text is the answer, finish CONTENT_FILTER.
  const refused = typeof msg.refusal === 'string' && msg.refusal.length > 0;
  return {
    content: refused ? (msg.refusal as string) : (msg.content ?? ''),
    toolCalls,
    finishReason: refused ? FinishReason.FINISH_REASON_CONTENT_FILTER : openAIFinishReason(choice.finish_reason),
    usage: openAIUsage(body.usage),
    model: typeof body.model === 'string' ? body.model : undefined,
  };
}

/** OpenAI /embeddings body → vectors in input order; undefined when malformed. Pure. */
export function fromOpenAIEmbeddingResponse(body: OpenAIEmbeddingResponse, count: number): EmbedResult | undefined {
  const data = body.data;
  if (!Array.isArray(data) || data.length !== count) return undefined;
  const vectors: number[][] = new Array<number[]>(count);
  for (let i = 0; i < data.length; i++) {
    const d = data[i];
    const idx = typeof d?.index === 'number' ? d.index : i;
    if (!d || !Array.isArray(d.embedding) || idx < 0 || idx >= count) return undefined;
    vectors[idx] = d.embedding;
  }
  for (let i = 0; i < count; i++) if (!vectors[i]) return undefined;
  return { vectors, usage: { inputTokens: typeof body.usage?.prompt_tokens === 'number' ? body.usage.prompt_tokens : undefined } };
}
