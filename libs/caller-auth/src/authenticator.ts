import { createHash } from 'node:crypto';
import { callUnary } from '@llmgw/grpc';
import type { AuthServiceClient, Principal } from '@llmgw/proto/auth';

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
  private readonly cache = new Map<string, { principal: Principal; expiresAt: number }>();
  private readonly now: () => number;

  constructor(
    private readonly client: AuthServiceClient,
    private readonly opts: AuthClientAuthenticatorOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
  }

  async authenticate(apiKey: string, requestId?: string): Promise<Principal> {
    const digest = createHash('sha256').update(apiKey).digest('hex');
    const now = this.now();
    const hit = this.cache.get(digest);
    if (hit && hit.expiresAt > now) return hit.principal;
    const res = await callUnary(this.client.authenticate.bind(this.client), { apiKey }, { timeoutMs: this.opts.timeoutMs ?? 1_000, requestId });
    const principal = res.principal;
    if (!principal) throw new Error('auth answered without a principal');
    const ttl = Math.min(res.cacheTtlMs, this.opts.maxCacheMs ?? 5_000);
    if (ttl > 0) {
      if (this.cache.size >= 10_000) this.cache.clear();
      this.cache.set(digest, { principal, expiresAt: now + ttl });
    }
    return principal;
  }

  forgetKey(keyId: string): void {
    for (const [d, e] of this.cache) if (e.principal.keyId === keyId) this.cache.delete(d);
  }
}
