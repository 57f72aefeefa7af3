import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADDR_ENV, METRICS_PORT_ENV, METRICS_PORT_OFFSET, SERVICE_NAMES, SERVICE_NODE_FLAGS, type ServiceAddrs, type ServiceName } from '@llmgw/runtime';
import { canConnect, freePort } from './processes.js';
import { programArgs, REPO_ROOT } from './programs.js';

export interface ServiceProcessesOptions {
  env: Record<string, string>;
  /** Port per service; missing ones get a free port. */
  ports?: Partial<Record<ServiceName, number>>;
  /** Each service's stdout and stderr go to <logDir>/<service>.log. */
  logDir: string;
  services?: readonly ServiceName[];
  /** Environment of one service only (its certificate, its NATS and Redis user), on top of env; replicas get it too. */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  /** Node.js flags of one service's process (the bench's CPU profiles). */
  nodeFlags?: (name: ServiceName) => string[];
  /**
   * Processes per service (default 1). A service run more than once has each process listen on a
   * port of its own (GRPC_LISTEN_ADDR) and is dialled at all of them (`ipv4:a,b`: calls round
   * robin), as a headless Service's pods are; each has its own metrics port and, for an edge or an
   * accountant, its own HTTP port.
   */
  replicas?: Partial<Record<ServiceName, number>>;
}

