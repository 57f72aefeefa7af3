import { describe, expect, it } from 'vitest';
import { authSectionsSchema, parseSections } from '@llmgw/config';
import { MemoryEventBus, Subjects } from '@llmgw/events';
import { silentLogger } from '@llmgw/logging';
import { KeyRevoked, KeySource, type KeyInfo } from '@llmgw/proto/auth';
import { hashKey } from './key-hash.js';
import { KeyAuthority, MAX_KEY_LIFETIME_MS, MAX_PAGE_SIZE } from './key-authority.js';
import { MemoryKeyStore } from './key-store.js';
import { ADMIN_KEY, HASHED_KEY, TENANT_KEY } from './test-config.js';

/* Key expiry (CreateKey, RotateKey, config expires_at) and ListKeys, on an injected clock. */

const T0 = 1_700_000_000_000;
const EXPIRING_KEY = 'sk-test-expiring-0123456789abcdef';

function config() {
  return parseSections(
    authSectionsSchema,
    `
tenants: { acme: { tier: startup }, globex: { tier: enterprise }, ops: { tier: enterprise } }
api_keys:
  - { id: acme-key, tenant: acme, key: "${TENANT_KEY}", scopes: [chat] }
  - { id: globex-hashed, tenant: globex, key_sha256: "${hashKey(HASHED_KEY)}" }
  - { id: admin-key, tenant: ops, key: "${ADMIN_KEY}", admin: true }
  - { id: acme-expiring, tenant: acme, key: "${EXPIRING_KEY}", expires_at: "${new Date(T0 + 5_000).toISOString()}" }
auth: { cache_ttl_ms: 3000 }
`,
    'lifecycle-test.yaml',
    {},
  );
}

async function setup() {
  const clock = { now: T0 };
  const bus = new MemoryEventBus();
  const store = new MemoryKeyStore();
  const a = new KeyAuthority({ config: config(), store, logger: silentLogger(), bus, now: () => clock.now });
  await a.syncRevocations();
  const heard: string[] = [];
  bus.onBroadcast(Subjects.keyRevoked, (d) => heard.push(KeyRevoked.decode(d).keyId));
  return { clock, a, store, heard, admin: await a.authenticate(ADMIN_KEY), acme: await a.authenticate(TENANT_KEY) };
}

