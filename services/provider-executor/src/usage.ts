import type { ModelConfig } from '@llmgw/config';
import { costMicros, microsToUsd } from '@llmgw/pricing';
import type { Usage } from '@llmgw/proto/v1';
import { countChatTokens, countTokens, type TokenizerFamily } from '@llmgw/tokens';
import type { ProviderUsage } from './providers/types.js';

export function tokenizerOf(model: ModelConfig | undefined): TokenizerFamily {
  return model?.tokenizer ?? 'approx';
}

export function priced(model: ModelConfig | undefined, inputTokens: number, outputTokens: number, estimated: boolean): Usage {
  const micros = model
    ? costMicros(
        { inputPerMillionUsd: model.pricing.input_per_million_usd, outputPerMillionUsd: model.pricing.output_per_million_usd },
        inputTokens,
        outputTokens,
      )
    : 0;
  return { inputTokens, outputTokens, costMicros: micros, costUsd: microsToUsd(micros), tokensEstimated: estimated };
}

/**
 * Usage of a chat answer: the provider's counts where it gave them, else counted with
 * @llmgw/tokens (exact for `tokenizer: openai` models, an estimate otherwise), flagged estimated.
 * `outputText` is only called when the provider gave no output count.
 */
export function chatUsage(
  model: ModelConfig | undefined,
  reported: ProviderUsage,
  messages: readonly { content: string }[],
  outputText: () => string,
): Usage {
  const family = tokenizerOf(model);
  let estimated = false;
  let input = reported.inputTokens;
  if (input === undefined) {
    estimated = true;
    input = countChatTokens(messages, family);
  }
  let output = reported.outputTokens;
  if (output === undefined) {
    estimated = true;
    output = countTokens(outputText(), family);
  }
  return priced(model, input, output, estimated);
}

export function embedUsage(model: ModelConfig | undefined, reported: ProviderUsage, inputs: readonly string[]): Usage {
  if (reported.inputTokens !== undefined) return priced(model, reported.inputTokens, 0, false);
  const family = tokenizerOf(model);
  let n = 0;
  for (const text of inputs) n += countTokens(text, family);
  return priced(model, n, 0, true);
}

export const ZERO_USAGE: Usage = { inputTokens: 0, outputTokens: 0, costMicros: 0, costUsd: 0, tokensEstimated: false };

/** Merges a stream event's counts into the running ones (later reports win). */
export function mergeUsage(into: ProviderUsage, u: ProviderUsage): void {
  if (u.inputTokens !== undefined) into.inputTokens = u.inputTokens;
  if (u.outputTokens !== undefined) into.outputTokens = u.outputTokens;
}
