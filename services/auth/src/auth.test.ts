import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryEventBus, Subjects } from '@llmgw/events';
import { callUnary, dial } from '@llmgw/grpc';
import { startRedisServer, type LocalServer } from '@llmgw/local-infra';
import { silentLogger } from '@llmgw/logging';
import { AuthServiceClient, KeyRevoked, KeySource } from '@llmgw/proto/auth';
import { connectRedis, type RedisClient } from '@llmgw/redis';
import { addrsFromEnv, type RunningService } from '@llmgw/runtime';
import { startAuth } from './index.js';
import { AuthKeys } from './key-store.js';
import { hashKey } from './key-hash.js';
import { ADMIN_KEY, authTestConfig, HASHED_KEY, TENANT_KEY } from './test-config.js';

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

for (const mode of ['memory', 'redis'] as const) {
  describe(`auth service over gRPC (${mode} store)`, () => {
    let redisServer: LocalServer | undefined;
    let redis: RedisClient | undefined;
    let bus: MemoryEventBus;
    let running: RunningService;
    let client: AuthServiceClient;
    const T0 = 1_700_000_000_000;
    let now = T0;

    beforeAll(async () => {
      if (mode === 'redis') {
        redisServer = await startRedisServer();
        redis = await connectRedis(redisServer.url, { logger: silentLogger() });
      }
      bus = new MemoryEventBus();
      running = await startAuth({
        config: { sections: authTestConfig() },
        configPath: 'auth-test.yaml',
        logger: silentLogger(),
        listenAddr: '127.0.0.1:0',
        addrs: addrsFromEnv({}),
        redis,
        bus,
        drainMs: 0,
        env: {},
      }, { now: () => now });
      client = dial(AuthServiceClient, `127.0.0.1:${running.port}`);
    });

    afterAll(async () => {
      client.close();
      await running.close();
      await bus.close();
      redis?.disconnect();
      await redisServer?.stop();
    });

    const authenticate = (apiKey: string) => callUnary(client.authenticate.bind(client), { apiKey }, { timeoutMs: 2_000 });
    const createKey = (caller: string, tenantId: string) =>
      callUnary(client.createKey.bind(client), { tenantId, scopes: ['chat'] }, { timeoutMs: 2_000, metadata: bearer(caller) });
    const revokeKey = (caller: string, keyId: string) =>
      callUnary(client.revokeKey.bind(client), { keyId }, { timeoutMs: 2_000, metadata: bearer(caller) });

    const rotateKey = (caller: string, keyId: string, gracePeriodMs: number) =>
      callUnary(client.rotateKey.bind(client), { keyId, gracePeriodMs }, { timeoutMs: 2_000, metadata: bearer(caller) });

    it('authenticates bootstrap keys with the cache TTL', async () => {
      const res = await authenticate(TENANT_KEY);
      expect(res).toEqual({ principal: { tenantId: 'acme', keyId: 'acme-key', tier: 'startup', scopes: ['chat'], admin: false }, cacheTtlMs: 3000 });
      expect((await authenticate(HASHED_KEY)).principal?.tenantId).toBe('globex');
    });

    it('refuses unknown and missing keys', async () => {
      await expect(authenticate('sk-unknown-key')).rejects.toMatchObject({ kind: 'unauthenticated', message: 'invalid API key' });
      await expect(authenticate('')).rejects.toMatchObject({ kind: 'unauthenticated', message: 'missing API key' });
    });

    it('lets only admins create and revoke keys', async () => {
      await expect(createKey(TENANT_KEY, 'acme')).rejects.toMatchObject({ kind: 'permission_denied' });
      await expect(revokeKey(TENANT_KEY, 'acme-key')).rejects.toMatchObject({ kind: 'permission_denied' });
      await expect(
        callUnary(client.createKey.bind(client), { tenantId: 'acme', scopes: [] }, { timeoutMs: 2_000 }),
      ).rejects.toMatchObject({ kind: 'unauthenticated', message: 'missing API key' });
      await expect(createKey('sk-bogus', 'acme')).rejects.toMatchObject({ kind: 'unauthenticated' });
    });

    it('creates a key that works, revokes it and broadcasts the revocation', async () => {
      const heard: KeyRevoked[] = [];
      const off = bus.onBroadcast(Subjects.keyRevoked, (d) => heard.push(KeyRevoked.decode(d)));
      const created = await createKey(ADMIN_KEY, 'globex');
      expect(created.apiKey).toMatch(/^llmgw_[0-9A-Za-z]{46}$/);
      expect((await authenticate(created.apiKey)).principal).toMatchObject({ tenantId: 'globex', keyId: created.keyId, tier: 'enterprise', admin: false });
      if (redis) {
        expect(await redis.hexists(AuthKeys.keys, hashKey(created.apiKey))).toBe(1);
        const dump = JSON.stringify(await redis.hgetall(AuthKeys.keys));
        expect(dump).not.toContain(created.apiKey);
      }
      await revokeKey(ADMIN_KEY, created.keyId);
      expect(heard).toEqual([{ keyId: created.keyId, tenantId: 'globex' }]);
      await expect(authenticate(created.apiKey)).rejects.toMatchObject({ kind: 'unauthenticated', message: 'invalid API key' });
      await expect(revokeKey(ADMIN_KEY, created.keyId)).rejects.toMatchObject({ kind: 'not_found' });
      off();
    });

    it('CreateKey takes expires_at; ListKeys (admin only) shows expiry and revocation, never a secret or digest', async () => {
      const listKeys = (caller: string, req: { tenantId?: string; pageSize?: number; pageToken?: string }) =>
        callUnary(client.listKeys.bind(client), { tenantId: '', pageSize: 0, pageToken: '', ...req }, { timeoutMs: 2_000, metadata: bearer(caller) });
      await expect(
        callUnary(client.createKey.bind(client), { tenantId: 'acme', scopes: ['chat'], expiresAt: new Date(now - 1_000) }, { timeoutMs: 2_000, metadata: bearer(ADMIN_KEY) }),
      ).rejects.toMatchObject({ kind: 'invalid_argument', message: 'expires_at: must be in the future' });
      const expiring = await callUnary(client.createKey.bind(client), { tenantId: 'acme', scopes: ['chat'], expiresAt: new Date(now + 2_000) }, { timeoutMs: 2_000, metadata: bearer(ADMIN_KEY) });
      expect(expiring.expiresAt).toEqual(new Date(now + 2_000));
      expect(await authenticate(expiring.apiKey)).toMatchObject({ cacheTtlMs: 2_000, expiresAt: new Date(now + 2_000) });
      const doomed = await createKey(ADMIN_KEY, 'acme');
      await revokeKey(ADMIN_KEY, doomed.keyId);

      await expect(listKeys(TENANT_KEY, {})).rejects.toMatchObject({ kind: 'permission_denied' });
      await expect(listKeys('sk-bogus-0123456789', {})).rejects.toMatchObject({ kind: 'unauthenticated' });
      await expect(listKeys(ADMIN_KEY, { pageSize: -1 })).rejects.toMatchObject({ kind: 'invalid_argument', message: 'page_size: must not be negative' });
      const all = [];
      let pageToken = '';
      do {
        const page = await listKeys(ADMIN_KEY, { tenantId: 'acme', pageSize: 2, pageToken });
        expect(page.keys.length).toBeLessThanOrEqual(2);
        all.push(...page.keys);
        pageToken = page.nextPageToken;
      } while (pageToken);
      const byId = new Map(all.map((k) => [k.keyId, k]));
      expect(byId.get('acme-key')).toMatchObject({ source: KeySource.KEY_SOURCE_CONFIG, tenantId: 'acme' });
      expect(byId.get(expiring.keyId)).toMatchObject({ source: KeySource.KEY_SOURCE_CREATED, expiresAt: new Date(now + 2_000), expired: false, revoked: false, visiblePrefix: expiring.apiKey.slice(0, 10) });
      expect(byId.get(doomed.keyId)).toMatchObject({ revoked: true, revokedAt: new Date(now), visiblePrefix: doomed.apiKey.slice(0, 10) });
      expect(all.every((k) => k.tenantId === 'acme')).toBe(true);
      const text = JSON.stringify(all);
      for (const secret of [expiring.apiKey, doomed.apiKey, TENANT_KEY]) {
        expect(text).not.toContain(secret);
        expect(text).not.toContain(hashKey(secret));
      }
      now += 2_000;
      await expect(authenticate(expiring.apiKey)).rejects.toMatchObject({ kind: 'unauthenticated', message: 'API key expired' });
      expect((await listKeys(ADMIN_KEY, { tenantId: 'acme', pageSize: 1000 })).keys.find((k) => k.keyId === expiring.keyId)?.expired).toBe(true);
    });

    it('revokes a bootstrap key', async () => {
      await revokeKey(ADMIN_KEY, 'globex-hashed');
      await expect(authenticate(HASHED_KEY)).rejects.toMatchObject({ kind: 'unauthenticated', message: 'invalid API key' });
      if (redis) expect(await redis.sismember(AuthKeys.revoked, 'globex-hashed')).toBe(1);
      expect((await authenticate(TENANT_KEY)).principal?.keyId).toBe('acme-key');
    });

    it('rotates a key for an admin: same id and principal, old secret kept for the grace period', async () => {
      const created = await createKey(ADMIN_KEY, 'globex');
      const before = (await authenticate(created.apiKey)).principal;
      const rotated = await rotateKey(ADMIN_KEY, created.keyId, 30_000);
      expect(rotated.keyId).toBe(created.keyId);
      expect(rotated.apiKey).toMatch(/^llmgw_[0-9A-Za-z]{46}$/);
      expect(rotated.apiKey).not.toBe(created.apiKey);
      expect(rotated.oldKeyExpiresAt).toEqual(new Date(now + 30_000));
      expect((await authenticate(rotated.apiKey)).principal).toEqual(before);
      now += 29_000;
      // Still valid, and callers may cache it only until it ends.
      expect(await authenticate(created.apiKey)).toEqual({ principal: before, cacheTtlMs: 1_000, expiresAt: new Date(now + 1_000) });
      now += 1_000;
      await expect(authenticate(created.apiKey)).rejects.toMatchObject({ kind: 'unauthenticated', message: 'invalid API key' });
      expect(await authenticate(rotated.apiKey)).toEqual({ principal: before, cacheTtlMs: 3000 });
      if (redis) {
        const dump = JSON.stringify(await redis.hgetall(AuthKeys.keys)) + ((await redis.get(AuthKeys.grace(hashKey(created.apiKey)))) ?? '');
        expect(dump).not.toContain(rotated.apiKey);
        expect(dump).not.toContain(created.apiKey);
      }
    });

    it('lets a key rotate keys of its own tenant only', async () => {
      const own = await createKey(ADMIN_KEY, 'acme');
      const rotated = await rotateKey(TENANT_KEY, own.keyId, 1_000);
      expect((await authenticate(rotated.apiKey)).principal).toMatchObject({ tenantId: 'acme', keyId: own.keyId });
      const other = await createKey(ADMIN_KEY, 'globex');
      await expect(rotateKey(TENANT_KEY, other.keyId, 1_000)).rejects.toMatchObject({ kind: 'permission_denied' });
      await expect(rotateKey(TENANT_KEY, 'admin-key', 1_000)).rejects.toMatchObject({ kind: 'permission_denied' });
      expect((await authenticate(other.apiKey)).principal?.keyId).toBe(other.keyId);
      expect((await authenticate(ADMIN_KEY)).principal?.keyId).toBe('admin-key');
    });

    it('refuses unknown key ids, unknown callers and too long grace periods', async () => {
      await expect(rotateKey(ADMIN_KEY, 'key-does-not-exist', 0)).rejects.toMatchObject({ kind: 'not_found' });
      await expect(rotateKey('sk-bogus', 'acme-key', 0)).rejects.toMatchObject({ kind: 'unauthenticated' });
      await expect(
        callUnary(client.rotateKey.bind(client), { keyId: 'acme-key', gracePeriodMs: 0 }, { timeoutMs: 2_000 }),
      ).rejects.toMatchObject({ kind: 'unauthenticated', message: 'missing API key' });
      await expect(rotateKey(ADMIN_KEY, 'acme-key', 24 * 3_600_000 + 1)).rejects.toMatchObject({ kind: 'invalid_argument' });
      expect((await authenticate(TENANT_KEY)).principal?.keyId).toBe('acme-key');
    });

    it('with no grace period ends the old secret at once and broadcasts KeyRevoked', async () => {
      const heard: KeyRevoked[] = [];
      const off = bus.onBroadcast(Subjects.keyRevoked, (d) => heard.push(KeyRevoked.decode(d)));
      const created = await createKey(ADMIN_KEY, 'acme');
      await authenticate(created.apiKey); // now in auth's own cache
      const rotated = await rotateKey(ADMIN_KEY, created.keyId, 0);
      expect(rotated.oldKeyExpiresAt).toEqual(new Date(now));
      expect(heard).toEqual([{ keyId: created.keyId, tenantId: 'acme' }]);
      await expect(authenticate(created.apiKey)).rejects.toMatchObject({ kind: 'unauthenticated', message: 'invalid API key' });
      expect((await authenticate(rotated.apiKey)).principal).toMatchObject({ keyId: created.keyId, tenantId: 'acme' });
      off();
    });
  });
}