describe('key expiry', () => {
  it('CreateKey refuses an expiry in the past, now, or over 366 days ahead, naming expires_at', async () => {
    const { a } = await setup();
    for (const [at, msg] of [
      [new Date(T0 - 1), 'expires_at: must be in the future'],
      [new Date(T0), 'expires_at: must be in the future'],
      [new Date(T0 + MAX_KEY_LIFETIME_MS + 1), 'expires_at: must be at most 366 days from now'],
      [new Date(Number.NaN), 'expires_at: not a valid timestamp'],
    ] as const) {
      await expect(a.createKey('acme', ['chat'], at)).rejects.toMatchObject({ kind: 'invalid_argument', message: msg });
    }
    expect((await a.createKey('acme', ['chat'], new Date(T0 + MAX_KEY_LIFETIME_MS))).expiresAtMs).toBe(T0 + MAX_KEY_LIFETIME_MS);
    expect((await a.createKey('acme', ['chat'])).expiresAtMs).toBeUndefined();
  });

  it('an expiring key is cached no longer than it lives, then is UNAUTHENTICATED "API key expired" without the key', async () => {
    const { a, clock } = await setup();
    const { apiKey, expiresAtMs } = await a.createKey('acme', ['chat'], new Date(T0 + 2_000));
    expect(expiresAtMs).toBe(T0 + 2_000);
    expect(await a.authenticateWithTtl(apiKey)).toMatchObject({ cacheTtlMs: 2_000, expiresAtMs: T0 + 2_000 });
    clock.now = T0 + 1_900;
    // From auth's own cache now: still capped by the expiry.
    expect(await a.authenticateWithTtl(apiKey)).toMatchObject({ cacheTtlMs: 100, expiresAtMs: T0 + 2_000 });
    clock.now = T0 + 2_000;
    const err = await a.authenticate(apiKey).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toMatchObject({ kind: 'unauthenticated', message: 'API key expired' });
    expect(err?.message).not.toContain(apiKey.slice(6, 16));
    // Remembered as expired (not "invalid") on the next try as well.
    await expect(a.authenticate(apiKey)).rejects.toMatchObject({ message: 'API key expired' });
    // A key without an expiry is not affected and carries no expires_at.
    const forever = await a.createKey('acme', ['chat']);
    expect(await a.authenticateWithTtl(forever.apiKey)).toEqual({ principal: expect.objectContaining({ keyId: forever.keyId }), cacheTtlMs: 3000 });
  });

  it('config keys with expires_at expire too, with the cache TTL capped', async () => {
    const { a, clock } = await setup();
    expect(a.expiredBootstrapIds()).toEqual([]);
    expect(await a.authenticateWithTtl(EXPIRING_KEY)).toMatchObject({ cacheTtlMs: 3000, expiresAtMs: T0 + 5_000 });
    clock.now = T0 + 4_000;
    expect(await a.authenticateWithTtl(EXPIRING_KEY)).toMatchObject({ cacheTtlMs: 1_000 });
    clock.now = T0 + 5_000;
    await expect(a.authenticate(EXPIRING_KEY)).rejects.toMatchObject({ kind: 'unauthenticated', message: 'API key expired' });
    expect(a.expiredBootstrapIds()).toEqual(['acme-expiring']);
  });

  it('RotateKey: unset keeps the expiry, a tenant key may shorten but not extend it, an admin may; an expired key is not rotated', async () => {
    const { a, clock, admin, acme } = await setup();
    const { keyId } = await a.createKey('acme', ['chat'], new Date(T0 + 60_000));
    const kept = await a.rotateKey(acme, keyId, 0);
    expect(kept.expiresAtMs).toBe(T0 + 60_000);
    expect(await a.authenticateWithTtl(kept.apiKey)).toMatchObject({ expiresAtMs: T0 + 60_000 });
    await expect(a.rotateKey(acme, keyId, 0, new Date(T0 + 120_000))).rejects.toMatchObject({
      kind: 'permission_denied',
      message: "expires_at: only an admin key may extend a key's expiry",
    });
    await expect(a.rotateKey(acme, keyId, 0, new Date(T0 - 5))).rejects.toMatchObject({ kind: 'invalid_argument', message: 'expires_at: must be in the future' });
    expect((await a.rotateKey(acme, keyId, 0, new Date(T0 + 30_000))).expiresAtMs).toBe(T0 + 30_000);
    const extended = await a.rotateKey(admin, keyId, 10_000, new Date(T0 + 120_000));
    expect(extended.expiresAtMs).toBe(T0 + 120_000);
    clock.now = T0 + 120_000;
    await expect(a.authenticate(extended.apiKey)).rejects.toMatchObject({ message: 'API key expired' });
    await expect(a.rotateKey(admin, keyId, 0)).rejects.toMatchObject({ kind: 'failed_precondition', message: `key "${keyId}" has expired; create a new key` });
    // A config key past its expires_at: expired, not rotatable back to life.
    await expect(a.rotateKey(admin, 'acme-expiring', 0)).rejects.toMatchObject({ kind: 'failed_precondition' });
  });

  it('an old secret in its grace period ends at the key expiry when that comes first', async () => {
    const { a, clock, admin } = await setup();
    const { keyId, apiKey: old } = await a.createKey('acme', ['chat'], new Date(T0 + 5_000));
    await a.rotateKey(admin, keyId, 60_000);
    expect(await a.authenticateWithTtl(old)).toMatchObject({ expiresAtMs: T0 + 5_000 });
    clock.now = T0 + 5_000;
    await expect(a.authenticate(old)).rejects.toMatchObject({ kind: 'unauthenticated' });
  });
});

