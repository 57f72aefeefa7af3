import { envPort, gatherConfig, parseEnv } from '@llmgw/config';
import { MemoryEventBus } from '@llmgw/events';
import { LocalCalls } from '@llmgw/grpc';
import type { Logger } from '@llmgw/logging';
import { authService } from '@llmgw/auth';
import { edgeService } from '@llmgw/edge';
import { providerExecutorService } from '@llmgw/provider-executor';
import { quotaService } from '@llmgw/quota';
import { routerService } from '@llmgw/router';
import { usageAccountantService } from '@llmgw/usage-accountant';
import { METRICS_PORT_OFFSET, startServiceMetrics, type RunningService, type ServiceAddrs, type ServiceDefinition, type ServiceMetrics } from '@llmgw/runtime';
import { startTracing, tracingEnv } from '@llmgw/tracing';
import { z } from 'zod';

/** Start order: what the edge dials comes first. */
// Each definition has its own config type; the loop below keeps each one's loadConfig and start together.
const START_ORDER: ServiceDefinition<any>[] = [authService, routerService, quotaService, providerExecutorService, usageAccountantService, edgeService];

export interface Monolith {
  services: RunningService[];
  close(): Promise<void>;
}

/**
 * Monolithic mode: the six services in one process, each still on its own gRPC port and
 * calling the others over gRPC (but for the edge's calls of every request to quota and the
 * executor, which go to their handlers directly: LocalCalls), with the in-memory event bus and stores instead of NATS and Redis.
 * Each service loads its own sections of the config file and its environment, as its process
 * would (all problems of all services are named at once, before anything starts). Each keeps its
 * own metrics registry; with METRICS_PORT set, service n of METRICS_PORT_OFFSET (edge 0 …
 * usage-accountant 5) is served on METRICS_PORT + n.
 */
export async function startMonolith(opts: { configPath: string; logger: Logger; addrs: ServiceAddrs; env: NodeJS.ProcessEnv }): Promise<Monolith> {
  const { runtime, configs, otel } = gatherConfig({
    runtime: () => parseEnv(z.object({ METRICS_PORT: envPort().optional() }), opts.env),
    otel: () => tracingEnv(opts.env),
    configs: () => {
      const parts = Object.fromEntries(START_ORDER.map((def) => [def.name, () => def.loadConfig(opts.configPath, opts.env) as unknown]));
      return gatherConfig(parts);
    },
  });
  // One process, one trace resource: its spans' rpc.service says which service served each.
  const tracing = startTracing('llm-gateway', otel, (message) => opts.logger.warn({ component: 'opentelemetry' }, message));
  const bus = new MemoryEventBus({ logger: opts.logger });
  // The edge calls quota and the executor's handlers directly (each still serves gRPC too).
  const local = new LocalCalls();
  const services: RunningService[] = [];
  const metrics: ServiceMetrics[] = [];
  const close = async () => {
    for (const s of [...services].reverse()) await s.close();
    await bus.close();
    for (const m of metrics) await m.close();
    await tracing.shutdown();
  };
  try {
    for (const def of START_ORDER) {
      const logger = opts.logger.child({ service: def.name });
      const m = await startServiceMetrics(def.name, runtime.METRICS_PORT, logger, METRICS_PORT_OFFSET[def.name]);
      metrics.push(m);
      services.push(
        await def.start({
          config: configs[def.name],
          configPath: opts.configPath,
          logger,
          listenAddr: opts.addrs[def.name],
          addrs: opts.addrs,
          bus,
          drainMs: 0,
          env: opts.env,
          metrics: m.metrics,
          local,
        }),
      );
    }
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
  return { services, close };
}
