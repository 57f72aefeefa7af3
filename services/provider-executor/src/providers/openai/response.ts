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

export function openAIUsage(u: OpenAIUsage | null | undefined): ProviderUsage {
  if (!u) return {};
  return {
    inputTokens: typeof u.prompt_tokens === 'number' ? u.prompt_tokens : undefined,
    outputTokens: typeof u.completion_tokens === 'number' ? u.completion_tokens : undefined,
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
