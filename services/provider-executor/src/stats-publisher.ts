import { Subjects, type EventBus } from '@llmgw/events';
import type { Logger } from '@llmgw/logging';
import { BackendStatsReport } from '@llmgw/proto/executor';
import type { LatencyWindow } from './latency-window.js';

export interface StatsPublisherDeps {
  bus: Pick<EventBus, 'broadcast'>;
  window: Pick<LatencyWindow, 'stats' | 'windowMs'>;
  /** The replica id of the health broadcasts. */
  replicaId: string;
  /** EXECUTOR_STATS_INTERVAL_MS; 0: no reports. */
  intervalMs: number;
  now: () => number;
  logger: Logger;
}

/** This replica's report of its calls per model over the window (only models with calls). */
export function statsReport(deps: Omit<StatsPublisherDeps, 'bus' | 'logger'>): BackendStatsReport {
  return {
    replicaId: deps.replicaId,
    windowMs: deps.window.windowMs,
    occurredAt: new Date(deps.now()),
    models: deps.window.stats().map((s) => ({ model: s.model, calls: s.calls, errors: s.errors, p95Ms: s.p95Ms })),
    intervalMs: deps.intervalMs,
  };
}

/**
 * Broadcasts one `BackendStatsReport` on core NATS (best effort, like the health broadcasts: a
 * failed broadcast is logged, at most once until one succeeds again, and the next interval tries
 * anew). A report without models is sent too: it replaces what this replica said before.
 */
export function publishStats(deps: StatsPublisherDeps, state: { failing: boolean } = { failing: false }): void {
  const report = statsReport(deps);
  try {
    deps.bus.broadcast(Subjects.backendStats, BackendStatsReport.encode(report).finish());
    if (state.failing) deps.logger.info({ models: report.models.length }, 'backend stats broadcast again');
    state.failing = false;
  } catch (err) {
    if (!state.failing) deps.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not broadcast backend stats');
    state.failing = true;
  }
}

/** Reports every `intervalMs` until the returned function is called; nothing when intervalMs is 0. */
export function startStatsPublisher(deps: StatsPublisherDeps): () => void {
  if (deps.intervalMs <= 0) return () => undefined;
  const state = { failing: false };
  const timer = setInterval(() => publishStats(deps, state), deps.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
