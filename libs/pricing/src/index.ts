/**
 * Money is integer micro-dollars (1e-6 USD). Prices are configured in USD per million tokens,
 * which is numerically micro-dollars per token; we keep them as integer pico-dollars per token
 * so that fractional prices (0.15 $/M) stay exact, and round once per request.
 */
export interface ModelPrice {
  inputPerMillionUsd: number;
  outputPerMillionUsd: number;
}

const PICO_PER_MICRO = 1_000_000n;

export function toPicoPerToken(perMillionUsd: number): bigint {
  // Up to 6 decimal places of $/M are exact; more would be noise in a price list.
  return BigInt(Math.round(perMillionUsd * 1_000_000));
}

/** Cost of one request in micro-dollars, rounded half up. */
export function costMicros(price: ModelPrice, inputTokens: number, outputTokens: number): number {
  const pico =
    BigInt(Math.max(0, Math.trunc(inputTokens))) * toPicoPerToken(price.inputPerMillionUsd) +
    BigInt(Math.max(0, Math.trunc(outputTokens))) * toPicoPerToken(price.outputPerMillionUsd);
  return Number((pico + PICO_PER_MICRO / 2n) / PICO_PER_MICRO);
}

export function microsToUsd(micros: number): number {
  return micros / 1_000_000;
}
