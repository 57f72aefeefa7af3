import type { GatewayConfig } from '@llmgw/config';
import { AppError } from '@llmgw/errors';
import { Subjects, type EventBus } from '@llmgw/events';
import type { Logger } from '@llmgw/logging';
import { KeyRevoked, type Principal } from '@llmgw/proto/auth';
import { hashKey, newKeyId, newSecret } from './key-hash.js';
import type { KeyStore, StoredKey } from './key-store.js';

export interface KeyAuthorityOptions {
  config: GatewayConfig;
  store: KeyStore;
  logger: Logger;
  /** Revocations are announced here (and heard from other replicas). */
  bus?: EventBus;
  now?: () => number;
  /** How long a created key's lookup is cached in this process. */
  storeCacheTtlMs?: number;
  /** How long an unknown key is remembered as unknown (limits store traffic from bad keys). */
  negativeCacheTtlMs?: number;
  maxCacheEntries?: number;
}

interface CacheEntry {
  principal: Principal | undefined;
  expiresAt: number;
}

const INVALID = 'invalid API key';

/**
 * Resolves keys to principals. Bootstrap keys (config) are a digest → principal map in memory, so
 * authenticating one is a hash and a lookup; created keys come from the store through a small cache.
 */
export class KeyAuthority {
  private readonly bootstrap = new Map<string, Principal>();
  private readonly bootstrapIds = new Map<string, Principal>();
  private readonly revokedBootstrap = new Set<string>();
  private readonly cache = new Map<string, CacheEntry>();
  private readonly now: () => number;
  private readonly unsubscribe: (() => void) | undefined;

  constructor(private readonly opts: KeyAuthorityOptions) {
    this.now = opts.now ?? Date.now;
    for (const k of opts.config.api_keys) {
      const digest = k.key !== undefined ? hashKey(k.key) : (k.key_sha256 ?? '');
      const principal: Principal = {
        tenantId: k.tenant,
        keyId: k.id,
        tier: opts.config.tenants[k.tenant]?.tier ?? '',
        scopes: [...k.scopes],
        admin: k.admin,
      };
      this.bootstrap.set(digest, principal);
      this.bootstrapIds.set(k.id, principal);
    }
    this.unsubscribe = opts.bus?.onBroadcast(Subjects.keyRevoked, (data) => {
      try {
        this.forget(KeyRevoked.decode(data).keyId);
      } catch (err) {
        opts.logger.warn({ err }, 'undecodable KeyRevoked event');
      }
    });
  }

  /** Loads the revoked bootstrap keys from the store (at start and periodically). */
  async syncRevocations(): Promise<void> {
    for (const id of await this.opts.store.revokedBootstrap()) this.revokedBootstrap.add(id);
  }

  close(): void {
    this.unsubscribe?.();
  }

  get cacheTtlMs(): number {
    return this.opts.config.auth.cache_ttl_ms;
  }

  async authenticate(apiKey: string): Promise<Principal> {
    if (!apiKey) throw new AppError('unauthenticated', 'missing API key');
    const digest = hashKey(apiKey);
    const boot = this.bootstrap.get(digest);
    if (boot) {
      if (this.revokedBootstrap.has(boot.keyId)) throw new AppError('unauthenticated', INVALID);
      return boot;
    }
    const now = this.now();
    const hit = this.cache.get(digest);
    if (hit && hit.expiresAt > now) {
      if (!hit.principal) throw new AppError('unauthenticated', INVALID);
      return hit.principal;
    }
    let stored: StoredKey | undefined;
    try {
      stored = await this.opts.store.find(digest);
    } catch (err) {
      throw new AppError('unavailable', 'key store unavailable', { cause: err });
    }
    const principal = stored && this.principalOf(stored);
    this.remember(digest, principal, now);
    if (!principal) throw new AppError('unauthenticated', INVALID);
    return principal;
  }

  /** The principal of `authorization: Bearer <key>`, which must be an admin's. */
  async requireAdmin(apiKey: string): Promise<Principal> {
    const p = await this.authenticate(apiKey);
    if (!p.admin) throw new AppError('permission_denied', 'an admin key is required');
    return p;
  }

  async createKey(tenantId: string, scopes: readonly string[]): Promise<{ keyId: string; apiKey: string }> {
    if (!tenantId) throw new AppError('invalid_argument', 'tenant_id is required');
    if (!this.opts.config.tenants[tenantId]) throw new AppError('invalid_argument', `unknown tenant "${tenantId}"`);
    const apiKey = newSecret();
    const keyId = newKeyId();
    const digest = hashKey(apiKey);
    await this.storeCall(() => this.opts.store.add(digest, { keyId, tenantId, scopes: [...scopes], createdAtMs: this.now() }));
    this.cache.delete(digest);
    return { keyId, apiKey };
  }

  async revokeKey(keyId: string): Promise<{ keyId: string; tenantId: string }> {
    if (!keyId) throw new AppError('invalid_argument', 'key_id is required');
    let tenantId: string;
    const boot = this.bootstrapIds.get(keyId);
    if (boot) {
      await this.storeCall(() => this.opts.store.revokeBootstrap(keyId));
      tenantId = boot.tenantId;
    } else {
      const removed = await this.storeCall(() => this.opts.store.remove(keyId));
      if (!removed) throw new AppError('not_found', `unknown key id "${keyId}"`);
      tenantId = removed.tenantId;
    }
    this.forget(keyId);
    this.opts.bus?.broadcast(Subjects.keyRevoked, KeyRevoked.encode({ keyId, tenantId }).finish());
    return { keyId, tenantId };
  }

  private principalOf(k: StoredKey): Principal | undefined {
    const tenant = this.opts.config.tenants[k.tenantId];
    if (!tenant) return undefined;
    return { tenantId: k.tenantId, keyId: k.keyId, tier: tenant.tier, scopes: k.scopes, admin: false };
  }

  private forget(keyId: string): void {
    if (this.bootstrapIds.has(keyId)) this.revokedBootstrap.add(keyId);
    for (const [digest, e] of this.cache) if (e.principal?.keyId === keyId) this.cache.delete(digest);
  }

  private remember(digest: string, principal: Principal | undefined, now: number): void {
    const ttl = principal ? (this.opts.storeCacheTtlMs ?? 2_000) : (this.opts.negativeCacheTtlMs ?? 1_000);
    if (ttl <= 0) return;
    if (this.cache.size >= (this.opts.maxCacheEntries ?? 10_000)) {
      for (const [d, e] of this.cache) if (e.expiresAt <= now) this.cache.delete(d);
      // Still full: drop the oldest insertion (Map keeps insertion order).
      if (this.cache.size >= (this.opts.maxCacheEntries ?? 10_000)) {
        const first = this.cache.keys().next();
        if (!first.done) this.cache.delete(first.value);
      }
    }
    this.cache.set(digest, { principal, expiresAt: now + ttl });
  }

  private async storeCall<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof AppError) throw err;
      throw new AppError('unavailable', 'key store unavailable', { cause: err });
    }
  }
}
