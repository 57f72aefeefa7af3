import { createHash } from 'node:crypto';
import type { Principal } from '@llmgw/proto/auth';

interface Entry {
  principal: Principal;
  expiresAt: number;
}

/** What auth granted with an answer, beyond the TTL. */
export interface CacheGrant {
  /** When the secret stops working (auth's `expires_at`): the entry never outlives it. */
  expiresAtMs?: number;
  /**
   * When the lookup that produced the answer began (this cache's clock). An answer for a key id
   * revoked since then is not cached: it may predate the revocation (an Authenticate in flight
   * while the KeyRevoked broadcast arrived).
   */
  lookupStartedAt?: number;
}

/** How long a revocation is remembered to refuse answers of lookups begun before it (longer than any lookup's deadline). */
const REVOCATION_MEMORY_MS = 30_000;

/**
 * Principals of recently seen keys, so that auth is not called on every request. Entries are
 * keyed by the key's SHA-256, never the secret itself, live for the TTL auth grants (never past
 * the key's expiry), and are dropped at once when auth broadcasts a revocation.
 */
export class AuthCache {
  private readonly entries = new Map<string, Entry>();
  /** key id → when its revocation was heard (pruned after REVOCATION_MEMORY_MS). */
  private readonly revokedAt = new Map<string, number>();

  constructor(private readonly opts: { now: () => number; maxEntries?: number }) {}

  static digest(apiKey: string): string {
    return createHash('sha256').update(apiKey).digest('hex');
  }

  get(digest: string): Principal | undefined {
    const entry = this.entries.get(digest);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.opts.now()) {
      this.entries.delete(digest);
      return undefined;
    }
    return entry.principal;
  }

  set(digest: string, principal: Principal, ttlMs: number, grant: CacheGrant = {}): void {
    const now = this.opts.now();
    const expiresAt = Math.min(now + ttlMs, grant.expiresAtMs ?? Infinity);
    if (ttlMs <= 0 || expiresAt <= now) return;
    const revoked = this.revokedAt.get(principal.keyId);
    if (revoked !== undefined && grant.lookupStartedAt !== undefined && revoked >= grant.lookupStartedAt) return;
    if (!this.entries.has(digest) && this.entries.size >= (this.opts.maxEntries ?? 100_000)) {
      // Maps iterate in insertion order: dropping the first entry drops the oldest.
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(digest, { principal, expiresAt });
  }

  revokeKey(keyId: string): void {
    const now = this.opts.now();
    for (const [id, at] of this.revokedAt) {
      // Insertion order is time order: stop at the first one still remembered.
      if (at > now - REVOCATION_MEMORY_MS) break;
      this.revokedAt.delete(id);
    }
    this.revokedAt.delete(keyId);
    this.revokedAt.set(keyId, now);
    for (const [digest, entry] of this.entries) if (entry.principal.keyId === keyId) this.entries.delete(digest);
  }
}
