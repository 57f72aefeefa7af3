import { FinishReason } from '@llmgw/proto/v1';
import { endSpan, openSpan, SpanKind, tracingOn, type OpenSpan } from '@llmgw/tracing';
import type { Target } from './plan-runner.js';
import type { ProviderUsage } from './providers/types.js';

/** gen_ai.operation.name of a provider call. */
export type GenAiOperation = 'chat' | 'embeddings';

/** What a provider said about its answer. */
export interface ProviderAnswer {
  usage: ProviderUsage;
  finishReason?: FinishReason | undefined;
  model?: string | undefined;
}

/**
 * The span of one provider call (one attempt: a fallback or a hedge is a span of its own), as the
 * OpenTelemetry GenAI conventions name it: CLIENT, "{gen_ai.operation.name} {gen_ai.request.model}".
 * It names the model the provider was asked for, never the prompt or the answer.
 */
export function openProviderSpan(operation: GenAiOperation, t: Target): OpenSpan | undefined {
  if (!tracingOn()) return undefined;
  return openSpan(`${operation} ${t.upstreamModel}`, SpanKind.CLIENT, {
    'gen_ai.operation.name': operation,
    'gen_ai.provider.name': t.providerId,
    'gen_ai.request.model': t.upstreamModel,
  });
}

/** Ends it with what the provider reported (counts it did not report are left out), or the failure's reason as error.type. */
export function endProviderSpan(s: OpenSpan | undefined, answer: ProviderAnswer | undefined, errorType?: string): void {
  if (!s) return;
  if (answer) {
    const { usage, finishReason, model } = answer;
    if (model) s.span.setAttribute('gen_ai.response.model', model);
    if (usage.inputTokens !== undefined) s.span.setAttribute('gen_ai.usage.input_tokens', usage.inputTokens);
    if (usage.outputTokens !== undefined) s.span.setAttribute('gen_ai.usage.output_tokens', usage.outputTokens);
    if (finishReason !== undefined && finishReason !== FinishReason.FINISH_REASON_UNSPECIFIED) {
      s.span.setAttribute('gen_ai.response.finish_reasons', [finishReasonName(finishReason)]);
    }
  }
  endSpan(s, errorType);
}

/** FINISH_REASON_TOOL_CALLS → "tool_calls". */
function finishReasonName(r: FinishReason): string {
  const name = FinishReason[r] ?? '';
  return name.startsWith('FINISH_REASON_') ? name.slice('FINISH_REASON_'.length).toLowerCase() : 'unknown';
}
