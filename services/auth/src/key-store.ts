import type { RedisClient } from '@llmgw/redis';

/** A key as stored (the secret itself is never stored, only its digest). */
export interface StoredKey {
  keyId: string;
  tenantId: string;
  scopes: string[];
  createdAtMs: number;
  /** Admin key (only a rotated admin bootstrap key has this). */
  admin?: boolean;
  /** The new secret of a rotated bootstrap (config) key; its principal follows the config. */
  bootstrap?: boolean;
  /** When the secret behind this digest was issued by RotateKey. */
  rotatedAtMs?: number;
  /** Set on an old secret in its grace period: it stops working at this instant. */
  expiresAtMs?: number;
  /** When the key itself expires (CreateKey's or RotateKey's expires_at); unset: never. */
  keyExpiresAtMs?: number;
  /** The start of the secret for listings (`llmgw_AbCd`), never more of it. */
  prefix?: string;
}

/** What is kept of a revoked key, for ListKeys: metadata only, never a digest. */
export type RevokedKey = Omit<StoredKey, 'expiresAtMs'> & { revokedAtMs: number };

/** A rotation: `key` under `digest` becomes the key's current secret. */
export interface Rotation {
  digest: string;
  key: StoredKey;
  nowMs: number;
  /** How long the previous current secret keeps working; 0 ends it (and every older one) at once. */
  graceMs: number;
}

/** Where created keys, rotations and bootstrap-key revocations live: RedisClient, or memory in monolithic mode. */
export interface KeyStore {
  /** The key behind a digest: a current secret, or an old one in its grace period (with `expiresAtMs`). */
  find(digest: string): Promise<StoredKey | undefined>;
  /** The current secret's digest and key of a key id. */
  current(keyId: string): Promise<{ digest: string; key: StoredKey } | undefined>;
  add(digest: string, key: StoredKey): Promise<void>;
  /**
   * Makes `rotation.digest` the key's current secret and returns the previous current digest, if any.
   * The previous secret moves to a grace entry that expires after `graceMs`; with `graceMs` 0 it and
   * all older secrets of the key still in grace stop at once.
   */
  rotate(rotation: Rotation): Promise<string | undefined>;
  /** Removes a key (current secret and old secrets in grace) by id; undefined when there is no current secret. */
  remove(keyId: string): Promise<StoredKey | undefined>;
  /** Marks a bootstrap (config) key revoked; idempotent. */
  revokeBootstrap(keyId: string): Promise<void>;
  revokedBootstrap(): Promise<string[]>;
  /** The config secret with this digest stops working at `expiresAtMs` (an earlier stored instant wins). */
  retireBootstrap(digest: string, keyId: string, expiresAtMs: number): Promise<void>;
  /** Retired bootstrap digests → the instant each stops (or stopped) working. */
  retiredBootstrap(): Promise<Map<string, number>>;
  /** Every key's current secret record (for ListKeys; never the digests). */
  list(): Promise<StoredKey[]>;
  /** Keeps a revoked key's metadata for ListKeys (the first record of a key id wins). */
  recordRevoked(key: RevokedKey): Promise<void>;
  revokedKeys(): Promise<RevokedKey[]>;
}

/** Every Redis key auth uses. */
export const AuthKeys = {
  /** hash: sha256 hex digest → JSON StoredKey (current secrets) */
  keys: 'auth:keys',
  /** hash: key id → digest of its current secret */
  keyIds: 'auth:key-ids',
  /** set: ids of revoked bootstrap keys */
  revoked: 'auth:revoked',
  /** hash: digest of a rotated-out bootstrap (config) secret → JSON {keyId, expiresAtMs} */
  retired: 'auth:retired',
  /** hash: key id of a revoked key → JSON RevokedKey (metadata for ListKeys, no digest) */
  revokedKeys: 'auth:revoked-keys',
  /** string with PX TTL: an old secret in its grace period → JSON StoredKey with expiresAtMs */
  grace: (digest: string) => `auth:grace:${digest}`,
  /** set with PX TTL: digests of a key id's old secrets in grace (so they can all be ended at once) */
  graceIds: (keyId: string) => `auth:grace-ids:${keyId}`,
} as const;

export class MemoryKeyStore implements KeyStore {
  private readonly keys = new Map<string, StoredKey>();
  private readonly ids = new Map<string, string>();
  private readonly revoked = new Set<string>();
  private readonly retired = new Map<string, number>();
  private readonly graces = new Map<string, StoredKey>();
  private readonly graceIds = new Map<string, Set<string>>();
  private readonly tombstones = new Map<string, RevokedKey>();

  async list(): Promise<StoredKey[]> {
    return [...this.keys.values()].map(copy);
  }