describe('ListKeys', () => {
  const ids = (keys: KeyInfo[]) => keys.map((k) => k.keyId);

  it('lists config and created keys with metadata, never a secret or a digest', async () => {
    const { a, clock, admin } = await setup();
    const created = await a.createKey('globex', ['chat', 'embed'], new Date(T0 + 60_000));
    clock.now = T0 + 10;
    const { keys, nextPageToken } = await a.listKeys({ tenantId: '', pageSize: 0, pageToken: '' });
    expect(nextPageToken).toBe('');
    expect(ids(keys)).toEqual(['acme-expiring', 'acme-key', 'admin-key', created.keyId, 'globex-hashed'].sort());
    const byId = new Map(keys.map((k) => [k.keyId, k]));
    expect(byId.get(created.keyId)).toEqual({
      keyId: created.keyId,
      tenantId: 'globex',
      scopes: ['chat', 'embed'],
      admin: false,
      source: KeySource.KEY_SOURCE_CREATED,
      createdAt: new Date(T0),
      rotatedAt: undefined,
      expiresAt: new Date(T0 + 60_000),
      expired: false,
      revoked: false,
      revokedAt: undefined,
      visiblePrefix: created.apiKey.slice(0, 10),
    });
    expect(byId.get('admin-key')).toMatchObject({ source: KeySource.KEY_SOURCE_CONFIG, admin: true, tenantId: 'ops', visiblePrefix: 'sk-t', createdAt: undefined });
    expect(byId.get('acme-expiring')).toMatchObject({ expiresAt: new Date(T0 + 5_000), expired: false });
    // A config key given only as a digest: nothing of its secret is known.
    expect(byId.get('globex-hashed')?.visiblePrefix).toBe('');
    const text = JSON.stringify(keys);
    for (const secret of [created.apiKey, TENANT_KEY, ADMIN_KEY, EXPIRING_KEY, HASHED_KEY]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(hashKey(secret));
    }
    expect(admin.admin).toBe(true);
  });

  it('shows revoked (with when), expired and rotated keys; rotation changes the prefix', async () => {
    const { a, clock, admin, heard } = await setup();
    const created = await a.createKey('acme', ['chat']);
    clock.now = T0 + 1_000;
    await a.revokeKey(created.keyId);
    await a.revokeKey('acme-key');
    expect(heard).toEqual([created.keyId, 'acme-key']);
    const rotated = await a.rotateKey(admin, 'admin-key', 0);
    clock.now = T0 + 6_000;
    const byId = new Map((await a.listKeys({ tenantId: '', pageSize: 0, pageToken: '' })).keys.map((k) => [k.keyId, k]));
    expect(byId.get(created.keyId)).toMatchObject({ revoked: true, revokedAt: new Date(T0 + 1_000), source: KeySource.KEY_SOURCE_CREATED, createdAt: new Date(T0), scopes: ['chat'] });
    expect(byId.get('acme-key')).toMatchObject({ revoked: true, revokedAt: new Date(T0 + 1_000), source: KeySource.KEY_SOURCE_CONFIG, visiblePrefix: 'sk-t' });
    expect(byId.get('admin-key')).toMatchObject({ revoked: false, rotatedAt: new Date(T0 + 1_000), visiblePrefix: rotated.apiKey.slice(0, 10), source: KeySource.KEY_SOURCE_CONFIG });
    expect(byId.get('acme-expiring')).toMatchObject({ expired: true, revoked: false });
    expect(byId.get('globex-hashed')).toMatchObject({ revoked: false, revokedAt: undefined });
  });

  it('filters by tenant and pages by key id; a token is bound to its tenant filter; page_size is bounded', async () => {
    const { a } = await setup();
    const made: string[] = [];
    for (let i = 0; i < 7; i++) made.push((await a.createKey('globex', [])).keyId);
    const want = [...made, 'globex-hashed'].sort();
    const seen: string[] = [];
    let token = '';
    let pages = 0;
    do {
      const page = await a.listKeys({ tenantId: 'globex', pageSize: 3, pageToken: token });
      expect(page.keys.length).toBeLessThanOrEqual(3);
      expect(page.keys.every((k) => k.tenantId === 'globex')).toBe(true);
      seen.push(...ids(page.keys));
      token = page.nextPageToken;
      pages++;
    } while (token && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual(want);

    const first = await a.listKeys({ tenantId: 'globex', pageSize: 3, pageToken: '' });
    await expect(a.listKeys({ tenantId: '', pageSize: 3, pageToken: first.nextPageToken })).rejects.toMatchObject({ kind: 'invalid_argument', message: expect.stringMatching(/^page_token: /) });
    await expect(a.listKeys({ tenantId: '', pageSize: 3, pageToken: 'not-a-token' })).rejects.toMatchObject({ kind: 'invalid_argument', message: 'page_token: not a token of this list' });
    await expect(a.listKeys({ tenantId: '', pageSize: -1, pageToken: '' })).rejects.toMatchObject({ kind: 'invalid_argument', message: 'page_size: must not be negative' });
    // Above the maximum is read as the maximum (AIP-158), not refused.
    expect((await a.listKeys({ tenantId: '', pageSize: MAX_PAGE_SIZE * 10, pageToken: '' })).keys).toHaveLength(11);
    expect((await a.listKeys({ tenantId: 'nobody', pageSize: 0, pageToken: '' })).keys).toEqual([]);
  });
});
