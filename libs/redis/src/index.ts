import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from '@llmgw/logging';
import { parseRedisUrl, safeRedisUrl } from './url.js';

export { Redis } from 'ioredis';
export * from './acl.js';
export * from './url.js';

/**
 * A client of one Redis server or of a Redis Cluster, as REDIS_URL names it (url.ts). Both run
 * the same commands; a cluster client routes each by its key's slot, so a Lua script or a MULTI
 * must touch keys of one slot only (keys that share a `{hash tag}`).
 */
export type RedisClient = Redis | Cluster;

export interface CreateRedisOptions {
  logger: Logger;
  /**
   * A command that gets no answer in this time fails instead of waiting: callers apply their
   * own policy for a Redis that is down (quota fails closed on budgets, open on rates).
   */
  commandTimeoutMs?: number;
  connectTimeoutMs?: number;
}

/**
 * A client that never queues commands while disconnected (they fail at once) and keeps
 * reconnecting in the background, so recovery needs no restart. On a cluster every node gets
 * the URL's credentials, and commands go to masters only (`scaleReads: 'master'`): a replica
 * may lag, and the quota scripts read what they write.
 */
export function createRedis(url: string, opts: CreateRedisOptions): RedisClient {
  const target = parseRedisUrl(url);
  const node: RedisOptions = {
    maxRetriesPerRequest: 0,
    commandTimeout: opts.commandTimeoutMs ?? 250,
    connectTimeout: opts.connectTimeoutMs ?? 2_000,
  };
  const retryStrategy = (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2_000);
  let redis: RedisClient;
  if (target.kind === 'cluster') {
    const options: ClusterOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      // Not pipelined: ioredis's cluster pipelines answer a command of a restarted master's slots
      // wrongly (NOSCRIPT for up to a minute, MOVED not followed), and the test of a master killed
      // under load saw events taken for duplicates; single commands follow MOVED and fall back to EVAL.
      enableAutoPipelining: false,
      scaleReads: 'master',
      clusterRetryStrategy: retryStrategy,
      // Relearn the slot map every second (ioredis refreshes it by default only on a lone MOVED):
      // a restarted or failed-over master is used again even when every command is pipelined.
      slotsRefreshInterval: 1_000,
      redisOptions: { ...node, username: target.username, password: target.password },
    };
    redis = new Cluster(target.nodes, options);
  } else {
    redis = new Redis(target.url, { ...node, lazyConnect: true, enableOfflineQueue: false, enableAutoPipelining: true, retryStrategy });
  }
  let down = false;
  const onError = (err: Error) => {
    if (!down) opts.logger.warn({ err: err.message, redis: safeRedisUrl(url) }, 'redis connection error');
    down = true;
  };
  const onRestored = () => {
    if (down) opts.logger.info({ redis: safeRedisUrl(url) }, 'redis connection restored');
    down = false;
  };
  redis.on('error', onError);
  redis.on('ready', onRestored);
  // A cluster reports a node's failure apart from its own (it stays up while the other masters
  // answer), and a node back in its slot map (a restarted master) as +node.
  redis.on('node error', onError);
  redis.on('+node', onRestored);
  return redis;
}

/**
 * A second client like `redis` (same servers, credentials and options) but for its command
 * timeout, not yet connected: for a caller whose policy needs a shorter wait than the shared client's.
 */
export function duplicateRedis(redis: RedisClient, commandTimeoutMs: number): RedisClient {
  if (redis instanceof Cluster) return redis.duplicate([], { lazyConnect: true, redisOptions: { ...redis.options.redisOptions, commandTimeout: commandTimeoutMs } });
  return redis.duplicate({ commandTimeout: commandTimeoutMs, lazyConnect: true });
}

/**
 * The servers that hold the data: the one server, or every master of a cluster. A command without
 * keys (SCAN, FLUSHALL) reaches one node only, so code that scans the keyspace runs it on each of
 * these. Throws when the cluster's slot map names a master the client has no connection to (it is
 * down): a scan without it would miss its keys and look complete.
 */
export function masters(redis: RedisClient): Redis[] {
  if (!(redis instanceof Cluster)) return [redis];
  const nodes = redis.nodes('master');
  const connected = new Set(nodes.map((n) => `${n.options.host}:${n.options.port}`));
  const owners = new Set(redis.slots.map((keys) => keys[0]));
  const missing = [...owners].filter((k) => k !== undefined && !connected.has(k));
  if (missing.length > 0) throw new Error(`redis cluster: no connection to master ${missing.join(', ')}`);
  return nodes;
}

/**
 * A client for a service's start: it waits up to `waitMs` for Redis, then goes on without it — a
 * Redis that is down at start is a warning, not a failed start. Commands fail at once until it is
 * reachable (no offline queue); callers apply their degraded policy and health reports the outage
 * (watchRedis). ioredis keeps reconnecting in the background.
 */
export async function startRedis(url: string, opts: CreateRedisOptions & { waitMs?: number }): Promise<RedisClient> {
  const redis = createRedis(url, opts);
  if (!(await connectWithin(redis, opts.waitMs ?? 2_000))) {
    opts.logger.warn({ redis: safeRedisUrl(url) }, 'redis unreachable at start; starting degraded and reconnecting');
  }
  return redis;
}

/** Starts connecting a lazy client; true if it is ready within `waitMs`, false if it goes on connecting in the background. */
export async function connectWithin(redis: RedisClient, waitMs: number): Promise<boolean> {
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
export function watchRedis(redis: RedisClient, onChange: (up: boolean) => void, probeMs = 1_000): () => void {
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
export async function connectRedis(url: string, opts: CreateRedisOptions): Promise<RedisClient> {
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
