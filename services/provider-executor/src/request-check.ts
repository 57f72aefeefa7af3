import { AppError } from '@llmgw/errors';
import type { Plan } from '@llmgw/proto/router';

/**
 * Highest price a planned attempt may carry, in USD per million tokens: a thousand times any list
 * price today, low enough that a request's cost in micro-dollars stays an exact integer (2^53)
 * and an int64 for any prompt the edge admits.
 */
export const MAX_PRICE_PER_MILLION_USD = 100_000;

function checkPrice(v: number, field: string): void {
  if (!Number.isFinite(v) || v < 0 || v > MAX_PRICE_PER_MILLION_USD) {
    throw new AppError('invalid_argument', `${field} must be a number from 0 to ${MAX_PRICE_PER_MILLION_USD}`);
  }
}

/**
 * The plan as the router makes it: its prices are what every cost is computed from, so one that
 * is not a finite, non-negative, bounded number is refused before any provider is called (it
 * would otherwise fail the cost arithmetic after the provider answered).
 */
export function checkPlan(plan: Plan): Plan {
  plan.attempts.forEach((a, i) => {
    if (!a.pricing) return;
    checkPrice(a.pricing.inputPerMillionUsd, `plan.attempts[${i}].pricing.input_per_million_usd`);
    checkPrice(a.pricing.outputPerMillionUsd, `plan.attempts[${i}].pricing.output_per_million_usd`);
  });
  return plan;
}

/**
 * Most texts one ExecuteEmbed may carry: the edge's limit for Embed. The answer grows with the
 * count (1,536 floats a text, 66 MB of provider JSON at 2,048), so the bound is kept here too.
 */
export const MAX_EMBED_INPUTS = 2_048;

export function checkEmbedInputs(inputs: readonly string[]): void {
  if (inputs.length > MAX_EMBED_INPUTS) throw new AppError('invalid_argument', `request.inputs: at most ${MAX_EMBED_INPUTS} texts, got ${inputs.length}`);
}

/** A request id is the usage event's id: its JetStream message id (a NATS header) and a journal key. */
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

export function checkRequestId(id: string): void {
  if (!REQUEST_ID.test(id)) throw new AppError('invalid_argument', 'request_id: 1 to 128 visible ASCII characters (no spaces or control characters)');
}
