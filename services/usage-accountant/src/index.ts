import { Subjects } from '@llmgw/events';
import { createGrpcServer, dial, drain, listen, unary } from '@llmgw/grpc';
import { AuthServiceClient, KeyRevoked } from '@llmgw/proto/auth';
import { UsageServiceService, type GetUsageRequest, type GetUsageResponse, type UsageServiceServer } from '@llmgw/proto/v1';
import type { RunningService, ServiceDeps } from '@llmgw/runtime';
import { AppError } from '@llmgw/errors';
import { AuthClientAuthenticator } from './caller-auth.js';
import { usageEventHandler } from './usage-consumer.js';
import { UsageQueries } from './usage-queries.js';
import { MemoryUsageStore, RedisUsageStore } from './usage-store.js';

export * from './buckets.js';
export { summarize } from './summarize.js';
export { AuthClientAuthenticator, type CallerAuthenticator } from './caller-auth.js';
export { UsageQueries } from './usage-queries.js';
export { factOf, usageEventHandler } from './usage-consumer.js';
export { DEDUPE_TTL_SECONDS, MemoryUsageStore, RedisUsageStore, UsageKeys, cellField, type CellQuery, type UsageStore } from './usage-store.js';

export const USAGE_SERVICE_NAME = 'llmgateway.v1.UsageService';
export const USAGE_DURABLE = 'usage-accountant';

export async function startUsageAccountant(deps: ServiceDeps): Promise<RunningService> {
  const logger = deps.logger.child({ component: 'usage-accountant' });
  const store = deps.redis ? new RedisUsageStore(deps.redis) : new MemoryUsageStore();
  const stopConsuming = await deps.bus.consume(Subjects.usageRecorded, USAGE_DURABLE, usageEventHandler(store, logger));

  const authClient = dial(AuthServiceClient, deps.addrs.auth);
  const callers = new AuthClientAuthenticator(authClient);
  const offRevoked = deps.bus.onBroadcast(Subjects.keyRevoked, (data) => {
    try {
      callers.forgetKey(KeyRevoked.decode(data).keyId);
    } catch {
      // An undecodable broadcast only delays invalidation until the cache entry expires.
    }
  });
  const queries = new UsageQueries(store);

  const impl: UsageServiceServer = {
    getUsage: unary('GetUsage', logger, async (req: GetUsageRequest, ctx): Promise<GetUsageResponse> => {
      const key = bearer(ctx.metadata.get('authorization')[0]);
      if (!key) throw new AppError('unauthenticated', 'missing API key');
      const caller = await callers.authenticate(key, ctx.requestId);
      return queries.getUsage(req, caller);
    }),
  };
  const g = createGrpcServer([USAGE_SERVICE_NAME]);
  g.server.addService(UsageServiceService, impl);
  const port = await listen(g, deps.listenAddr);
  return {
    name: 'usage-accountant',
    port,
    close: async () => {
      await drain(g, deps.drainMs);
      offRevoked();
      await stopConsuming();
      authClient.close();
    },
  };
}

function bearer(raw: string | Buffer | undefined): string {
  const value = typeof raw === 'string' ? raw : raw === undefined ? '' : raw.toString();
  return /^Bearer\s+(\S+)\s*$/i.exec(value)?.[1] ?? '';
}
