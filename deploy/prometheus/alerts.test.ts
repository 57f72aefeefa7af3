import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { exportedMetricNames, metricsIn } from '../metric-names.js';

interface Rules {
  groups: { name: string; rules: { alert: string; expr: string; labels: { severity: string } }[] }[];
}

const rules = parse(readFileSync(new URL('./alerts.yaml', import.meta.url), 'utf8')) as Rules;

describe('Prometheus alert rules (deploy/prometheus/alerts.yaml)', () => {
  it('name only metrics the services export, each rule with a severity', async () => {
    const names = await exportedMetricNames();
    const all = rules.groups.flatMap((g) => g.rules);
    expect(all.length).toBeGreaterThan(0);
    for (const r of all) {
      const used = metricsIn(r.expr);
      expect(used.length, r.alert).toBeGreaterThan(0);
      for (const name of used) expect(names, `${r.alert} uses ${name}`).toContain(name);
      expect(['page', 'warn']).toContain(r.labels.severity);
    }
  });

  it('pages on every way usage can go uncounted', () => {
    const paged = rules.groups.flatMap((g) => g.rules).filter((r) => r.labels.severity === 'page').map((r) => r.expr);
    for (const metric of ['llmgw_events_dead_lettered_total', 'llmgw_event_consumer_up', 'llmgw_usage_outbox_refused_total']) {
      expect(paged.some((e) => e.includes(metric)), metric).toBe(true);
    }
  });
});
