import { afterAll, beforeAll } from 'vitest';
import { silentLogger } from '@llmgw/logging';
import { connectRedis, masters, type RedisClient, type RedisUserName } from '@llmgw/redis';
import { meshCredentials } from './credentials.js';
import { startLocalRedis, type LocalRedis, type RedisKind } from './redis-cluster.js';

/** Both kinds, for describe.each: a store behaves the same on one server and on a cluster. */
export const REDIS_KINDS: readonly RedisKind[] = ['single', 'cluster'];

/** The suite's Redis: call it (and its methods) inside tests and hooks. */
export interface SuiteRedis {
  /** The client, logged in as the service's ACL user, as the service would. */
  (): RedisClient;
  /** A client with every right, to look at keys beyond the user's. */
  admin(): RedisClient;
  /** Empties every master (FLUSHDB reaches one node of a cluster only). */
  flush(): Promise<void>;
}

/**
 * For test files: a real redis-server (or a three-master cluster) on free ports for the enclosing
 * suite, with the ACL users (acl.ts) and fresh passwords.
 */
export function useRedis(kind: RedisKind, user: RedisUserName): SuiteRedis {
  let infra: LocalRedis | undefined;
  let admin: RedisClient | undefined;
  let client: RedisClient | undefined;
  beforeAll(async () => {
    const users = meshCredentials().redisUsers;
    infra = await startLocalRedis(kind, { users });
    admin = await connectRedis(infra.url, { logger: silentLogger(), commandTimeoutMs: 5_000 });
    client = await connectRedis(infra.urlAs(user, users[user]), { logger: silentLogger(), commandTimeoutMs: 5_000 });
  });
  afterAll(async () => {
    client?.disconnect();
    admin?.disconnect();
    await infra?.stop();
  });
  const started = (c: RedisClient | undefined) => {
    if (!c) throw new Error(`redis (${kind}) did not start`);
    return c;
  };
  return Object.assign(() => started(client), {
    admin: () => started(admin),
    flush: () => flushRedis(started(admin)),
  });
}

/** FLUSHALL on every master of the client's Redis (as a user with the right to). */
export async function flushRedis(admin: RedisClient): Promise<void> {
  await Promise.all(masters(admin).map((m) => m.flushall()));
}
