import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { envEnum, envPort, envString, parseEnv, type GatewayConfig } from '@llmgw/config';
import { combineServiceEnv, createMeshPki, meshCredentials, onPath, REPO_ROOT, startNatsServer, startRedisServer, startServiceProcesses, type LocalServer } from '@llmgw/local-infra';
import { createLogger } from '@llmgw/logging';
import { startSimulator } from '@llmgw/provider-simulator';
import { addrsFromEnv, DEFAULT_CONFIG_PATH, onShutdown } from '@llmgw/runtime';
import { z } from 'zod';
import { startMonolith } from './monolith.js';
import { checkWholeConfig } from './whole-config.js';

/**
 * `npm start`: the whole mesh on one machine. With redis-server and nats-server on PATH, each
 * service is its own process (microservices mode); without them, monolithic mode.
 */
const env = process.env;
const say = (line: string) => process.stdout.write(`${line}\n`);
let launcherEnv;
try {
  launcherEnv = parseEnv(
    z.object({
      GATEWAY_CONFIG: envString(DEFAULT_CONFIG_PATH),
      /** monolith | microservices; default: microservices when redis-server and nats-server are on PATH. */
      LLMGW_MODE: envEnum(['monolith', 'microservices'] as const).optional(),
      SIMULATOR_PORT: envPort(50060),
      /** A provider simulator already running (the bench's, in its own process): none is started. */
      SIMULATOR_URL: z.string().url().optional(),
      /** The edge's HTTP surface, as the edge reads it ("off": none). */
      EDGE_HTTP_ADDR: envString('127.0.0.1:8080'),
      /** The accountant's usage dashboard, as the accountant reads it ("off": none). */
      ACCOUNTANT_HTTP_ADDR: envString('127.0.0.1:8081'),
      REDIS_PORT: envPort().optional(),
      NATS_PORT: envPort().optional(),
    }),
    env,
  );
} catch (err) {
  say(`llm-gateway cannot start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
const wantMonolith = launcherEnv.LLMGW_MODE === 'monolith';
const haveInfra = onPath('redis-server') && onPath('nats-server');
const microservices = !wantMonolith && (launcherEnv.LLMGW_MODE === 'microservices' || haveInfra);
if (microservices) {
  say('llm-gateway: microservices mode: redis-server, nats-server and six service processes on loopback');
} else {
  say(
    `llm-gateway: monolithic mode (${wantMonolith ? 'LLMGW_MODE=monolith' : 'redis-server or nats-server not on PATH'}): ` +
      'six services in one process, in-memory quota store and event bus; install redis-server and nats-server for microservices mode',
  );
}

const logger = createLogger({ service: 'launcher', level: env.LOG_LEVEL ?? 'warn' });
const configPath = launcherEnv.GATEWAY_CONFIG;
const simulator = launcherEnv.SIMULATOR_URL ? { url: launcherEnv.SIMULATOR_URL, close: async () => {} } : await startSimulator({ port: launcherEnv.SIMULATOR_PORT });
const httpAddr = launcherEnv.EDGE_HTTP_ADDR;
const dashboardAddr = launcherEnv.ACCOUNTANT_HTTP_ADDR;
const serviceEnv: Record<string, string> = { GATEWAY_CONFIG: configPath, SIMULATOR_URL: simulator.url, EDGE_HTTP_ADDR: httpAddr, ACCOUNTANT_HTTP_ADDR: dashboardAddr };
const stops: (() => Promise<void>)[] = [() => simulator.close()];

try {
  // The whole file is checked once here (each service then reads only its own sections of it).
  const whole = checkWholeConfig(configPath, { ...env, ...serviceEnv });
  if (!whole.ok) throw new Error(`invalid config ${whole.source}: ${whole.problems.join('; ')}`);
  const config = whole.config;
  const addrs = addrsFromEnv(env);
  if (microservices) {
    // A user per service with only the rights its role needs, as in production; passwords are fresh each run.
    const creds = meshCredentials();
    const redis: LocalServer = await startRedisServer({ port: launcherEnv.REDIS_PORT, users: creds.redisUsers });
    stops.unshift(() => redis.stop());
    const nats: LocalServer = await startNatsServer({ port: launcherEnv.NATS_PORT, users: creds.natsUsers });
    stops.unshift(() => nats.stop());
    const logDir = join(REPO_ROOT, '.tmp', 'logs');
    mkdirSync(logDir, { recursive: true });
    const ports = Object.fromEntries(Object.entries(addrs).map(([n, a]) => [n, Number(a.split(':').at(-1))]));
    // A new CA and certificates on every start: nothing of a previous run is trusted.
    const tlsDir = join(REPO_ROOT, '.tmp', 'mesh-tls');
    rmSync(tlsDir, { recursive: true, force: true });
    const pki = createMeshPki(tlsDir);
    const mesh = await startServiceProcesses({
      env: { ...serviceEnv, LOG_LEVEL: env.LOG_LEVEL ?? 'info', USAGE_OUTBOX_PATH: join(REPO_ROOT, '.tmp', 'usage-outbox.log') },
      serviceEnv: combineServiceEnv(pki.tlsEnv, creds.serviceEnv({ redis, nats })),
      ports,
      logDir,
    });
    stops.unshift(() => mesh.stop());
    // The servers' URLs carry the admin's password: only where they are, never who may log in.
    say(`redis redis://127.0.0.1:${redis.port}, nats nats://127.0.0.1:${nats.port} (a user per service); service logs in ${logDir}`);
    const op = pki.operatorDir;
    say(`mesh sealed: mutual TLS between the services, from a throwaway CA in ${pki.caDir}`);
    say(
      `  admin calls on internal services take the operator certificate, e.g. grpcurl -cacert ${op}/ca.crt -cert ${op}/tls.crt -key ${op}/tls.key ` +
        `-servername auth -H 'authorization: Bearer <admin key>' ${addrs.auth} list`,
    );
  } else {
    const mono = await startMonolith({ configPath, logger: createLogger({ service: 'monolith', level: env.LOG_LEVEL ?? 'info' }), addrs, env: { ...env, ...serviceEnv } });
    stops.unshift(() => mono.close());
  }
  printBanner(config, addrs.edge);
} catch (err) {
  say(`llm-gateway cannot start: ${err instanceof Error ? err.message : String(err)}`);
  for (const stop of stops) await stop().catch(() => undefined);
  process.exit(1);
}

