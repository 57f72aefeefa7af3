import { envString, gatherConfig, parseEnv } from '@llmgw/config';
import { connectNatsBus, dedupeHorizonMs } from '@llmgw/events';
import { createLogger } from '@llmgw/logging';
import { connectRedis } from '@llmgw/redis';
import { envRedisUrl } from '@llmgw/runtime';
import { z } from 'zod';
import { loadUsageAccountantConfig } from './config.js';
import { runReplay } from './replay.js';
import { RedisUsageStore } from './usage-store.js';

/**
 * npm run usage:replay -- --check | --write
 * Rebuilds the accountant's aggregates from the USAGE stream; --check compares them with Redis
 * (exit 1 on any difference), --write replaces Redis's (stop the accountant first).
 */
const USAGE = 'usage: npm run usage:replay -- --check | --write';
const mode = process.argv.includes('--write') ? 'write' : process.argv.includes('--check') ? 'check' : undefined;
const logger = createLogger({ service: 'usage-replay', level: process.env.LOG_LEVEL ?? 'warn' });
if (!mode || (process.argv.includes('--write') && process.argv.includes('--check'))) {
  console.error(USAGE);
  process.exit(2);
}
try {
  const { env, config } = gatherConfig({
    env: () => parseEnv(z.object({ NATS_URL: envString(), REDIS_URL: envRedisUrl(), GATEWAY_CONFIG: envString('config/gateway.yaml') })),
    config: () => loadUsageAccountantConfig(process.env.GATEWAY_CONFIG || 'config/gateway.yaml', process.env),
  });
  const bus = await connectNatsBus({ url: env.NATS_URL, name: 'usage-replay', logger });
  const redis = await connectRedis(env.REDIS_URL, { logger });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([bus.ready(), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('NATS not reachable within 10 s')), 10_000)))]);
  clearTimeout(timer);
  const code = await runReplay({
    bus,
    store: new RedisUsageStore(redis, { dedupeTtlMs: dedupeHorizonMs(bus.settings) }),
    tenants: new Set(Object.keys(config.sections.tenants)),
    mode,
    out: (line) => console.log(line),
  });
  await bus.close();
  redis.disconnect();
  process.exit(code);
} catch (err) {
  console.error(`usage replay failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(2);
}
