import { accountantMetrics, busConsumerMetrics, createMetrics, executorMetrics, genAiMetrics, httpMetrics, quotaMetrics, routerMetrics, usageMetrics } from '@llmgw/metrics';

/** Every metric family the services register, from the same factories the services use. */
export async function exportedMetricNames(): Promise<Set<string>> {
  const m = createMetrics('all', { defaultMetrics: false });
  usageMetrics(m);
  quotaMetrics(m);
  busConsumerMetrics(m);
  accountantMetrics(m);
  executorMetrics(m);
  genAiMetrics(m);
  httpMetrics(m);
  routerMetrics(m);
  return new Set((await m.registry.getMetricsAsJSON()).map((x) => x.name));
}

/**
 * The metric families a PromQL expression names (a histogram's _bucket, _count and _sum series
 * name their family). Label matchers and grouping clauses are dropped first: gen_ai_* labels
 * look like metric names.
 */
export function metricsIn(expr: string): string[] {
  const withoutLabels = expr.replace(/\{[^}]*\}/g, '').replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  return (withoutLabels.match(/\b(?:llmgw|gen_ai|grpc)_[a-z_]+\b/g) ?? []).map((n) => n.replace(/_(bucket|count|sum)$/, ''));
}
