import { AppError } from '@llmgw/errors';
import type { UsageLabels } from '@llmgw/proto/executor';
import type { Plan } from '@llmgw/proto/router';

/**
 * Highest price a planned attempt may carry, in USD per million tokens: a thousand times any list
 * price today, low enough that a request's cost in micro-dollars stays an exact integer (2^53)
 * and an int64 for any prompt the edge admits.
 */
export const MAX_PRICE_PER_MILLION_USD = 100_000;

/** Far more than a route's primary and fallbacks. */
export const MAX_PLAN_ATTEMPTS = 32;
/** Longest name (route, rule, model, provider, tenant, key id) a request may carry. */
export const MAX_NAME_CHARS = 256;

function checkName(v: string, field: string): void {
  if (v.length > MAX_NAME_CHARS) throw new AppError('invalid_argument', `${field}: at most ${MAX_NAME_CHARS} characters`);
}

function checkPrice(v: number, field: string): void {
  if (!Number.isFinite(v) || v < 0 || v > MAX_PRICE_PER_MILLION_USD) {
    throw new AppError('invalid_argument', `${field} must be a number from 0 to ${MAX_PRICE_PER_MILLION_USD}`);
  }
}

/**
 * The plan as the router makes it: its prices are what every cost is computed from, so an attempt
 * without one, or one that is not a finite, non-negative, bounded number, is refused before any provider is called (it
 * would otherwise fail the cost arithmetic after the provider answered).
 */
export function checkPlan(plan: Plan): Plan {
  // Every attempt is listed in the usage event, which must fit in one NATS message (1 MB).
  if (plan.attempts.length > MAX_PLAN_ATTEMPTS) throw new AppError('invalid_argument', `plan.attempts: at most ${MAX_PLAN_ATTEMPTS}, got ${plan.attempts.length}`);
  checkName(plan.route, 'plan.route');
  checkName(plan.rule, 'plan.rule');
  plan.attempts.forEach((a, i) => {
    checkName(a.model, `plan.attempts[${i}].model`);
    checkName(a.provider, `plan.attempts[${i}].provider`);
    checkName(a.upstreamModel, `plan.attempts[${i}].upstream_model`);
    // The router prices every model (an unpriced one is a config error): no attempt is ever billed $0 for want of a price.
    if (!a.pricing) throw new AppError('invalid_argument', `plan.attempts[${i}].pricing is required (model ${a.model})`);
    checkPrice(a.pricing.inputPerMillionUsd, `plan.attempts[${i}].pricing.input_per_million_usd`);
    checkPrice(a.pricing.outputPerMillionUsd, `plan.attempts[${i}].pricing.output_per_million_usd`);
    checkPrice(a.pricing.cachedInputPerMillionUsd, `plan.attempts[${i}].pricing.cached_input_per_million_usd`);
    checkPrice(a.pricing.cacheWriteInputPerMillionUsd, `plan.attempts[${i}].pricing.cache_write_input_per_million_usd`);
  });
  return plan;
}

/**
 * Most texts one ExecuteEmbed may carry: the edge's limit for Embed. The answer grows with the
 * count (1,536 floats a text, 66 MB of provider JSON at 2,048), so the bound is kept here too.
 */
export const MAX_EMBED_INPUTS = 2_048;

/** The edge's limit for Embed's dimensions (the largest any provider returns). */
export const MAX_EMBED_DIMENSIONS = 3_072;

export function checkEmbedInputs(inputs: readonly string[], dimensions = 0): void {
  if (dimensions > MAX_EMBED_DIMENSIONS) throw new AppError('invalid_argument', `request.dimensions: at most ${MAX_EMBED_DIMENSIONS}, got ${dimensions}`);
  if (inputs.length > MAX_EMBED_INPUTS) throw new AppError('invalid_argument', `request.inputs: at most ${MAX_EMBED_INPUTS} texts, got ${inputs.length}`);
}

/** A request id is the usage event's id: its JetStream message id (a NATS header) and a journal key. */
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * The ids the usage event is keyed and billed by: request_id (also its JetStream message id, a
 * NATS header), tenant_id (an event without one cannot be accounted) and key_id.
 */
export function checkIds(req: { requestId: string; tenantId: string; keyId: string; labels?: UsageLabels | undefined }): void {
  if (!REQUEST_ID.test(req.requestId)) throw new AppError('invalid_argument', 'request_id: 1 to 128 visible ASCII characters (no spaces or control characters)');
  if (req.tenantId.length === 0) throw new AppError('invalid_argument', 'tenant_id is required');
  checkName(req.tenantId, 'tenant_id');
  checkName(req.keyId, 'key_id');
  // The edge bounds them tighter; the usage event must fit one NATS message whoever calls.
  checkName(req.labels?.user ?? '', 'labels.user');
  checkName(req.labels?.promptVersion ?? '', 'labels.prompt_version');
  checkName(req.labels?.feature ?? '', 'labels.feature');
}
