import { createGrpcServer, DependencyHealth, drain, listen, tolerantDecoding, unary, type CallContext } from '@llmgw/grpc';
import { watchRedis } from '@llmgw/redis';
import {
  AuthServiceService,
  type AuthenticateRequest,
  type AuthenticateResponse,
  type AuthServiceServer,
  type CreateKeyRequest,
  type CreateKeyResponse,
  type ListKeysRequest,
  type ListKeysResponse,
  type RevokeKeyRequest,
  type RevokeKeyResponse,
  type RotateKeyRequest,
  type RotateKeyResponse,
} from '@llmgw/proto/auth';
import { accessOf, type RunningService, type ServiceDefinition, type ServiceDeps } from '@llmgw/runtime';
import { loadAuthConfig, type AuthConfig } from './config.js';
import { bearerToken } from './key-hash.js';
import { KeyAuthority } from './key-authority.js';
import { MemoryKeyStore, RedisKeyStore } from './key-store.js';

export { hashKey, newKeyId, bearerToken } from './key-hash.js';
export {
  DEFAULT_PAGE_SIZE,
  KeyAuthority,
  MAX_GRACE_PERIOD_MS,
  MAX_KEY_LIFETIME_MS,
  MAX_PAGE_SIZE,
  type Authenticated,
  type KeyAuthorityOptions,
  type ListKeysQuery,
  type RotatedKey,
} from './key-authority.js';
export { AuthKeys, MemoryKeyStore, RedisKeyStore, type KeyStore, type RevokedKey, type Rotation, type StoredKey } from './key-store.js';
export { checkProfile, loadAuthConfig, type AuthConfig } from './config.js';

export const AUTH_SERVICE_NAME = 'llmgateway.auth.v1.AuthService';

/** How often a replica re-reads revoked bootstrap keys (a missed broadcast heals within this). */
const REVOCATION_SYNC_MS = 10_000;

/** Options for tests: an injected clock (grace periods, caches). */
export interface AuthOptions {
  now?: () => number;
}

/** Starts auth over its sections of the config (read at start) and the key store (Redis, or memory in monolithic mode). */
export async function startAuth(deps: ServiceDeps<AuthConfig>, opts: AuthOptions = {}): Promise<RunningService> {
  const logger = deps.logger.child({ component: 'auth' });
  const store = deps.redis ? new RedisKeyStore(deps.redis) : new MemoryKeyStore();
  const authority = new KeyAuthority({ config: deps.config.sections, store, logger, bus: deps.bus, now: opts.now ?? Date.now });
  const expired = authority.expiredBootstrapIds();
  if (expired.length > 0) logger.warn({ keyIds: expired }, 'config api_keys past their expires_at are refused');
  const syncRevocations = () =>
    authority.syncRevocations().catch((err: unknown) => logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'cannot sync revoked keys'));
  // A Redis that is down at start is not fatal: the sync retries, and keys fail with UNAVAILABLE until then.
  await syncRevocations();
  const sync = setInterval(() => void syncRevocations(), REVOCATION_SYNC_MS);
  sync.unref();

  const admin = (ctx: CallContext) => authority.requireAdmin(bearerToken(ctx.metadata));

  const rpc = { metrics: deps.metrics?.rpc };
  const impl: AuthServiceServer = {
    authenticate: unary('Authenticate', logger, async (req: AuthenticateRequest): Promise<AuthenticateResponse> => {
      const { principal, cacheTtlMs, expiresAtMs } = await authority.authenticateWithTtl(req.apiKey);
      return { principal, cacheTtlMs, expiresAt: expiresAtMs === undefined ? undefined : new Date(expiresAtMs) };
    }, rpc),
    createKey: unary('CreateKey', logger, async (req: CreateKeyRequest, ctx): Promise<CreateKeyResponse> => {
      const caller = await admin(ctx);
      const created = await authority.createKey(req.tenantId, req.scopes, req.expiresAt);
      ctx.logger.info({ keyId: created.keyId, tenantId: req.tenantId, by: caller.keyId, expiresAtMs: created.expiresAtMs }, 'key created');
      return { keyId: created.keyId, apiKey: created.apiKey, expiresAt: created.expiresAtMs === undefined ? undefined : new Date(created.expiresAtMs) };
    }, rpc),
    listKeys: unary('ListKeys', logger, async (req: ListKeysRequest, ctx): Promise<ListKeysResponse> => {
      const caller = await admin(ctx);
      const page = await authority.listKeys({ tenantId: req.tenantId, pageSize: req.pageSize, pageToken: req.pageToken });
      ctx.logger.debug({ by: caller.keyId, tenantId: req.tenantId, keys: page.keys.length }, 'keys listed');
      return page;
    }, rpc),
    revokeKey: unary('RevokeKey', logger, async (req: RevokeKeyRequest, ctx): Promise<RevokeKeyResponse> => {
      const caller = await admin(ctx);
      const revoked = await authority.revokeKey(req.keyId);
      ctx.logger.info({ keyId: revoked.keyId, tenantId: revoked.tenantId, by: caller.keyId }, 'key revoked');
      return {};
    }, rpc),
    rotateKey: unary('RotateKey', logger, async (req: RotateKeyRequest, ctx): Promise<RotateKeyResponse> => {
      const caller = await authority.authenticate(bearerToken(ctx.metadata));
      const rotated = await authority.rotateKey(caller, req.keyId, req.gracePeriodMs, req.expiresAt);
      // Never the secret: ids, tenant, who and the grace period only.
      ctx.logger.info(
        { keyId: rotated.keyId, tenantId: rotated.tenantId, by: caller.keyId, byTenantId: caller.tenantId, gracePeriodMs: req.gracePeriodMs },
        'key rotated',
      );
      return {
        keyId: rotated.keyId,
        apiKey: rotated.apiKey,
        oldKeyExpiresAt: new Date(rotated.oldKeyExpiresAtMs),
        expiresAt: rotated.expiresAtMs === undefined ? undefined : new Date(rotated.expiresAtMs),
      };
    }, rpc),
  };

  const g = createGrpcServer([AUTH_SERVICE_NAME], { transport: deps.transport, access: accessOf('auth') });
  g.server.addService(tolerantDecoding(AuthServiceService), impl);
  const port = await listen(g, deps.listenAddr);
  const health = new DependencyHealth(g, AUTH_SERVICE_NAME, logger);
  health.listening();
  const stopWatching = deps.redis
    ? watchRedis(deps.redis, (up) => {
        health.set('redis', up);
        if (up) void syncRevocations();
      })
    : undefined;
  return {
    name: 'auth',
    port,
    close: async () => {
      stopWatching?.();
      health.close();
      clearInterval(sync);
      authority.close();
      await drain(g, deps.drainMs);
    },
  };
}

export const authService: ServiceDefinition<AuthConfig> = {
  name: 'auth',
  needsRedis: true,
  loadConfig: loadAuthConfig,
  start: (deps) => startAuth(deps),
};
