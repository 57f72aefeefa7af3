import { randomUUID } from 'node:crypto';
import { drain, listen } from '@llmgw/grpc';
import { executorMetrics } from '@llmgw/metrics';
import type { RunningService, ServiceDeps } from '@llmgw/runtime';
import { CircuitBreaker, DEFAULT_BREAKER } from './circuit-breaker.js';
import { Executor } from './execute.js';
import { healthPublisher } from './health-publisher.js';
import { registryFromConfig } from './providers/registry.js';
import { createExecutorServer } from './server.js';

export { Executor, abortableSleep, type ExecutionContext, type ExecutorDeps, type StreamSend } from './execute.js';
export { CircuitBreaker, DEFAULT_BREAKER, type BreakerChange, type CircuitBreakerOptions } from './circuit-breaker.js';
export { healthPublisher, type HealthPublisherDeps } from './health-publisher.js';
export { createAdapter, createRegistry, registryFromConfig, type ProviderRegistry } from './providers/registry.js';
export type { ProviderAdapter } from './providers/types.js';

/**
 * Starts the provider-executor: one connection pool per configured provider, one breaker per
 * replica whose openings and closings are broadcast as `BackendHealthChanged` on the bus.
 */
export async function startProviderExecutor(deps: ServiceDeps): Promise<RunningService> {
  const now = Date.now;
  const registry = registryFromConfig(deps.config);
  const onChange = healthPublisher({ bus: deps.bus, config: deps.config, replicaId: randomUUID(), logger: deps.logger.child({ component: 'breaker' }) });
  const executor = new Executor({
    config: deps.config,
    registry,
    breaker: new CircuitBreaker({ ...DEFAULT_BREAKER, now, onChange }),
    logger: deps.logger,
    now,
    metrics: deps.metrics && executorMetrics(deps.metrics),
  });
  const g = createExecutorServer(executor, deps.logger, deps.metrics?.rpc);
  let port: number;
  try {
    port = await listen(g, deps.listenAddr);
  } catch (err) {
    await registry.close();
    throw err;
  }
  return {
    name: 'provider-executor',
    port,
    async close() {
      await drain(g, deps.drainMs);
      await registry.close();
    },
  };
}
