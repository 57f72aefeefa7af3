import { costMicros, microsToUsd } from '@llmgw/pricing';
import type { Pricing } from '@llmgw/proto/router';
import type { Usage } from '@llmgw/proto/v1';
import type { PromptTokenCount } from '@llmgw/proto/executor';
import { countChatTokens, countTokens, familyOf, type TokenizerFamily } from '@llmgw/tokens';
import type { ProviderUsage } from './providers/types.js';

/** Usage priced with the plan's price for the attempt's model (none priced means $0, as configured). */
export function priced(pricing: Pricing | undefined, inputTokens: number, outputTokens: number, estimated: boolean): Usage {
  const micros = pricing ? costMicros(pricing, inputTokens, outputTokens) : 0;
  return { inputTokens, outputTokens, costMicros: micros, costUsd: microsToUsd(micros), tokensEstimated: estimated };
}

/**
 * Usage of a chat answer: the provider's counts where it gave them, else counted with
 * @llmgw/tokens in the plan's tokenizer (exact for openai, an estimate otherwise), flagged
 * estimated. `outputText` is only called when the provider gave no output count.
 */
export function chatUsage(
  family: TokenizerFamily,
  pricing: Pricing | undefined,
  reported: ProviderUsage,
  messages: readonly { content: string }[],
  outputText: () => string,
): Usage {
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
  return priced(pricing, input, output, estimated);
}

export function embedUsage(family: TokenizerFamily, pricing: Pricing | undefined, reported: ProviderUsage, inputs: readonly string[]): Usage {
  if (reported.inputTokens !== undefined) return priced(pricing, reported.inputTokens, 0, false);
  let n = 0;
  for (const text of inputs) n += countTokens(text, family);
  return priced(pricing, n, 0, true);
}

export const ZERO_USAGE: Usage = { inputTokens: 0, outputTokens: 0, costMicros: 0, costUsd: 0, tokensEstimated: false };

/** Merges a stream event's counts into the running ones (later reports win). */
export function mergeUsage(into: ProviderUsage, u: ProviderUsage): void {
  if (u.inputTokens !== undefined) into.inputTokens = u.inputTokens;
  if (u.outputTokens !== undefined) into.outputTokens = u.outputTokens;
}

/**
 * The prompt's tokens in a family: the edge's count where it sent one (it counts every prompt for
 * the reservation, so the tokenizer runs once per request), else counted here.
 */
export function promptCount(sent: readonly PromptTokenCount[], count: (family: TokenizerFamily) => number): (family: TokenizerFamily) => number {
  return (family) => sent.find((c) => familyOf(c.tokenizer) === family)?.tokens ?? count(family);
}
