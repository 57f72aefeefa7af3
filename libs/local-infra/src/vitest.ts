import { afterAll, beforeAll } from 'vitest';
import { silentLogger } from '@llmgw/logging';
import { connectRedis, type RedisClient } from '@llmgw/redis';
import { startRedisServer, type LocalServer } from './processes.js';

/**
 * For test files: a real redis-server on a free port for the enclosing suite, and a client to it.
 * Call the returned function inside tests and hooks.
 */
export function useRedis(): () => RedisClient {
  let server: LocalServer | undefined;
  let redis: RedisClient | undefined;
  beforeAll(async () => {
    server = await startRedisServer();
    redis = await connectRedis(server.url, { logger: silentLogger() });
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });
  return () => {
    if (!redis) throw new Error('redis-server did not start');
    return redis;
  };
}
