import { describe, expect, it } from 'vitest';
import { STICKY_BUCKETS, stickyBucket } from './index.js';

describe('stickyBucket', () => {
  it('is stable: one key, one bucket (pinned values, so a change of hash shows)', () => {
    expect([stickyBucket('user-1'), stickyBucket('user-1'), stickyBucket('')]).toEqual([8052, 8052, 2610]);
  });

  it('spreads sequential keys evenly over [0, STICKY_BUCKETS)', () => {
    const tenths = new Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) {
      const b = stickyBucket(`user-${i}`);
      expect(Number.isInteger(b) && b >= 0 && b < STICKY_BUCKETS).toBe(true);
      tenths[Math.floor(b / (STICKY_BUCKETS / 10))]!++;
    }
    for (const n of tenths) expect(n).toBeGreaterThan(900);
  });
});
