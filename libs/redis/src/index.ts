import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '@llmgw/logging';

export type { Redis } from 'ioredis';

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

/** Connects once at start; an unreachable Redis is one clear error naming where. */
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
