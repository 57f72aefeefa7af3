import { describe, expect, it, vi } from 'vitest';
import { Subjects } from '@llmgw/events';
import { silentLogger } from '@llmgw/logging';
import { BackendStatsReport } from '@llmgw/proto/executor';
import { LatencyWindow } from './latency-window.js';
import { publishStats, startStatsPublisher, type StatsPublisherDeps } from './stats-publisher.js';

/** A bus behind the publisher's interface that keeps what is broadcast, or fails when told to. */
class FakeBus {
  readonly sent: { subject: string; report: BackendStatsReport }[] = [];
  failing = false;

  broadcast(subject: string, data: Uint8Array): void {
    if (this.failing) throw new Error('connection closed');
    this.sent.push({ subject, report: BackendStatsReport.decode(data) });
  }
}

function setup(intervalMs = 5_000) {
  const clock = { t: Date.UTC(2026, 0, 1) };
  const now = () => clock.t;
  const window = new LatencyWindow({ now });
  const bus = new FakeBus();
  const warnings: string[] = [];
  const logger = silentLogger();
  logger.warn = ((_obj: unknown, msg: string) => void warnings.push(msg)) as typeof logger.warn;
  const deps: StatsPublisherDeps = { bus, window, replicaId: 'replica-1', intervalMs, now, logger };
  return { clock, window, bus, deps, warnings };
}

describe('backend stats publisher', () => {
  it('broadcasts the window of every model with calls as one BackendStatsReport', () => {
    const { window, bus, deps } = setup();
    window.observe('m1', 200);
    window.call('m1', true);
    window.call('m2', true);
    publishStats(deps);
    expect(bus.sent).toEqual([
      {
        subject: Subjects.backendStats,
        report: {
          replicaId: 'replica-1',
          windowMs: 60_000,
          occurredAt: new Date(Date.UTC(2026, 0, 1)),
          intervalMs: 5_000,
          models: [
            { model: 'm1', calls: 2, errors: 1, p95Ms: expect.any(Number) },
            { model: 'm2', calls: 1, errors: 1, p95Ms: 0 },
          ],
        },
      },
    ]);
    expect(bus.sent[0]?.report.models[0]?.p95Ms).toBeGreaterThanOrEqual(200);
  });

  it('sends a report without models when the window is empty: it replaces what the replica said before', () => {
    const { clock, window, bus, deps } = setup();
    window.call('m1', true);
    clock.t += 61_000;
    publishStats(deps);
    expect(bus.sent.map((s) => s.report.models)).toEqual([[]]);
  });

  it('is best effort: a failing bus is logged once until it works again, and never throws', () => {
    const { bus, deps, warnings } = setup();
    const state = { failing: false };
    bus.failing = true;
    expect(() => publishStats(deps, state)).not.toThrow();
    expect(() => publishStats(deps, state)).not.toThrow();
    expect(warnings).toEqual(['could not broadcast backend stats']);
    bus.failing = false;
    publishStats(deps, state);
    expect(bus.sent).toHaveLength(1);
    expect(state.failing).toBe(false);
  });

  it('reports every interval until stopped, and never with an interval of 0', () => {
    vi.useFakeTimers();
    try {
      const { bus, deps } = setup(1_000);
      const stop = startStatsPublisher(deps);
      vi.advanceTimersByTime(3_500);
      expect(bus.sent).toHaveLength(3);
      stop();
      vi.advanceTimersByTime(5_000);
      expect(bus.sent).toHaveLength(3);

      const off = setup(0);
      startStatsPublisher(off.deps)();
      vi.advanceTimersByTime(60_000);
      expect(off.bus.sent).toHaveLength(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
