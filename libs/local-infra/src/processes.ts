import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Real infrastructure started on loopback for tests and for `npm start`. */
export interface LocalServer {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

export function onPath(binary: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${binary}`], { stdio: 'ignore' }).status === 0;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function startRedisServer(opts: { port?: number } = {}): Promise<LocalServer> {
  requireBinary('redis-server', 'apt-get install -y redis-server');
  const port = opts.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'llmgw-redis-'));
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no'],
    { stdio: 'ignore' },
  );
  return finishStart(child, port, `redis://127.0.0.1:${port}`, dir, 'redis-server');
}

/**
 * `storeDir`: JetStream's data directory, kept by stop() (the caller owns it), so that a server
 * restarted on the same port and directory finds its streams and consumers again, as after a
 * crash. Without it each server gets a fresh directory that stop() removes.
 */
export async function startNatsServer(opts: { port?: number; storeDir?: string } = {}): Promise<LocalServer> {
  requireBinary('nats-server', 'apt-get install -y nats-server');
  const port = opts.port ?? (await freePort());
  const dir = opts.storeDir ?? mkdtempSync(join(tmpdir(), 'llmgw-nats-'));
  const child = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir], { stdio: 'ignore' });
  return finishStart(child, port, `nats://127.0.0.1:${port}`, opts.storeDir ? undefined : dir, 'nats-server');
}

export function requireBinary(binary: string, install: string): void {
  if (!onPath(binary)) throw new Error(`${binary} is not on PATH; install it (${install})`);
}

/** `dir`: removed by stop() (undefined: nothing to remove). */
async function finishStart(child: ChildProcess, port: number, url: string, dir: string | undefined, name: string): Promise<LocalServer> {
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
      if (dir) rmSync(dir, { recursive: true, force: true });
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
