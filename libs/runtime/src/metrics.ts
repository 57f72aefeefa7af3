import type { Logger } from '@llmgw/logging';
import { createMetrics, startMetricsServer, type Metrics } from '@llmgw/metrics';
import type { ServiceName } from './service.js';

export const METRICS_PORT_ENV = 'METRICS_PORT';

/** Monolithic mode serves each service's registry on METRICS_PORT + this offset. */
export const METRICS_PORT_OFFSET: Record<ServiceName, number> = {
  edge: 0,
  auth: 1,
  quota: 2,
  router: 3,
  'provider-executor': 4,
  'usage-accountant': 5,
};

export interface ServiceMetrics {
  metrics: Metrics;
  /** Port of the /metrics endpoint; undefined when METRICS_PORT is not set. */
  port?: number;
  close(): Promise<void>;
}

/**
 * Creates a service's own Metrics and, when METRICS_PORT is set, serves them on
 * METRICS_PORT + offset (0 stays 0: a free port for each). An invalid METRICS_PORT throws.
 */
export async function startServiceMetrics(name: ServiceName, env: NodeJS.ProcessEnv, logger: Logger, offset = 0): Promise<ServiceMetrics> {
  const metrics = createMetrics(name);
  const raw = env[METRICS_PORT_ENV];
  if (raw === undefined || raw === '') return { metrics, close: async () => undefined };
  const base = Number(raw);
  if (!Number.isInteger(base) || base < 0 || base + offset > 65_535) throw new Error(`${METRICS_PORT_ENV} must be a port number, got "${raw}"`);
  const server = await startMetricsServer(metrics.registry, base === 0 ? 0 : base + offset);
  logger.info({ metricsPort: server.port }, `${name} metrics on :${server.port}/metrics`);
  return { metrics, port: server.port, close: () => server.close() };
}
