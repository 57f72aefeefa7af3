import { describe, expect, it } from 'vitest';
import { costMicros, microsToUsd } from './index.js';

describe('costMicros', () => {
  it.each([
    [{ inputPerMillionUsd: 1, outputPerMillionUsd: 2 }, 10, 5, 20],
    [{ inputPerMillionUsd: 0.15, outputPerMillionUsd: 0.6 }, 1000, 1000, 750],
    [{ inputPerMillionUsd: 0.15, outputPerMillionUsd: 0.6 }, 3, 1, 1], // 0.45 + 0.6 = 1.05 -> 1
    [{ inputPerMillionUsd: 0.15, outputPerMillionUsd: 0.6 }, 1, 0, 0], // 0.15 -> 0
    [{ inputPerMillionUsd: 0.15, outputPerMillionUsd: 0.6 }, 0, 1, 1], // 0.6 -> 1 (half up)
    [{ inputPerMillionUsd: 15, outputPerMillionUsd: 75 }, 2_000_000_000, 1_000_000_000, 105_000_000_000],
  ])('%o with %i in / %i out costs %i micro-dollars', (price, input, output, expected) => {
    expect(costMicros(price, input, output)).toBe(expected);
  });

  it('converts micro-dollars to dollars for display only', () => {
    expect(microsToUsd(1_500_000)).toBe(1.5);
  });
});
