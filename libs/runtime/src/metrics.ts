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
  /** Port of the /metrics endpoint; undefined when no port was given. */
  port?: number;
  close(): Promise<void>;
}

/**
 * Creates a service's own Metrics and, when a base port is given (METRICS_PORT, parsed by the
 * caller), serves them on base + offset (0 stays 0: a free port for each).
 */
export async function startServiceMetrics(name: ServiceName, basePort: number | undefined, logger: Logger, offset = 0): Promise<ServiceMetrics> {
  const metrics = createMetrics(name);
  if (basePort === undefined) return { metrics, close: async () => undefined };
  if (!Number.isInteger(basePort) || basePort < 0 || basePort + offset > 65_535) {
    throw new Error(`${METRICS_PORT_ENV} + ${offset} must be a port number, got ${basePort + offset}`);
  }
  const server = await startMetricsServer(metrics.registry, basePort === 0 ? 0 : basePort + offset);
  logger.info({ metricsPort: server.port }, `${name} metrics on :${server.port}/metrics`);
  return { metrics, port: server.port, close: () => server.close() };
}
