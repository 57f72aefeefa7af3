import { Subjects } from '@llmgw/events';
import { drain, listen } from '@llmgw/grpc';
import { edgeMetrics } from '@llmgw/metrics';
import { KeyRevoked } from '@llmgw/proto/auth';
import type { RunningService, ServiceDeps } from '@llmgw/runtime';
import { AuthCache } from '@llmgw/caller-auth';
import { createGrpcDownstream, type Downstream } from './downstream.js';
import { GatewayPipeline } from './pipeline.js';
import { PlanCache } from './plan-cache.js';
import { createEdgeServer } from './server.js';
import { UsagePublisher } from './usage-publisher.js';

export { GatewayPipeline } from './pipeline.js';
export type { Downstream } from './downstream.js';

export async function startEdge(deps: ServiceDeps, downstream: Downstream = createGrpcDownstream(deps.addrs)): Promise<RunningService> {
  const logger = deps.logger.child({ component: 'edge' });
  const authCache = new AuthCache({ now: Date.now });
  const stopRevocations = deps.bus.onBroadcast(Subjects.keyRevoked, (data) => {
    const ev = KeyRevoked.decode(data);
    authCache.revokeKey(ev.keyId);
    logger.info({ keyId: ev.keyId }, 'revoked key dropped from the auth cache');
  });
  const publisher = new UsagePublisher(deps.bus, logger, {
    outboxPath: deps.env.USAGE_OUTBOX_PATH || undefined,
    metrics: deps.metrics && edgeMetrics(deps.metrics),
  });
  const planCache = new PlanCache({ config: deps.config, ttlMs: Number(deps.env.EDGE_PLAN_CACHE_MS ?? 1_000), now: Date.now });
  const pipeline = new GatewayPipeline({ config: deps.config, downstream, authCache, planCache, publisher, now: Date.now });
  const g = createEdgeServer(pipeline, logger, deps.metrics?.rpc);
  const port = await listen(g, deps.listenAddr);
  return {
    name: 'edge',
    port,
    close: async () => {
      await drain(g, deps.drainMs);
      stopRevocations();
      await publisher.close();
      downstream.close();
    },
  };
}
