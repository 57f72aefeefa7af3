import { AppError } from '@llmgw/errors';
import { costMicros, microsToUsd, type TokenCounts } from '@llmgw/pricing';
import type { PlannedAttempt, Pricing } from '@llmgw/proto/router';
import type { Usage } from '@llmgw/proto/v1';
import type { PromptTokenCount } from '@llmgw/proto/executor';
import { countChatTokens, countTokens, familyOf, type TokenizerFamily } from '@llmgw/tokens';
import type { ProviderUsage } from './providers/types.js';

/** The attempt's price, as the router put it in the plan (checkPlan refuses a plan with an unpriced attempt). */
function priceOf(planned: PlannedAttempt): Pricing {
  if (!planned.pricing) throw new AppError('internal', `attempt of model ${planned.model} has no price`);
  return planned.pricing;
}

/** A request's counts as Usage, priced with the plan's price for the attempt's model. */
export function priced(planned: PlannedAttempt, tokens: TokenCounts & { reasoningTokens?: number | undefined }, estimated: boolean): Usage {
  const micros = costMicros(priceOf(planned), tokens);
  return {
    inputTokens: tokens.inputTokens,
    outputTokens: tokens.outputTokens,
    cachedInputTokens: tokens.cachedInputTokens ?? 0,
    cacheWriteInputTokens: tokens.cacheWriteInputTokens ?? 0,
    reasoningTokens: tokens.reasoningTokens ?? 0,
    costMicros: micros,
    costUsd: microsToUsd(micros),
    tokensEstimated: estimated,
  };
}

/**
 * Usage of a chat answer: the provider's counts where it gave them, else counted with
 * @llmgw/tokens in the plan's tokenizer (exact for openai, an estimate otherwise), flagged
 * estimated. Cache and reasoning counts are the provider's (a part of its input and output
 * counts); an estimated input or output has none. `outputText` is only called when the provider
 * gave no output count.
 */
export function chatUsage(planned: PlannedAttempt, reported: ProviderUsage, messages: readonly { content: string }[], outputText: () => string): Usage {
  const family = familyOf(planned.tokenizer);
  let estimated = false;
  let input = reported.inputTokens;
  const cached = input === undefined ? {} : { cachedInputTokens: reported.cachedInputTokens, cacheWriteInputTokens: reported.cacheWriteInputTokens };
  if (input === undefined) {
    estimated = true;
    input = countChatTokens(messages, family);
  }
  let output = reported.outputTokens;
  const reasoningTokens = output === undefined ? undefined : reported.reasoningTokens;
  if (output === undefined) {
    estimated = true;
    output = countTokens(outputText(), family);
  }
  return priced(planned, { inputTokens: input, outputTokens: output, ...cached, reasoningTokens }, estimated);
}

export function embedUsage(planned: PlannedAttempt, reported: ProviderUsage, inputs: readonly string[]): Usage {
  if (reported.inputTokens !== undefined) return priced(planned, { inputTokens: reported.inputTokens, outputTokens: 0 }, false);
  let n = 0;
  for (const text of inputs) n += countTokens(text, familyOf(planned.tokenizer));
  return priced(planned, { inputTokens: n, outputTokens: 0 }, true);
}

/** Merges a stream event's counts into the running ones (later reports win). */
export function mergeUsage(into: ProviderUsage, u: ProviderUsage): void {
  if (u.inputTokens !== undefined) into.inputTokens = u.inputTokens;
  if (u.outputTokens !== undefined) into.outputTokens = u.outputTokens;
  if (u.cachedInputTokens !== undefined) into.cachedInputTokens = u.cachedInputTokens;
  if (u.cacheWriteInputTokens !== undefined) into.cacheWriteInputTokens = u.cacheWriteInputTokens;
  if (u.reasoningTokens !== undefined) into.reasoningTokens = u.reasoningTokens;
}

/**
 * The prompt's tokens in a family: the edge's count where it sent one (it counts every prompt for
 * the reservation, so the tokenizer runs once per request), else counted here.
 */
export function promptCount(sent: readonly PromptTokenCount[], count: (family: TokenizerFamily) => number): (family: TokenizerFamily) => number {
  return (family) => sent.find((c) => familyOf(c.tokenizer) === family)?.tokens ?? count(family);
}
