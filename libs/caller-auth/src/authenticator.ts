import { callUnary } from '@llmgw/grpc';
import type { AuthServiceClient, Principal } from '@llmgw/proto/auth';
import { AuthCache } from './auth-cache.js';

/** Who is calling, from the key they presented. */
export interface CallerAuthenticator {
  authenticate(apiKey: string, requestId?: string): Promise<Principal>;
  /** Drops cached answers for a revoked key. */
  forgetKey(keyId: string): void;
}

export interface AuthClientAuthenticatorOptions {
  now?: () => number;
  /** Upper bound on how long an answer is cached, whatever auth allows. */
  maxCacheMs?: number;
  timeoutMs?: number;
}

/** Asks auth's Authenticate (1 s deadline) and caches answers briefly by key digest. */
export class AuthClientAuthenticator implements CallerAuthenticator {
  private readonly cache: AuthCache;
  private readonly now: () => number;

  constructor(
    private readonly client: AuthServiceClient,
    private readonly opts: AuthClientAuthenticatorOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.cache = new AuthCache({ now: this.now, maxEntries: 10_000 });
  }

  async authenticate(apiKey: string, requestId?: string): Promise<Principal> {
    const digest = AuthCache.digest(apiKey);
    const hit = this.cache.get(digest);
    if (hit) return hit;
    const lookupStartedAt = this.now();
    const res = await callUnary(this.client.authenticate.bind(this.client), { apiKey }, { timeoutMs: this.opts.timeoutMs ?? 1_000, requestId });
    const principal = res.principal;
    if (!principal) throw new Error('auth answered without a principal');
    this.cache.set(digest, principal, Math.min(res.cacheTtlMs, this.opts.maxCacheMs ?? 5_000), { expiresAtMs: res.expiresAt?.getTime(), lookupStartedAt });
    return principal;
  }

  forgetKey(keyId: string): void {
    this.cache.revokeKey(keyId);
  }
}
