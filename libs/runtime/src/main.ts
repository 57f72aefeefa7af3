import { loadGatewayConfig } from '@llmgw/config';
import { connectNatsBus, type EventBus } from '@llmgw/events';
import { createLogger, type Logger } from '@llmgw/logging';
import { connectRedis, type Redis } from '@llmgw/redis';
import { startServiceMetrics, type ServiceMetrics } from './metrics.js';
import { addrsFromEnv, ADDR_ENV, type ServiceName, type StartService } from './service.js';

export const DEFAULT_CONFIG_PATH = 'config/gateway.yaml';

export interface MainOptions {
  name: ServiceName;
  start: StartService;
  needsRedis: boolean;
  env?: NodeJS.ProcessEnv;
}

/**
 * The composition root every service's main.ts calls: reads env and config, connects Redis and
 * NATS, starts the service, and drains on SIGTERM/SIGINT. A start-up failure is one clear
 * fatal line and exit code 1.
 */
export async function runServiceMain(opts: MainOptions): Promise<void> {
  const env = opts.env ?? process.env;
  const logger = createLogger({ service: opts.name, level: env.LOG_LEVEL });
  let redis: Redis | undefined;
  let bus: EventBus | undefined;
  let metrics: ServiceMetrics | undefined;
  try {
    const config = loadGatewayConfig(env.GATEWAY_CONFIG || DEFAULT_CONFIG_PATH, env);
    const natsUrl = required(env, 'NATS_URL');
    if (opts.needsRedis) redis = await connectRedis(required(env, 'REDIS_URL'), { logger });
    bus = await connectNatsBus({ url: natsUrl, name: opts.name, logger });
    metrics = await startServiceMetrics(opts.name, env, logger);
    const addrs = addrsFromEnv(env);
    const listenAddr = env.GRPC_LISTEN_ADDR || addrs[opts.name];
    const service = await opts.start({ config, logger, listenAddr, addrs, redis, bus, drainMs: Number(env.DRAIN_MS ?? 0), env, metrics: metrics.metrics });
    logger.info({ addr: listenAddr, port: service.port }, `${opts.name} listening`);
    onShutdown(logger, async () => {
      await service.close();
      await bus?.close();
      redis?.disconnect();
      await metrics?.close();
    });
  } catch (err) {
    logger.fatal(`${opts.name} cannot start: ${err instanceof Error ? err.message : String(err)}`);
    redis?.disconnect();
    await bus?.close().catch(() => undefined);
    await metrics?.close().catch(() => undefined);
    process.exit(1);
  }
}

function required(env: NodeJS.ProcessEnv, name: string): string {
  const v = env[name];
  if (!v) throw new Error(`environment variable ${name} is not set`);
  return v;
}

export function onShutdown(logger: Logger, close: () => Promise<void>): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining');
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

export { ADDR_ENV };
