import { isMistypedKey, newApiKey, SCOPES } from '@llmgw/caller-auth';
import type { AuthSections } from '@llmgw/config';
import { AppError, quoted } from '@llmgw/errors';
import { Subjects, type EventBus } from '@llmgw/events';
import type { Logger } from '@llmgw/logging';
import { KeyRevoked, type Principal } from '@llmgw/proto/auth';
import { hashKey, newKeyId } from './key-hash.js';
import type { KeyStore, StoredKey } from './key-store.js';

export interface KeyAuthorityOptions {
  /** Auth's sections of the config: bootstrap keys, tenants' tiers, auth settings. */
  config: AuthSections;
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
  /** An old secret in its grace period stops working at this instant. */
  validUntil?: number;
}

const INVALID = 'invalid API key';

/** The longest grace period RotateKey accepts for the old secret (24 h). */
/** Scopes CreateKey may grant; admin keys come only from the config (api_keys[].admin). */
const GRANTABLE: ReadonlySet<string> = new Set(SCOPES.filter((s) => s !== 'admin'));

export const MAX_GRACE_PERIOD_MS = 24 * 60 * 60 * 1000;

/** What RotateKey returns: the new secret (shown once) and when the old one stops working. */
export interface RotatedKey {
  keyId: string;
  tenantId: string;
  apiKey: string;
  oldKeyExpiresAtMs: number;
}

/**
 * Resolves keys to principals. Bootstrap keys (config) are a digest → principal map in memory, so
 * authenticating one is a hash and a lookup; created keys come from the store through a small cache.
 */