onShutdown(logger, async () => {
  say('stopping...');
  for (const stop of stops) await stop().catch((err: unknown) => logger.error({ err }, 'stop failed'));
});

/** The banner is the one use of the whole config beyond the check: the demo keys and their tiers. */
function printBanner(config: GatewayConfig, edge: string): void {
  say(`simulated providers at ${simulator.url}`);
  say(`edge (llmgateway.v1.GatewayService) listening on ${edge}`);
  const baseUrl = httpAddr === 'off' ? undefined : `http://${httpAddr}/v1`;
  if (baseUrl) say(`HTTP base URL: ${baseUrl} (OpenAI- and Anthropic-compatible: /chat/completions, /embeddings, /models, /messages)`);
  if (dashboardAddr !== 'off') say(`usage dashboard: http://${dashboardAddr}/dashboard (an admin key sees every tenant, a tenant key its own)`);
  for (const k of config.api_keys) {
    const tenant = config.tenants[k.tenant];
    if (!k.key || !tenant) continue;
    say(`demo key, ${tenant.tier} tier (tenant ${k.tenant}${k.admin ? ', admin' : ''}): ${k.key}`);
  }
  const demo = config.api_keys.find((k) => k.key && !k.admin)?.key ?? '<key>';
  say(
    `try: grpcurl -plaintext -H 'authorization: Bearer ${demo}' -d '{"messages":[{"role":"ROLE_USER","content":"Hello"}]}' ${edge} llmgateway.v1.GatewayService/Chat`,
  );
  if (baseUrl) {
    say(
      `  or: curl ${baseUrl}/chat/completions -H 'authorization: Bearer ${demo}' -H 'content-type: application/json' ` +
        `-d '{"model":"${config.default_route}","messages":[{"role":"user","content":"Hello"}]}'`,
    );
  }
  say(`  or: npm run chat -- --key ${demo} "Hello"`);
  say('Ctrl-C stops everything.');
}
