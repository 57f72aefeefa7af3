import { Cluster } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '@llmgw/logging';
import { createRedis, duplicateRedis, masters, Redis } from './index.js';

/** The clients' options, without a server: both are created lazy and never connect here. */
describe('createRedis', () => {
  it('makes one client for a server URL: no offline queue, the command timeout, reconnecting', () => {
    const redis = createRedis('redis://quota:pw@127.0.0.1:1', { logger: silentLogger(), commandTimeoutMs: 100 });
    expect(redis).toBeInstanceOf(Redis);
    expect(redis.options).toMatchObject({ username: 'quota', password: 'pw', lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 100, enableAutoPipelining: true });
    expect(masters(redis)).toEqual([redis]);
    const short = duplicateRedis(redis, 20);
    expect(short.options).toMatchObject({ username: 'quota', enableOfflineQueue: false, commandTimeout: 20, lazyConnect: true });
  });

  it('makes a cluster client for a redis-cluster URL: masters only, the credentials and timeouts on every node', () => {
    const redis = createRedis('redis-cluster://quota:p%40ss@127.0.0.1:1,127.0.0.1:2', { logger: silentLogger(), commandTimeoutMs: 100 });
    expect(redis).toBeInstanceOf(Cluster);
    const cluster = redis as Cluster;
    expect(cluster.options).toMatchObject({ lazyConnect: true, enableOfflineQueue: false, scaleReads: 'master', enableAutoPipelining: false, slotsRefreshInterval: 1_000 });
    expect(cluster.options.redisOptions).toMatchObject({ username: 'quota', password: 'p@ss', commandTimeout: 100, maxRetriesPerRequest: 0 });
    const short = duplicateRedis(redis, 20) as Cluster;
    expect(short).toBeInstanceOf(Cluster);
    expect(short.options).toMatchObject({ lazyConnect: true, enableOfflineQueue: false, scaleReads: 'master' });
    expect(short.options.redisOptions).toMatchObject({ username: 'quota', password: 'p@ss', commandTimeout: 20 });
  });
});
