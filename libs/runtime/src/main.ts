import { envMs, envPort, envString, envValue, gatherConfig, isProduction, parseEnv, profileFromEnv, urlWithoutPassword } from '@llmgw/config';
import { connectNatsBus, streamsUsedBy, type EventBus } from '@llmgw/events';
import { meshTransportFromEnv, type MeshTransport } from '@llmgw/grpc';
import { createLogger, type Logger } from '@llmgw/logging';
import { parseRedisUrl, startRedis, type RedisClient } from '@llmgw/redis';
import { startTracing, tracingEnv, type Tracing } from '@llmgw/tracing';
import { z } from 'zod';
import { startServiceMetrics, type ServiceMetrics } from './metrics.js';
import { addrsFromEnv, ADDR_ENV, type ServiceDefinition } from './service.js';

export const DEFAULT_CONFIG_PATH = 'config/gateway.yaml';

/** REDIS_URL: one server (redis://, rediss://) or a cluster (redis-cluster://host:port,host:port; libs/redis url.ts). */
export function envRedisUrl() {
  return envValue(
    'a redis://, rediss:// or redis-cluster:// URL',
    (raw) => {
      try {
        parseRedisUrl(raw);
        return raw;
      } catch {
        return undefined;
      }
    },
    urlWithoutPassword,
  );
}

/** The environment every service process reads (its own variables are in its config.ts). */
export function runtimeEnvSchema(needsRedis: boolean) {
  const redisUrl = envRedisUrl();
  return z.object({
    /** Path of the YAML config. */
    GATEWAY_CONFIG: envString(DEFAULT_CONFIG_PATH),
    /** NATS server(s), comma-separated. */
    NATS_URL: envString(),
    REDIS_URL: needsRedis ? redisUrl : redisUrl.optional(),
    /** Listen address when it differs from the dial address (ADDR_ENV), e.g. 0.0.0.0:50053 in a pod. */
    GRPC_LISTEN_ADDR: envString().optional(),
    /** How long health reports NOT_SERVING before the server stops taking calls on SIGTERM. */
    DRAIN_MS: envMs(0),
    /** Prometheus /metrics port; unset: no metrics server. */
    METRICS_PORT: envPort().optional(),
  });
}
export type RuntimeEnv = z.output<ReturnType<typeof runtimeEnvSchema>>;

/**
 * The composition root every service's main.ts calls: reads the typed environment and the
 * service's own config (both checked before anything connects, every problem in one fatal line),
 * connects Redis and NATS (in the background: an outage at start is degraded, not fatal), starts
 * the service, and drains on SIGTERM/SIGINT. A start-up failure is one clear fatal line and exit
 * code 1.
 */
export async function runServiceMain<C>(def: ServiceDefinition<C>, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const logger = createLogger({ service: def.name, level: env.LOG_LEVEL });
  let redis: RedisClient | undefined;
  let bus: EventBus | undefined;
  let metrics: ServiceMetrics | undefined;
  let tracing: Tracing | undefined;
  try {
    // Environment and file together, so that one fatal line names the problems of both.
    const { runtime, config, transport, otel } = gatherConfig({
      runtime: () => parseEnv(runtimeEnvSchema(def.needsRedis), env),
      config: () => def.loadConfig(env.GATEWAY_CONFIG || DEFAULT_CONFIG_PATH, env),
      transport: () => meshTransportOf(def.name, env),
      otel: () => tracingEnv(env),
    });
    // Before anything dials or serves: clients and servers made while it is on are traced.
    tracing = startTracing(def.name, otel, (message) => logger.warn({ component: 'opentelemetry' }, message));
    if (transport.identity === undefined) logger.warn('MESH_TLS_DIR is not set: calls inside the mesh are plaintext and not authorized');
    // Neither Redis nor NATS being down stops a start: each service reports it in health and
    // follows its degraded policy until they are back (docs/operations.md).
    if (def.needsRedis && runtime.REDIS_URL !== undefined) redis = await startRedis(runtime.REDIS_URL, { logger });
    bus = await connectNatsBus({ url: runtime.NATS_URL, name: def.name, logger, streams: streamsUsedBy(def.name) });
    metrics = await startServiceMetrics(def.name, runtime.METRICS_PORT, logger);
    const addrs = addrsFromEnv(env);
    const listenAddr = runtime.GRPC_LISTEN_ADDR ?? addrs[def.name];
    const service = await def.start({
      config,
      configPath: runtime.GATEWAY_CONFIG,
      logger,
      listenAddr,
      addrs,
      redis,
      bus,
      drainMs: runtime.DRAIN_MS,
      env,
      metrics: metrics.metrics,
      transport,
    });
    logger.info({ addr: listenAddr, port: service.port }, `${def.name} listening`);
    onShutdown(logger, async () => {
      await service.close();
      await bus?.close();
      redis?.disconnect();
      await metrics?.close();
      await tracing?.shutdown();
    });
  } catch (err) {
    logger.fatal(`${def.name} cannot start: ${err instanceof Error ? err.message : String(err)}`);
    redis?.disconnect();
    await bus?.close().catch(() => undefined);
    await metrics?.close().catch(() => undefined);
    await tracing?.shutdown().catch(() => undefined);
    process.exit(1);
  }
}

/** The process's mesh TLS, refused unless its certificate names the service it runs; production refuses plaintext. */
export function meshTransportOf(service: string, env: NodeJS.ProcessEnv): MeshTransport {
  const transport = meshTransportFromEnv(env);
  if (transport.identity === undefined && isProduction(profileFromEnv(env))) {
    throw new Error('LLMGW_PROFILE=production needs MESH_TLS_DIR: calls inside the mesh must be mutual TLS');
  }
  if (transport.identity !== undefined && transport.identity !== service) {
    throw new Error(`MESH_TLS_DIR holds the certificate of ${transport.identity}, not of ${service}`);
  }
  return transport;
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