export interface ServiceProcesses {
  /** Where each service is dialled: its address, or the list of its processes' (`ipv4:a,b`). */
  addrs: ServiceAddrs;
  /** Each process's own address, per service, the first being `processes`'s. */
  processAddrs: Record<ServiceName, string[]>;
  /** Each process's metrics port, in processAddrs' order (when the mesh serves metrics). */
  metricsPorts: Record<ServiceName, number[]>;
  /** The edge's HTTP surface (EDGE_HTTP_ADDR), base URL `http://<edgeHttpAddr>/v1`. */
  edgeHttpAddr: string;
  /** The accountant's usage dashboard (ACCOUNTANT_HTTP_ADDR), `http://<dashboardAddr>/dashboard`. */
  dashboardAddr: string;
  processes: Map<ServiceName, ChildProcess>;
  /** SIGTERM to each (they drain), SIGKILL after the grace period. */
  stop(graceMs?: number): Promise<void>;
  stopOne(name: ServiceName, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a stopped (or killed) service again on its address, with extra environment; waits until it listens. */
  restart(name: ServiceName, env?: Record<string, string>): Promise<void>;
  /** Starts one more replica of a service on a port of its own; stopped with the rest. */
  addReplica(name: ServiceName, env?: Record<string, string>): Promise<ServiceReplica>;
}

export interface ServiceReplica {
  addr: string;
  process: ChildProcess;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Runs each service as its own Node.js process, the microservices mode. */
export async function startServiceProcesses(opts: ServiceProcessesOptions): Promise<ServiceProcesses> {
  mkdirSync(opts.logDir, { recursive: true });
  const names = opts.services ?? SERVICE_NAMES;
  const count = (n: ServiceName) => Math.max(1, opts.replicas?.[n] ?? 1);
  const processAddrs = {} as Record<ServiceName, string[]>;
  for (const n of SERVICE_NAMES) {
    processAddrs[n] = [`127.0.0.1:${opts.ports?.[n] ?? (await freePort())}`];
    for (let i = 1; i < count(n); i++) processAddrs[n].push(`127.0.0.1:${await freePort()}`);
  }
  const addrs = Object.fromEntries(SERVICE_NAMES.map((n) => [n, count(n) > 1 ? `ipv4:${processAddrs[n].join(',')}` : processAddrs[n][0]])) as ServiceAddrs;
  const edgeHttpAddr = opts.env.EDGE_HTTP_ADDR ?? `127.0.0.1:${await freePort()}`;
  const dashboardAddr = opts.env.ACCOUNTANT_HTTP_ADDR ?? `127.0.0.1:${await freePort()}`;
  const addrEnv: Record<string, string> = {
    ...Object.fromEntries(SERVICE_NAMES.map((n) => [ADDR_ENV[n], addrs[n]])),
    EDGE_HTTP_ADDR: edgeHttpAddr,
    ACCOUNTANT_HTTP_ADDR: dashboardAddr,
  };
  const processes = new Map<ServiceName, ChildProcess>();
  const replicas = new Set<ServiceReplica>();
  const env = { ...process.env, ...opts.env, ...addrEnv };
  // One METRICS_PORT for the mesh: each process serves on it plus its offset, as in monolithic mode.
  const metricsBase = env[METRICS_PORT_ENV] ? Number(env[METRICS_PORT_ENV]) : undefined;
  let logSeq = 0;

  const spawnService = (name: ServiceName, extra: Record<string, string>, logName: string): ChildProcess => {
    const log = createWriteStream(join(opts.logDir, `${logName}.log`), { flags: 'a' });
    const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS, ...(opts.nodeFlags?.(name) ?? []), ...programArgs(`services/${name}/src/main.ts`)], {
      cwd: REPO_ROOT,
      env: { ...env, ...opts.serviceEnv?.[name], ...(metricsBase ? { [METRICS_PORT_ENV]: String(metricsBase + METRICS_PORT_OFFSET[name]) } : {}), ...extra },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    return child;
  };
  const running = (child: ChildProcess | undefined) => child !== undefined && child.exitCode === null && child.signalCode === null;
  const kill = async (child: ChildProcess, signal: NodeJS.Signals, graceMs: number) => {
    if (!running(child)) return;
    const done = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await done;
    clearTimeout(timer);
  };
  const stopOne = (name: ServiceName, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000) => {
    const child = processes.get(name);
    return child ? kill(child, signal, graceMs) : Promise.resolve();
  };
  const stop = async (graceMs = 5_000) => {
    await Promise.all([...names.map((n) => stopOne(n, 'SIGTERM', graceMs)), ...[...replicas].map((r) => kill(r.process, 'SIGTERM', graceMs))]);
  };
  const waitListening = async (name: ServiceName, child: ChildProcess, addr: string, logName: string) => {
    const port = Number(addr.split(':')[1]);
    const deadline = Date.now() + 30_000;
    while (!(await canConnect(port))) {
      if (!running(child) || Date.now() > deadline) {
        const logTail = readFileSync(join(opts.logDir, `${logName}.log`), 'utf8').split('\n').slice(-5).join('\n');
        throw new Error(`${name} did not start (${running(child) ? 'timeout' : `exit code ${child.exitCode}`}):\n${logTail}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const metricsPorts = Object.fromEntries(SERVICE_NAMES.map((n) => [n, metricsBase ? [metricsBase + METRICS_PORT_OFFSET[n]] : []])) as Record<ServiceName, number[]>;
  /** The environment of a service's process `i` beyond the first: its own ports. */
  const ownPorts = async (name: ServiceName, i: number): Promise<Record<string, string>> => {
    const own: Record<string, string> = { GRPC_LISTEN_ADDR: processAddrs[name][i] as string };
    if (metricsBase) {
      const port = await freePort();
      metricsPorts[name].push(port);
      own[METRICS_PORT_ENV] = String(port);
    }
    if (name === 'edge') own.EDGE_HTTP_ADDR = `127.0.0.1:${await freePort()}`;
    if (name === 'usage-accountant') own.ACCOUNTANT_HTTP_ADDR = `127.0.0.1:${await freePort()}`;
    return own;
  };
  const started: { name: ServiceName; child: ChildProcess; addr: string; logName: string }[] = [];
  for (const name of names) {
    const first = spawnService(name, count(name) > 1 ? { GRPC_LISTEN_ADDR: processAddrs[name][0] as string } : {}, name);
    processes.set(name, first);
    started.push({ name, child: first, addr: processAddrs[name][0] as string, logName: name });
    for (let i = 1; i < count(name); i++) {
      const logName = `${name}-${i}`;
      const child = spawnService(name, await ownPorts(name, i), logName);
      replicas.add({ addr: processAddrs[name][i] as string, process: child, stop: (signal = 'SIGTERM') => kill(child, signal, 5_000) });
      started.push({ name, child, addr: processAddrs[name][i] as string, logName });
    }
  }
  try {
    for (const s of started) await waitListening(s.name, s.child, s.addr, s.logName);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    addrs,
    processAddrs,
    metricsPorts,
    edgeHttpAddr,
    dashboardAddr,
    processes,
    stop,
    stopOne: (n, s) => stopOne(n, s),
    restart: async (name, extra = {}) => {
      await stopOne(name);
      const child = spawnService(name, { ...(count(name) > 1 ? { GRPC_LISTEN_ADDR: processAddrs[name][0] as string } : {}), ...extra }, name);
      processes.set(name, child);
      await waitListening(name, child, processAddrs[name][0] as string, name);
    },
    addReplica: async (name, extra = {}) => {
      const addr = `127.0.0.1:${await freePort()}`;
      const logName = `${name}-replica-${++logSeq}`;
      // A metrics port of its own too, when the mesh serves metrics.
      const metrics: Record<string, string> = metricsBase ? { [METRICS_PORT_ENV]: String(await freePort()) } : {};
      // An edge replica serves HTTP on a port of its own too, and an accountant replica its dashboard.
      const http: Record<string, string> =
        name === 'edge' ? { EDGE_HTTP_ADDR: `127.0.0.1:${await freePort()}` } : name === 'usage-accountant' ? { ACCOUNTANT_HTTP_ADDR: `127.0.0.1:${await freePort()}` } : {};
      const child = spawnService(name, { GRPC_LISTEN_ADDR: addr, ...metrics, ...http, ...extra }, logName);
      const replica: ServiceReplica = { addr, process: child, stop: (signal = 'SIGTERM') => kill(child, signal, 5_000) };
      replicas.add(replica);
      await waitListening(name, child, addr, logName);
      return replica;
    },
  };
}

/** Per-service environments merged (certificates, credentials, ...): later maps win on a shared variable. */
export function combineServiceEnv(...maps: Partial<Record<ServiceName, Record<string, string>>>[]): Partial<Record<ServiceName, Record<string, string>>> {
  const out: Partial<Record<ServiceName, Record<string, string>>> = {};
  for (const m of maps) for (const [name, env] of Object.entries(m) as [ServiceName, Record<string, string>][]) out[name] = { ...out[name], ...env };
  return out;
}
