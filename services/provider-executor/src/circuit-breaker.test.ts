import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from './circuit-breaker.js';

describe('CircuitBreaker', () => {
  const make = () => {
    const clock = { t: 0 };
    return { clock, cb: new CircuitBreaker({ failureThreshold: 3, openMs: 10_000, now: () => clock.t }) };
  };

  it('opens after N consecutive failures and only then', () => {
    const { cb } = make();
    cb.failure('m');
    cb.failure('m');
    expect(cb.allow('m')).toBe(true);
    cb.success('m');
    cb.failure('m');
    cb.failure('m');
    expect(cb.allow('m')).toBe(true);
    cb.failure('m');
    expect(cb.allow('m')).toBe(false);
    expect(cb.isOpen('m')).toBe(true);
    expect(cb.allow('other')).toBe(true);
  });

  it('lets one probe through after openMs; success closes, failure reopens', () => {
    const { cb, clock } = make();
    for (let i = 0; i < 3; i++) cb.failure('m');
    clock.t = 9_999;
    expect(cb.allow('m')).toBe(false);
    clock.t = 10_000;
    expect(cb.allow('m')).toBe(true);
    expect(cb.allow('m')).toBe(false); // one probe at a time
    cb.failure('m');
    expect(cb.allow('m')).toBe(false);
    clock.t = 20_000;
    expect(cb.allow('m')).toBe(true);
    cb.success('m');
    expect(cb.allow('m')).toBe(true);
    expect(cb.allow('m')).toBe(true);
  });

  it('frees the probe slot when the probe ends without a verdict', () => {
    const { cb, clock } = make();
    for (let i = 0; i < 3; i++) cb.failure('m');
    clock.t = 10_000;
    expect(cb.allow('m')).toBe(true);
    cb.release('m');
    expect(cb.allow('m')).toBe(true);
  });
});
