import { describe, expect, it } from 'vitest';
import { Metadata } from '@grpc/grpc-js';
import { MemoryEventBus, Subjects } from '@llmgw/events';
import { silentLogger } from '@llmgw/logging';
import { KeyRevoked } from '@llmgw/proto/auth';
import { isMistypedKey, newApiKey } from '@llmgw/caller-auth';
import { bearerToken, hashKey, newKeyId } from './key-hash.js';
import { KeyAuthority, MAX_GRACE_PERIOD_MS } from './key-authority.js';
import { MemoryKeyStore, type KeyStore, type StoredKey } from './key-store.js';
import { ADMIN_KEY, authTestConfig, HASHED_KEY, TENANT_KEY } from './test-config.js';

class CountingStore extends MemoryKeyStore {
  finds = 0;
  override async find(digest: string): Promise<StoredKey | undefined> {
    this.finds++;
    return super.find(digest);
  }
}

/** An authority after its start-up revocation sync, as the service starts it. */
async function authority(store: KeyStore = new MemoryKeyStore(), extra: Partial<ConstructorParameters<typeof KeyAuthority>[0]> = {}) {
  const a = new KeyAuthority({ config: authTestConfig(), store, logger: silentLogger(), ...extra });
  await a.syncRevocations();
  return a;
}

