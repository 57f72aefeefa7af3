import { busSettingsFromEnv, Consumers, dedupeHorizonMs, NatsEventBus, Subjects } from '@llmgw/events';
import { CallerAuth } from '@llmgw/caller-auth';
import { ConfigWatcher, type AccountantSections } from '@llmgw/config';
import { createGrpcServer, DependencyHealth, drain, listen, tolerantDecoding, unary } from '@llmgw/grpc';
import { accountantMetrics, busConsumerMetrics } from '@llmgw/metrics';
import { TokenGrowthAlertRaised, UsageServiceService, type GetUsageRequest, type GetUsageResponse, type UsageServiceServer } from '@llmgw/proto/v1';
import { watchRedis } from '@llmgw/redis';
import { accessOf, type RunningService, type ServiceDefinition, type ServiceDeps } from '@llmgw/runtime';
import { alertHandler, budgetAlertPayload, decodeBudgetAlert, decodeTokenGrowthAlert, MemoryAlertMarks, RedisAlertMarks, tokenGrowthAlertPayload } from './alerts.js';
import { loadUsageAccountantConfig, parseAccountantSections, type UsageAccountantConfig } from './config.js';
import { usageEventHandler, type TenantIds } from './usage-consumer.js';
import { UsageQueries } from './usage-queries.js';
import { MemoryUsageStore, RedisUsageStore } from './usage-store.js';
import { TokenGrowthWatch } from './token-growth.js';
import { createDashboardServer, listenDashboard } from './dashboard.js';
import { WebhookNotifier } from './webhooks.js';

export * from './buckets.js';
export { summarize } from './summarize.js';
export { UsageQueries } from './usage-queries.js';
export { decodeFact, factOf, usageEventHandler, type TenantIds } from './usage-consumer.js';
export { accountantEnvSchema, loadUsageAccountantConfig, parseAccountantSections, type UsageAccountantConfig } from './config.js';
export { MemoryUsageStore, RedisUsageStore, UsageKeys, cellField, type CellQuery, type DedupeOptions, type UsageStore } from './usage-store.js';
export { diffCells, replayUsage, runReplay, type CellDiff, type ReplayResult } from './replay.js';

export const USAGE_SERVICE_NAME = 'llmgateway.v1.UsageService';

