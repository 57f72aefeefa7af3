import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type LocalServer } from '@llmgw/local-infra';
import { silentLogger } from '@llmgw/logging';
import { connectRedis, type Redis } from '@llmgw/redis';
import { AuthKeys, MemoryKeyStore, RedisKeyStore, type KeyStore } from './key-store.js';

function conformance(name: string, make: () => KeyStore) {
  describe(`${name} key store`, () => {
    it('adds, finds and removes keys by id', async () => {
      const s = make();
      const key = { keyId: 'k1', tenantId: 'acme', scopes: ['chat'], createdAtMs: 5 };
      expect(await s.find('d1')).toBeUndefined();
      await s.add('d1', key);
      expect(await s.find('d1')).toEqual(key);
      expect(await s.remove('k1')).toEqual(key);
      expect(await s.find('d1')).toBeUndefined();
      expect(await s.remove('k1')).toBeUndefined();
    });
    it('keeps revoked bootstrap ids, idempotently', async () => {
      const s = make();
      await s.revokeBootstrap('b1');
      await s.revokeBootstrap('b1');
      await s.revokeBootstrap('b2');
      expect((await s.revokedBootstrap()).sort()).toEqual(['b1', 'b2']);
    });
  });
}

conformance('memory', () => new MemoryKeyStore());

describe('redis', () => {
  let server: LocalServer;
  let redis: Redis;
  beforeAll(async () => {
    server = await startRedisServer();
    redis = await connectRedis(server.url, { logger: silentLogger() });
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });
  conformance('redis', () => {
    void redis.flushdb();
    return new RedisKeyStore(redis);
  });

  it('uses the documented keys', async () => {
    await redis.flushdb();
    await new RedisKeyStore(redis).add('abc', { keyId: 'k9', tenantId: 't', scopes: [], createdAtMs: 1 });
    expect(await redis.hget(AuthKeys.keyIds, 'k9')).toBe('abc');
    expect(JSON.parse((await redis.hget(AuthKeys.keys, 'abc')) ?? '{}')).toMatchObject({ keyId: 'k9', tenantId: 't' });
  });
});
