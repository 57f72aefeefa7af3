import { createHash } from 'node:crypto';
import type { ServiceName } from '@llmgw/runtime';

/*
 * The Redis ACL user of each service that uses Redis, declared once: the key prefix it owns
 * (its keys.ts builds every key under it) and the commands it sends, its Lua scripts' included
 * (Redis checks a script's commands and keys against the caller's user too). Anything else is
 * NOPERM: another service's keys, FLUSHALL, FLUSHDB, CONFIG, KEYS, DEBUG, SHUTDOWN, ACL, MONITOR,
 * pub/sub channels.
 */

export interface RedisAclUser {
  /** The user may touch only keys starting with one of these. */
  keyPrefixes: readonly string[];
  /** Every command it may run (lower case, as Redis lists them). */
  commands: readonly string[];
}

/**
 * Sent by every client: PING by the health watch, INFO by ioredis's ready check (it waits for a
 * loading server), CLUSTER SLOTS and CLUSTER INFO by its cluster client (the slot map, and its
 * ready check; a single server never gets them), and EVALSHA/EVAL for ioredis's defineCommand
 * scripts where a service has them. READONLY, sent to replicas, is not needed: clients read from
 * masters only (libs/redis createRedis).
 */
const CONNECTION = ['ping', 'info', 'cluster|slots', 'cluster|info'];
const SCRIPTS = ['evalsha', 'eval'];

export const REDIS_ACL = {
  // key-store.ts: AuthKeys.
  auth: {
    keyPrefixes: ['auth:'],
    commands: [...CONNECTION, 'get', 'set', 'del', 'hget', 'hset', 'hdel', 'hgetall', 'hsetnx', 'hvals', 'sadd', 'smembers', 'pexpire'],
  },
  // keys.ts; the scripts of lua-scripts.ts; SCAN and UNLINK for ResetQuota.
  quota: {
    keyPrefixes: ['llmgw:quota:'],
    commands: [
      ...CONNECTION,
      ...SCRIPTS,
      'scan',
      'unlink',
      'time',
      'get',
      'set',
      'del',
      'exists',
      'incrby',
      'decrby',
      'pexpire',
      'pttl',
      'zadd',
      'zcard',
      'zrange',
      'zrangebyscore',
      'zremrangebyscore',
      'zrem',
      'zscore',
    ],
  },
  // cache-store.ts: the routes' response cache (GET, and the put script).
  'provider-executor': {
    keyPrefixes: ['llmgw:cache:'],
    commands: [...CONNECTION, ...SCRIPTS, 'get', 'set', 'time', 'zadd', 'zcard', 'zrange', 'zremrangebyscore', 'zremrangebyrank', 'unlink', 'pexpire'],
  },
  // usage-store.ts: UsageKeys, the record script, and replaceCells (`npm run usage:replay -- --write`);
  // alerts.ts: alert claims and webhook delivery marks (usage:alerts:).
  'usage-accountant': {
    keyPrefixes: ['usage:'],
    commands: [...CONNECTION, ...SCRIPTS, 'set', 'del', 'exists', 'expire', 'sadd', 'sismember', 'scard', 'smembers', 'hset', 'hincrby', 'hgetall', 'zadd', 'zrangebyscore', 'zremrangebyscore', 'multi', 'exec'],
  },
} as const satisfies Partial<Record<ServiceName, RedisAclUser>>;

export type RedisUserName = keyof typeof REDIS_ACL;

export const REDIS_USERS = Object.keys(REDIS_ACL) as RedisUserName[];

/** The user with every right, for operators and tests. */
export const REDIS_ADMIN_USER = 'admin';

/**
 * The rules of a service's user, as `ACL SETUSER <user> <rules...>` takes them and an aclfile or
 * redis.conf `user` line lists them. The password appears only as its SHA-256 (`#<hex>`), so the
 * rules may be written to a file or shown.
 */
export function redisAclRules(user: RedisUserName, password: string): string[] {
  const acl: RedisAclUser = REDIS_ACL[user];
  return ['reset', 'on', passwordRule(password), ...acl.keyPrefixes.map((p) => `~${p}*`), 'resetchannels', '-@all', ...acl.commands.map((c) => `+${c}`)];
}

/**
 * An aclfile (`redis-server --aclfile`; the same lines work as `user` directives in redis.conf):
 * every service's user, the admin, and `default` switched off, so a client without credentials
 * is refused.
 */
export function redisAclFile(passwords: Record<RedisUserName | typeof REDIS_ADMIN_USER, string>): string {
  const lines = [
    // Off: nobody can log in as `default`, and a connection starts unauthenticated. Its rights
    // are all the same: Redis replays an append-only file as `default` and re-checks EXEC's
    // commands (a script's effects are logged as MULTI/EXEC) against it, so a `default` with
    // none silently drops every script's writes when a node restarts (redis/redis#14541).
    'user default off ~* &* +@all',
    `user ${REDIS_ADMIN_USER} on ${passwordRule(passwords[REDIS_ADMIN_USER])} ~* &* +@all`,
    ...REDIS_USERS.map((u) => `user ${u} ${redisAclRules(u, passwords[u]).join(' ')}`),
  ];
  return `${lines.join('\n')}\n`;
}

function passwordRule(password: string): string {
  return `#${createHash('sha256').update(password).digest('hex')}`;
}
