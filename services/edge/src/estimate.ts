import { costMicros } from '@llmgw/pricing';
import type { Plan } from '@llmgw/proto/router';
import { familyOf, type PromptTokens } from '@llmgw/tokens';

export interface Estimate {
  tokens: number;
  costMicros: number;
}

/**
 * What a plan may spend, for its reservation: the most expensive of its attempts, each priced with
 * its own model's price and an upper bound of the prompt in its own tokenizer, plus all the output
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
    if (a.pricing) micros = Math.max(micros, costMicros(a.pricing, input, outputTokens));
  }
  return { tokens, costMicros: micros };
}
