import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '@llmgw/logging';

export type { Redis } from 'ioredis';
export * from './acl.js';

export interface CreateRedisOptions {
  logger: Logger;
  /**
   * A command that gets no answer in this time fails instead of waiting: callers apply their
   * own policy for a Redis that is down (quota fails closed on budgets, open on rates).
   */
  commandTimeoutMs?: number;
  connectTimeoutMs?: number;
}

/** The URL without its password, for logs and errors. */
export function safeRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable redis url>';
  }
}

/**
 * A client that never queues commands while disconnected (they fail at once) and keeps
 * reconnecting in the background, so recovery needs no restart.
 */
export function createRedis(url: string, opts: CreateRedisOptions): Redis {
  const options: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: opts.commandTimeoutMs ?? 250,
    connectTimeout: opts.connectTimeoutMs ?? 2_000,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
  };
  const redis = new Redis(url, options);
  let down = false;
  redis.on('error', (err: Error) => {
    if (!down) opts.logger.warn({ err: err.message, redis: safeRedisUrl(url) }, 'redis connection error');
    down = true;
  });
  redis.on('ready', () => {
    if (down) opts.logger.info({ redis: safeRedisUrl(url) }, 'redis connection restored');
    down = false;
  });
  return redis;
}

/**
 * A client for a service's start: it waits up to `waitMs` for Redis, then goes on without it — a
 * Redis that is down at start is a warning, not a failed start. Commands fail at once until it is
 * reachable (no offline queue); callers apply their degraded policy and health reports the outage
 * (watchRedis). ioredis keeps reconnecting in the background.
 */
export async function startRedis(url: string, opts: CreateRedisOptions & { waitMs?: number }): Promise<Redis> {
  const redis = createRedis(url, opts);
  if (!(await connectWithin(redis, opts.waitMs ?? 2_000))) {
    opts.logger.warn({ redis: safeRedisUrl(url) }, 'redis unreachable at start; starting degraded and reconnecting');
  }
  return redis;
}

/** Starts connecting a lazy client; true if it is ready within `waitMs`, false if it goes on connecting in the background. */
export async function connectWithin(redis: Redis, waitMs: number): Promise<boolean> {
  const connecting = redis.connect().then(
    () => true,
    () => false,
  );
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), waitMs)));
  const ready = await Promise.race([connecting, waited]);
  clearTimeout(timer);
  return ready;
}

/**
 * Tells `onChange` whether Redis is usable: at once, on every ready/close, and from a PING every
 * `probeMs`, because a hung server (paused, partitioned) closes nothing. Returns a stop function.
 */
export function watchRedis(redis: Redis, onChange: (up: boolean) => void, probeMs = 1_000): () => void {
  const ready = () => onChange(true);
  const lost = () => onChange(false);
  onChange(redis.status === 'ready');
  redis.on('ready', ready);
  redis.on('close', lost);
  const probe = setInterval(() => {
    if (redis.status === 'ready') redis.ping().then(ready, lost);
  }, probeMs);
  probe.unref();
  return () => {
    clearInterval(probe);
    redis.off('ready', ready);
    redis.off('close', lost);
  };
}

/** Connects and waits until Redis answers; an unreachable Redis is one clear error naming where. */
export async function connectRedis(url: string, opts: CreateRedisOptions): Promise<Redis> {
  const redis = createRedis(url, opts);
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    throw new Error(`cannot reach Redis at ${safeRedisUrl(url)}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return redis;
}