export async function startUsageAccountant(deps: ServiceDeps<UsageAccountantConfig>): Promise<RunningService> {
  const logger = deps.logger.child({ component: 'usage-accountant' });
  // The dedupe horizon follows the bus's actual delivery limits (one place: the topology).
  const settings = deps.bus instanceof NatsEventBus ? deps.bus.settings : busSettingsFromEnv(deps.env);
  const dedupe = { dedupeTtlMs: dedupeHorizonMs(settings) };
  const store = deps.redis ? new RedisUsageStore(deps.redis, dedupe) : new MemoryUsageStore(dedupe);

  let tenants: TenantIds = new Set(Object.keys(deps.config.sections.tenants));
  const watcher = new ConfigWatcher<AccountantSections>(deps.config.sections, {
    path: deps.configPath,
    parse: (text, source) => parseAccountantSections(text, source, deps.env),
    logger,
    intervalMs: deps.config.pollMs,
    onChange: (next) => {
      tenants = new Set(Object.keys(next.tenants));
      logger.info({ tenants: Object.keys(next.tenants).length }, 'accountant tenants reloaded');
    },
  });

  const g = createGrpcServer([USAGE_SERVICE_NAME], { transport: deps.transport, access: accessOf('usage-accountant') });
  // UsageService is NOT_SERVING while usage is not being counted (no consumer, or no Redis); the
  // overall "" stays SERVING: a restart would bring neither back, and GetUsage still answers.
  const health = new DependencyHealth(g, USAGE_SERVICE_NAME, logger);
  health.waitFor('usage consumer');
  const bus = deps.metrics && busConsumerMetrics(deps.metrics);
  const { subject, durable } = Consumers.usageAccountant;
  const stopConsuming = await deps.bus.consume(
    subject,
    durable,
    usageEventHandler(store, { logger, tenants: () => tenants, metrics: deps.metrics && accountantMetrics(deps.metrics) }),
    {
      onStateChange: (state) => {
        if (state !== 'stopped') health.set('usage consumer', state === 'consuming');
        bus?.consuming(durable, state === 'consuming');
      },
      onDeadLetter: (d) => bus?.deadLettered(d.stream, d.consumer, d.reason),
    },
  );

  // Alerts: budget alerts (quota) and token growth (here) go to the configured webhooks.
  const alertLogger = logger.child({ component: 'alerts' });
  const marks = deps.redis ? new RedisAlertMarks(deps.redis) : new MemoryAlertMarks(Date.now);
  const notifier = new WebhookNotifier({
    webhooks: () => watcher.current.alerts.webhooks,
    marks,
    fetch,
    logger: alertLogger,
    now: Date.now,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  });
  const consumeAlerts = (c: { subject: string; durable: string }, handler: ReturnType<typeof alertHandler>) =>
    deps.bus.consume(c.subject, c.durable, handler, {
      onStateChange: (state) => {
        if (state !== 'stopped') bus?.consuming(c.durable, state === 'consuming');
      },
      onDeadLetter: (d) => bus?.deadLettered(d.stream, d.consumer, d.reason),
    });
  const stopAlertDelivery = await Promise.all([
    consumeAlerts(Consumers.budgetAlertNotifier, alertHandler(decodeBudgetAlert, budgetAlertPayload, notifier)),
    consumeAlerts(Consumers.tokenGrowthAlertNotifier, alertHandler(decodeTokenGrowthAlert, tokenGrowthAlertPayload, notifier)),
  ]);
  const growth = new TokenGrowthWatch({
    store,
    config: () => watcher.current.alerts.token_growth,
    tenants: () => [...(tenants ?? [])],
    claim: (key, ttlMs) => marks.claim(key, ttlMs),
    release: (key) => marks.release(key),
    publish: (alert, id) => deps.bus.publish(Subjects.tokenGrowthAlert, TokenGrowthAlertRaised.encode(alert).finish(), id),
    logger: alertLogger,
    now: Date.now,
  });
  const stopGrowth = growth.start(deps.config.alertCheckMs ?? 60_000);

  const callers = new CallerAuth(deps.addrs.auth, deps.bus, deps.transport);
  const queries = new UsageQueries(store);
  const impl: UsageServiceServer = {
    getUsage: unary('GetUsage', logger, async (req: GetUsageRequest, ctx): Promise<GetUsageResponse> => {
      return queries.getUsage(req, await callers.principal(ctx));
    }, { metrics: deps.metrics?.rpc }),
  };
  g.server.addService(tolerantDecoding(UsageServiceService), impl);
  const dashboard = deps.config.httpAddr
    ? createDashboardServer({ queries, principal: (ctx) => callers.principal(ctx), sections: () => watcher.current, logger, now: Date.now })
    : undefined;
  let port: number;
  try {
    port = await listen(g, deps.listenAddr);
    if (dashboard && deps.config.httpAddr) {
      const dashboardPort = await listenDashboard(dashboard, deps.config.httpAddr);
      logger.info({ dashboardPort }, `usage dashboard on http://${deps.config.httpAddr}/dashboard`);
    }
  } catch (err) {
    g.server.forceShutdown();
    dashboard?.close();
    stopGrowth();
    await Promise.all([stopConsuming(), ...stopAlertDelivery.map((stop) => stop())]);
    callers.close();
    throw err;
  }
  health.listening();
  const stopWatching = deps.redis ? watchRedis(deps.redis, (up) => health.set('redis', up)) : undefined;
  watcher.start();
  return {
    name: 'usage-accountant',
    port,
    close: async () => {
      watcher.stop();
      stopWatching?.();
      health.close();
      await drain(g, deps.drainMs);
      if (dashboard) {
        dashboard.closeAllConnections();
        await new Promise((r) => dashboard.close(r));
      }
      stopGrowth();
      await Promise.all([stopConsuming(), ...stopAlertDelivery.map((stop) => stop())]);
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
