import { CallerAuth } from '@llmgw/caller-auth';
import { createGrpcServer, drain, listen, type GrpcServer } from '@llmgw/grpc';
import type { Logger } from '@llmgw/logging';
import { quotaMetrics } from '@llmgw/metrics';
import { QuotaServiceService } from '@llmgw/proto/quota';
import type { Redis } from '@llmgw/redis';
import type { RunningService, ServiceDeps } from '@llmgw/runtime';
import { AlertPublisher } from './alerts.js';
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
export { QuotaManager, STORE_UNAVAILABLE_LIMIT } from './quota-manager.js';
export { resolveLimits, allTenantLimits, type ResolvedLimit, type LimitKind } from './limits.js';
export type * from './store.js';

export const QUOTA_SERVICE_NAME = 'llmgateway.quota.v1.QuotaService';
/** Quota's Redis commands fail after this long, so a down Redis costs milliseconds, not seconds. */
export const DEFAULT_QUOTA_REDIS_TIMEOUT_MS = 100;
const PROBE_INTERVAL_MS = 1_000;

/**
 * Starts the quota service: Redis-backed when deps.redis is given (its own connection with a
 * short command timeout, scripts on Redis TIME), in memory otherwise (monolithic mode). Also
 * consumes UsageRecorded to reconcile reservations.
 */
export async function startQuota(deps: ServiceDeps): Promise<RunningService> {
  const logger = deps.logger.child({ component: 'quota' });
  const now = Date.now;
  const storeOpts: StoreOptions = {
    leaseTtlMs: deps.config.quota.lease_ttl_ms,
    reservationTtlMs: deps.config.quota.reservation_ttl_ms,
    now,
  };
  let redis: Redis | undefined;
  let store: QuotaStore;
  let localLimiter: LocalRateLimiter | undefined;
  if (deps.redis) {
    redis = await quotaRedisClient(deps.redis, Number(deps.env.QUOTA_REDIS_TIMEOUT_MS) || DEFAULT_QUOTA_REDIS_TIMEOUT_MS, logger);
    store = new RedisQuotaStore(redis, { ...storeOpts, useRedisTime: true });
    localLimiter = new LocalRateLimiter(now);
  } else {
    store = new MemoryQuotaStore(storeOpts);
    logger.info('quota uses the in-memory store (monolithic mode)');
  }

  const g = createGrpcServer([QUOTA_SERVICE_NAME]);
  const health = new StoreHealth(g, logger);
  const manager = new QuotaManager({
    config: deps.config,
    store,
    localLimiter,
    alerts: new AlertPublisher(deps.bus, logger, now),
    logger,
    onStoreHealth: (up) => health.set(up),
    metrics: deps.metrics && quotaMetrics(deps.metrics),
  });
  const callers = new CallerAuth(deps.addrs.auth, deps.bus);
  g.server.addService(QuotaServiceService, quotaHandlers(manager, logger, callers, deps.metrics?.rpc));
  const stopReconciler = await startReconciler(deps.bus, manager, logger);
  const port = await listen(g, deps.listenAddr);

  let probe: NodeJS.Timeout | undefined;
  if (redis) {
    const r = redis;
    health.set(r.status === 'ready');
    r.on('ready', () => health.set(true));
    r.on('close', () => health.set(false));
    // A hung Redis closes nothing: probe it so health (and recovery) never waits for traffic.
    probe = setInterval(() => {
      r.ping().then(
        () => health.set(true),
        () => health.set(false),
      );
    }, PROBE_INTERVAL_MS);
    probe.unref();
  }

  return {
    name: 'quota',
    port,
    close: async () => {
      if (probe) clearInterval(probe);
      health.closing = true;
      await stopReconciler();
      await drain(g, deps.drainMs);
      redis?.disconnect();
    },
  };
}

/** Own connection (same URL and options as the shared client) with a short command timeout. */
async function quotaRedisClient(shared: Redis, commandTimeoutMs: number, logger: Logger): Promise<Redis> {
  const redis = shared.duplicate({ commandTimeout: commandTimeoutMs, lazyConnect: true });
  redis.on('error', () => undefined); // reported once by StoreHealth; ioredis keeps reconnecting
  await redis.connect();
  logger.debug({ commandTimeoutMs }, 'quota redis client connected');
  return redis;
}

/**
 * While Redis is unreachable the quota service reports NOT_SERVING for
 * llmgateway.quota.v1.QuotaService (the overall "" status stays SERVING: restarting the
 * process would not help, and the documented fail-open/closed policy still answers calls).
 */
class StoreHealth {
  private up = true;
  closing = false;

  constructor(
    private readonly g: GrpcServer,
    private readonly logger: Logger,
  ) {}

  set(up: boolean): void {
    if (this.closing || up === this.up) return;
    this.up = up;
    this.g.health.setStatus(QUOTA_SERVICE_NAME, up ? 'SERVING' : 'NOT_SERVING');
    if (up) this.logger.info('quota store reachable again: SERVING');
    else this.logger.warn('quota store unreachable: NOT_SERVING, applying quota.on_store_down');
  }
}
