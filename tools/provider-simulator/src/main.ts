import { pino } from 'pino';
import { startSimulator } from './index.js';

/** CLI: `tsx tools/provider-simulator/src/main.ts`. Env: SIM_PORT (50060), SIM_HOST, SIM_LATENCY_MS, SIM_STREAM_CHUNK_DELAY_MS. */
async function main(): Promise<void> {
  const log = pino({ name: 'provider-simulator', level: process.env['LOG_LEVEL'] ?? 'info' });
  const port = Number(process.env['SIM_PORT'] ?? 50060);
  const latencyMs = Number(process.env['SIM_LATENCY_MS'] ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid SIM_PORT: ${process.env['SIM_PORT']}`);
  if (!Number.isFinite(latencyMs) || latencyMs < 0) throw new Error(`invalid SIM_LATENCY_MS: ${process.env['SIM_LATENCY_MS']}`);
  const streamChunkDelayMs = Number(process.env['SIM_STREAM_CHUNK_DELAY_MS'] ?? 0);
  if (!Number.isFinite(streamChunkDelayMs) || streamChunkDelayMs < 0) {
    throw new Error(`invalid SIM_STREAM_CHUNK_DELAY_MS: ${process.env['SIM_STREAM_CHUNK_DELAY_MS']}`);
  }
  const sim = await startSimulator({ host: process.env['SIM_HOST'] ?? '127.0.0.1', port, latencyMs, streamChunkDelayMs });
  log.info({ url: sim.url, port: sim.port, latencyMs }, 'provider simulator listening');

  const shutdown = (signal: string): void => {
    log.info({ signal }, 'provider simulator stopping');
    void sim.close().then(() => process.exit(0));
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`provider simulator failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
