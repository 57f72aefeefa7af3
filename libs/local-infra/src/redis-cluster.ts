import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@llmgw/logging';
import { CLUSTER_SCHEME, connectRedis, REDIS_ADMIN_USER, type RedisClient } from '@llmgw/redis';
import { freePortBlock, redisUrl, startRedisServer, type LocalServer, type RedisPasswords } from './processes.js';

/** A Redis Cluster of masters on loopback, for tests. */
export interface LocalRedisCluster {
  /** The cluster URL (redis-cluster://), with the admin's credentials when started with users. */
  url: string;
  /** Each master's client port, in the order kill() and restart() number them. */
  ports: number[];
  /**
   * SIGKILLs master `i`, as a crash: its slots answer nothing until restart(i); the other masters
   * go on serving theirs (cluster-require-full-coverage no).
   */
  kill(i: number): Promise<void>;
  /**
   * Starts master `i` again on its port and directory: it rejoins with its slots and every write
   * it acknowledged (append-only file, fsync always). Resolves once the cluster is whole again.
   */
  restart(i: number): Promise<void>;
  stop(): Promise<void>;
}

const SLOTS = 16_384;

/**
 * `masters` redis-server processes with cluster mode on (client ports in one free block, cluster
 * bus ports in the block after it), each with the same users when `users` is given; the slots are
 * split evenly between them and the call resolves once every node reports cluster_state:ok.
 */
export async function startRedisCluster(opts: { masters?: number; users?: RedisPasswords } = {}): Promise<LocalRedisCluster> {
  const n = opts.masters ?? 3;
  const base = await freePortBlock(2 * n);
  const ports = Array.from({ length: n }, (_, i) => base + i);
  const root = mkdtempSync(join(tmpdir(), 'llmgw-redis-cluster-'));
  const start = (i: number) => {
    const dataDir = join(root, `node-${i}`);
    mkdirSync(dataDir, { recursive: true });
    return startRedisServer({
      port: ports[i],
      users: opts.users,
      dataDir,
      args: [
        ...['--cluster-enabled', 'yes', '--cluster-port', String(base + n + i), '--cluster-config-file', 'nodes.conf'],
        // A dead master is failed quickly, and the others serve their slots meanwhile.
        ...['--cluster-node-timeout', '1000', '--cluster-require-full-coverage', 'no'],
        ...['--appendonly', 'yes', '--appendfsync', 'always'],
        ...['--logfile', join(dataDir, 'redis.log')],
      ],
    });
  };
  const nodes: LocalServer[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((s) => s.stop()));
    rmSync(root, { recursive: true, force: true });
  };
  try {
    nodes.push(...(await Promise.all(ports.map((_, i) => start(i)))));
    await Promise.all(
      nodes.map((node, i) =>
        onNode(node.url, async (r) => {
          await r.call('CLUSTER', 'SET-CONFIG-EPOCH', String(i + 1));
          await r.call('CLUSTER', 'ADDSLOTSRANGE', String(Math.floor((i * SLOTS) / n)), String(Math.floor(((i + 1) * SLOTS) / n) - 1));
        }),
      ),
    );
    await onNode(nodes[0]!.url, async (r) => {
      for (let i = 1; i < n; i++) await r.call('CLUSTER', 'MEET', '127.0.0.1', String(ports[i]), String(base + n + i));
    });
    await whole(nodes);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url: opts.users ? redisClusterUrl(ports, REDIS_ADMIN_USER, opts.users[REDIS_ADMIN_USER]) : redisClusterUrl(ports),
    ports,
    kill: async (i) => {
      const child = nodes[i]!.process;
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
    restart: async (i) => {
      nodes[i] = await start(i);
      await whole(nodes);
    },
    stop,
  };
}

/** The cluster URL of loopback nodes, logging in as `user` when given. */
export function redisClusterUrl(ports: readonly number[], user?: string, password?: string): string {
  const auth = user === undefined ? '' : `${encodeURIComponent(user)}${password === undefined ? '' : `:${encodeURIComponent(password)}`}@`;
  return `${CLUSTER_SCHEME}//${auth}${ports.map((p) => `127.0.0.1:${p}`).join(',')}`;
}

async function onNode(url: string, fn: (r: RedisClient) => Promise<void>): Promise<void> {
  const r = await connectRedis(url, { logger: silentLogger(), commandTimeoutMs: 5_000 });
  try {
    await fn(r);
  } finally {
    r.disconnect();
  }
}

/** Until every node sees every node and every slot served, no node suspected. */
async function whole(nodes: readonly LocalServer[]): Promise<void> {
  const deadline = Date.now() + 20_000;
  let last = '';
  for (;;) {
    const infos = await Promise.all(
      nodes.map(async (node) => {
        let info = '';
        await onNode(node.url, async (r) => {
          info = String(await r.call('CLUSTER', 'INFO'));
        }).catch((err: unknown) => (info = String(err)));
        return info;
      }),
    );
    const ok = (info: string) =>
      /cluster_state:ok/.test(info) && new RegExp(`cluster_known_nodes:${nodes.length}\\b`).test(info) && /cluster_slots_ok:16384\b/.test(info);
    if (infos.every(ok)) return;
    last = infos.find((i) => !ok(i)) ?? '';
    if (Date.now() > deadline) throw new Error(`redis cluster on ${nodes.map((s) => s.port).join(',')} not whole within 20 s: ${last.replace(/\s+/g, ' ').slice(0, 300)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export type RedisKind = 'single' | 'cluster';

/** One redis-server or a three-master cluster, for code that must behave the same on both. */
export interface LocalRedis {
  kind: RedisKind;
  /** As the admin when started with users. */
  url: string;
  /** The URL that logs in as `user`. */
  urlAs(user: string, password: string): string;
  stop(): Promise<void>;
}

export async function startLocalRedis(kind: RedisKind, opts: { users?: RedisPasswords } = {}): Promise<LocalRedis> {
  if (kind === 'cluster') {
    const cluster = await startRedisCluster(opts);
    return { kind, url: cluster.url, urlAs: (user, password) => redisClusterUrl(cluster.ports, user, password), stop: cluster.stop };
  }
  const server = await startRedisServer(opts);
  return { kind, url: server.url, urlAs: (user, password) => redisUrl(user, password, server.port), stop: server.stop };
}
