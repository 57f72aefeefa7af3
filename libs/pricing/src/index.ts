/**
 * Money is integer micro-dollars (1e-6 USD). Prices are configured in USD per million tokens,
 * which is numerically micro-dollars per token; we keep them as integer pico-dollars per token
 * so that fractional prices (0.15 $/M) stay exact, and round once per request.
 */
export interface ModelPrice {
  inputPerMillionUsd: number;
  outputPerMillionUsd: number;
  /** Input tokens read from the provider's prompt cache. */
  cachedInputPerMillionUsd: number;
  /** Input tokens written to the provider's prompt cache. */
  cacheWriteInputPerMillionUsd: number;
}

/**
 * A request's tokens as the OpenTelemetry GenAI conventions count them: cached and cache-write
 * input tokens are part of `inputTokens`, reasoning tokens part of `outputTokens` (and billed as
 * output, so they need no price of their own). Nothing is counted twice.
 */
export interface TokenCounts {
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens?: number | undefined;
  cacheWriteInputTokens?: number | undefined;
}

const PICO_PER_MICRO = 1_000_000n;

export function toPicoPerToken(perMillionUsd: number): bigint {
  // Up to 6 decimal places of $/M are exact; more would be noise in a price list.
  return BigInt(Math.round(perMillionUsd * 1_000_000));
}

const count = (n: number | undefined): bigint => BigInt(Math.max(0, Math.trunc(n ?? 0)));

/**
 * Cost of one request in micro-dollars, rounded half up. Cache reads and writes are priced at
 * their own rates and the rest of the input at the input rate; a provider's cache counts larger
 * than its input count are capped at it (cache reads first).
 */
export function costMicros(price: ModelPrice, tokens: TokenCounts): number {
  const input = count(tokens.inputTokens);
  const cached = minBig(count(tokens.cachedInputTokens), input);
  const written = minBig(count(tokens.cacheWriteInputTokens), input - cached);
  const pico =
    (input - cached - written) * toPicoPerToken(price.inputPerMillionUsd) +
    cached * toPicoPerToken(price.cachedInputPerMillionUsd) +
    written * toPicoPerToken(price.cacheWriteInputPerMillionUsd) +
    count(tokens.outputTokens) * toPicoPerToken(price.outputPerMillionUsd);
  return Number((pico + PICO_PER_MICRO / 2n) / PICO_PER_MICRO);
}

function minBig(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

export function microsToUsd(micros: number): number {
  return micros / 1_000_000;
}
