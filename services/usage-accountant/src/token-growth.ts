import type { AlertsConfig } from '@llmgw/config';
import type { Logger } from '@llmgw/logging';
import { TokenGrowthAlertRaised } from '@llmgw/proto/v1';
import { hourStartMs, rfc3339 } from './buckets.js';
import type { UsageStore } from './usage-store.js';

const HOUR_MS = 3_600_000;
/** Hours of history an hour is judged against. */
const BASELINE_HOURS = 24;

export interface TokenGrowthDeps {
  store: Pick<UsageStore, 'cells'>;
  /** alerts.token_growth of the current config; undefined: growth alerts are off. */
  config: () => AlertsConfig['token_growth'];
  /** The configured tenants. */
  tenants: () => readonly string[];
  /**
   * True the first time `key` is claimed anywhere (Redis SET NX across replicas): an alert is
   * raised and logged once per route and hour, whichever replica sees it first.
   */
  claim: (key: string, ttlMs: number) => Promise<boolean>;
  /** Gives a claim back (its alert could not be stored), so the next check raises it again. */
  release: (key: string) => Promise<void>;
  /** Stores the alert on the bus (stream ALERTS), with its id as the message id. */
  publish: (alert: TokenGrowthAlertRaised, id: string) => Promise<void>;
  logger: Logger;
  now: () => number;
}

/** The id of a growth alert: one per tenant, route and judged hour. */
export function tokenGrowthAlertId(a: Pick<TokenGrowthAlertRaised, 'tenantId' | 'route' | 'hour'>): string {
  return `token_growth:${a.tenantId}:${a.route}:${a.hour}`;
}

/**
 * Sudden token growth per tenant and route, from the accountant's hour buckets: the current hour
 * (so far) and the last complete hour are each judged against the mean of the 24 hours before
 * them. An hour over `factor` times that mean and over `min_tokens` raises one alert. A route
 * without any usage in the 24 hours before is new, not growing: it raises none.
 */
export class TokenGrowthWatch {
  constructor(private readonly deps: TokenGrowthDeps) {}

  /** One check; returns the alerts it raised (those no replica raised before). */
  async check(): Promise<TokenGrowthAlertRaised[]> {
    const cfg = this.deps.config();
    const tenants = this.deps.tenants();
    if (!cfg || tenants.length === 0) return [];
    const now = this.deps.now();
    const current = hourStartMs(now);
    const cells = await this.deps.store.cells({ tenants, fromMs: current - (BASELINE_HOURS + 1) * HOUR_MS, toMs: current + HOUR_MS });
    /** tenant|route → hour ms → tokens */
    const series = new Map<string, Map<number, number>>();
    for (const c of cells) {
      const key = `${c.tenantId}|${c.route}`;
      let hours = series.get(key);
      if (!hours) series.set(key, (hours = new Map()));
      hours.set(c.startMs, (hours.get(c.startMs) ?? 0) + c.inputTokens + c.outputTokens);
    }
    const raised: TokenGrowthAlertRaised[] = [];
    for (const [key, hours] of series) {
      const sep = key.indexOf('|');
      const tenantId = key.slice(0, sep);
      const route = key.slice(sep + 1);
      for (const judged of [current, current - HOUR_MS]) {
        const tokens = hours.get(judged) ?? 0;
        if (tokens < cfg.min_tokens) continue;
        let before = 0;
        for (let h = 1; h <= BASELINE_HOURS; h++) before += hours.get(judged - h * HOUR_MS) ?? 0;
        const baseline = before / BASELINE_HOURS;
        if (baseline === 0 || tokens <= cfg.factor * baseline) continue;
        const alert = TokenGrowthAlertRaised.fromPartial({ tenantId, route, hour: rfc3339(judged), tokens, baselineTokensPerHour: baseline, factor: cfg.factor, occurredAt: new Date(now) });
        const id = tokenGrowthAlertId(alert);
        if (!(await this.deps.claim(id, 2 * (BASELINE_HOURS + 1) * HOUR_MS))) continue;
        try {
          await this.deps.publish(alert, id);
        } catch (err) {
          this.deps.logger.warn({ err, id }, 'token growth alert not stored; tried again at the next check');
          await this.deps.release(id);
          continue;
        }
        this.deps.logger.warn({ tenantId, route, hour: alert.hour, tokens, baselineTokensPerHour: Math.round(baseline), factor: cfg.factor }, 'token growth alert');
        raised.push(alert);
        break; // the current hour and the last one are one growth: one alert
      }
    }
    return raised;
  }

  /** Checks every `intervalMs` until the returned function is called; a failed check is logged and retried next time. */
  start(intervalMs: number): () => void {
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      this.check()
        .catch((err: unknown) => this.deps.logger.warn({ err }, 'token growth check failed'))
        .finally(() => (running = false));
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}
