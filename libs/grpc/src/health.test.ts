import { credentials, makeGenericClientConstructor, status, type ServiceError } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_ECHOED_CHARS } from '@llmgw/errors';
import { createGrpcServer, drain, listen, setServing, type GrpcServer } from './server.js';

type HealthClient = {
  Check(req: { service: string }, opts: object, cb: (err: ServiceError | null, res: { status: string }) => void): void;
  Watch(req: { service: string }): NodeJS.EventEmitter & { cancel(): void };
  close(): void;
};
const HealthClientCtor = makeGenericClientConstructor(healthService, 'Health');
const clientOf = (port: number) => new HealthClientCtor(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as HealthClient;
const check = (c: HealthClient, service: string) =>
  new Promise<{ status?: string; err?: ServiceError }>((resolve) => c.Check({ service }, { deadline: Date.now() + 3_000 }, (err, res) => resolve(err ? { err } : { status: res.status })));

let servers: GrpcServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((g) => drain(g, 0, 100)));
  servers = [];
});

async function started(opts: Parameters<typeof createGrpcServer>[1] = {}): Promise<{ g: GrpcServer; port: number }> {
  const g = createGrpcServer(['llmgateway.router.v1.RouterService'], opts);
  servers.push(g);
  return { g, port: await listen(g, '127.0.0.1:0') };
}

describe('health', () => {
  it('reports the server and each service it serves', async () => {
    const { g, port } = await started();
    const c = clientOf(port);
    expect((await check(c, '')).status).toBe('SERVING');
    expect((await check(c, 'llmgateway.router.v1.RouterService')).status).toBe('SERVING');
    setServing(g, false);
    expect((await check(c, '')).status).toBe('NOT_SERVING');
    c.close();
  });

  it('answers an unknown service NOT_FOUND, quoting at most a bounded part of its name', async () => {
    const { port } = await started();
    const c = clientOf(port);
    const long = 'x'.repeat(10_000);
    const r = await check(c, long);
    expect(r.err?.code).toBe(status.NOT_FOUND);
    expect(r.err!.details.length).toBeLessThan(MAX_ECHOED_CHARS + 100);
    expect(r.err!.details).toContain('unknown service');
    c.close();
  });

  it('keeps a Watch of an unknown service open with SERVICE_UNKNOWN and updates a known one', async () => {
    const { g, port } = await started();
    const c = clientOf(port);
    const unknown = c.Watch({ service: 'nope' });
    const first = await new Promise<string>((resolve) => unknown.once('data', (m: { status: string }) => resolve(m.status)));
    expect(first).toBe('SERVICE_UNKNOWN');
    unknown.on('error', () => undefined);
    unknown.cancel();
    const known = c.Watch({ service: '' });
    known.on('error', () => undefined);
    const seen: string[] = [];
    known.on('data', (m: { status: string }) => seen.push(m.status));
    await new Promise((r) => setTimeout(r, 100));
    setServing(g, false);
    await new Promise((r) => setTimeout(r, 100));
    expect(seen).toEqual(['SERVING', 'NOT_SERVING']);
    known.cancel();
    c.close();
  });

});
