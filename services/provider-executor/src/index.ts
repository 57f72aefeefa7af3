import { randomUUID } from 'node:crypto';
import { drain, listen } from '@llmgw/grpc';
import { executorMetrics, genAiMetrics, responseCacheMetrics, usageMetrics } from '@llmgw/metrics';
import { accessOf, type RunningService, type ServiceDefinition, type ServiceDeps } from '@llmgw/runtime';
import { MemoryCacheStore, RedisCacheStore } from './cache-store.js';
import { CircuitBreaker, DEFAULT_BREAKER } from './circuit-breaker.js';
import { loadExecutorConfig, type ExecutorConfig } from './config.js';
import { Executor } from './execute.js';
import { healthPublisher } from './health-publisher.js';
import { LatencyWindow } from './latency-window.js';
import { startStatsPublisher } from './stats-publisher.js';
import { registryFromProviders } from './providers/registry.js';
import { ResponseCache } from './response-cache.js';
import { createExecutorServer } from './server.js';
import { UsagePublisher } from './usage-publisher.js';

export { Executor, abortableSleep, type ExecutionContext, type ExecutorDeps, type StreamSend, type UsageSink } from './execute.js';
export { CircuitBreaker, DEFAULT_BREAKER, type BreakerChange, type CircuitBreakerOptions } from './circuit-breaker.js';
export { healthPublisher, type HealthPublisherDeps } from './health-publisher.js';
export { LatencyWindow, type ModelCallStats } from './latency-window.js';
export { publishStats, startStatsPublisher, statsReport, type StatsPublisherDeps } from './stats-publisher.js';
export { createAdapter, createRegistry, registryFromProviders, type ProviderRegistry } from './providers/registry.js';
export type { ProviderAdapter } from './providers/types.js';
export { loadExecutorConfig, type ExecutorConfig } from './config.js';
export { cacheUseOf, ResponseCache, type CacheStore, type CacheUse } from './response-cache.js';
export { MemoryCacheStore, RedisCacheStore } from './cache-store.js';
export { UsagePublisher, type UsagePublisherOptions } from './usage-publisher.js';

/**
 * Starts the provider-executor: one connection pool per configured provider, one breaker per
 * replica whose openings and closings are broadcast as `BackendHealthChanged` on the bus, its
 * calls per model over the last minute broadcast as `BackendStatsReport` every
 * EXECUTOR_STATS_INTERVAL_MS, the routes' response cache (in Redis), and the usage publisher: the
 * executor records the money, one usage event per request it received.
 */
export async function startProviderExecutor(deps: ServiceDeps<ExecutorConfig>): Promise<RunningService> {
  const now = Date.now;
  // First: what a previous run left in the journal is published before new requests come in.
  const usage = await UsagePublisher.open(deps.bus, deps.logger, {
    outboxPath: deps.config.outboxPath,
    outboxMaxBytes: deps.config.outboxMaxBytes,
    outboxSyncMs: deps.config.outboxSyncMs,
    metrics: deps.metrics && usageMetrics(deps.metrics),
  });
  const registry = registryFromProviders(deps.config.sections.providers);
  const providerOfModel = new Map<string, string>();
  const replicaId = randomUUID();
  const onChange = healthPublisher({
    bus: deps.bus,
    providerOf: (model) => providerOfModel.get(model) ?? '',
    replicaId,
    logger: deps.logger.child({ component: 'breaker' }),
  });
  const window = new LatencyWindow({ now });
  // Shared by every replica through Redis; monolithic mode (no Redis) keeps its own.
  const cacheStore = deps.redis ? new RedisCacheStore(deps.redis) : new MemoryCacheStore(now);
  const cache = new ResponseCache({ store: cacheStore, logger: deps.logger.child({ component: 'response-cache' }), metrics: deps.metrics && responseCacheMetrics(deps.metrics) });
  const executor = new Executor({
    providers: deps.config.sections.providers,
    registry,
    breaker: new CircuitBreaker({ ...DEFAULT_BREAKER, now, onChange }),
    logger: deps.logger,
    now,
    metrics: deps.metrics && executorMetrics(deps.metrics),
    genAi: deps.metrics && genAiMetrics(deps.metrics),
    usage,
    onPlanned: (model, provider) => providerOfModel.set(model, provider),
    window,
    cache,
  });
  const g = createExecutorServer(executor, deps.logger, deps.metrics?.rpc, { transport: deps.transport, access: accessOf('provider-executor'), local: deps.local });
  let port: number;
  try {
    port = await listen(g, deps.listenAddr);
  } catch (err) {
    await Promise.all([registry.close(), usage.close()]);
    cacheStore.close();
    throw err;
  }
  const stopStats = startStatsPublisher({
    bus: deps.bus,
    window,
    replicaId,
    intervalMs: deps.config.statsIntervalMs,
    now,
    logger: deps.logger.child({ component: 'backend-stats' }),
  });
  return {
    name: 'provider-executor',
    port,
    async close() {
      stopStats();
      await drain(g, deps.drainMs);
      await usage.close();
      await registry.close();
      cacheStore.close();
    },
  };
}

export const providerExecutorService: ServiceDefinition<ExecutorConfig> = {
  name: 'provider-executor',
  // The routes' response cache.
  needsRedis: true,
  loadConfig: loadExecutorConfig,
  start: startProviderExecutor,
};
