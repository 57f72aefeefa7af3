import { watchRedis, type RedisClient } from '@llmgw/redis';
import type { CacheScope, CacheStore } from './response-cache.js';

/**
 * The executor's Redis keys, all under its ACL prefix, one hash tag per tenant (a Redis Cluster
 * slot), tenant and route URI-encoded so neither can forge a tag or a separator:
 *   llmgw:cache:{<tenant>}:<route>:e:<hash>   STRING a cached answer (JSON), TTL = the route's
 *   llmgw:cache:{<tenant>}:<route>:i          ZSET   the scope's entries, score = stored at (ms)
 */
export const CACHE_KEY_PREFIX = 'llmgw:cache:';

function scopeKey(scope: CacheScope): string {
  return `${CACHE_KEY_PREFIX}{${encodeURIComponent(scope.tenantId)}}:${encodeURIComponent(scope.route)}`;
}

export function entryKey(scope: CacheScope, hash: string): string {
  return `${scopeKey(scope)}:e:${hash}`;
}

export function indexKey(scope: CacheScope): string {
  return `${scopeKey(scope)}:i`;
}

/**
 * Stores an entry and holds its scope to its cap in one step: the entry with its TTL, its place
 * in the index, expired names out of the index, then the oldest entries beyond the cap deleted
 * (in slices, so a cap lowered by a reload cannot overflow Lua's stack).
 * KEYS[1] entry, KEYS[2] index; ARGV[1] value, ARGV[2] TTL ms, ARGV[3] max entries.
 */
export const CACHE_PUT_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now, KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
while over > 0 do
  local n = math.min(over, 500)
  local oldest = redis.call('ZRANGE', KEYS[2], 0, n - 1)
  redis.call('UNLINK', unpack(oldest))
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - 1)
  over = over - n
end
redis.call('PEXPIRE', KEYS[2], ttl)
`;

interface CacheCommands {
  cachePut(numKeys: number, entry: string, index: string, value: string, ttlMs: number, maxEntries: number): Promise<unknown>;
}

/**
 * The cache shared by every executor replica. While Redis is known to be down (a failed probe or
 * a closed connection) a lookup fails at once instead of waiting out the command timeout.
 */
export class RedisCacheStore implements CacheStore {
  private up: boolean;
  private readonly stopWatching: () => void;

  constructor(private readonly redis: RedisClient) {
    redis.defineCommand('cachePut', { lua: CACHE_PUT_LUA });
    this.up = redis.status === 'ready';
    this.stopWatching = watchRedis(redis, (up) => (this.up = up));
  }

  async get(scope: CacheScope, hash: string): Promise<string | undefined> {
    if (!this.up) throw new Error('redis is unreachable');
    return (await this.redis.get(entryKey(scope, hash))) ?? undefined;
  }

  async put(scope: CacheScope, hash: string, value: string, ttlMs: number, maxEntries: number): Promise<void> {
    if (!this.up) throw new Error('redis is unreachable');
    await (this.redis as RedisClient & CacheCommands).cachePut(2, entryKey(scope, hash), indexKey(scope), value, ttlMs, maxEntries);
  }

  close(): void {
    this.stopWatching();
  }
}

/**
 * The cache of one process (monolithic mode, which has no Redis), with the same rules: a cap
 * per scope dropping the oldest, entries forgotten after their TTL.
 */
export class MemoryCacheStore implements CacheStore {
  /** Per scope, entries oldest first (a Map keeps insertion order; a rewrite moves to the end). */
  private readonly scopes = new Map<string, Map<string, { value: string; expiresAt: number }>>();

  constructor(private readonly now: () => number = Date.now) {}

  async get(scope: CacheScope, hash: string): Promise<string | undefined> {
    const entries = this.scopes.get(scopeKey(scope));
    const e = entries?.get(hash);
    if (!e) return undefined;
    if (e.expiresAt <= this.now()) {
      entries?.delete(hash);
      return undefined;
    }
    return e.value;
  }

  async put(scope: CacheScope, hash: string, value: string, ttlMs: number, maxEntries: number): Promise<void> {
    const key = scopeKey(scope);
    let entries = this.scopes.get(key);
    if (!entries) this.scopes.set(key, (entries = new Map()));
    const now = this.now();
    entries.delete(hash);
    entries.set(hash, { value, expiresAt: now + ttlMs });
    for (const [h, e] of entries) {
      if (entries.size <= maxEntries && e.expiresAt > now) break;
      entries.delete(h);
    }
  }

  close(): void {
    this.scopes.clear();
  }
}
