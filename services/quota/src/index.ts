import { CallerAuth } from '@llmgw/caller-auth';
import { ConfigWatcher, type QuotaSections } from '@llmgw/config';
import { createGrpcServer, DependencyHealth, drain, listen, MULTIPLEXER_SERVICE_NAME, serveMultiplexed, tolerantDecoding } from '@llmgw/grpc';
import type { Logger } from '@llmgw/logging';
import { quotaMetrics } from '@llmgw/metrics';
import { QuotaServiceService } from '@llmgw/proto/quota';
import { connectWithin, duplicateRedis, watchRedis, type RedisClient } from '@llmgw/redis';
import { accessOf, type RunningService, type ServiceDefinition, type ServiceDeps } from '@llmgw/runtime';
import { AlertPublisher } from './alerts.js';
import { loadQuotaConfig, parseQuotaSections, type QuotaConfig } from './config.js';
import { LocalRateLimiter } from './local-limiter.js';
import { MemoryQuotaStore } from './memory-store.js';
import { QuotaManager } from './quota-manager.js';
import { startReconciler } from './reconciler.js';
import { RedisQuotaStore } from './redis-store.js';
import { quotaHandlers } from './server.js';
import type { QuotaStore, StoreOptions } from './store.js';

export { MemoryQuotaStore } from './memory-store.js';
export { RedisQuotaStore, StoreUnavailableError, type RedisStoreOptions } from './redis-store.js';
export { LocalRateLimiter } from './local-limiter.js';
export { QuotaManager, STORE_UNAVAILABLE_LIMIT, type QuotaPolicySource } from './quota-manager.js';
export { resolveLimits, allTenantLimits, tenantLimits, type ResolvedLimit, type LimitKind } from './limits.js';
export { loadQuotaConfig, parseQuotaSections, quotaEnvSchema, type QuotaConfig } from './config.js';
export type * from './store.js';

export const QUOTA_SERVICE_NAME = 'llmgateway.quota.v1.QuotaService';

/**
 * Starts the quota service: Redis-backed when deps.redis is given (its own connection with a
 * short command timeout, scripts on Redis TIME), in memory otherwise (monolithic mode). Also
 * consumes UsageRecorded to reconcile reservations. Its sections (tenants, tiers' limits, the
 * quota policy) are hot-reloaded from the file every `pollMs`: a new tenant is admitted and a
 * changed limit applies without a restart; a bad edit keeps the previous sections.
 */
export async function startQuota(deps: ServiceDeps<QuotaConfig>): Promise<RunningService> {
  const logger = deps.logger.child({ component: 'quota' });
  const now = Date.now;
  // The stores read these on every call: a reloaded quota policy updates them in place.
  const storeOpts: StoreOptions = {
    leaseTtlMs: deps.config.sections.quota.lease_ttl_ms,
    reservationTtlMs: deps.config.sections.quota.reservation_ttl_ms,
    lateEventHorizonMs: deps.config.sections.quota.late_event_horizon_ms,
    now,
  };
  const policy = new ConfigWatcher<QuotaSections>(deps.config.sections, {
    path: deps.configPath,
    parse: (text, source) => parseQuotaSections(text, source, deps.env),
    logger,
    intervalMs: deps.config.pollMs,
    onChange: (next) => {
      storeOpts.leaseTtlMs = next.quota.lease_ttl_ms;
      storeOpts.reservationTtlMs = next.quota.reservation_ttl_ms;
      storeOpts.lateEventHorizonMs = next.quota.late_event_horizon_ms;
      logger.info({ tenants: Object.keys(next.tenants).length, tiers: Object.keys(next.tiers).length }, 'quota sections reloaded');
    },
  });
  let redis: RedisClient | undefined;
  let store: QuotaStore;
  let localLimiter: LocalRateLimiter | undefined;
  if (deps.redis) {
    redis = await quotaRedisClient(deps.redis, deps.config.redisTimeoutMs, logger);
    store = new RedisQuotaStore(redis, { ...storeOpts, useRedisTime: true });
    localLimiter = new LocalRateLimiter(now);
  } else {
    store = new MemoryQuotaStore(storeOpts);
    logger.info('quota uses the in-memory store (monolithic mode)');
  }

  const g = createGrpcServer([QUOTA_SERVICE_NAME, MULTIPLEXER_SERVICE_NAME], { transport: deps.transport, access: accessOf('quota'), local: deps.local });
  const health = new DependencyHealth(g, QUOTA_SERVICE_NAME, logger);
  let consuming = false;
  health.waitFor('usage consumer');
  const manager = new QuotaManager({
    policy,
    store,
    localLimiter,
    alerts: new AlertPublisher(deps.bus, logger, now),
    logger,
    onStoreHealth: (up) => health.set('redis', up),
    usageArriving: () => consuming,
    metrics: deps.metrics && quotaMetrics(deps.metrics),
  });
  const callers = new CallerAuth(deps.addrs.auth, deps.bus, deps.transport);
  const handlers = quotaHandlers(manager, logger, callers, deps.metrics?.rpc);
  g.server.addService(tolerantDecoding(QuotaServiceService), handlers);
  // The edge's reservations arrive over long-lived streams; the same handlers answer them.
  serveMultiplexed(g, logger, tolerantDecoding(QuotaServiceService), handlers);
  // Reservations are reconciled only while the usage consumer consumes: NOT_SERVING otherwise.
  const stopReconciler = await startReconciler(deps.bus, manager, logger, (up) => {
    consuming = up;
    health.set('usage consumer', up);
  });
  let port: number;
  try {
    port = await listen(g, deps.listenAddr);
  } catch (err) {
    await stopReconciler();
    redis?.disconnect();
    throw err;
  }
  health.listening();
  policy.start();

  // While Redis is unreachable the quota service name is NOT_SERVING and quota.on_store_down
  // decides; the client reconnects on its own.
  const stopWatching = redis ? watchRedis(redis, (up) => health.set('redis', up)) : undefined;

  return {
    name: 'quota',
    port,
    close: async () => {
      policy.stop();
      stopWatching?.();
      health.close();
      await stopReconciler();
      await drain(g, deps.drainMs);
      manager.stop();
      redis?.disconnect();
    },
  };
}

export const quotaService: ServiceDefinition<QuotaConfig> = {
  name: 'quota',
  needsRedis: true,
  loadConfig: loadQuotaConfig,
  start: startQuota,
};

/** Own connection (same URL and options as the shared client) with a short command timeout; a Redis that is down is not waited for long. */
async function quotaRedisClient(shared: RedisClient, commandTimeoutMs: number, logger: Logger): Promise<RedisClient> {
  const redis = duplicateRedis(shared, commandTimeoutMs);
  redis.on('error', () => undefined); // reported by the health watch; ioredis keeps reconnecting
  const ready = await connectWithin(redis, 2_000);
  logger.debug({ commandTimeoutMs, ready }, 'quota redis client');
  return redis;
}
