import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@llmgw/logging';
import { connectRedis, duplicateRedis, masters, type RedisClient } from '@llmgw/redis';
import { meshCredentials } from './credentials.js';
import { redisClusterUrl, startRedisCluster, type LocalRedisCluster } from './redis-cluster.js';

describe('startRedisCluster', () => {
  const creds = meshCredentials();
  let cluster: LocalRedisCluster;
  let admin: RedisClient;
  let quota: RedisClient;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, users: creds.redisUsers });
    admin = await connectRedis(cluster.url, { logger: silentLogger(), commandTimeoutMs: 2_000 });
    quota = await connectRedis(redisClusterUrl(cluster.ports, 'quota', creds.redisUsers.quota), { logger: silentLogger(), commandTimeoutMs: 2_000 });
  });
  afterAll(async () => {
    quota?.disconnect();
    admin?.disconnect();
    await cluster?.stop();
  });

  const key = (t: number) => `llmgw:quota:{tenant-${t}}:k`;
  const tenants = Array.from({ length: 30 }, (_, t) => t);

  it('splits the slots between three masters that a service user reaches with its own rights', async () => {
    expect(masters(quota)).toHaveLength(3);
    for (const t of tenants) await quota.set(key(t), String(t));
    const held = await Promise.all(masters(admin).map((m) => m.dbsize()));
    expect(held.reduce((a, b) => a + b, 0)).toBe(tenants.length);
    expect(held.every((n) => n > 0)).toBe(true);
    // Its ACL still holds on every node: another service's keys are refused.
    await expect(quota.set('usage:x', '1')).rejects.toThrow(/NOPERM/);
  });

  it('a duplicate with a command timeout of its own reaches the same cluster as the same user', async () => {
    const short = duplicateRedis(quota, 500);
    try {
      await short.connect();
      expect(await short.get(key(7))).toBe('7');
      await expect(short.set('usage:x', '1')).rejects.toThrow(/NOPERM/);
    } finally {
      short.disconnect();
    }
  });

  it('a killed master takes only its own slots away, and comes back with every write it acknowledged', async () => {
    const victim = masters(admin).find((m) => m.options.port === cluster.ports[1])!;
    const lost = new Set(await victim.keys('*'));
    expect(lost.size).toBeGreaterThan(0);
    await cluster.kill(1);
    for (const t of tenants.filter((t) => !lost.has(key(t)))) expect(await quota.get(key(t))).toBe(String(t));
    await expect(quota.get([...lost][0]!)).rejects.toThrow();
    // A scan of every master would miss the dead one's keys: it is refused, not short.
    const listed = () => {
      try {
        return masters(quota).length;
      } catch {
        return 0;
      }
    };
    const refused = Date.now() + 5_000;
    while (Date.now() < refused && listed() > 0) await new Promise((r) => setTimeout(r, 50));
    expect(() => masters(quota)).toThrow(/no connection to master 127\.0\.0\.1:/);
    await cluster.restart(1);
    // The client relearns the slot map within a second (slotsRefreshInterval).
    const deadline = Date.now() + 10_000;
    const readAll = () => Promise.all(tenants.map((t) => quota.get(key(t))));
    let values: (string | null)[] = [];
    while (Date.now() < deadline) {
      values = await readAll().catch(() => []);
      if (values.length === tenants.length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(values).toEqual(tenants.map(String));
  });
});
