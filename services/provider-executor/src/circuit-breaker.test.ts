import { describe, expect, it } from 'vitest';
import { CircuitBreaker, type BreakerChange } from './circuit-breaker.js';

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

describe('CircuitBreaker onChange', () => {
  const make = () => {
    const clock = { t: 1_000 };
    const changes: BreakerChange[] = [];
    const cb = new CircuitBreaker({ failureThreshold: 3, openMs: 10_000, now: () => clock.t, onChange: (c) => changes.push(c) });
    return { clock, cb, changes };
  };

  it('reports the opening once, then the closing after a successful probe', () => {
    const { cb, clock, changes } = make();
    cb.failure('m', 'http_5xx');
    cb.failure('m', 'http_5xx');
    cb.success('m'); // closed breaker: a success is not a change
    cb.failure('m', 'http_5xx');
    cb.failure('m', 'http_5xx');
    expect(changes).toEqual([]);
    cb.failure('m', 'timeout');
    expect(changes).toEqual([
      { key: 'm', healthy: false, unhealthyForMs: 10_000, reason: '3 consecutive retriable failures (last: timeout)', at: 1_000 },
    ]);
    // A late failure of a call already in flight pushes the open breaker out without a new report.
    clock.t = 2_000;
    cb.failure('m', 'http_5xx');
    expect(changes).toHaveLength(1);

    clock.t = 12_000;
    expect(cb.allow('m')).toBe(true); // the probe
    cb.success('m');
    expect(changes[1]).toEqual({ key: 'm', healthy: true, unhealthyForMs: 0, reason: '', at: 12_000 });
    expect(changes).toHaveLength(2);
    cb.success('m');
    expect(changes).toHaveLength(2);
  });

  it('reports a failed probe as a fresh opening', () => {
    const { cb, clock, changes } = make();
    for (let i = 0; i < 3; i++) cb.failure('m', 'connection_error');
    clock.t = 11_000;
    expect(cb.allow('m')).toBe(true);
    cb.failure('m', 'http_429');
    expect(changes.map((c) => [c.healthy, c.reason, c.at])).toEqual([
      [false, '3 consecutive retriable failures (last: connection_error)', 1_000],
      [false, 'probe failed (http_429)', 11_000],
    ]);
    expect(cb.allow('m')).toBe(false);
  });

  it('keeps keys apart', () => {
    const { cb, changes } = make();
    for (let i = 0; i < 3; i++) cb.failure('a');
    cb.failure('b');
    cb.success('b');
    expect(changes.map((c) => c.key)).toEqual(['a']);
  });
});
