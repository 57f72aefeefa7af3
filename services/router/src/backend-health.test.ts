import { describe, expect, it } from 'vitest';
import { BackendHealth, MAX_UNHEALTHY_MS } from './backend-health.js';

const down = (model: string, replicaId: string, unhealthyForMs: number) => ({ model, replicaId, healthy: false, unhealthyForMs });
const up = (model: string, replicaId: string) => ({ model, replicaId, healthy: true, unhealthyForMs: 0 });

describe('BackendHealth', () => {
  const make = () => {
    const clock = { t: 50_000 };
    return { clock, h: new BackendHealth(() => clock.t) };
  };

  it('marks a model unhealthy for the reported time from receipt, then lets it expire', () => {
    const { h, clock } = make();
    expect(h.isUnhealthy('m')).toBe(false);
    h.apply(down('m', 'r1', 10_000));
    expect(h.isUnhealthy('m')).toBe(true);
    expect(h.isUnhealthy('other')).toBe(false);
    expect(h.unhealthyUntil('m')).toBe(60_000);
    clock.t = 59_999;
    expect(h.isUnhealthy('m')).toBe(true);
    clock.t = 60_000;
    expect(h.isUnhealthy('m')).toBe(false);
    expect(h.unhealthyUntil('m')).toBe(0);
  });

  it('takes the max over replicas; a healthy report clears only its own replica', () => {
    const { h, clock } = make();
    h.apply(down('m', 'r1', 10_000)); // until 60 000
    clock.t = 52_000;
    h.apply(down('m', 'r2', 3_000)); // until 55 000: r1's later expiry wins
    expect(h.unhealthyUntil('m')).toBe(60_000);

    h.apply(up('m', 'r2'));
    expect(h.unhealthyUntil('m')).toBe(60_000); // r1 still says down
    h.apply(up('m', 'r1'));
    expect(h.isUnhealthy('m')).toBe(false);

    h.apply(down('m', 'r1', 1_000));
    h.apply(down('m', 'r2', 8_000));
    h.apply(up('m', 'r2'));
    expect(h.unhealthyUntil('m')).toBe(53_000); // back to r1's shorter entry
    h.apply(up('m', 'r3')); // a replica that never reported: no effect
    expect(h.isUnhealthy('m')).toBe(true);
  });

  it('a newer report from the same replica replaces its older one', () => {
    const { h, clock } = make();
    h.apply(down('m', 'r1', 10_000));
    clock.t = 55_000;
    h.apply(down('m', 'r1', 2_000));
    expect(h.unhealthyUntil('m')).toBe(57_000);
  });

  it('ignores reports without a model or duration and caps absurd durations', () => {
    const { h } = make();
    h.apply(down('', 'r1', 10_000));
    h.apply(down('m', 'r1', 0));
    h.apply(down('n', 'r1', -5));
    expect(h.isUnhealthy('')).toBe(false);
    expect(h.isUnhealthy('m')).toBe(false);
    expect(h.isUnhealthy('n')).toBe(false);
    h.apply(down('m', 'r1', Number.MAX_SAFE_INTEGER));
    expect(h.unhealthyUntil('m')).toBe(50_000 + MAX_UNHEALTHY_MS);
  });
});
