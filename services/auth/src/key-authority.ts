import { isMistypedKey, newApiKey, SCOPES, visiblePrefix } from '@llmgw/caller-auth';
import type { AuthSections } from '@llmgw/config';
import { AppError, quoted } from '@llmgw/errors';
import { Subjects, type EventBus } from '@llmgw/events';
import type { Logger } from '@llmgw/logging';
import { KeyRevoked, KeySource, type KeyInfo, type Principal } from '@llmgw/proto/auth';
import { hashKey, newKeyId } from './key-hash.js';
import type { KeyStore, RevokedKey, StoredKey } from './key-store.js';

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
  /** Why a key without a principal is refused (INVALID or EXPIRED). */
  refusal?: string;
  expiresAt: number;
  /** The secret stops working at this instant (end of a grace period, or the key's expiry). */
  validUntil?: number;
}

const INVALID = 'invalid API key';
/** The one refusal that says more than INVALID: the holder of a real secret learns it has expired. */
const EXPIRED = 'API key expired';

/** The latest expiry CreateKey and RotateKey accept: 366 days ahead (as GitHub caps token lifetimes). */
export const MAX_KEY_LIFETIME_MS = 366 * 24 * 60 * 60 * 1000;

/** ListKeys page sizes (AIP-158): 0 asks for the default; larger than the maximum is read as the maximum. */
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1_000;

/** The principal of a key and what a caller may do with the answer. */
export interface Authenticated {
  principal: Principal;
  cacheTtlMs: number;
  /** When the presented secret stops working; undefined: no end. */
  expiresAtMs?: number;
}

