import type { QuotaSections } from '@llmgw/config';
import { startRedisServer, type LocalServer } from '@llmgw/local-infra';
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
  server: LocalServer;
  clients: RedisClient[];
  client(commandTimeoutMs?: number): Promise<RedisClient>;
}

export async function redisHarness(): Promise<RedisHarness> {
  const server = await startRedisServer();
  const clients: RedisClient[] = [];
  const client = async (commandTimeoutMs = 1_000) => {
    const r = createRedis(server.url, { logger: silentLogger(), commandTimeoutMs });
    await r.connect();
    clients.push(r);
    return r;
  };
  const admin = await client();
  const h: RedisHarness = {
    name: 'redis',
    server,
    clients,
    client,
    // Every store gets its own connection, as separate replicas would.
    make: async (opts) => new RedisQuotaStore(await client(), opts),
    clear: async () => {
      await admin.flushall();
    },
    close: async () => {
      for (const c of clients) c.disconnect();
      await server.stop();
    },
  };
  return h;
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
