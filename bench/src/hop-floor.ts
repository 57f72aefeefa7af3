import { makeGenericClientConstructor, type ServiceError } from '@grpc/grpc-js';
import type { ChannelLink } from '@llmgw/grpc';
import { service as healthService } from 'grpc-health-check';
import { closedLoop, summarise, type Summary } from './stats.js';

type HealthClient = { Check: (req: object, cb: (err: ServiceError | null) => void) => void; close(): void };

/**
 * The cost of one gRPC hop on this machine, as a floor for everything else: a health check
 * against an otherwise idle service, back to back (both processes stay on CPU) and after 3 ms
 * of idleness (the receiving process has gone to sleep and must be woken, as every service in a
 * one-request-at-a-time pipeline is).
 */
export async function measureHopFloor(addr: string, link: ChannelLink): Promise<{ hot: Summary; idle: Summary }> {
  const Client = makeGenericClientConstructor(healthService, 'Health');
  const client = new Client(addr, link.credentials, link.options) as unknown as HealthClient;
  const check = () => new Promise<void>((resolve, reject) => client.Check({ service: '' }, (err) => (err ? reject(err) : resolve())));
  await closedLoop(500, 1, check);
  const hot = await closedLoop(2000, 1, check);
  const idle: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < 400; i++) {
    await new Promise((r) => setTimeout(r, 3));
    const t = performance.now();
    await check();
    idle.push(performance.now() - t);
  }
  client.close();
  return { hot: summarise(hot.latencies, hot.elapsedMs), idle: summarise(idle, performance.now() - t0) };
}
