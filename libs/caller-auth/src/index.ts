import type { Scope } from '@llmgw/config';
import { AppError, quoted } from '@llmgw/errors';
import { Subjects, type EventBus } from '@llmgw/events';
import { dial, metadataValue, PLAINTEXT, type CallContext, type MeshTransport } from '@llmgw/grpc';
import { AuthServiceClient, KeyRevoked, type Principal } from '@llmgw/proto/auth';
import { AuthClientAuthenticator } from './authenticator.js';

export { AuthCache, type CacheGrant } from './auth-cache.js';
export { isMistypedKey, KEY_PREFIX, newApiKey, visiblePrefix } from './key-format.js';
export { AuthClientAuthenticator, type CallerAuthenticator, type AuthClientAuthenticatorOptions } from './authenticator.js';

export { SCOPES, type Scope } from '@llmgw/config';

/** A key with no scopes listed (bootstrap keys without a list, keys made before scopes) may do all but administer. */
const DEFAULT_SCOPES: readonly Scope[] = ['chat', 'embed', 'usage:read'];

/** PERMISSION_DENIED unless the key has `scope` (an admin key has every scope). */
export function requireScope(p: Pick<Principal, 'admin' | 'scopes'>, scope: Scope): void {
  if (p.admin) return;
  const scopes: readonly string[] = p.scopes.length === 0 ? DEFAULT_SCOPES : p.scopes;
  if (!scopes.includes(scope)) throw new AppError('permission_denied', `this key lacks the scope "${scope}"`);
}

/** The key in `authorization: Bearer <key>`, or undefined. */
export function bearerKey(ctx: Pick<CallContext, 'metadata'>): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(metadataValue(ctx.metadata, 'authorization'));
  return m?.[1];
}

/**
 * For services other than the edge that answer callers directly (usage, quota admin): who is
 * calling, asked of auth and cached briefly, with revocations applied as they are broadcast.
 */
export class CallerAuth {
  private readonly client: AuthServiceClient;
  private readonly authenticator: AuthClientAuthenticator;
  private readonly offRevoked: () => void;

  constructor(authAddr: string, bus: EventBus, transport: MeshTransport = PLAINTEXT) {
    this.client = dial(AuthServiceClient, authAddr, transport.channelTo('auth'));
    this.authenticator = new AuthClientAuthenticator(this.client);
    this.offRevoked = bus.onBroadcast(Subjects.keyRevoked, (data) => {
      try {
        this.authenticator.forgetKey(KeyRevoked.decode(data).keyId);
      } catch {
        // An undecodable broadcast only delays invalidation until the cache entry expires.
      }
    });
  }

  /** The caller's principal; UNAUTHENTICATED when no key was sent or auth refuses it. */
  async principal(ctx: Pick<CallContext, 'metadata' | 'requestId'>): Promise<Principal> {
    const key = bearerKey(ctx);
    if (!key) throw new AppError('unauthenticated', 'missing API key: send metadata "authorization: Bearer <key>"');
    return this.authenticator.authenticate(key, ctx.requestId);
  }

  /**
   * The tenant the caller may act on: `tenantId` when it is the caller's own or the caller is an
   * admin, the caller's own tenant when `tenantId` is empty; PERMISSION_DENIED otherwise.
   */
  async tenantFor(ctx: Pick<CallContext, 'metadata' | 'requestId'>, tenantId: string, action: string): Promise<string> {
    const p = await this.principal(ctx);
    if (!tenantId) return p.tenantId;
    if (!p.admin && p.tenantId !== tenantId) throw new AppError('permission_denied', `tenant ${quoted(p.tenantId)} may not ${action} of tenant ${quoted(tenantId)}`);
    return tenantId;
  }

  async admin(ctx: Pick<CallContext, 'metadata' | 'requestId'>, action: string): Promise<Principal> {
    const p = await this.principal(ctx);
    if (!p.admin) throw new AppError('permission_denied', `${action} needs an admin key`);
    return p;
  }

  close(): void {
    this.offRevoked();
    this.client.close();
  }
}
