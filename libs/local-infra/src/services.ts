import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { ADDR_ENV, METRICS_PORT_ENV, METRICS_PORT_OFFSET, SERVICE_NAMES, type ServiceAddrs, type ServiceName } from '@llmgw/runtime';
import { canConnect, freePort } from './processes.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface ServiceProcessesOptions {
  env: Record<string, string>;
  /** Port per service; missing ones get a free port. */
  ports?: Partial<Record<ServiceName, number>>;
  /** Each service's stdout and stderr go to <logDir>/<service>.log. */
  logDir: string;
  services?: readonly ServiceName[];
}

export interface ServiceProcesses {
  addrs: ServiceAddrs;
  processes: Map<ServiceName, ChildProcess>;
  /** SIGTERM to each (they drain), SIGKILL after the grace period. */
  stop(graceMs?: number): Promise<void>;
  stopOne(name: ServiceName, signal?: NodeJS.Signals): Promise<void>;
}

/** Runs each service as its own Node.js process, the microservices mode. */
export async function startServiceProcesses(opts: ServiceProcessesOptions): Promise<ServiceProcesses> {
  mkdirSync(opts.logDir, { recursive: true });
  const names = opts.services ?? SERVICE_NAMES;
  const addrs = {} as ServiceAddrs;
  for (const n of SERVICE_NAMES) addrs[n] = `127.0.0.1:${opts.ports?.[n] ?? (await freePort())}`;
  const addrEnv = Object.fromEntries(SERVICE_NAMES.map((n) => [ADDR_ENV[n], addrs[n]]));
  const processes = new Map<ServiceName, ChildProcess>();
  const exited = new Map<ServiceName, number | null>();
  const env = { ...process.env, ...opts.env, ...addrEnv };
  // One METRICS_PORT for the mesh: each process serves on it plus its offset, as in monolithic mode.
  const metricsBase = env[METRICS_PORT_ENV] ? Number(env[METRICS_PORT_ENV]) : undefined;
  for (const name of names) {
    const logPath = join(opts.logDir, `${name}.log`);
    const log = createWriteStream(logPath);
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'services', name, 'src', 'main.ts')], {
      cwd: REPO_ROOT,
      env: metricsBase ? { ...env, [METRICS_PORT_ENV]: String(metricsBase + METRICS_PORT_OFFSET[name]) } : env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    child.once('exit', (code) => exited.set(name, code));
    processes.set(name, child);
  }
  const stopOne = async (name: ServiceName, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000) => {
    const child = processes.get(name);
    if (!child || exited.has(name)) return;
    const done = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await done;
    clearTimeout(timer);
  };
  const stop = async (graceMs = 5_000) => {
    await Promise.all(names.map((n) => stopOne(n, 'SIGTERM', graceMs)));
  };
  const deadline = Date.now() + 30_000;
  for (const name of names) {
    const port = Number(addrs[name].split(':')[1]);
    while (!(await canConnect(port))) {
      if (exited.has(name) || Date.now() > deadline) {
        await stop();
        const logTail = readFileSync(join(opts.logDir, `${name}.log`), 'utf8').split('\n').slice(-5).join('\n');
        throw new Error(`${name} did not start (${exited.has(name) ? `exit code ${exited.get(name)}` : 'timeout'}):\n${logTail}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { addrs, processes, stop, stopOne: (n, s) => stopOne(n, s) };
}
