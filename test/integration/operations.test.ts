import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPackageDefinition, makeGenericClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { service as healthService } from 'grpc-health-check';
import { describe, expect, it, vi } from 'vitest';
import { freePort, programArgs, REPO_ROOT, startNatsServer, startRedisServer } from '@llmgw/local-infra';
import { SERVICE_NAMES, type ServiceName } from '@llmgw/runtime';
import { callUnary, dial, PLAINTEXT, type ChannelLink } from '@llmgw/grpc';
import { AuthServiceClient } from '@llmgw/proto/auth';
import { KEYS, TEST_CONFIG, useTestMesh } from '../src/harness.js';

const mesh = useTestMesh();

const OWN_SERVICES: Record<ServiceName, string[]> = {
  edge: ['llmgateway.v1.GatewayService', 'llmgateway.v1.UsageService'],
  auth: ['llmgateway.auth.v1.AuthService'],
  quota: ['llmgateway.quota.v1.QuotaService', 'llmgateway.mux.v1.MultiplexerService'],
  router: ['llmgateway.router.v1.RouterService'],
  'provider-executor': ['llmgateway.executor.v1.ExecutorService', 'llmgateway.mux.v1.MultiplexerService'],
  'usage-accountant': ['llmgateway.v1.UsageService'],
};

function runService(name: ServiceName, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, programArgs(`services/${name}/src/main.ts`), {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

const plaintext = PLAINTEXT.channelTo('');

function healthCheck(addr: string, service: string, link: ChannelLink = plaintext): Promise<string> {
  const Client = makeGenericClientConstructor(healthService, 'Health');
  const client = new Client(addr, link.credentials, link.options) as unknown as {
    Check: (req: object, opts: object, cb: (err: ServiceError | null, res: { status: string }) => void) => void;
    close(): void;
  };
  return new Promise((resolve, reject) => {
    client.Check({ service }, { deadline: Date.now() + 3_000 }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res.status);
    });
  });
}

function listServices(addr: string, link: ChannelLink = plaintext): Promise<string[]> {
  const protoDir = join(createRequire(import.meta.url).resolve('@grpc/reflection'), '../../proto');
  const pkg = loadPackageDefinition(loadSync('grpc/reflection/v1/reflection.proto', { includeDirs: [protoDir] })) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: new (addr: string, creds: ChannelLink['credentials'], options: ChannelLink['options']) => {
      ServerReflectionInfo: () => NodeJS.EventEmitter & { write(m: object): void; end(): void };
      close(): void;
    } } } };
  };
  const client = new pkg.grpc.reflection.v1.ServerReflection(addr, link.credentials, link.options);
  return new Promise((resolve, reject) => {
    const call = client.ServerReflectionInfo();
    call.on('data', (m: { listServicesResponse?: { service: { name: string }[] } }) => {
      resolve(m.listServicesResponse?.service.map((s) => s.name) ?? []);
      call.end();
      client.close();
    });
    call.on('error', reject);
    call.write({ listServices: '' });
  });
}