describe('key hashing', () => {
  it('is hex SHA-256', () => {
    expect(hashKey('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
  it('makes llmgw_ keys: 40 random base62 characters and a 6-character checksum, and distinct ids', () => {
    const a = newApiKey();
    expect(a).toMatch(/^llmgw_[0-9A-Za-z]{46}$/);
    expect(newApiKey()).not.toBe(a);
    expect(isMistypedKey(a)).toBe(false);
    expect(newKeyId()).not.toBe(newKeyId());
  });
  it('knows a mistyped key by its checksum, and judges no other form', () => {
    const a = newApiKey();
    const flipped = a.slice(0, 10) + (a[10] === 'a' ? 'b' : 'a') + a.slice(11);
    expect(isMistypedKey(flipped)).toBe(true);
    expect(isMistypedKey(a.slice(0, -1))).toBe(true);
    expect(isMistypedKey(`${a}x`)).toBe(true);
    expect(isMistypedKey('sk-test-startup-000000000000')).toBe(false);
  });
  it.each([
    ['Bearer sk-abc', 'sk-abc'],
    ['bearer   sk-abc ', 'sk-abc'],
    ['Basic sk-abc', ''],
    ['', ''],
  ])('bearer token of %j is %j', (header, want) => {
    const md = new Metadata();
    if (header) md.set('authorization', header);
    expect(bearerToken(md)).toBe(want);
  });
});

describe('KeyAuthority', () => {
  it('authenticates bootstrap keys given in clear or as a digest', async () => {
    const a = await authority();
    expect(await a.authenticate(TENANT_KEY)).toEqual({ tenantId: 'acme', keyId: 'acme-key', tier: 'startup', scopes: ['chat'], admin: false });
    expect(await a.authenticate(HASHED_KEY)).toMatchObject({ tenantId: 'globex', keyId: 'globex-hashed', tier: 'enterprise' });
    expect(await a.authenticate(ADMIN_KEY)).toMatchObject({ tenantId: 'ops', admin: true });
    expect(a.cacheTtlMs).toBe(3000);
  });

  it('refuses missing and unknown keys without saying why', async () => {
    const a = await authority();
    await expect(a.authenticate('')).rejects.toMatchObject({ kind: 'unauthenticated', message: 'missing API key' });
    await expect(a.authenticate('sk-nope')).rejects.toMatchObject({ kind: 'unauthenticated', message: 'invalid API key' });
    await expect(a.authenticate(TENANT_KEY + 'x')).rejects.toMatchObject({ kind: 'unauthenticated', message: 'invalid API key' });
  });

  it('does not touch the store for bootstrap keys', async () => {
    const store = new CountingStore();
    const a = await authority(store);
    for (let i = 0; i < 10; i++) await a.authenticate(TENANT_KEY);
    expect(store.finds).toBe(0);
  });

  it('creates keys stored only as digests, and revokes them', async () => {
    const store = new MemoryKeyStore();
    const a = await authority(store);
    const { keyId, apiKey } = await a.createKey('globex', ['chat']);
    expect(await a.authenticate(apiKey)).toEqual({ tenantId: 'globex', keyId, tier: 'enterprise', scopes: ['chat'], admin: false });
    const stored = await store.find(hashKey(apiKey));
    expect(stored).toMatchObject({ keyId, tenantId: 'globex' });
    expect(JSON.stringify(stored)).not.toContain(apiKey.slice(3));
    await a.revokeKey(keyId);
    await expect(a.authenticate(apiKey)).rejects.toMatchObject({ kind: 'unauthenticated', message: 'invalid API key' });
    await expect(a.revokeKey(keyId)).rejects.toMatchObject({ kind: 'not_found' });
  });

  it('validates create and revoke input', async () => {
    const a = await authority();
    await expect(a.createKey('', [])).rejects.toMatchObject({ kind: 'invalid_argument' });
    await expect(a.createKey('initech', [])).rejects.toMatchObject({ kind: 'invalid_argument', message: 'unknown tenant "initech"' });
    await expect(a.revokeKey('')).rejects.toMatchObject({ kind: 'invalid_argument' });
  });

  it('requires admin', async () => {
    const a = await authority();
    await expect(a.requireAdmin(TENANT_KEY)).rejects.toMatchObject({ kind: 'permission_denied' });
    await expect(a.requireAdmin('')).rejects.toMatchObject({ kind: 'unauthenticated' });
    expect((await a.requireAdmin(ADMIN_KEY)).keyId).toBe('admin-key');
  });

  it('revokes bootstrap keys, broadcasts, and other replicas drop them', async () => {
    const bus = new MemoryEventBus();
    const store = new MemoryKeyStore();
    const a = await authority(store, { bus });
    const b = await authority(store, { bus });
    const heard: KeyRevoked[] = [];
    bus.onBroadcast(Subjects.keyRevoked, (d) => heard.push(KeyRevoked.decode(d)));
    await b.authenticate(TENANT_KEY);
    await a.revokeKey('acme-key');
    expect(heard).toEqual([{ keyId: 'acme-key', tenantId: 'acme' }]);
    await expect(a.authenticate(TENANT_KEY)).rejects.toMatchObject({ kind: 'unauthenticated' });
    await expect(b.authenticate(TENANT_KEY)).rejects.toMatchObject({ kind: 'unauthenticated' });
    // A replica started later learns it from the store before it honours any bootstrap key.
    const c = await authority(store);
    await expect(c.authenticate(TENANT_KEY)).rejects.toMatchObject({ kind: 'unauthenticated' });
  });

  it('honours no bootstrap key until it knows which are revoked (store down at start)', async () => {
    const store = new MemoryKeyStore();
    const a = new KeyAuthority({ config: authTestConfig(), store, logger: silentLogger() });
    await expect(a.authenticate(TENANT_KEY)).rejects.toMatchObject({ kind: 'unavailable' });
    await a.syncRevocations();
    expect(await a.authenticate(TENANT_KEY)).toMatchObject({ keyId: 'acme-key' });
  });

  it('caches created keys briefly, and a revocation broadcast drops the cache entry', async () => {
    let now = 1_000;
    const bus = new MemoryEventBus();
    const store = new CountingStore();
    const a = await authority(store, { bus, now: () => now, storeCacheTtlMs: 2_000 });
    const b = await authority(store, { bus, now: () => now, storeCacheTtlMs: 2_000 });
    const { keyId, apiKey } = await a.createKey('acme', []);
    await b.authenticate(apiKey);
    await b.authenticate(apiKey);
    expect(store.finds).toBe(1);
    now += 2_001;
    await b.authenticate(apiKey);
    expect(store.finds).toBe(2);
    await a.revokeKey(keyId);
    await expect(b.authenticate(apiKey)).rejects.toMatchObject({ kind: 'unauthenticated' });
  });

  it('remembers unknown keys briefly', async () => {
    let now = 0;
    const store = new CountingStore();
    const a = await authority(store, { now: () => now, negativeCacheTtlMs: 1_000 });
    await expect(a.authenticate('sk-unknown')).rejects.toThrow('invalid API key');
    await expect(a.authenticate('sk-unknown')).rejects.toThrow('invalid API key');
    expect(store.finds).toBe(1);
    now += 1_001;
    await expect(a.authenticate('sk-unknown')).rejects.toThrow('invalid API key');
    expect(store.finds).toBe(2);
  });

  it('grants only known scopes, and never admin', async () => {
    const a = await authority();
    await expect(a.createKey('globex', ['chat', 'fly'])).rejects.toMatchObject({ kind: 'invalid_argument', message: expect.stringContaining('unknown scope "fly"') });
    await expect(a.createKey('globex', ['admin'])).rejects.toMatchObject({ kind: 'invalid_argument' });
    const { apiKey } = await a.createKey('globex', ['embed', 'usage:read']);
    expect((await a.authenticate(apiKey)).scopes).toEqual(['embed', 'usage:read']);
  });

  it('refuses a mistyped key of its own format without a store lookup', async () => {
    const store = new CountingStore();
    const a = await authority(store);
    const { apiKey } = await a.createKey('globex', []);
    const mistyped = apiKey.slice(0, -1) + (apiKey.endsWith('0') ? '1' : '0');
    await expect(a.authenticate(mistyped)).rejects.toMatchObject({ kind: 'unauthenticated' });
    expect(store.finds).toBe(0);
  });

  it('maps a failing store to UNAVAILABLE', async () => {
    const store = new MemoryKeyStore();
    store.find = async () => {
      throw new Error('connection refused');
    };
    await expect((await authority(store)).authenticate('sk-other')).rejects.toMatchObject({ kind: 'unavailable', message: 'key store unavailable' });
  });
});

describe('KeyAuthority.rotateKey', () => {
  const T0 = 1_700_000_000_000;
  function setup() {
    const clock = { now: T0 };
    const bus = new MemoryEventBus();
    const store = new MemoryKeyStore();
    const make = () => authority(store, { bus, now: () => clock.now });
    const heard: KeyRevoked[] = [];
    bus.onBroadcast(Subjects.keyRevoked, (d) => heard.push(KeyRevoked.decode(d)));
    return { clock, bus, store, make, heard };
  }

  it('validates input and refuses other tenants, and non-admins rotating admin keys', async () => {
    const { make } = setup();
    const a = await make();
    const admin = await a.authenticate(ADMIN_KEY);
    const acme = await a.authenticate(TENANT_KEY);
    const { keyId } = await a.createKey('globex', []);
    await expect(a.rotateKey(admin, '', 0)).rejects.toMatchObject({ kind: 'invalid_argument' });
    await expect(a.rotateKey(admin, keyId, MAX_GRACE_PERIOD_MS + 1)).rejects.toMatchObject({ kind: 'invalid_argument' });
    await expect(a.rotateKey(admin, keyId, -1)).rejects.toMatchObject({ kind: 'invalid_argument' });
    await expect(a.rotateKey(admin, 'key-nope', 0)).rejects.toMatchObject({ kind: 'not_found' });
    await expect(a.rotateKey(acme, keyId, 0)).rejects.toMatchObject({ kind: 'permission_denied' });
    // A non-admin key of the admin key's tenant may not mint an admin secret.
    const opsKey = await a.createKey('ops', []);
    const ops = await a.authenticate(opsKey.apiKey);
    await expect(a.rotateKey(ops, 'admin-key', 1_000)).rejects.toMatchObject({ kind: 'permission_denied' });
    expect((await a.rotateKey(admin, keyId, MAX_GRACE_PERIOD_MS)).oldKeyExpiresAtMs).toBe(T0 + MAX_GRACE_PERIOD_MS);
  });

  it('keeps the old secret for the grace period, and caps cache TTLs at its end', async () => {
    const { clock, make, heard } = setup();
    const a = await make();
    const { keyId, apiKey: oldKey } = await a.createKey('acme', ['chat']);
    const acme = await a.authenticate(TENANT_KEY);
    const rotated = await a.rotateKey(acme, keyId, 10_000);
    expect(rotated).toMatchObject({ keyId, tenantId: 'acme', oldKeyExpiresAtMs: T0 + 10_000 });
    expect(rotated.apiKey).not.toBe(oldKey);
    const principal = { tenantId: 'acme', keyId, tier: 'startup', scopes: ['chat'], admin: false };
    expect(await a.authenticateWithTtl(rotated.apiKey)).toEqual({ principal, cacheTtlMs: 3000 });
    clock.now = T0 + 8_500;
    expect(await a.authenticateWithTtl(oldKey)).toEqual({ principal, cacheTtlMs: 1_500, expiresAtMs: T0 + 10_000 });
    clock.now = T0 + 10_000;
    await expect(a.authenticate(oldKey)).rejects.toMatchObject({ kind: 'unauthenticated', message: 'invalid API key' });
    expect(await a.authenticate(rotated.apiKey)).toEqual(principal);
    expect(heard).toEqual([]);
  });

  it('with no grace, ends the old secret (and older ones in grace) at once and broadcasts', async () => {
    const { make, heard } = setup();
    const a = await make();
    const b = await make();
    const admin = await a.authenticate(ADMIN_KEY);
    const { keyId, apiKey: first } = await a.createKey('globex', []);
    await b.authenticate(first); // cached by replica b
    const second = await a.rotateKey(admin, keyId, 60_000);
    expect(await b.authenticate(first)).toMatchObject({ keyId });
    const third = await a.rotateKey(admin, keyId, 0);
    expect(heard).toEqual([{ keyId, tenantId: 'globex' }]);
    for (const k of [first, second.apiKey]) {
      await expect(a.authenticate(k)).rejects.toMatchObject({ kind: 'unauthenticated' });
      await expect(b.authenticate(k)).rejects.toMatchObject({ kind: 'unauthenticated' });
    }
    expect(await b.authenticate(third.apiKey)).toMatchObject({ keyId, tenantId: 'globex' });
  });

  it('rotates a bootstrap key: the config secret ends after the grace period, the new one has the same principal', async () => {
    const { clock, store, make } = setup();
    const a = await make();
    const admin = await a.authenticate(ADMIN_KEY);
    const rotated = await a.rotateKey(admin, 'admin-key', 5_000);
    expect(await a.authenticate(rotated.apiKey)).toEqual(admin);
    expect(await a.authenticate(ADMIN_KEY)).toEqual(admin);
    expect(await store.find(hashKey(rotated.apiKey))).toMatchObject({ keyId: 'admin-key', bootstrap: true, admin: true });
    // A replica (or a restart) learns of it from the store.
    const c = await make();
    await c.syncRevocations();
    clock.now = T0 + 5_000;
    for (const x of [a, c]) {
      await expect(x.authenticate(ADMIN_KEY)).rejects.toMatchObject({ kind: 'unauthenticated' });
      expect(await x.authenticate(rotated.apiKey)).toEqual(admin);
    }
    // A rotated bootstrap key rotates again, and a revocation ends every secret of it.
    const again = await c.rotateKey(admin, 'admin-key', 1_000);
    expect(await a.authenticate(again.apiKey)).toEqual(admin);
    expect(await a.authenticate(rotated.apiKey)).toEqual(admin);
    await a.revokeKey('admin-key');
    for (const k of [again.apiKey, rotated.apiKey]) await expect(c.authenticate(k)).rejects.toMatchObject({ kind: 'unauthenticated' });
    await expect(a.rotateKey(admin, 'admin-key', 0)).rejects.toMatchObject({ kind: 'not_found' });
  });

  it('a bootstrap rotation without grace ends the config secret on other replicas, which may still rotate it', async () => {
    const { make, heard } = setup();
    const a = await make();
    const b = await make();
    const acme = await a.authenticate(TENANT_KEY);
    const rotated = await a.rotateKey(acme, 'acme-key', 0);
    expect(heard).toEqual([{ keyId: 'acme-key', tenantId: 'acme' }]);
    await expect(b.authenticate(TENANT_KEY)).rejects.toMatchObject({ kind: 'unauthenticated' });
    expect(await b.authenticate(rotated.apiKey)).toEqual(acme);
    const again = await b.rotateKey(acme, 'acme-key', 0);
    await expect(a.authenticate(rotated.apiKey)).rejects.toMatchObject({ kind: 'unauthenticated' });
    expect(await a.authenticate(again.apiKey)).toEqual(acme);
  });
});
