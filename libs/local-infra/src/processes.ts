import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NATS_ADMIN_USER, natsAuthorizationConfig } from '@llmgw/events';
import { REDIS_ADMIN_USER, redisAclFile, type RedisUserName } from '@llmgw/redis';
import type { ServiceName } from '@llmgw/runtime';

/** Real infrastructure started on loopback for tests and for `npm start`. */
export interface LocalServer {
  /** With the admin's credentials when the server was started with users: for tests and tools that inspect it. */
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

export function onPath(binary: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${binary}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Ports below Linux's ephemeral range (32768–60999 by default), so that between this check and
 * the bind no outgoing connection of a test running beside takes the port as its source port
 * (port 0 hands out exactly those, and a busy test run collided with them).
 */
const LISTEN_PORTS = { from: 20_000, to: 32_000 };

/**
 * Test files run in parallel workers, and a port is free only until its server binds it (a
 * restarted service binds its old port again, much later): each vitest worker draws from its own
 * slice of the range, so two workers never hand out one port (a CI run lost a test to that).
 */
const WORKER_SLICES = 8;

function portRange(): { from: number; to: number } {
  const pool = Number(process.env.VITEST_POOL_ID);
  if (!Number.isInteger(pool) || pool < 1) return LISTEN_PORTS;
  const width = Math.floor((LISTEN_PORTS.to - LISTEN_PORTS.from) / WORKER_SLICES);
  const from = LISTEN_PORTS.from + ((pool - 1) % WORKER_SLICES) * width;
  return { from, to: from + width };
}

/** Ports this process handed out: never twice, so two servers of one test cannot get the same. */
const handedOut = new Set<number>();

/** A loopback port nothing listens on now, for a server to bind soon. */
export async function freePort(): Promise<number> {
  const range = portRange();
  for (let i = 0; i < 50; i++) {
    const port = range.from + Math.floor(Math.random() * (range.to - range.from));
    if (handedOut.has(port) || !(await canListen(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free loopback port in ${range.from}–${range.to} after 50 tries`);
}

/**
 * The first of `count` consecutive loopback ports nothing listens on now, all handed out, for a
 * mesh whose processes serve metrics on a base port plus an offset each.
 */
export async function freePortBlock(count: number): Promise<number> {
  const range = portRange();
  for (let i = 0; i < 50; i++) {
    const base = range.from + Math.floor(Math.random() * (range.to - range.from - count));
    const ports = Array.from({ length: count }, (_, k) => base + k);
    if (ports.some((p) => handedOut.has(p))) continue;
    if (!(await Promise.all(ports.map(canListen))).every(Boolean)) continue;
    for (const p of ports) handedOut.add(p);
    return base;
  }
  throw new Error(`no ${count} consecutive free loopback ports in ${range.from}–${range.to} after 50 tries`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** Passwords of the Redis users (libs/redis acl.ts): each service's that uses Redis, and the admin's. */
export type RedisPasswords = Record<RedisUserName | typeof REDIS_ADMIN_USER, string>;

/** Passwords of the NATS users (libs/events permissions.ts): each service's, and the admin's. */
export type NatsPasswords = Record<ServiceName | typeof NATS_ADMIN_USER, string>;

/**
 * `users`: the ACL users (an aclfile, readable only by its owner) with `default` off, so a client
 * without credentials is refused; without it Redis is open, as an unconfigured server is.
 * `dataDir`: the server's directory, kept by stop() (the caller owns it), so that a server
 * restarted on the same port and directory finds its files again; without it each server gets a
 * fresh directory that stop() removes. `args`: more redis-server arguments (they win over these).
 */
export async function startRedisServer(opts: { port?: number; users?: RedisPasswords; dataDir?: string; args?: string[] } = {}): Promise<LocalServer> {
  requireBinary('redis-server', 'apt-get install -y redis-server');
  const port = opts.port ?? (await freePort());
  const dir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'llmgw-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no'];
  if (opts.users) {
    const aclfile = join(dir, 'users.acl');
    writeFileSync(aclfile, redisAclFile(opts.users), { mode: 0o600 });
    args.push('--aclfile', aclfile);
  }
  args.push(...(opts.args ?? []));
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  const url = opts.users ? redisUrl(REDIS_ADMIN_USER, opts.users[REDIS_ADMIN_USER], port) : `redis://127.0.0.1:${port}`;
  return finishStart(child, port, url, opts.dataDir ? [] : [dir], 'redis-server');
}

/** A loopback Redis URL that logs in as `user`. */
export function redisUrl(user: string, password: string, port: number): string {
  return `redis://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}`;
}

/**
 * `storeDir`: JetStream's data directory, kept by stop() (the caller owns it), so that a server
 * restarted on the same port and directory finds its streams and consumers again, as after a
 * crash. Without it each server gets a fresh directory that stop() removes.
 * `users`: the server takes only those users, each with its permissions (a config file readable
 * only by its owner); without it anyone may connect and do anything.
 */
export async function startNatsServer(opts: { port?: number; storeDir?: string; users?: NatsPasswords } = {}): Promise<LocalServer> {
  requireBinary('nats-server', 'apt-get install -y nats-server');
  const port = opts.port ?? (await freePort());
  const dir = opts.storeDir ?? mkdtempSync(join(tmpdir(), 'llmgw-nats-'));
  const owned = opts.storeDir ? [] : [dir];
  const args = ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir];
  if (opts.users) {
    const confDir = mkdtempSync(join(tmpdir(), 'llmgw-nats-conf-'));
    owned.push(confDir);
    const conf = join(confDir, 'nats.conf');
    writeFileSync(conf, natsAuthorizationConfig(opts.users), { mode: 0o600 });
    args.push('-c', conf);
  }
  const child = spawn('nats-server', args, { stdio: 'ignore' });
  return finishStart(child, port, `nats://${natsAdminUserinfo(opts.users)}127.0.0.1:${port}`, owned, 'nats-server');
}

/** `admin:<password>@` for a NATS URL of a server started with users; empty without. */
export function natsAdminUserinfo(users: NatsPasswords | undefined): string {
  return users ? `${encodeURIComponent(NATS_ADMIN_USER)}:${encodeURIComponent(users[NATS_ADMIN_USER])}@` : '';
}

export function requireBinary(binary: string, install: string): void {
  if (!onPath(binary)) throw new Error(`${binary} is not on PATH; install it (${install})`);
}

/** Waits until the child listens on `port` (10 s at most); `dirs`: removed by stop(). */
export async function finishStart(child: ChildProcess, port: number, url: string, dirs: string[], name: string): Promise<LocalServer> {
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const deadline = Date.now() + 10_000;
  while (!(await canConnect(port))) {
    if (exited) throw new Error(`${name} exited at start (port ${port})`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} did not listen on 127.0.0.1:${port} within 10 s`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    url,
    port,
    process: child,
    stop: async () => {
      if (!exited) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
        await done;
        clearTimeout(timer);
      }
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