describe('bootstrap key rotation across an auth restart on one Redis', () => {
  let redisServer: LocalServer;
  let redis: RedisClient;
  const T0 = 1_700_000_000_000;
  let now = T0;

  beforeAll(async () => {
    redisServer = await startRedisServer();
    redis = await connectRedis(redisServer.url, { logger: silentLogger() });
  });
  afterAll(async () => {
    redis.disconnect();
    await redisServer.stop();
  });

  async function boot() {
    const bus = new MemoryEventBus();
    const running = await startAuth(
      { config: { sections: authTestConfig() }, configPath: 'auth-test.yaml', logger: silentLogger(), listenAddr: '127.0.0.1:0', addrs: addrsFromEnv({}), redis, bus, drainMs: 0, env: {} },
      { now: () => now },
    );
    const client = dial(AuthServiceClient, `127.0.0.1:${running.port}`);
    return {
      authenticate: (apiKey: string) => callUnary(client.authenticate.bind(client), { apiKey }, { timeoutMs: 2_000 }),
      rotate: (caller: string, keyId: string, gracePeriodMs: number) =>
        callUnary(client.rotateKey.bind(client), { keyId, gracePeriodMs }, { timeoutMs: 2_000, metadata: bearer(caller) }),
      close: async () => {
        client.close();
        await running.close();
        await bus.close();
      },
    };
  }

  it('keeps the new secret and the end of the config secret', async () => {
    const first = await boot();
    const acme = (await first.authenticate(TENANT_KEY)).principal;
    const admin = (await first.authenticate(ADMIN_KEY)).principal;
    const acmeRotated = await first.rotate(TENANT_KEY, 'acme-key', 60_000);
    const adminRotated = await first.rotate(ADMIN_KEY, 'admin-key', 0);
    await expect(first.authenticate(ADMIN_KEY)).rejects.toMatchObject({ kind: 'unauthenticated' });
    await first.close();

    const second = await boot();
    expect((await second.authenticate(acmeRotated.apiKey)).principal).toEqual(acme);
    expect((await second.authenticate(adminRotated.apiKey)).principal).toEqual(admin);
    await expect(second.authenticate(ADMIN_KEY)).rejects.toMatchObject({ kind: 'unauthenticated', message: 'invalid API key' });
    // The config still lists acme's old secret: it works until the grace period ends, then not.
    expect(await second.authenticate(TENANT_KEY)).toMatchObject({ principal: acme, cacheTtlMs: 3000, expiresAt: new Date(now + 60_000) });
    now += 59_000;
    expect((await second.authenticate(TENANT_KEY)).cacheTtlMs).toBe(1_000);
    now += 1_000;
    await expect(second.authenticate(TENANT_KEY)).rejects.toMatchObject({ kind: 'unauthenticated', message: 'invalid API key' });
    expect((await second.authenticate(acmeRotated.apiKey)).principal).toEqual(acme);
    // The rotated admin secret works as an admin key.
    expect((await second.rotate(adminRotated.apiKey, 'acme-key', 0)).keyId).toBe('acme-key');
    await second.close();
  });
});