export interface ListKeysQuery {
  tenantId: string;
  pageSize: number;
  pageToken: string;
}

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
  /** When the new secret (the key) expires; undefined: never. */
  expiresAtMs?: number;
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
  /** key id → when its config entry expires (api_keys[].expires_at) */
  private readonly bootstrapExpiry = new Map<string, number>();
  /** key id → the visible start of its config secret (none for key_sha256 entries) */
  private readonly bootstrapPrefixes = new Map<string, string>();
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
      if (k.expires_at !== undefined) this.bootstrapExpiry.set(k.id, Date.parse(k.expires_at));
      if (k.key !== undefined) this.bootstrapPrefixes.set(k.id, visiblePrefix(k.key));
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

  /** Ids of config keys whose expires_at has passed (for a warning at start). */
  expiredBootstrapIds(): string[] {
    const now = this.now();
    return [...this.bootstrapExpiry].filter(([, at]) => at <= now).map(([id]) => id);
  }

  /**
   * The principal of a key and how long a caller may cache it: `auth.cache_ttl_ms`, but no longer
   * than the secret has left (an old secret's grace period, the key's expiry), so that edge caches
   * stop honouring it on time. An expired key is UNAUTHENTICATED `API key expired`.
   */
  async authenticateWithTtl(apiKey: string): Promise<Authenticated> {
    if (!apiKey) throw new AppError('unauthenticated', 'missing API key');
    if (isMistypedKey(apiKey)) throw new AppError('unauthenticated', INVALID);
    const digest = hashKey(apiKey);
    const boot = this.bootstrap.get(digest);
    if (boot) {
      // Fail closed: until the store has told us which bootstrap keys are revoked, none is honoured.
      if (!this.revocationsLoaded) throw new AppError('unavailable', 'key store unavailable; try again');
      if (this.revokedBootstrap.has(boot.keyId)) throw new AppError('unauthenticated', INVALID);
      const now = this.now();
      const expiry = this.bootstrapExpiry.get(boot.keyId);
      if (expiry !== undefined && expiry <= now) throw new AppError('unauthenticated', EXPIRED);
      return this.grant(boot, earliest(this.retiredBootstrap.get(digest), expiry), now);
    }
    const now = this.now();
    const hit = this.cache.get(digest);
    if (hit && hit.expiresAt > now) {
      if (!hit.principal) throw new AppError('unauthenticated', hit.refusal ?? INVALID);
      return this.grant(hit.principal, hit.validUntil, now);
    }
    let stored: StoredKey | undefined;
    try {
      stored = await this.opts.store.find(digest);
    } catch (err) {
      throw new AppError('unavailable', 'key store unavailable', { cause: err });
    }
    const refusal = stored === undefined ? INVALID : refusalOf(stored, now);
    const principal = stored && !refusal ? this.principalOf(stored, now) : undefined;
    const validUntil = stored && earliest(stored.expiresAtMs, stored.keyExpiresAtMs);
    this.remember(digest, principal, now, validUntil, principal ? undefined : (refusal ?? INVALID));
    if (!principal) throw new AppError('unauthenticated', refusal ?? INVALID);
    return this.grant(principal, validUntil, now);
  }

  /** The answer for a secret valid until `validUntil` (undefined: no end): a cache TTL no longer than what is left. */
  private grant(principal: Principal, validUntil: number | undefined, now: number): Authenticated {
    if (validUntil === undefined) return { principal, cacheTtlMs: this.cacheTtlMs };
    if (validUntil <= now) throw new AppError('unauthenticated', INVALID);
    return { principal, cacheTtlMs: Math.min(this.cacheTtlMs, validUntil - now), expiresAtMs: validUntil };
  }

  /**
   * The expiry a caller asked for (CreateKey, RotateKey): undefined (none) or an instant after now
   * and at most MAX_KEY_LIFETIME_MS ahead; INVALID_ARGUMENT naming expires_at otherwise.
   */
  private checkExpiry(expiresAt: Date | undefined, now: number): number | undefined {
    if (expiresAt === undefined) return undefined;
    const at = expiresAt.getTime();
    if (!Number.isFinite(at)) throw new AppError('invalid_argument', 'expires_at: not a valid timestamp');
    if (at <= now) throw new AppError('invalid_argument', 'expires_at: must be in the future');
    if (at > now + MAX_KEY_LIFETIME_MS) throw new AppError('invalid_argument', 'expires_at: must be at most 366 days from now');
    return at;
  }

  /** The principal of `authorization: Bearer <key>`, which must be an admin's. */
  async requireAdmin(apiKey: string): Promise<Principal> {
    const p = await this.authenticate(apiKey);
    if (!p.admin) throw new AppError('permission_denied', 'an admin key is required');
    return p;
  }

  async createKey(tenantId: string, scopes: readonly string[], expiresAt?: Date): Promise<{ keyId: string; apiKey: string; expiresAtMs?: number }> {
    if (!tenantId) throw new AppError('invalid_argument', 'tenant_id is required');
    if (tierOf(this.opts.config, tenantId) === undefined) throw new AppError('invalid_argument', `unknown tenant ${quoted(tenantId)}`);
    for (const scope of scopes) {
      if (!GRANTABLE.has(scope)) throw new AppError('invalid_argument', `scopes: unknown scope ${quoted(scope)}; use ${[...GRANTABLE].join(', ')}`);
    }
    const now = this.now();
    const keyExpiresAtMs = this.checkExpiry(expiresAt, now);
    const apiKey = newApiKey();
    const keyId = newKeyId();
    const digest = hashKey(apiKey);
    const key: StoredKey = { keyId, tenantId, scopes: [...scopes], createdAtMs: now, prefix: visiblePrefix(apiKey) };
    if (keyExpiresAtMs !== undefined) key.keyExpiresAtMs = keyExpiresAtMs;
    await this.storeCall(() => this.opts.store.add(digest, key));
    this.cache.delete(digest);
    return keyExpiresAtMs === undefined ? { keyId, apiKey } : { keyId, apiKey, expiresAtMs: keyExpiresAtMs };
  }

  async revokeKey(keyId: string): Promise<{ keyId: string; tenantId: string }> {
    if (!keyId) throw new AppError('invalid_argument', 'key_id is required');
    let tenantId: string;
    let tombstone: RevokedKey;
    const now = this.now();
    const boot = this.bootstrapIds.get(keyId);
    if (boot) {
      await this.storeCall(() => this.opts.store.revokeBootstrap(keyId));
      this.revokedBootstrap.add(keyId);
      // A rotated bootstrap key also has secrets in the store (the current one, old ones in grace).
      const rotated = await this.storeCall(() => this.opts.store.remove(keyId));
      tenantId = boot.tenantId;
      tombstone = { ...tombstoneOf(rotated, now), keyId, tenantId, scopes: [...boot.scopes], bootstrap: true };
      if (boot.admin) tombstone.admin = true;
      const expiry = rotated?.keyExpiresAtMs ?? this.bootstrapExpiry.get(keyId);
      if (expiry !== undefined) tombstone.keyExpiresAtMs = expiry;
      const prefix = rotated?.prefix ?? this.bootstrapPrefixes.get(keyId);
      if (prefix !== undefined) tombstone.prefix = prefix;
    } else {
      const removed = await this.storeCall(() => this.opts.store.remove(keyId));
      if (!removed) throw new AppError('not_found', `unknown key id ${quoted(keyId)}`);
      tenantId = removed.tenantId;
      tombstone = tombstoneOf(removed, now);
    }
    this.forget(keyId);
    // Tell every edge and replica first: the listing's record may wait, the revocation may not.
    this.opts.bus?.broadcast(Subjects.keyRevoked, KeyRevoked.encode({ keyId, tenantId }).finish());
    await this.storeCall(() => this.opts.store.recordRevoked(tombstone));
    return { keyId, tenantId };
  }

  /**
   * RotateKey: a new secret for `keyId` with the same principal; the current secret keeps working
   * for `graceMs` (0: stops at once, and a KeyRevoked broadcast makes caches drop the key id).
   * `caller` must be an admin, or of the key's tenant (and then the key must not be an admin key).
   */
  async rotateKey(caller: Principal, keyId: string, graceMs: number, expiresAt?: Date): Promise<RotatedKey> {
    if (!keyId) throw new AppError('invalid_argument', 'key_id is required');
    if (!Number.isInteger(graceMs) || graceMs < 0 || graceMs > MAX_GRACE_PERIOD_MS) {
      throw new AppError('invalid_argument', `grace_period_ms must be between 0 and ${MAX_GRACE_PERIOD_MS}`);
    }
    const now = this.now();
    const requestedExpiry = this.checkExpiry(expiresAt, now);
    const boot = this.bootstrapIds.get(keyId);
    if (boot) await this.storeCall(() => this.syncRevocations());
    const current = await this.storeCall(() => this.opts.store.current(keyId));
    const currentExpiry = current ? current.key.keyExpiresAtMs : boot ? this.bootstrapExpiry.get(keyId) : undefined;
    // Expiry is judged after the caller's rights (below), so that an expired key says so only to those who may rotate it.
    const target = boot ? (this.revokedBootstrap.has(keyId) ? undefined : boot) : current && this.principalOf({ ...current.key, keyExpiresAtMs: undefined }, now);
    if (!target) throw new AppError('not_found', `unknown key id ${quoted(keyId)}`);
    if (!caller.admin) {
      if (caller.tenantId !== target.tenantId) throw new AppError('permission_denied', 'a key of another tenant may not rotate this key');
      if (target.admin) throw new AppError('permission_denied', 'an admin key is required to rotate an admin key');
    }
    if (currentExpiry !== undefined && currentExpiry <= now) throw new AppError('failed_precondition', `key ${quoted(keyId)} has expired; create a new key`);
    // Rotating replaces the secret, not the key's lifetime: unset keeps it; only an admin may extend it.
    if (requestedExpiry !== undefined && currentExpiry !== undefined && requestedExpiry > currentExpiry && !caller.admin) {
      throw new AppError('permission_denied', "expires_at: only an admin key may extend a key's expiry");
    }
    const keyExpiresAtMs = requestedExpiry ?? currentExpiry;

    const apiKey = newApiKey();
    const digest = hashKey(apiKey);
    const key: StoredKey = {
      keyId,
      tenantId: target.tenantId,
      scopes: [...target.scopes],
      createdAtMs: current?.key.createdAtMs ?? now,
      rotatedAtMs: now,
      prefix: visiblePrefix(apiKey),
    };
    if (keyExpiresAtMs !== undefined) key.keyExpiresAtMs = keyExpiresAtMs;
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
    const rotated: RotatedKey = { keyId, tenantId: target.tenantId, apiKey, oldKeyExpiresAtMs: expiresAtMs };
    if (keyExpiresAtMs !== undefined) rotated.expiresAtMs = keyExpiresAtMs;
    return rotated;
  }

  /**
   * ListKeys: metadata of every key (config keys, created keys, revoked and expired ones), ordered
   * by key id, one page after the token's key id. Never a secret or a digest.
   */
  async listKeys(q: ListKeysQuery): Promise<{ keys: KeyInfo[]; nextPageToken: string }> {
    if (!Number.isInteger(q.pageSize) || q.pageSize < 0) throw new AppError('invalid_argument', 'page_size: must not be negative');
    const pageSize = q.pageSize === 0 ? DEFAULT_PAGE_SIZE : Math.min(q.pageSize, MAX_PAGE_SIZE);
    const after = q.pageToken ? decodePageToken(q.pageToken, q.tenantId) : undefined;
    const now = this.now();
    const [stored, revoked, revokedBoot] = await this.storeCall(() =>
      Promise.all([this.opts.store.list(), this.opts.store.revokedKeys(), this.opts.store.revokedBootstrap()]),
    );
    const all = new Map<string, KeyInfo>();
    for (const [id, p] of this.bootstrapIds) {
      all.set(id, keyInfo({ keyId: id, tenantId: p.tenantId, scopes: p.scopes, admin: p.admin, source: KeySource.KEY_SOURCE_CONFIG, expiresAtMs: this.bootstrapExpiry.get(id), prefix: this.bootstrapPrefixes.get(id) ?? '', revoked: revokedBoot.includes(id) }, now));
    }
    for (const k of stored) {
      if (k.bootstrap) {
        // A rotated config key: the config's entry with its current secret's metadata (gone from the config: ended).
        const boot = all.get(k.keyId);
        if (!boot) continue;
        all.set(k.keyId, keyInfo({ ...fromKeyInfo(boot), createdAtMs: k.createdAtMs, rotatedAtMs: k.rotatedAtMs, expiresAtMs: k.keyExpiresAtMs, prefix: k.prefix ?? '' }, now));
        continue;
      }
      all.set(k.keyId, keyInfo({ keyId: k.keyId, tenantId: k.tenantId, scopes: k.scopes, admin: false, source: KeySource.KEY_SOURCE_CREATED, createdAtMs: k.createdAtMs, rotatedAtMs: k.rotatedAtMs, expiresAtMs: k.keyExpiresAtMs, prefix: k.prefix ?? '', revoked: false }, now));
    }
    for (const r of revoked) {
      const known = all.get(r.keyId);
      if (known?.source === KeySource.KEY_SOURCE_CONFIG || r.bootstrap) {
        if (!known) continue; // no longer in the config
        all.set(r.keyId, keyInfo({ ...fromKeyInfo(known), revoked: true, revokedAtMs: r.revokedAtMs, createdAtMs: r.createdAtMs || known.createdAt?.getTime(), rotatedAtMs: r.rotatedAtMs, expiresAtMs: r.keyExpiresAtMs ?? known.expiresAt?.getTime(), prefix: r.prefix ?? known.visiblePrefix }, now));
        continue;
      }
      all.set(r.keyId, keyInfo({ keyId: r.keyId, tenantId: r.tenantId, scopes: r.scopes, admin: r.admin === true, source: KeySource.KEY_SOURCE_CREATED, createdAtMs: r.createdAtMs, rotatedAtMs: r.rotatedAtMs, expiresAtMs: r.keyExpiresAtMs, prefix: r.prefix ?? '', revoked: true, revokedAtMs: r.revokedAtMs }, now));
    }
    const matching = [...all.values()]
      .filter((k) => (!q.tenantId || k.tenantId === q.tenantId) && (after === undefined || k.keyId > after))
      .sort((a, b) => (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0));
    const keys = matching.slice(0, pageSize);
    const last = keys[keys.length - 1];
    const nextPageToken = matching.length > pageSize && last ? encodePageToken(last.keyId, q.tenantId) : '';
    return { keys, nextPageToken };
  }

  private principalOf(k: StoredKey, now: number): Principal | undefined {
    if (refusalOf(k, now) !== undefined) return undefined;
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

  private remember(digest: string, principal: Principal | undefined, now: number, validUntil?: number, refusal?: string): void {
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
    // An expired key is remembered as refused for the negative TTL (validUntil is past for it).
    const entry: CacheEntry = { principal, expiresAt: principal ? Math.min(now + ttl, validUntil ?? Infinity) : now + ttl };
    if (validUntil !== undefined) entry.validUntil = validUntil;
    if (refusal !== undefined) entry.refusal = refusal;
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

/** The earlier of two optional instants. */
function earliest(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

/** Why a stored secret is refused now (undefined: it is not, by its own record). */
function refusalOf(k: StoredKey, now: number): string | undefined {
  if (k.expiresAtMs !== undefined && k.expiresAtMs <= now) return INVALID;
  if (k.keyExpiresAtMs !== undefined && k.keyExpiresAtMs <= now) return EXPIRED;
  return undefined;
}

function tombstoneOf(k: StoredKey | undefined, now: number): RevokedKey {
  const t: RevokedKey = { keyId: k?.keyId ?? '', tenantId: k?.tenantId ?? '', scopes: [...(k?.scopes ?? [])], createdAtMs: k?.createdAtMs ?? 0, revokedAtMs: now };
  if (k?.rotatedAtMs !== undefined) t.rotatedAtMs = k.rotatedAtMs;
  if (k?.keyExpiresAtMs !== undefined) t.keyExpiresAtMs = k.keyExpiresAtMs;
  if (k?.prefix !== undefined) t.prefix = k.prefix;
  return t;
}

interface KeyFacts {
  keyId: string;
  tenantId: string;
  scopes: readonly string[];
  admin: boolean;
  source: KeySource;
  createdAtMs?: number | undefined;
  rotatedAtMs?: number | undefined;
  expiresAtMs?: number | undefined;
  prefix: string;
  revoked: boolean;
  revokedAtMs?: number | undefined;
}

const dateOf = (ms: number | undefined): Date | undefined => (ms === undefined || ms <= 0 ? undefined : new Date(ms));

function keyInfo(f: KeyFacts, now: number): KeyInfo {
  return {
    keyId: f.keyId,
    tenantId: f.tenantId,
    scopes: [...f.scopes],
    admin: f.admin,
    source: f.source,
    createdAt: dateOf(f.createdAtMs),
    rotatedAt: dateOf(f.rotatedAtMs),
    expiresAt: dateOf(f.expiresAtMs),
    expired: f.expiresAtMs !== undefined && f.expiresAtMs <= now,
    revoked: f.revoked,
    revokedAt: f.revoked ? dateOf(f.revokedAtMs) : undefined,
    visiblePrefix: f.prefix,
  };
}

function fromKeyInfo(k: KeyInfo): KeyFacts {
  return {
    keyId: k.keyId,
    tenantId: k.tenantId,
    scopes: k.scopes,
    admin: k.admin,
    source: k.source,
    createdAtMs: k.createdAt?.getTime(),
    rotatedAtMs: k.rotatedAt?.getTime(),
    expiresAtMs: k.expiresAt?.getTime(),
    prefix: k.visiblePrefix,
    revoked: k.revoked,
    revokedAtMs: k.revokedAt?.getTime(),
  };
}

/** An opaque ListKeys page token: the last key id of the page and the tenant filter it was issued for (not secret). */
function encodePageToken(afterKeyId: string, tenantId: string): string {
  return Buffer.from(JSON.stringify({ a: afterKeyId, t: tenantId }), 'utf8').toString('base64url');
}

function decodePageToken(token: string, tenantId: string): string {
  let v: unknown;
  try {
    v = token.length <= 1_024 ? JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) : undefined;
  } catch {
    v = undefined;
  }
  const t = v as { a?: unknown; t?: unknown } | undefined;
  if (!t || typeof t.a !== 'string' || typeof t.t !== 'string') throw new AppError('invalid_argument', 'page_token: not a token of this list');
  if (t.t !== tenantId) throw new AppError('invalid_argument', 'page_token: issued for another tenant_id; send the same tenant_id as for the first page');
  return t.a;
}

/** The tenant's tier; undefined for a tenant the config does not know. */
function tierOf(config: AuthSections, tenantId: string): string | undefined {
  return Object.hasOwn(config.tenants, tenantId) ? config.tenants[tenantId]?.tier : undefined;
}
