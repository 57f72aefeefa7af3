import type { Redis } from '@llmgw/redis';

/** A key issued through CreateKey, as stored (the secret itself is never stored). */
export interface StoredKey {
  keyId: string;
  tenantId: string;
  scopes: string[];
  createdAtMs: number;
}

/** Where created keys and bootstrap-key revocations live: Redis, or memory in monolithic mode. */
export interface KeyStore {
  find(digest: string): Promise<StoredKey | undefined>;
  add(digest: string, key: StoredKey): Promise<void>;
  /** Removes a created key by id and returns it; undefined when there is no such key. */
  remove(keyId: string): Promise<StoredKey | undefined>;
  /** Marks a bootstrap (config) key revoked; idempotent. */
  revokeBootstrap(keyId: string): Promise<void>;
  revokedBootstrap(): Promise<string[]>;
}

/** Every Redis key auth uses. */
export const AuthKeys = {
  /** hash: sha256 hex digest → JSON StoredKey */
  keys: 'auth:keys',
  /** hash: key id → digest */
  keyIds: 'auth:key-ids',
  /** set: ids of revoked bootstrap keys */
  revoked: 'auth:revoked',
} as const;

export class MemoryKeyStore implements KeyStore {
  private readonly keys = new Map<string, StoredKey>();
  private readonly ids = new Map<string, string>();
  private readonly revoked = new Set<string>();

  async find(digest: string): Promise<StoredKey | undefined> {
    const k = this.keys.get(digest);
    return k && { ...k, scopes: [...k.scopes] };
  }

  async add(digest: string, key: StoredKey): Promise<void> {
    this.keys.set(digest, { ...key, scopes: [...key.scopes] });
    this.ids.set(key.keyId, digest);
  }

  async remove(keyId: string): Promise<StoredKey | undefined> {
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
}

export class RedisKeyStore implements KeyStore {
  constructor(private readonly redis: Redis) {}

  async find(digest: string): Promise<StoredKey | undefined> {
    const json = await this.redis.hget(AuthKeys.keys, digest);
    return json === null ? undefined : parseStoredKey(json);
  }

  async add(digest: string, key: StoredKey): Promise<void> {
    // Two single-key commands rather than a script so that the keys may live in different
    // cluster slots; the id index is written last, so a half-done add is never revocable-yet-live.
    await this.redis.hset(AuthKeys.keys, digest, JSON.stringify(key));
    await this.redis.hset(AuthKeys.keyIds, key.keyId, digest);
  }

  async remove(keyId: string): Promise<StoredKey | undefined> {
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
}

function parseStoredKey(json: string): StoredKey {
  const v = JSON.parse(json) as Partial<StoredKey>;
  return {
    keyId: String(v.keyId ?? ''),
    tenantId: String(v.tenantId ?? ''),
    scopes: Array.isArray(v.scopes) ? v.scopes.map(String) : [],
    createdAtMs: Number(v.createdAtMs ?? 0),
  };
}