export class KeyAuthority {
  private readonly bootstrap = new Map<string, Principal>();
  private readonly bootstrapIds = new Map<string, Principal>();
  /** key id → digest of its config secret */
  private readonly bootstrapDigests = new Map<string, string>();
  private readonly revokedBootstrap = new Set<string>();
  /** False until the first revocation sync succeeded (Redis may be down at start). */
  private revocationsLoaded = false;
  /** Config secrets rotated out: digest → the instant they stop working. */
  private readonly retiredBootstrap = new Map<string, number>();
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
        tier: tierOf(opts.config, k.tenant) ?? '',
        scopes: [...k.scopes],
        admin: k.admin,
      };
      this.bootstrap.set(digest, principal);
      this.bootstrapIds.set(k.id, principal);
      this.bootstrapDigests.set(k.id, digest);
    }
    this.unsubscribe = opts.bus?.onBroadcast(Subjects.keyRevoked, (data) => {
      let keyId: string;
      try {
        keyId = KeyRevoked.decode(data).keyId;
      } catch (err) {
        opts.logger.warn({ err }, 'undecodable KeyRevoked event');
        return;
      }
      this.forget(keyId);
      // The event does not say whether the key was revoked or rotated without grace (its config
      // secret is dead either way, see forget); the store says which.
      if (this.bootstrapIds.has(keyId)) {
        this.syncRevocations().catch((err: unknown) =>
          opts.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'cannot sync revoked keys'),
        );
      }
    });
  }

  /** Loads revoked and rotated-out bootstrap keys from the store (at start and periodically). */
  async syncRevocations(): Promise<void> {
    for (const id of await this.opts.store.revokedBootstrap()) this.revokedBootstrap.add(id);
    for (const [digest, at] of await this.opts.store.retiredBootstrap()) this.retire(digest, at);
    this.revocationsLoaded = true;
  }

  close(): void {
    this.unsubscribe?.();
  }

  get cacheTtlMs(): number {
    return this.opts.config.auth.cache_ttl_ms;
  }

  async authenticate(apiKey: string): Promise<Principal> {
    return (await this.authenticateWithTtl(apiKey)).principal;
  }

  /**
   * The principal of a key and how long a caller may cache it: `auth.cache_ttl_ms`, but no longer
   * than an old secret's remaining grace period, so that edge caches stop honouring it on time.
   */
  async authenticateWithTtl(apiKey: string): Promise<{ principal: Principal; cacheTtlMs: number }> {
    if (!apiKey) throw new AppError('unauthenticated', 'missing API key');
    if (isMistypedKey(apiKey)) throw new AppError('unauthenticated', INVALID);
    const digest = hashKey(apiKey);
    const boot = this.bootstrap.get(digest);
    if (boot) {
      // Fail closed: until the store has told us which bootstrap keys are revoked, none is honoured.
      if (!this.revocationsLoaded) throw new AppError('unavailable', 'key store unavailable; try again');
      if (this.revokedBootstrap.has(boot.keyId)) throw new AppError('unauthenticated', INVALID);
      return { principal: boot, cacheTtlMs: this.ttlUntil(this.retiredBootstrap.get(digest), this.now()) };
    }
    const now = this.now();
    const hit = this.cache.get(digest);
    if (hit && hit.expiresAt > now) {
      if (!hit.principal) throw new AppError('unauthenticated', INVALID);
      return { principal: hit.principal, cacheTtlMs: this.ttlUntil(hit.validUntil, now) };
    }
    let stored: StoredKey | undefined;
    try {
      stored = await this.opts.store.find(digest);
    } catch (err) {
      throw new AppError('unavailable', 'key store unavailable', { cause: err });
    }
    const principal = stored && this.principalOf(stored, now);
    this.remember(digest, principal, now, stored?.expiresAtMs);
    if (!principal) throw new AppError('unauthenticated', INVALID);
    return { principal, cacheTtlMs: this.ttlUntil(stored?.expiresAtMs, now) };
  }

  /** The cache TTL to grant for a secret valid until `validUntil` (undefined: no end). */
  private ttlUntil(validUntil: number | undefined, now: number): number {
    if (validUntil === undefined) return this.cacheTtlMs;
    if (validUntil <= now) throw new AppError('unauthenticated', INVALID);
    return Math.min(this.cacheTtlMs, validUntil - now);
  }

  /** The principal of `authorization: Bearer <key>`, which must be an admin's. */
  async requireAdmin(apiKey: string): Promise<Principal> {
    const p = await this.authenticate(apiKey);
    if (!p.admin) throw new AppError('permission_denied', 'an admin key is required');
    return p;
  }

  async createKey(tenantId: string, scopes: readonly string[]): Promise<{ keyId: string; apiKey: string }> {
    if (!tenantId) throw new AppError('invalid_argument', 'tenant_id is required');
    if (tierOf(this.opts.config, tenantId) === undefined) throw new AppError('invalid_argument', `unknown tenant ${quoted(tenantId)}`);
    for (const scope of scopes) {
      if (!GRANTABLE.has(scope)) throw new AppError('invalid_argument', `scopes: unknown scope ${quoted(scope)}; use ${[...GRANTABLE].join(', ')}`);
    }
    const apiKey = newApiKey();
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
      this.revokedBootstrap.add(keyId);
      // A rotated bootstrap key also has secrets in the store (the current one, old ones in grace).
      await this.storeCall(() => this.opts.store.remove(keyId));
      tenantId = boot.tenantId;
    } else {
      const removed = await this.storeCall(() => this.opts.store.remove(keyId));
      if (!removed) throw new AppError('not_found', `unknown key id ${quoted(keyId)}`);
      tenantId = removed.tenantId;
    }
    this.forget(keyId);
    this.opts.bus?.broadcast(Subjects.keyRevoked, KeyRevoked.encode({ keyId, tenantId }).finish());
    return { keyId, tenantId };
  }

  /**
   * RotateKey: a new secret for `keyId` with the same principal; the current secret keeps working
   * for `graceMs` (0: stops at once, and a KeyRevoked broadcast makes caches drop the key id).
   * `caller` must be an admin, or of the key's tenant (and then the key must not be an admin key).
   */
  async rotateKey(caller: Principal, keyId: string, graceMs: number): Promise<RotatedKey> {
    if (!keyId) throw new AppError('invalid_argument', 'key_id is required');
    if (!Number.isInteger(graceMs) || graceMs < 0 || graceMs > MAX_GRACE_PERIOD_MS) {
      throw new AppError('invalid_argument', `grace_period_ms must be between 0 and ${MAX_GRACE_PERIOD_MS}`);
    }
    const now = this.now();
    const boot = this.bootstrapIds.get(keyId);
    if (boot) await this.storeCall(() => this.syncRevocations());
    const current = await this.storeCall(() => this.opts.store.current(keyId));
    const target = boot ? (this.revokedBootstrap.has(keyId) ? undefined : boot) : current && this.principalOf(current.key, now);
    if (!target) throw new AppError('not_found', `unknown key id ${quoted(keyId)}`);
    if (!caller.admin) {
      if (caller.tenantId !== target.tenantId) throw new AppError('permission_denied', 'a key of another tenant may not rotate this key');
      if (target.admin) throw new AppError('permission_denied', 'an admin key is required to rotate an admin key');
    }

    const apiKey = newApiKey();
    const digest = hashKey(apiKey);
    const key: StoredKey = {
      keyId,
      tenantId: target.tenantId,
      scopes: [...target.scopes],
      createdAtMs: current?.key.createdAtMs ?? now,
      rotatedAtMs: now,
    };
    if (target.admin) key.admin = true;
    if (boot) key.bootstrap = true;
    const expiresAtMs = now + graceMs;
    const old = await this.storeCall(() => this.opts.store.rotate({ digest, key, nowMs: now, graceMs }));
    // The config secret of a bootstrap key stops at the end of the first rotation's grace period
    // (the config still lists it; the retired-digest record overrides it on every replica).
    const bootDigest = this.bootstrapDigests.get(keyId);
    if (bootDigest !== undefined && (graceMs === 0 || !this.retiredBootstrap.has(bootDigest))) {
      await this.storeCall(() => this.opts.store.retireBootstrap(bootDigest, keyId, expiresAtMs));
      this.retire(bootDigest, expiresAtMs);
    }
    this.cache.delete(digest);
    if (old !== undefined) this.cache.delete(old);
    if (graceMs === 0) {
      this.forget(keyId);
      this.opts.bus?.broadcast(Subjects.keyRevoked, KeyRevoked.encode({ keyId, tenantId: target.tenantId }).finish());
    }
    return { keyId, tenantId: target.tenantId, apiKey, oldKeyExpiresAtMs: expiresAtMs };
  }

  private principalOf(k: StoredKey, now: number): Principal | undefined {
    if (k.expiresAtMs !== undefined && k.expiresAtMs <= now) return undefined;
    if (k.bootstrap) {
      // A rotated bootstrap key keeps the principal the config gives it, and dies with it.
      if (this.revokedBootstrap.has(k.keyId)) return undefined;
      return this.bootstrapIds.get(k.keyId);
    }
    const tier = tierOf(this.opts.config, k.tenantId);
    if (tier === undefined) return undefined;
    return { tenantId: k.tenantId, keyId: k.keyId, tier, scopes: k.scopes, admin: false };
  }

  private retire(digest: string, at: number): void {
    this.retiredBootstrap.set(digest, Math.min(at, this.retiredBootstrap.get(digest) ?? Infinity));
  }

  /**
   * Drops what this process knows about a revoked (or rotated without grace) key id: cached
   * lookups, and the config secret of a bootstrap key, which ends at once in both cases.
   */
  private forget(keyId: string): void {
    const bootDigest = this.bootstrapDigests.get(keyId);
    if (bootDigest !== undefined) this.retire(bootDigest, this.now());
    for (const [digest, e] of this.cache) if (e.principal?.keyId === keyId) this.cache.delete(digest);
  }

  private remember(digest: string, principal: Principal | undefined, now: number, validUntil?: number): void {
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
    const entry: CacheEntry = { principal, expiresAt: Math.min(now + ttl, validUntil ?? Infinity) };
    if (validUntil !== undefined) entry.validUntil = validUntil;
    this.cache.set(digest, entry);
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

/** The tenant's tier; undefined for a tenant the config does not know. */
function tierOf(config: AuthSections, tenantId: string): string | undefined {
  return Object.hasOwn(config.tenants, tenantId) ? config.tenants[tenantId]?.tier : undefined;
}