  async recordRevoked(key: RevokedKey): Promise<void> {
    if (!this.tombstones.has(key.keyId)) this.tombstones.set(key.keyId, { ...key, scopes: [...key.scopes] });
  }

  async revokedKeys(): Promise<RevokedKey[]> {
    return [...this.tombstones.values()].map((k) => ({ ...k, scopes: [...k.scopes] }));
  }

  async find(digest: string): Promise<StoredKey | undefined> {
    const k = this.keys.get(digest) ?? this.graces.get(digest);
    return k && copy(k);
  }

  async current(keyId: string): Promise<{ digest: string; key: StoredKey } | undefined> {
    const digest = this.ids.get(keyId);
    const key = digest === undefined ? undefined : this.keys.get(digest);
    return digest !== undefined && key ? { digest, key: copy(key) } : undefined;
  }

  async add(digest: string, key: StoredKey): Promise<void> {
    this.keys.set(digest, copy(key));
    this.ids.set(key.keyId, digest);
  }

  async rotate({ digest, key, nowMs, graceMs }: Rotation): Promise<string | undefined> {
    this.prune(nowMs);
    const old = this.ids.get(key.keyId);
    const oldKey = old === undefined ? undefined : this.keys.get(old);
    if (graceMs > 0 && old !== undefined && oldKey) {
      this.graces.set(old, { ...copy(oldKey), expiresAtMs: nowMs + graceMs });
      const set = this.graceIds.get(key.keyId) ?? new Set<string>();
      set.add(old);
      this.graceIds.set(key.keyId, set);
    } else if (graceMs === 0) {
      this.endGraces(key.keyId);
    }
    this.keys.set(digest, copy(key));
    this.ids.set(key.keyId, digest);
    if (old !== undefined && old !== digest) this.keys.delete(old);
    return old;
  }

  async remove(keyId: string): Promise<StoredKey | undefined> {
    this.endGraces(keyId);
    const digest = this.ids.get(keyId);
    if (digest === undefined) return undefined;
    const key = this.keys.get(digest);
    this.keys.delete(digest);
    this.ids.delete(keyId);
    return key;
  }

  async revokeBootstrap(keyId: string): Promise<void> {
    this.revoked.add(keyId);
  }

  async revokedBootstrap(): Promise<string[]> {
    return [...this.revoked];
  }

  async retireBootstrap(digest: string, _keyId: string, expiresAtMs: number): Promise<void> {
    this.retired.set(digest, Math.min(expiresAtMs, this.retired.get(digest) ?? Infinity));
  }

  async retiredBootstrap(): Promise<Map<string, number>> {
    return new Map(this.retired);
  }

  private endGraces(keyId: string): void {
    for (const d of this.graceIds.get(keyId) ?? []) this.graces.delete(d);
    this.graceIds.delete(keyId);
  }

  /** Drops grace entries that have expired (Redis does this with PX TTLs). */
  private prune(nowMs: number): void {
    for (const [d, k] of this.graces) {
      if ((k.expiresAtMs ?? 0) > nowMs) continue;
      this.graces.delete(d);
      this.graceIds.get(k.keyId)?.delete(d);
    }
  }
}

export class RedisKeyStore implements KeyStore {
  constructor(private readonly redis: RedisClient) {}

  async list(): Promise<StoredKey[]> {
    return (await this.redis.hvals(AuthKeys.keys)).map(parseStoredKey);
  }

  async recordRevoked(key: RevokedKey): Promise<void> {
    await this.redis.hsetnx(AuthKeys.revokedKeys, key.keyId, JSON.stringify(key));
  }

  async revokedKeys(): Promise<RevokedKey[]> {
    return (await this.redis.hvals(AuthKeys.revokedKeys)).map(parseRevokedKey);
  }

  async find(digest: string): Promise<StoredKey | undefined> {
    const json = (await this.redis.hget(AuthKeys.keys, digest)) ?? (await this.redis.get(AuthKeys.grace(digest)));
    return json === null ? undefined : parseStoredKey(json);
  }

  async current(keyId: string): Promise<{ digest: string; key: StoredKey } | undefined> {
    const digest = await this.redis.hget(AuthKeys.keyIds, keyId);
    if (digest === null) return undefined;
    const json = await this.redis.hget(AuthKeys.keys, digest);
    return json === null ? undefined : { digest, key: parseStoredKey(json) };
  }

  async add(digest: string, key: StoredKey): Promise<void> {
    // Two single-key commands rather than a script so that the keys may live in different
    // cluster slots; the id index is written last, so a half-done add is never revocable-yet-live.
    await this.redis.hset(AuthKeys.keys, digest, JSON.stringify(key));
    await this.redis.hset(AuthKeys.keyIds, key.keyId, digest);
  }

