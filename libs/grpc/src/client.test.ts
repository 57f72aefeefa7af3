import { makeGenericClientConstructor, status, type ServiceError } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { afterEach, describe, expect, it } from 'vitest';
import { dial } from './client.js';
import { createGrpcServer, drain, listen, type GrpcServer } from './server.js';

type HealthClient = {
  Check(req: { service: string }, opts: object, cb: (err: ServiceError | null, res: { status: string }) => void): void;
  close(): void;
};
const HealthClientCtor = makeGenericClientConstructor(healthService, 'Health');

let servers: GrpcServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((g) => drain(g, 0, 100)));
  servers = [];
});

/** A replica that tells itself apart: its health knows only the service `name`. */
async function replica(name: string): Promise<number> {
  const g = createGrpcServer([name]);
  servers.push(g);
  return listen(g, '127.0.0.1:0');
}

/** Which replica answered: the one that knows `name` says SERVING, the other NOT_FOUND. */
function answeredBy(c: HealthClient, name: string): Promise<boolean> {
  return new Promise((resolve, reject) =>
    c.Check({ service: name }, { deadline: Date.now() + 3_000 }, (err, res) => {
      if (err && err.code !== status.NOT_FOUND) reject(err);
      else resolve(!err && res.status === 'SERVING');
    }),
  );
}

describe('dial', () => {
  it('spreads calls round robin over every address of the target, not all to the first', async () => {
    const a = await replica('replica.a');
    const b = await replica('replica.b');
    const c = dial(HealthClientCtor, `ipv4:127.0.0.1:${a},127.0.0.1:${b}`) as unknown as HealthClient;
    // Until both connections are up, calls go to the one that is; pick_first would never reach b.
    const seen = new Set<boolean>();
    const until = Date.now() + 5_000;
    while (seen.size < 2 && Date.now() < until) seen.add(await answeredBy(c, 'replica.a'));
    expect(seen.size).toBe(2);
    const byA: boolean[] = [];
    for (let i = 0; i < 20; i++) byA.push(await answeredBy(c, 'replica.a'));
    // Both ready: each takes every other call.
    expect(byA.filter(Boolean)).toHaveLength(10);
    expect(byA.every((v, i) => i === 0 || v !== byA[i - 1])).toBe(true);
    c.close();
  });
});
