import { ConfigWatcher } from '@llmgw/config';
import { Subjects } from '@llmgw/events';
import { createGrpcServer, drain, listen, tolerantDecoding, unary } from '@llmgw/grpc';
import { routerMetrics } from '@llmgw/metrics';
import { BackendHealthChanged, BackendStatsReport } from '@llmgw/proto/executor';
import { RouterServiceService, type ListModelsRequest, type ListModelsResponse, type PlanRouteResponse, type PlanRouteRequest, type RouterServiceServer } from '@llmgw/proto/router';
import { accessOf, type RunningService, type ServiceDefinition, type ServiceDeps } from '@llmgw/runtime';
import { BackendHealth, type HealthView } from './backend-health.js';
import { BackendStats } from './backend-stats.js';
import { loadRouterConfig, parseRouterSections, type RouterConfig } from './config.js';
import { Planner } from './planner.js';

export { Planner, demotionOf, taskTypeName, qualityTierName, latencyClassName, type DemotionObserver, type DemotionReason, type SkipReason } from './planner.js';
export { BackendHealth, MAX_UNHEALTHY_MS, type HealthView } from './backend-health.js';
export { BackendStats, type MeasuredHealth } from './backend-stats.js';
export { loadRouterConfig, type RouterConfig } from './config.js';

export const ROUTER_SERVICE_NAME = 'llmgateway.router.v1.RouterService';

/**
 * Starts the router: a stateless planner over its sections of the config, hot-reloaded from the
 * file (polled every POLICY_POLL_MS), that plans around backends the executors report unhealthy
 * (`BackendHealthChanged` broadcasts on the bus) and, on routes with `demote`, tries last the
 * models whose measured error rate or p95 is too high (`BackendStatsReport` broadcasts). A bad
 * edit keeps the previous policy.
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

  const stats = new BackendStats(Date.now);
  const stopStats = deps.bus.onBroadcast(Subjects.backendStats, (data) => {
    try {
      stats.apply(BackendStatsReport.decode(data));
    } catch (err) {
      logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'dropped an undecodable backend stats report');
    }
  });
  const view: HealthView = { isUnhealthy: (model) => health.isUnhealthy(model), measured: (model) => stats.measured(model) };
  const metrics = deps.metrics && routerMetrics(deps.metrics);
  const onDemoted = metrics && ((route: string, model: string, reason: 'error_rate' | 'p95') => metrics.demotion(route, model, reason));

  const g = createGrpcServer([ROUTER_SERVICE_NAME], { transport: deps.transport, access: accessOf('router') });
  const impl: RouterServiceServer = {
    planRoute: unary('PlanRoute', logger, async (req: PlanRouteRequest): Promise<PlanRouteResponse> => ({ plan: policy.current.plan(req, view, onDemoted) }), {
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
    stopStats();
    policy.stop();
    throw err;
  }
  return {
    name: 'router',
    port,
    close: async () => {
      stopHealth();
      stopStats();
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
