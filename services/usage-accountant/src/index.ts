import { Subjects } from '@llmgw/events';
import { CallerAuth } from '@llmgw/caller-auth';
import { createGrpcServer, drain, listen, unary } from '@llmgw/grpc';
import { UsageServiceService, type GetUsageRequest, type GetUsageResponse, type UsageServiceServer } from '@llmgw/proto/v1';
import type { RunningService, ServiceDefinition, ServiceDeps } from '@llmgw/runtime';
import { loadUsageAccountantConfig, type UsageAccountantConfig } from './config.js';
import { usageEventHandler } from './usage-consumer.js';
import { UsageQueries } from './usage-queries.js';
import { MemoryUsageStore, RedisUsageStore } from './usage-store.js';

export * from './buckets.js';
export { summarize } from './summarize.js';
export { UsageQueries } from './usage-queries.js';
export { factOf, usageEventHandler } from './usage-consumer.js';
export { loadUsageAccountantConfig, type UsageAccountantConfig } from './config.js';
export { DEDUPE_TTL_SECONDS, MemoryUsageStore, RedisUsageStore, UsageKeys, cellField, type CellQuery, type UsageStore } from './usage-store.js';

export const USAGE_SERVICE_NAME = 'llmgateway.v1.UsageService';
export const USAGE_DURABLE = 'usage-accountant';

export async function startUsageAccountant(deps: ServiceDeps<UsageAccountantConfig>): Promise<RunningService> {
  const logger = deps.logger.child({ component: 'usage-accountant' });
  const store = deps.redis ? new RedisUsageStore(deps.redis) : new MemoryUsageStore();
  const stopConsuming = await deps.bus.consume(Subjects.usageRecorded, USAGE_DURABLE, usageEventHandler(store, logger));

  const callers = new CallerAuth(deps.addrs.auth, deps.bus);
  const queries = new UsageQueries(store);

  const impl: UsageServiceServer = {
    getUsage: unary('GetUsage', logger, async (req: GetUsageRequest, ctx): Promise<GetUsageResponse> => {
      return queries.getUsage(req, await callers.principal(ctx));
    }, { metrics: deps.metrics?.rpc }),
  };
  const g = createGrpcServer([USAGE_SERVICE_NAME]);
  g.server.addService(UsageServiceService, impl);
  const port = await listen(g, deps.listenAddr);
  return {
    name: 'usage-accountant',
    port,
    close: async () => {
      await drain(g, deps.drainMs);
      await stopConsuming();
      callers.close();
    },
  };
}

export const usageAccountantService: ServiceDefinition<UsageAccountantConfig> = {
  name: 'usage-accountant',
  needsRedis: true,
  loadConfig: loadUsageAccountantConfig,
  start: startUsageAccountant,
};
