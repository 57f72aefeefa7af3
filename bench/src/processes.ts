import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  canConnect,
  combineServiceEnv,
  createMeshPki,
  freePort,
  meshCredentials,
  REPO_ROOT,
  startNatsServer,
  startRedisServer,
  startServiceProcesses,
  type LocalServer,
  type MeshCertificates,
  type ServiceProcesses,
} from '@llmgw/local-infra';

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
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'tools/provider-simulator/src/main.ts')], {
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
 * user per service (the ACL and permission checks are part of the cost measured).
 */
export async function startBenchMesh(simulatorUrl: string, slowSimulatorUrl = simulatorUrl): Promise<BenchMesh> {
  const creds = meshCredentials();
  const [redis, nats] = await Promise.all([startRedisServer({ users: creds.redisUsers }), startNatsServer({ users: creds.natsUsers })]);
  const pki = createMeshPki(mkdtempSync(join(tmpdir(), 'llmgw-bench-tls-')));
  const mesh = await startServiceProcesses({
    env: {
      GATEWAY_CONFIG: fileURLToPath(new URL('../gateway.bench.yaml', import.meta.url)),
      SIMULATOR_URL: simulatorUrl,
      SLOW_SIMULATOR_URL: slowSimulatorUrl,
      LOG_LEVEL: 'warn',
    },
    serviceEnv: combineServiceEnv(pki.tlsEnv, creds.serviceEnv({ redis, nats })),
    logDir: mkdtempSync(join(tmpdir(), 'llmgw-bench-')),
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
