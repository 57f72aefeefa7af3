import { describe, expect, it } from 'vitest';
import { costMicros, microsToUsd, type ModelPrice } from './index.js';

/** A model without cache discounts: cache reads and writes at the input price. */
const flat = (input: number, output: number): ModelPrice => ({
  inputPerMillionUsd: input,
  outputPerMillionUsd: output,
  cachedInputPerMillionUsd: input,
  cacheWriteInputPerMillionUsd: input,
});

describe('costMicros', () => {
  it.each([
    [flat(1, 2), 10, 5, 20],
    [flat(0.15, 0.6), 1000, 1000, 750],
    [flat(0.15, 0.6), 3, 1, 1], // 0.45 + 0.6 = 1.05 -> 1
    [flat(0.15, 0.6), 1, 0, 0], // 0.15 -> 0
    [flat(0.15, 0.6), 0, 1, 1], // 0.6 -> 1 (half up)
    [flat(15, 75), 2_000_000_000, 1_000_000_000, 105_000_000_000],
  ])('%o with %i in / %i out costs %i micro-dollars', (price, inputTokens, outputTokens, expected) => {
    expect(costMicros(price, { inputTokens, outputTokens })).toBe(expected);
  });

  // Published prices and the usage blocks of the providers' own documentation examples.
  const gpt4o: ModelPrice = { inputPerMillionUsd: 2.5, outputPerMillionUsd: 10, cachedInputPerMillionUsd: 1.25, cacheWriteInputPerMillionUsd: 2.5 };
  const o1: ModelPrice = { inputPerMillionUsd: 15, outputPerMillionUsd: 60, cachedInputPerMillionUsd: 7.5, cacheWriteInputPerMillionUsd: 15 };
  const sonnet: ModelPrice = { inputPerMillionUsd: 3, outputPerMillionUsd: 15, cachedInputPerMillionUsd: 0.3, cacheWriteInputPerMillionUsd: 3.75 };

  it('prices OpenAI cached_tokens at the cached rate, as a part of prompt_tokens (prompt caching guide: 2006 in, 1920 cached)', () => {
    // 86 uncached × 2.5 + 1920 cached × 1.25 + 300 out × 10 = 215 + 2400 + 3000
    expect(costMicros(gpt4o, { inputTokens: 2006, cachedInputTokens: 1920, outputTokens: 300 })).toBe(5615);
  });

  it('prices OpenAI reasoning_tokens as the output they are part of, never on top (reasoning guide: 1186 out, 1024 reasoning)', () => {
    // 75 × 15 + 1186 × 60; the 1024 reasoning tokens are inside the 1186
    expect(costMicros(o1, { inputTokens: 75, outputTokens: 1186 })).toBe(72_285);
  });

  it('prices Anthropic cache writes and reads at their rates (prompt caching guide: 188086 tokens written, then read)', () => {
    // input_tokens 21 + cache_creation_input_tokens 188086: 21 × 3 + 188086 × 3.75 + 393 × 15 = 711280.5, half up
    expect(costMicros(sonnet, { inputTokens: 21 + 188_086, cacheWriteInputTokens: 188_086, outputTokens: 393 })).toBe(711_281);
    // input_tokens 21 + cache_read_input_tokens 188086: 21 × 3 + 188086 × 0.3 + 393 × 15 = 62383.8
    expect(costMicros(sonnet, { inputTokens: 21 + 188_086, cachedInputTokens: 188_086, outputTokens: 393 })).toBe(62_384);
  });

  it('caps cache counts at the input count: a cached token is an input token, never an extra one', () => {
    expect(costMicros(sonnet, { inputTokens: 100, cachedInputTokens: 150, cacheWriteInputTokens: 50, outputTokens: 0 })).toBe(30);
    expect(costMicros(sonnet, { inputTokens: 100, cachedInputTokens: 60, cacheWriteInputTokens: 60, outputTokens: 0 })).toBe(Math.round(60 * 0.3 + 40 * 3.75));
  });

  it('converts micro-dollars to dollars for display only', () => {
    expect(microsToUsd(1_500_000)).toBe(1.5);
  });
});
