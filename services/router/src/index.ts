import { createGrpcServer, drain, listen, unary } from '@llmgw/grpc';
import { RouterServiceService, type PlanRouteResponse, type PlanRouteRequest, type RouterServiceServer } from '@llmgw/proto/router';
import { DEFAULT_CONFIG_PATH, type RunningService, type ServiceDeps } from '@llmgw/runtime';
import { PolicyWatcher } from './policy-watcher.js';

export { Planner, taskTypeName, qualityTierName, latencyClassName, type SkipReason } from './planner.js';
export { PolicyWatcher, type PolicyWatcherOptions } from './policy-watcher.js';

export const ROUTER_SERVICE_NAME = 'llmgateway.router.v1.RouterService';

/**
 * Starts the router: a stateless planner over the config, hot-reloaded from GATEWAY_CONFIG
 * (polled every POLICY_POLL_MS, default 500 ms).
 */
export async function startRouter(deps: ServiceDeps): Promise<RunningService> {
  const logger = deps.logger.child({ component: 'router' });
  const policy = new PolicyWatcher(deps.config, {
    path: deps.env.GATEWAY_CONFIG || DEFAULT_CONFIG_PATH,
    env: deps.env,
    logger,
    intervalMs: Number(deps.env.POLICY_POLL_MS) || 500,
  });
  policy.start();

  const g = createGrpcServer([ROUTER_SERVICE_NAME]);
  const impl: RouterServiceServer = {
    planRoute: unary('PlanRoute', logger, async (req: PlanRouteRequest): Promise<PlanRouteResponse> => ({ plan: policy.current.plan(req) })),
  };
  g.server.addService(RouterServiceService, impl);
  const port = await listen(g, deps.listenAddr);
  return {
    name: 'router',
    port,
    close: async () => {
      policy.stop();
      await drain(g, deps.drainMs);
    },
  };
}
