import { collectDefaultMetrics, Registry } from 'prom-client';
import { RpcMetrics } from './rpc.js';

/**
 * One service's metrics. Each service owns its own Registry (never prom-client's global one):
 * the monolithic mode runs six services in one process and their series must not mix.
 */
export interface Metrics {
  readonly service: string;
  readonly registry: Registry;
  /** Hook for the @llmgw/grpc handler adapters (`unary(..., { metrics: m.rpc })`). */
  readonly rpc: RpcMetrics;
}

export interface MetricsOptions {
  /** Process metrics (CPU, memory, event loop lag, GC); on by default. */
  defaultMetrics?: boolean;
}

export function createMetrics(service: string, opts: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  return { service, registry, rpc: new RpcMetrics(registry) };
}