  async rotate({ digest, key, nowMs, graceMs }: Rotation): Promise<string | undefined> {
    const old = await this.redis.hget(AuthKeys.keyIds, key.keyId);
    const oldJson = old === null ? null : await this.redis.hget(AuthKeys.keys, old);
    // Single-key commands (cluster-safe). Order: the grace entry first, so that the old secret
    // never has a gap; then the new secret and the id index; the old current entry goes last.
    if (graceMs > 0 && old !== null && oldJson !== null) {
      const graced: StoredKey = { ...parseStoredKey(oldJson), expiresAtMs: nowMs + graceMs };
      await this.redis.set(AuthKeys.grace(old), JSON.stringify(graced), 'PX', graceMs);
      const ids = AuthKeys.graceIds(key.keyId);
      await this.redis.sadd(ids, old);
      // The index lives as long as its longest-lived entry: set a TTL if it has none, else only extend it.
      await this.redis.pexpire(ids, graceMs, 'NX');
      await this.redis.pexpire(ids, graceMs, 'GT');
    } else if (graceMs === 0) {
      await this.endGraces(key.keyId);
    }
    await this.redis.hset(AuthKeys.keys, digest, JSON.stringify(key));
    await this.redis.hset(AuthKeys.keyIds, key.keyId, digest);
    if (old !== null && old !== digest) await this.redis.hdel(AuthKeys.keys, old);
    return old ?? undefined;
  }

  async remove(keyId: string): Promise<StoredKey | undefined> {
    await this.endGraces(keyId);
    const digest = await this.redis.hget(AuthKeys.keyIds, keyId);
    if (digest === null) return undefined;
    const json = await this.redis.hget(AuthKeys.keys, digest);
    // The key stops working first; the id index goes last so a retry after a crash can finish.
    await this.redis.hdel(AuthKeys.keys, digest);
    await this.redis.hdel(AuthKeys.keyIds, keyId);
    return json === null ? { keyId, tenantId: '', scopes: [], createdAtMs: 0 } : parseStoredKey(json);
  }

  async revokeBootstrap(keyId: string): Promise<void> {
    await this.redis.sadd(AuthKeys.revoked, keyId);
  }

  async revokedBootstrap(): Promise<string[]> {
    return this.redis.smembers(AuthKeys.revoked);
  }

  async retireBootstrap(digest: string, keyId: string, expiresAtMs: number): Promise<void> {
    const prev = await this.redis.hget(AuthKeys.retired, digest);
    const prevAt = prev === null ? Infinity : parseRetired(prev);
    if (prevAt <= expiresAtMs) return;
    await this.redis.hset(AuthKeys.retired, digest, JSON.stringify({ keyId, expiresAtMs }));
  }

  async retiredBootstrap(): Promise<Map<string, number>> {
    const all = await this.redis.hgetall(AuthKeys.retired);
    return new Map(Object.entries(all).map(([digest, json]) => [digest, parseRetired(json)]));
  }

  private async endGraces(keyId: string): Promise<void> {
    const ids = AuthKeys.graceIds(keyId);
    for (const d of await this.redis.smembers(ids)) await this.redis.del(AuthKeys.grace(d));
    await this.redis.del(ids);
  }
}

function copy(k: StoredKey): StoredKey {
  return { ...k, scopes: [...k.scopes] };
}

function parseRetired(json: string): number {
  const v = JSON.parse(json) as { expiresAtMs?: unknown };
  const at = Number(v.expiresAtMs);
  // An unreadable entry ends the secret rather than keeping it alive.
  return Number.isFinite(at) ? at : 0;
}

function parseStoredKey(json: string): StoredKey {
  return storedKeyFrom(JSON.parse(json) as Partial<StoredKey>);
}

function storedKeyFrom(v: Partial<StoredKey>): StoredKey {
  const key: StoredKey = {
    keyId: String(v.keyId ?? ''),
    tenantId: String(v.tenantId ?? ''),
    scopes: Array.isArray(v.scopes) ? v.scopes.map(String) : [],
    createdAtMs: Number(v.createdAtMs ?? 0),
  };
  if (v.admin === true) key.admin = true;
  if (v.bootstrap === true) key.bootstrap = true;
  if (v.rotatedAtMs !== undefined) key.rotatedAtMs = Number(v.rotatedAtMs);
  if (v.expiresAtMs !== undefined) key.expiresAtMs = Number(v.expiresAtMs);
  if (v.keyExpiresAtMs !== undefined) key.keyExpiresAtMs = Number(v.keyExpiresAtMs);
  if (typeof v.prefix === 'string') key.prefix = v.prefix;
  return key;
}

function parseRevokedKey(json: string): RevokedKey {
  const v = JSON.parse(json) as Partial<RevokedKey>;
  const { expiresAtMs: _graceEnd, ...key } = storedKeyFrom(v);
  return { ...key, revokedAtMs: Number(v.revokedAtMs ?? 0) };
}
