import type { GatewayConfig } from '@llmgw/config';
import { MemoryEventBus } from '@llmgw/events';
import type { Logger } from '@llmgw/logging';
import { startAuth } from '@llmgw/auth';
import { startEdge } from '@llmgw/edge';
import { startProviderExecutor } from '@llmgw/provider-executor';
import { startQuota } from '@llmgw/quota';
import { startRouter } from '@llmgw/router';
import { startUsageAccountant } from '@llmgw/usage-accountant';
import { METRICS_PORT_OFFSET, startServiceMetrics, type RunningService, type ServiceAddrs, type ServiceMetrics, type ServiceName, type StartService } from '@llmgw/runtime';

const START_ORDER: [ServiceName, StartService][] = [
  ['auth', startAuth],
  ['router', startRouter],
  ['quota', startQuota],
  ['provider-executor', startProviderExecutor],
  ['usage-accountant', startUsageAccountant],
  ['edge', (deps) => startEdge(deps)],
];

export interface Monolith {
  services: RunningService[];
  close(): Promise<void>;
}

/**
 * Monolithic mode: the six services in one process, each still on its own gRPC port and
 * calling the others over gRPC, with the in-memory event bus and stores instead of NATS and Redis.
 * Each service keeps its own metrics registry; with METRICS_PORT set, service n of
 * METRICS_PORT_OFFSET (edge 0 … usage-accountant 5) is served on METRICS_PORT + n.
 */
export async function startMonolith(opts: { config: GatewayConfig; logger: Logger; addrs: ServiceAddrs; env: NodeJS.ProcessEnv }): Promise<Monolith> {
  const bus = new MemoryEventBus();
  const services: RunningService[] = [];
  const metrics: ServiceMetrics[] = [];
  for (const [name, start] of START_ORDER) {
    const logger = opts.logger.child({ service: name });
    const m = await startServiceMetrics(name, opts.env, logger, METRICS_PORT_OFFSET[name]);
    metrics.push(m);
    services.push(
      await start({
        config: opts.config,
        logger,
        listenAddr: opts.addrs[name],
        addrs: opts.addrs,
        bus,
        drainMs: 0,
        env: opts.env,
        metrics: m.metrics,
      }),
    );
  }
  return {
    services,
    close: async () => {
      for (const s of [...services].reverse()) await s.close();
      await bus.close();
      for (const m of metrics) await m.close();
    },
  };
}
