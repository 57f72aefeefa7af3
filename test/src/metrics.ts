import { METRICS_PORT_OFFSET, type ServiceName } from '@llmgw/runtime';

/**
 * The sum of a metric's series on a service's /metrics whose labels include every pair given,
 * for a mesh started with METRICS_PORT=`metricsBase`.
 */
export function metricSum(metricsBase: number, service: ServiceName, name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricSumAt(metricsBase + METRICS_PORT_OFFSET[service], name, labels);
}

/** The same, on the /metrics of one process, on `port`. */
export async function metricSumAt(port: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{.*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const series = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => series.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}
