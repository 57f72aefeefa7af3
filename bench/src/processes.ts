import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  canConnect,
  combineServiceEnv,
  createMeshPki,
  freePort,
  meshCredentials,
  programArgs,
  startNatsServer,
  startRedisServer,
  startServiceProcesses,
  type LocalServer,
  type MeshCertificates,
  type ServiceProcesses,
  type ServiceProcessesOptions,
} from '@llmgw/local-infra';
import { ADDR_ENV, SERVICE_NAMES } from '@llmgw/runtime';

export const BENCH_CONFIG = fileURLToPath(new URL('../gateway.bench.yaml', import.meta.url));

/** Resident set size of a process from /proc, in MiB: VmHWM is the peak so far, VmRSS the current. */
export function rssMiB(pid: number | undefined, field: 'VmHWM' | 'VmRSS'): number {
  if (pid === undefined) return NaN;
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** CPU time (user + system) a process has used so far, in microseconds. */
export function cpuMicros(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks * 10_000; // USER_HZ is 100 on Linux
  } catch {
    return NaN;
  }
}

/** The simulator as its own process, so that its CPU and memory are not the benchmark's. */
export async function spawnSimulator(env: Record<string, string> = {}): Promise<{ url: string; process: ChildProcess; stop(): void }> {
  const port = await freePort();
  const child = spawn(process.execPath, programArgs('tools/provider-simulator/src/main.ts'), {
    env: { ...process.env, SIM_PORT: String(port), LOG_LEVEL: 'warn', ...env },
    stdio: 'ignore',
  });
  while (!(await canConnect(port))) await new Promise((r) => setTimeout(r, 50));
  return { url: `http://127.0.0.1:${port}`, process: child, stop: () => child.kill('SIGTERM') };
}

export interface BenchMesh {
  mesh: ServiceProcesses;
  redis: LocalServer;
  nats: LocalServer;
  pki: MeshCertificates;
  stop(): Promise<void>;
}

/**
 * The mesh as `npm start` runs it, on the bench config: sealed with mutual TLS, a NATS and a Redis
 * user per service (the ACL and permission checks are part of the cost measured), the executor's
 * usage outbox on disk.
 */
export async function startBenchMesh(
  simulatorUrl: string,
  slowSimulatorUrl = simulatorUrl,
  nodeFlags?: ServiceProcessesOptions['nodeFlags'],
  extraEnv: Record<string, string> = {},
): Promise<BenchMesh> {
  const creds = meshCredentials();
  const [redis, nats] = await Promise.all([startRedisServer({ users: creds.redisUsers }), startNatsServer({ users: creds.natsUsers })]);
  const pki = createMeshPki(mkdtempSync(join(tmpdir(), 'llmgw-bench-tls-')));
  const logDir = mkdtempSync(join(tmpdir(), 'llmgw-bench-'));
  const mesh = await startServiceProcesses({
    env: {
      GATEWAY_CONFIG: BENCH_CONFIG,
      SIMULATOR_URL: simulatorUrl,
      SLOW_SIMULATOR_URL: slowSimulatorUrl,
      LOG_LEVEL: 'warn',
      ...extraEnv,
    },
    serviceEnv: combineServiceEnv(pki.tlsEnv, creds.serviceEnv({ redis, nats }), {
      // The executor's durable usage outbox, as npm start and the manifests give it: every note fsynced before its provider call.
      'provider-executor': { USAGE_OUTBOX_PATH: join(logDir, 'usage-outbox.log') },
    }),
    logDir,
    nodeFlags,
  });
  return {
    mesh,
    redis,
    nats,
    pki,
    stop: async () => {
      await mesh.stop();
      await Promise.all([redis.stop(), nats.stop()]);
    },
  };
}

/** `npm start` in monolithic mode on the bench config, against a simulator of its own process. */
export async function startBenchMonolith(simulatorUrl: string, nodeFlags: string[] = []): Promise<{ grpcAddr: string; httpAddr: string; process: ChildProcess; stop(): Promise<void> }> {
  const env: Record<string, string> = {
    LLMGW_MODE: 'monolith',
    GATEWAY_CONFIG: BENCH_CONFIG,
    SIMULATOR_URL: simulatorUrl,
    SLOW_SIMULATOR_URL: simulatorUrl,
    EDGE_HTTP_ADDR: `127.0.0.1:${await freePort()}`,
    ACCOUNTANT_HTTP_ADDR: `127.0.0.1:${await freePort()}`,
    LOG_LEVEL: 'warn',
  };
  for (const n of SERVICE_NAMES) env[ADDR_ENV[n]] = `127.0.0.1:${await freePort()}`;
  const log = join(mkdtempSync(join(tmpdir(), 'llmgw-bench-monolith-')), 'launcher.log');
  const child = spawn(process.execPath, [...nodeFlags, ...programArgs('tools/launcher/src/main.ts')], { env: { ...process.env, ...env }, stdio: ['ignore', openSync(log, 'w'), openSync(log, 'a')] });
  const grpcAddr = env[ADDR_ENV.edge]!;
  try {
    await waitForPort(Number(grpcAddr.split(':')[1]), child);
  } catch (err) {
    throw new Error(`monolith launcher did not start (${log}):\n${readFileSync(log, 'utf8').slice(-2000)}`, { cause: err });
  }
  return { grpcAddr, httpAddr: env.EDGE_HTTP_ADDR!, process: child, stop: () => stopChild(child) };
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`process ${child.pid} did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** The peer gateway the bench compares with, pinned; installed once into the temp folder. */
export const PORTKEY_VERSION = '1.15.2';

/**
 * Portkey's open-source gateway as its README runs it (one Node.js process), in production mode
 * and headless (no log UI); it reaches the simulator as a custom OpenAI host.
 */
export async function startPortkey(): Promise<{ url: string; process: ChildProcess; stop(): Promise<void> }> {
  const dir = join(tmpdir(), `llmgw-bench-portkey-${PORTKEY_VERSION}`);
  const pkg = join(dir, 'node_modules', '@portkey-ai', 'gateway');
  const installed = (() => {
    try {
      return JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')).version === PORTKEY_VERSION;
    } catch {
      return false;
    }
  })();
  if (!installed) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), '{ "private": true }\n');
    const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--omit=dev', `@portkey-ai/gateway@${PORTKEY_VERSION}`], { cwd: dir, encoding: 'utf8' });
    if (npm.status !== 0) throw new Error(`installing @portkey-ai/gateway@${PORTKEY_VERSION} failed: ${npm.stderr.slice(-500)}`);
  }
  const port = await freePort();
  const child = spawn(process.execPath, [join(pkg, 'build', 'start-server.js'), `--port=${port}`, '--headless'], {
    cwd: dir,
    env: { ...process.env, NODE_ENV: 'production' },
    stdio: 'ignore',
  });
  await waitForPort(port, child);
  return { url: `http://127.0.0.1:${port}`, process: child, stop: () => stopChild(child) };
}
