import { createHash } from 'node:crypto';
import type { Principal } from '@llmgw/proto/auth';

interface Entry {
  principal: Principal;
  expiresAt: number;
}

/**
 * Principals of recently seen keys, so that auth is not called on every request. Entries are
 * keyed by the key's SHA-256, never the secret itself, live for the TTL auth grants, and are
 * dropped at once when auth broadcasts a revocation.
 */
export class AuthCache {
  private readonly entries = new Map<string, Entry>();

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

  set(digest: string, principal: Principal, ttlMs: number): void {
    if (ttlMs <= 0) return;
    if (!this.entries.has(digest) && this.entries.size >= (this.opts.maxEntries ?? 100_000)) {
      // Maps iterate in insertion order: dropping the first entry drops the oldest.
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(digest, { principal, expiresAt: this.opts.now() + ttlMs });
  }

  revokeKey(keyId: string): void {
    for (const [digest, entry] of this.entries) if (entry.principal.keyId === keyId) this.entries.delete(digest);
  }
}
