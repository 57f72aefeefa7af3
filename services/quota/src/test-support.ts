import type { QuotaSections } from '@llmgw/config';
import { meshCredentials, startLocalRedis, type RedisKind } from '@llmgw/local-infra';
import { flushRedis } from '@llmgw/local-infra/vitest';
import { createRedis, type RedisClient } from '@llmgw/redis';
import { silentLogger } from '@llmgw/logging';
import type { LimitKind, ResolvedLimit } from './limits.js';
import { MemoryQuotaStore } from './memory-store.js';
import { RedisQuotaStore } from './redis-store.js';
import type { QuotaStore, StoreOptions } from './store.js';
import { parseQuotaSections } from './config.js';

/** Test helpers (not a test file). */

export function limit(kind: LimitKind, value: number, scope = 'tenant'): ResolvedLimit {
  return { name: `${scope}:${kind}`, scope, kind, value };
}

/** A settable clock starting at 2026-11-21T12:00:00Z. */
export class FakeClock {
  t = Date.UTC(2026, 10, 21, 12, 0, 0);
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

export interface StoreHarness {
  name: string;
  /** Makes a store over the shared backend (two calls = two replicas of the same Redis). */
  make(opts: StoreOptions): Promise<QuotaStore>;
  /** Clears all state between tests. */
  clear(): Promise<void>;
  close(): Promise<void>;
}

export function memoryHarness(): StoreHarness {
  return {
    name: 'memory',
    make: async (opts) => new MemoryQuotaStore(opts),
    clear: async () => undefined,
    close: async () => undefined,
  };
}

export interface RedisHarness extends StoreHarness {
  client(commandTimeoutMs?: number): Promise<RedisClient>;
}

/**
 * A real redis-server, or a three-master cluster, with the ACL users: stores log in as quota's
 * user (so its scripts pass the ACL), the admin clears.
 */
export async function redisHarness(kind: RedisKind = 'single'): Promise<RedisHarness> {
  const users = meshCredentials().redisUsers;
  const redis = await startLocalRedis(kind, { users });
  const clients: RedisClient[] = [];
  const connect = async (url: string, commandTimeoutMs: number) => {
    const r = createRedis(url, { logger: silentLogger(), commandTimeoutMs });
    clients.push(r);
    await r.connect();
    return r;
  };
  const client = (commandTimeoutMs = 1_000) => connect(redis.urlAs('quota', users.quota), commandTimeoutMs);
  const admin = await connect(redis.url, 5_000);
  return {
    name: `redis ${kind}`,
    client,
    // Every store gets its own connection, as separate replicas would.
    make: async (opts) => new RedisQuotaStore(await client(), opts),
    clear: () => flushRedis(admin),
    close: async () => {
      for (const c of clients) c.disconnect();
      await redis.stop();
    },
  };
}

/** Quota's sections of a test config file (other services' sections would be ignored). */
export function testConfigYaml(extra = ''): string {
  return `
tiers:
  startup: { limits: { requests_per_minute: 100, tokens_per_day: 100000 } }
  free: {}
tenants:
  acme:
    tier: startup
    limits: { usd_per_day: 10, concurrent_requests: 50 }
    route_limits:
      support-chat: { tokens_per_day: 5000 }
    model_limits:
      large-reasoning: { usd_per_day: 1 }
  globex: { tier: startup }
  ratesonly:
    tier: free
    limits: { requests_per_minute: 2 }
${extra}
`;
}

export function testConfig(extra = ''): QuotaSections {
  return parseQuotaSections(testConfigYaml(extra), 'test', {});
}
