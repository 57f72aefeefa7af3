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
  /** Written by a script: its effects reach the append-only file as MULTI/EXEC. */
  const scripted = (t: number) => `llmgw:quota:{tenant-${t}}:s`;
  const tenants = Array.from({ length: 30 }, (_, t) => t);

  it('splits the slots between three masters that a service user reaches with its own rights', async () => {
    expect(masters(quota)).toHaveLength(3);
    for (const t of tenants) await quota.set(key(t), String(t));
    for (const t of tenants) await quota.eval("redis.call('SET', KEYS[1], ARGV[1]) redis.call('SET', KEYS[1], ARGV[1] .. '!')", 1, scripted(t), String(t));
    const held = await Promise.all(masters(admin).map((m) => m.dbsize()));
    expect(held.reduce((a, b) => a + b, 0)).toBe(2 * tenants.length);
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

  it('a killed master takes only its own slots away, and comes back with every write it acknowledged, its scripts\' too', async () => {
    const victim = masters(admin).find((m) => m.options.port === cluster.ports[1])!;
    const lost = new Set(await victim.keys('*'));
    expect(lost.size).toBeGreaterThan(0);
    await cluster.kill(1);
    for (const t of tenants.filter((t) => !lost.has(key(t)))) expect(await quota.get(key(t))).toBe(String(t));
    await expect(quota.get([...lost][0]!)).rejects.toThrow();
    await cluster.restart(1);
    // The client relearns the slot map within a second (slotsRefreshInterval).
    const deadline = Date.now() + 10_000;
    const readAll = () => Promise.all([...tenants.map((t) => quota.get(key(t))), ...tenants.map((t) => quota.get(scripted(t)))]);
    let values: (string | null)[] = [];
    while (Date.now() < deadline) {
      values = await readAll().catch(() => []);
      if (values.length === 2 * tenants.length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // A `default` user without rights would have dropped the scripts' writes on reload (redis/redis#14541).
    expect(values).toEqual([...tenants.map(String), ...tenants.map((t) => `${t}!`)]);
  });
});