describe('operating the services', () => {
  it.each(SERVICE_NAMES)('%s serves grpc.health.v1 as SERVING and server reflection', async (name) => {
    const addr = mesh().services.addrs[name];
    const link = mesh().linkAs('operator', name);
    expect(await healthCheck(addr, '', link)).toBe('SERVING');
    const services = await listServices(addr, link);
    expect(services).toContain('grpc.health.v1.Health');
    // Reflection lists what this server serves, not every service of the mesh.
    expect(services.filter((s) => s.startsWith('llmgateway.')).sort()).toEqual([...OWN_SERVICES[name]].sort());
  });

  it('refuses to start on a bad config with one line naming the file and every problem, and exit code 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-badcfg-'));
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, 'default_route: nowhere\nproviders: {}\nmodels: {}\nroutes: {}\ntiers: {}\ntenants: {}\n');
    const { code, output } = await runService('router', { GATEWAY_CONFIG: path, NATS_URL: 'nats://127.0.0.1:1', ROUTER_ADDR: `127.0.0.1:${await freePort()}` });
    expect(code).toBe(1);
    const fatal = output.split('\n').filter((l) => l.includes('"level":"fatal"'));
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toContain(path);
    expect(fatal[0]).toContain('default_route: unknown route');
  });

  it.each([
    ['quota', 'QUOTA_ADDR'],
    ['auth', 'AUTH_ADDR'],
  ] as const)('%s starts while Redis is down, reports NOT_SERVING, and serves once Redis appears, without a restart', async (name, addrEnv) => {
    const nats = await startNatsServer();
    const redisPort = await freePort();
    const addr = `127.0.0.1:${await freePort()}`;
    const child = spawn(process.execPath, programArgs(`services/${name}/src/main.ts`), {
      cwd: REPO_ROOT,
      env: { ...process.env, GATEWAY_CONFIG: TEST_CONFIG, SIMULATOR_URL: 'http://127.0.0.1:9', REDIS_URL: `redis://127.0.0.1:${redisPort}`, NATS_URL: nats.url, [addrEnv]: addr },
      stdio: 'ignore',
    });
    let redis: Awaited<ReturnType<typeof startRedisServer>> | undefined;
    try {
      const own = OWN_SERVICES[name][0]!;
      await vi.waitFor(async () => expect(await healthCheck(addr, own)).toBe('NOT_SERVING'), { timeout: 15_000, interval: 100 });
      expect(child.exitCode).toBeNull();
      redis = await startRedisServer({ port: redisPort });
      await vi.waitFor(async () => expect(await healthCheck(addr, own)).toBe('SERVING'), { timeout: 10_000, interval: 100 });
    } finally {
      child.kill('SIGKILL');
      await Promise.all([nats.stop(), redis?.stop()]);
    }
  }, 40_000);

  it('serves Prometheus metrics on METRICS_PORT, counting RPCs by method and code', async () => {
    const metricsPort = await freePort();
    const [redis, nats] = [mesh().redis, mesh().nats];
    const authPort = await freePort();
    const child = spawn(process.execPath, programArgs('services/auth/src/main.ts'), {
      cwd: REPO_ROOT,
      env: { ...process.env, GATEWAY_CONFIG: TEST_CONFIG, SIMULATOR_URL: 'http://127.0.0.1:9', REDIS_URL: redis.url, NATS_URL: nats.url, AUTH_ADDR: `127.0.0.1:${authPort}`, METRICS_PORT: String(metricsPort) },
      stdio: 'ignore',
    });
    try {
      const deadline = Date.now() + 15_000;
      while ((await healthCheck(`127.0.0.1:${authPort}`, '').catch(() => '')) !== 'SERVING' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const client = dial(AuthServiceClient, `127.0.0.1:${authPort}`);
      await callUnary(client.authenticate.bind(client), { apiKey: KEYS.enterprise }, { timeoutMs: 3_000 });
      await callUnary(client.authenticate.bind(client), { apiKey: 'sk-wrong-key-000000000' }, { timeoutMs: 3_000 }).catch(() => undefined);
      client.close();
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      expect(text).toMatch(/grpc_server_handled_total\{[^}]*method="Authenticate"[^}]*code="OK"[^}]*\} 1/);
      expect(text).toMatch(/grpc_server_handled_total\{[^}]*method="Authenticate"[^}]*code="UNAUTHENTICATED"[^}]*\} 1/);
      expect(text).toContain('service="auth"');
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('drains and exits 0 on SIGTERM', async () => {
    const [redis, nats] = await Promise.all([startRedisServer(), startNatsServer()]);
    const port = await freePort();
    try {
      const child = spawn(process.execPath, programArgs('services/auth/src/main.ts'), {
        cwd: REPO_ROOT,
        env: { ...process.env, GATEWAY_CONFIG: TEST_CONFIG, SIMULATOR_URL: 'http://127.0.0.1:9', REDIS_URL: redis.url, NATS_URL: nats.url, AUTH_ADDR: `127.0.0.1:${port}` },
        stdio: 'ignore',
      });
      const deadline = Date.now() + 15_000;
      let status = '';
      while (status !== 'SERVING' && Date.now() < deadline) {
        status = await healthCheck(`127.0.0.1:${port}`, '').catch(() => '');
        if (status !== 'SERVING') await new Promise((r) => setTimeout(r, 100));
      }
      expect(status).toBe('SERVING');
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      await Promise.all([redis.stop(), nats.stop()]);
    }
  });
});
