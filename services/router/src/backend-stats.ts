import type { BackendStatsReport } from '@llmgw/proto/executor';

/** One model's calls over the executors' windows, summed over the replicas that reported. */
export interface MeasuredHealth {
  calls: number;
  errors: number;
  /** The replicas' p95 latencies weighted by their calls; 0 when none answered. */
  p95Ms: number;
}

/** A report whose sender gave no interval is kept as long as one of the default interval's. */
export const DEFAULT_REPORT_INTERVAL_MS = 5_000;
/** A report is forgotten this many of its sender's intervals after it was received. */
export const REPORT_LIFETIME_INTERVALS = 3;
/** Longest a report is kept, whatever interval its sender names. */
export const MAX_REPORT_LIFETIME_MS = 5 * 60_000;

interface Received {
  expiresAt: number;
  models: ReadonlyMap<string, { calls: number; errors: number; p95Ms: number }>;
}

/**
 * The router's view of the executors' measured health, fed by `BackendStatsReport` broadcasts:
 * replica → its latest report (each report replaces the replica's previous one). A report
 * expires three of its sender's intervals after receipt, by this router's clock (as with
 * BackendHealth, clock skew between hosts does not matter), so a dead replica's last word fades.
 *
 * Per model, calls and errors are summed over the live reports. The p95 is the call-weighted
 * mean of the replicas' p95s: percentiles do not add up, and without the replicas' histograms
 * this is the estimate that lets a replica weigh as much as the traffic it saw (a replica with a
 * handful of slow calls does not decide alone, as it would with the max).
 */
export class BackendStats {
  private readonly reports = new Map<string, Received>();

  constructor(private readonly now: () => number) {}

  apply(report: Pick<BackendStatsReport, 'replicaId' | 'models' | 'intervalMs'>): void {
    const interval = report.intervalMs > 0 ? report.intervalMs : DEFAULT_REPORT_INTERVAL_MS;
    const models = new Map<string, { calls: number; errors: number; p95Ms: number }>();
    for (const m of report.models) {
      if (!m.model || m.calls <= 0) continue;
      models.set(m.model, { calls: m.calls, errors: Math.min(Math.max(0, m.errors), m.calls), p95Ms: Math.max(0, m.p95Ms) });
    }
    this.reports.set(report.replicaId, { expiresAt: this.now() + Math.min(REPORT_LIFETIME_INTERVALS * interval, MAX_REPORT_LIFETIME_MS), models });
  }

  /** The model's calls, errors and p95 over the replicas' live reports; undefined without calls. */
  measured(model: string): MeasuredHealth | undefined {
    const now = this.now();
    let calls = 0;
    let errors = 0;
    let weighted = 0;
    let answered = 0;
    for (const [replica, r] of this.reports) {
      if (r.expiresAt <= now) {
        this.reports.delete(replica);
        continue;
      }
      const m = r.models.get(model);
      if (!m) continue;
      calls += m.calls;
      errors += m.errors;
      if (m.p95Ms > 0) {
        weighted += m.p95Ms * m.calls;
        answered += m.calls;
      }
    }
    if (calls === 0) return undefined;
    return { calls, errors, p95Ms: answered > 0 ? Math.round(weighted / answered) : 0 };
  }
}
