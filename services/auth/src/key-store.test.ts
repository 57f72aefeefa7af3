import { beforeEach, describe, expect, it } from 'vitest';
import { REDIS_KINDS, useRedis } from '@llmgw/local-infra/vitest';
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
    it('rotates with a grace period: the old digest keeps its key with an expiry', async () => {
      const s = make();
      const key = { keyId: 'k1', tenantId: 'acme', scopes: ['chat'], createdAtMs: 5 };
      await s.add('d1', key);
      const next = { ...key, rotatedAtMs: 100 };
      expect(await s.rotate({ digest: 'd2', key: next, nowMs: 100, graceMs: 60_000 })).toBe('d1');
      expect(await s.find('d2')).toEqual(next);
      expect(await s.find('d1')).toEqual({ ...key, expiresAtMs: 60_100 });
      expect(await s.current('k1')).toEqual({ digest: 'd2', key: next });
      // A second rotation keeps both older secrets in grace, each with its own expiry.
      expect(await s.rotate({ digest: 'd3', key: { ...key, rotatedAtMs: 200 }, nowMs: 200, graceMs: 30_000 })).toBe('d2');
      expect((await s.find('d2'))?.expiresAtMs).toBe(30_200);
      expect((await s.find('d1'))?.expiresAtMs).toBe(60_100);
      // No grace: the previous secret and every older one in grace stop at once.
      expect(await s.rotate({ digest: 'd4', key, nowMs: 300, graceMs: 0 })).toBe('d3');
      for (const d of ['d1', 'd2', 'd3']) expect(await s.find(d)).toBeUndefined();
      expect(await s.find('d4')).toEqual(key);
    });
    it('rotates a key with no current secret (a bootstrap key) by adding it', async () => {
      const s = make();
      const key = { keyId: 'boot', tenantId: 'acme', scopes: [], createdAtMs: 1, bootstrap: true, admin: true };
      expect(await s.rotate({ digest: 'n1', key, nowMs: 1, graceMs: 1_000 })).toBeUndefined();
      expect(await s.find('n1')).toEqual(key);
      expect(await s.current('boot')).toEqual({ digest: 'n1', key });
    });
    it('removes old secrets in grace with the key', async () => {
      const s = make();
      const key = { keyId: 'k1', tenantId: 'acme', scopes: [], createdAtMs: 5 };
      await s.add('d1', key);
      await s.rotate({ digest: 'd2', key, nowMs: 10, graceMs: 60_000 });
      expect(await s.remove('k1')).toEqual(key);
      expect(await s.find('d1')).toBeUndefined();
      expect(await s.find('d2')).toBeUndefined();
      expect(await s.current('k1')).toBeUndefined();
    });
    it('retires bootstrap digests, the earliest instant winning', async () => {
      const s = make();
      await s.retireBootstrap('b1', 'boot1', 500);
      await s.retireBootstrap('b1', 'boot1', 900);
      await s.retireBootstrap('b2', 'boot2', 900);
      await s.retireBootstrap('b2', 'boot2', 300);
      expect(await s.retiredBootstrap()).toEqual(new Map([['b1', 500], ['b2', 300]]));
    });
  });
}

conformance('memory', () => new MemoryKeyStore());

/** On one Redis and on a cluster, logged in as auth's ACL user; the admin looks at the keys. */
describe.each(REDIS_KINDS)('redis %s', (kind) => {
  const redis = useRedis(kind, 'auth');
  beforeEach(() => redis.flush());
  conformance(`redis ${kind}`, () => new RedisKeyStore(redis()));

  it('uses the documented keys', async () => {
    await new RedisKeyStore(redis()).add('abc', { keyId: 'k9', tenantId: 't', scopes: [], createdAtMs: 1 });
    expect(await redis.admin().hget(AuthKeys.keyIds, 'k9')).toBe('abc');
    expect(JSON.parse((await redis.admin().hget(AuthKeys.keys, 'abc')) ?? '{}')).toMatchObject({ keyId: 'k9', tenantId: 't' });
  });

  it('keeps old secrets in grace under PX TTLs', async () => {
    const s = new RedisKeyStore(redis());
    await s.add('old', { keyId: 'k9', tenantId: 't', scopes: [], createdAtMs: 1 });
    await s.rotate({ digest: 'new', key: { keyId: 'k9', tenantId: 't', scopes: [], createdAtMs: 1 }, nowMs: 0, graceMs: 60_000 });
    expect(await redis.admin().hexists(AuthKeys.keys, 'old')).toBe(0);
    expect(await redis.admin().hget(AuthKeys.keyIds, 'k9')).toBe('new');
    const ttl = await redis.admin().pttl(AuthKeys.grace('old'));
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(await redis.admin().smembers(AuthKeys.graceIds('k9'))).toEqual(['old']);
    expect(await redis.admin().pttl(AuthKeys.graceIds('k9'))).toBeGreaterThan(50_000);
    // A shorter second grace does not shorten the index's life.
    await s.rotate({ digest: 'newer', key: { keyId: 'k9', tenantId: 't', scopes: [], createdAtMs: 1 }, nowMs: 0, graceMs: 1_000 });
    expect(await redis.admin().pttl(AuthKeys.graceIds('k9'))).toBeGreaterThan(50_000);
    expect(await redis.admin().pttl(AuthKeys.grace('new'))).toBeLessThanOrEqual(1_000);
    // Redis ends the grace entry by itself.
    await s.rotate({ digest: 'newest', key: { keyId: 'k9', tenantId: 't', scopes: [], createdAtMs: 1 }, nowMs: 0, graceMs: 20 });
    await new Promise((r) => setTimeout(r, 60));
    expect(await s.find('newer')).toBeUndefined();
  });
});
