import { ConfigWatcher } from '@llmgw/config';
import { Subjects } from '@llmgw/events';
import { createGrpcServer, drain, listen, tolerantDecoding, unary } from '@llmgw/grpc';
import { BackendHealthChanged } from '@llmgw/proto/executor';
import { RouterServiceService, type ListModelsRequest, type ListModelsResponse, type PlanRouteResponse, type PlanRouteRequest, type RouterServiceServer } from '@llmgw/proto/router';
import { accessOf, type RunningService, type ServiceDefinition, type ServiceDeps } from '@llmgw/runtime';
import { BackendHealth } from './backend-health.js';
import { loadRouterConfig, parseRouterSections, type RouterConfig } from './config.js';
import { Planner } from './planner.js';

export { Planner, taskTypeName, qualityTierName, latencyClassName, type SkipReason } from './planner.js';
export { BackendHealth, MAX_UNHEALTHY_MS, type HealthView } from './backend-health.js';
export { loadRouterConfig, type RouterConfig } from './config.js';

export const ROUTER_SERVICE_NAME = 'llmgateway.router.v1.RouterService';

/**
 * Starts the router: a stateless planner over its sections of the config, hot-reloaded from the
 * file (polled every POLICY_POLL_MS), that plans around backends the executors report unhealthy
 * (`BackendHealthChanged` broadcasts on the bus). A bad edit keeps the previous policy.
 */
export async function startRouter(deps: ServiceDeps<RouterConfig>): Promise<RunningService> {
  const logger = deps.logger.child({ component: 'router' });
  const policy = new ConfigWatcher<Planner>(new Planner(deps.config.sections), {
    path: deps.configPath,
    parse: (text, source) => new Planner(parseRouterSections(text, source, deps.env)),
    logger,
    intervalMs: deps.config.policyPollMs,
  });
  policy.start();

  const health = new BackendHealth(Date.now);
  const stopHealth = deps.bus.onBroadcast(Subjects.backendHealth, (data) => {
    let ev: BackendHealthChanged;
    try {
      ev = BackendHealthChanged.decode(data);
    } catch (err) {
      logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'dropped an undecodable backend health event');
      return;
    }
    health.apply(ev);
    logger.info(
      { model: ev.model, provider: ev.provider, healthy: ev.healthy, replicaId: ev.replicaId, unhealthyForMs: ev.unhealthyForMs, reason: ev.reason },
      ev.healthy ? 'backend reported healthy' : 'backend reported unhealthy',
    );
  });

  const g = createGrpcServer([ROUTER_SERVICE_NAME], { transport: deps.transport, access: accessOf('router') });
  const impl: RouterServiceServer = {
    planRoute: unary('PlanRoute', logger, async (req: PlanRouteRequest): Promise<PlanRouteResponse> => ({ plan: policy.current.plan(req, health) }), {
      metrics: deps.metrics?.rpc,
    }),
    listModels: unary('ListModels', logger, async (req: ListModelsRequest): Promise<ListModelsResponse> => ({ entries: policy.current.catalog(req.tenantId, req.tier) }), {
      metrics: deps.metrics?.rpc,
    }),
  };
  g.server.addService(tolerantDecoding(RouterServiceService), impl);
  let port: number;
  try {
    port = await listen(g, deps.listenAddr);
  } catch (err) {
    stopHealth();
    policy.stop();
    throw err;
  }
  return {
    name: 'router',
    port,
    close: async () => {
      stopHealth();
      policy.stop();
      await drain(g, deps.drainMs);
    },
  };
}

export const routerService: ServiceDefinition<RouterConfig> = {
  name: 'router',
  needsRedis: false,
  loadConfig: loadRouterConfig,
  start: startRouter,
};
