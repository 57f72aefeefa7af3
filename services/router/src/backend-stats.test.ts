import { describe, expect, it } from 'vitest';
import { BackendStats, MAX_REPORT_LIFETIME_MS } from './backend-stats.js';

const report = (replicaId: string, models: { model: string; calls: number; errors: number; p95Ms: number }[], intervalMs = 5_000) => ({ replicaId, models, intervalMs });

describe('BackendStats', () => {
  const make = () => {
    const clock = { t: 50_000 };
    return { clock, s: new BackendStats(() => clock.t) };
  };

  it('sums calls and errors over replicas, and weighs their p95s by calls', () => {
    const { s } = make();
    s.apply(report('r1', [{ model: 'm', calls: 30, errors: 3, p95Ms: 1_000 }]));
    s.apply(report('r2', [{ model: 'm', calls: 10, errors: 7, p95Ms: 5_000 }, { model: 'n', calls: 2, errors: 0, p95Ms: 80 }]));
    expect(s.measured('m')).toEqual({ calls: 40, errors: 10, p95Ms: 2_000 });
    expect(s.measured('n')).toEqual({ calls: 2, errors: 0, p95Ms: 80 });
    expect(s.measured('unknown')).toBeUndefined();
  });

  it('a replica without answers (p95 0) counts its calls and errors, not in the p95', () => {
    const { s } = make();
    s.apply(report('r1', [{ model: 'm', calls: 20, errors: 20, p95Ms: 0 }]));
    expect(s.measured('m')).toEqual({ calls: 20, errors: 20, p95Ms: 0 });
    s.apply(report('r2', [{ model: 'm', calls: 10, errors: 0, p95Ms: 300 }]));
    expect(s.measured('m')).toEqual({ calls: 30, errors: 20, p95Ms: 300 });
  });

  it("replaces a replica's previous report, models missing from it included", () => {
    const { s } = make();
    s.apply(report('r1', [{ model: 'm', calls: 50, errors: 40, p95Ms: 100 }]));
    s.apply(report('r1', [{ model: 'm', calls: 5, errors: 0, p95Ms: 100 }]));
    expect(s.measured('m')).toEqual({ calls: 5, errors: 0, p95Ms: 100 });
    s.apply(report('r1', []));
    expect(s.measured('m')).toBeUndefined();
  });

  it("forgets a report three of its sender's intervals after receipt, by the router's clock", () => {
    const { s, clock } = make();
    s.apply(report('r1', [{ model: 'm', calls: 30, errors: 30, p95Ms: 0 }], 5_000));
    clock.t += 5_000;
    s.apply(report('r2', [{ model: 'm', calls: 10, errors: 0, p95Ms: 200 }], 1_000));
    clock.t += 2_999;
    expect(s.measured('m')).toEqual({ calls: 40, errors: 30, p95Ms: 200 });
    clock.t += 1;
    expect(s.measured('m')).toEqual({ calls: 30, errors: 30, p95Ms: 0 });
    clock.t = 50_000 + 15_000;
    expect(s.measured('m')).toBeUndefined();
  });

  it('bounds what a report may claim: lifetime, errors within calls, models without calls ignored', () => {
    const { s, clock } = make();
    s.apply(report('r1', [{ model: 'm', calls: 10, errors: 99, p95Ms: -5 }, { model: 'z', calls: 0, errors: 0, p95Ms: 0 }, { model: '', calls: 3, errors: 0, p95Ms: 0 }], 3_600_000));
    expect(s.measured('m')).toEqual({ calls: 10, errors: 10, p95Ms: 0 });
    expect(s.measured('z')).toBeUndefined();
    clock.t += MAX_REPORT_LIFETIME_MS;
    expect(s.measured('m')).toBeUndefined();
    // A sender that names no interval is kept three default intervals.
    s.apply(report('r2', [{ model: 'm', calls: 1, errors: 0, p95Ms: 1 }], 0));
    clock.t += 14_999;
    expect(s.measured('m')).toBeDefined();
    clock.t += 1;
    expect(s.measured('m')).toBeUndefined();
  });
});
