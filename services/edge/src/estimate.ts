import { costMicros } from '@llmgw/pricing';
import type { PromptTokenCount } from '@llmgw/proto/executor';
import type { Plan } from '@llmgw/proto/router';
import { familyOf, type PromptTokens } from '@llmgw/tokens';

export interface Estimate {
  tokens: number;
  costMicros: number;
}

/**
 * What a plan may spend, for its reservation: the most expensive of its attempts, each priced with
 * its own model's price and an upper bound of the prompt in its own tokenizer (at the dearer of its
 * input and cache-write prices), plus all the output
 * it may produce. We reserve the maximum once rather than topping up before each fallback because
 * the executor must not call quota (hub and spoke), and a fallback then never waits on Redis.
 * Only one attempt of a plan produces an answer; a failed attempt that the provider bills anyway
 * (a timeout) is charged when the usage event reconciles the reservation.
 */
export function planEstimate(plan: Plan, prompt: PromptTokens, outputTokens: number): Estimate {
  let tokens = 0;
  let micros = 0;
  for (const a of plan.attempts) {
    const input = prompt.upperBound(familyOf(a.tokenizer));
    tokens = Math.max(tokens, input + outputTokens);
    // The prompt may all be written to the provider's cache, which can cost more than input (Anthropic).
    if (a.pricing) {
      micros = Math.max(micros, costMicros(a.pricing, { inputTokens: input, outputTokens }), costMicros(a.pricing, { inputTokens: input, cacheWriteInputTokens: input, outputTokens }));
    }
  }
  // A hedged plan may be billed for two calls at once: twice its dearest covers either hedge.
  const calls = plan.hedge ? 2 : 1;
  return { tokens: calls * tokens, costMicros: calls * micros };
}

/**
 * The prompt in each tokenizer of the plan's attempts, for the executor: it charges that to an
 * attempt the provider may bill without reporting usage (a timeout), and would otherwise run the
 * tokenizer again on every request for its write-ahead note.
 */
export function promptTokenCounts(plan: Plan, prompt: PromptTokens): PromptTokenCount[] {
  const counts: PromptTokenCount[] = [];
  for (const a of plan.attempts) {
    if (!counts.some((c) => c.tokenizer === a.tokenizer)) counts.push({ tokenizer: a.tokenizer, tokens: prompt.estimate(familyOf(a.tokenizer)) });
  }
  return counts;
}
