import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { exportedMetricNames, metricsIn } from '../metric-names.js';

interface Dashboard {
  uid: string;
  panels: { title: string; targets: { expr: string }[] }[];
}

const dashboard = JSON.parse(readFileSync(new URL('./llmgw-overview.json', import.meta.url), 'utf8')) as Dashboard;

describe('Grafana dashboard (deploy/grafana/llmgw-overview.json)', () => {
  it('queries only metrics the services export', async () => {
    const names = await exportedMetricNames();
    expect(dashboard.panels.length).toBeGreaterThan(0);
    for (const p of dashboard.panels) {
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) {
        const used = metricsIn(t.expr);
        expect(used.length, `${p.title}: ${t.expr}`).toBeGreaterThan(0);
        for (const name of used) expect(names, `${p.title} uses ${name}`).toContain(name);
      }
    }
  });

  it('shows every view of the design notes\' dashboard list', () => {
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)).join('\n');
    for (const metric of [
      'llmgw_requests_total', // requests per route
      'llmgw_routed_requests_total', // chosen-model distribution
      'llmgw_quota_decisions_total', // rate-limit rejections
      'llmgw_tokens_total', // tokens by tenant
      'llmgw_fallbacks_total', // fallback rate by reason
      'llmgw_provider_attempts_total', // provider error rate by kind
      'llmgw_cost_micros_total', // cost by route and tenant
      'gen_ai_client_operation_duration_seconds_bucket', // latency per backend
      'gen_ai_client_operation_time_to_first_chunk_seconds_bucket', // time to first token per backend
    ]) {
      expect(exprs, metric).toContain(metric);
    }
  });
});
