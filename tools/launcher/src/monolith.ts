import type { GatewayConfig } from '@llmgw/config';
import { MemoryEventBus } from '@llmgw/events';
import type { Logger } from '@llmgw/logging';
import { startAuth } from '@llmgw/auth';
import { startEdge } from '@llmgw/edge';
import { startProviderExecutor } from '@llmgw/provider-executor';
import { startQuota } from '@llmgw/quota';
import { startRouter } from '@llmgw/router';
import { startUsageAccountant } from '@llmgw/usage-accountant';
import type { RunningService, ServiceAddrs, ServiceName, StartService } from '@llmgw/runtime';

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
 */
export async function startMonolith(opts: { config: GatewayConfig; logger: Logger; addrs: ServiceAddrs; env: NodeJS.ProcessEnv }): Promise<Monolith> {
  const bus = new MemoryEventBus();
  const services: RunningService[] = [];
  for (const [name, start] of START_ORDER) {
    services.push(
      await start({
        config: opts.config,
        logger: opts.logger.child({ service: name }),
        listenAddr: opts.addrs[name],
        addrs: opts.addrs,
        bus,
        drainMs: 0,
        env: opts.env,
      }),
    );
  }
  return {
    services,
    close: async () => {
      for (const s of [...services].reverse()) await s.close();
      await bus.close();
    },
  };
}
