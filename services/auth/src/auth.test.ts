import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryEventBus, Subjects } from '@llmgw/events';
import { callUnary, dial } from '@llmgw/grpc';
import { startRedisServer, type LocalServer } from '@llmgw/local-infra';
import { silentLogger } from '@llmgw/logging';
import { AuthServiceClient, KeyRevoked } from '@llmgw/proto/auth';
import { connectRedis, type Redis } from '@llmgw/redis';
import { addrsFromEnv, type RunningService } from '@llmgw/runtime';
import { startAuth } from './index.js';
import { AuthKeys } from './key-store.js';
import { hashKey } from './key-hash.js';
import { ADMIN_KEY, authTestConfig, HASHED_KEY, TENANT_KEY } from './test-config.js';

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

for (const mode of ['memory', 'redis'] as const) {
  describe(`auth service over gRPC (${mode} store)`, () => {
    let redisServer: LocalServer | undefined;
    let redis: Redis | undefined;
    let bus: MemoryEventBus;
    let running: RunningService;
    let client: AuthServiceClient;

    beforeAll(async () => {
      if (mode === 'redis') {
        redisServer = await startRedisServer();
        redis = await connectRedis(redisServer.url, { logger: silentLogger() });
      }
      bus = new MemoryEventBus();
      running = await startAuth({
        config: authTestConfig(),
        logger: silentLogger(),
        listenAddr: '127.0.0.1:0',
        addrs: addrsFromEnv({}),
        redis,
        bus,
        drainMs: 0,
        env: {},
      });
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
      expect(created.apiKey).toMatch(/^sk-/);
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

    it('revokes a bootstrap key', async () => {
      await revokeKey(ADMIN_KEY, 'globex-hashed');
      await expect(authenticate(HASHED_KEY)).rejects.toMatchObject({ kind: 'unauthenticated', message: 'invalid API key' });
      if (redis) expect(await redis.sismember(AuthKeys.revoked, 'globex-hashed')).toBe(1);
      expect((await authenticate(TENANT_KEY)).principal?.keyId).toBe('acme-key');
    });
  });
}
