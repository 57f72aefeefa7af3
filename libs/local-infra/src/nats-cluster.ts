import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { natsAuthorizationConfig } from '@llmgw/events';
import { finishStart, freePortBlock, natsAdminUserinfo, requireBinary, type LocalServer, type NatsPasswords } from './processes.js';

/** A JetStream cluster on loopback: one nats-server process per node, routed to each other. */
export interface NatsCluster {
  /** Every node's client URL, comma-separated (NATS_URL takes that form), with the admin's credentials when started with users. */
  url: string;
  /** Client port of each node (meshCredentials' serviceEnv({ nats: cluster }) lists them in NATS_URL). */
  ports: number[];
  /** Each node's server_name (`n0`, `n1`, ...), as JetStream reports it in a stream's cluster info. */
  names: string[];
  /** SIGKILL to node `i`, as a crash; its store directory is kept. */
  killNode(i: number): Promise<void>;
  /** Starts node `i` again on its ports and store directory; waits until it is back in the cluster (the error quotes its log if not). */
  restartNode(i: number): Promise<void>;
  /** Stops every node and removes the store and config directories. */
  stop(): Promise<void>;
}

export interface NatsClusterOptions {
  /** Nodes (at least 3 for a stream at R3 to survive the loss of one). */
  nodes?: number;
  /** As startNatsServer's: each node takes only these users, with their permissions. */
  users?: NatsPasswords;
}

const CLUSTER_NAME = 'llmgw';

/**
 * Starts the nodes, JetStream on in each (a config file per node, readable only by its owner,
 * with the users' authorization block, as startNatsServer's), each with its own server_name,
 * store directory, client, route and monitoring port, and routes to every other node; returns once the cluster has elected its
 * JetStream meta leader, so that streams can be created at once. With users, the routes also
 * authenticate (a random route password), so nothing else on the machine can join the cluster.
 */
export async function startNatsCluster(opts: NatsClusterOptions = {}): Promise<NatsCluster> {
  requireBinary('nats-server', 'apt-get install -y nats-server');
  const count = opts.nodes ?? 3;
  // Per node: a client port, a route port and a monitoring port.
  const base = await freePortBlock(3 * count);
  const nodes = Array.from({ length: count }, (_, i) => ({ name: `n${i}`, port: base + i, routePort: base + count + i, httpPort: base + 2 * count + i }));
  const dir = mkdtempSync(join(tmpdir(), 'llmgw-nats-cluster-'));
  const logFile = (name: string) => join(dir, `${name}.log`);
  const route = opts.users ? { user: 'route', password: randomBytes(24).toString('base64url') } : undefined;
  const routeAuth = route ? `${route.user}:${route.password}@` : '';
  // JSON strings are valid strings in the server's config syntax.
  const q = JSON.stringify;
  const configs = nodes.map((node) => {
    const storeDir = join(dir, node.name);
    mkdirSync(storeDir);
    const conf = [
      `server_name: ${q(node.name)}`,
      `listen: "127.0.0.1:${node.port}"`,
      `http: "127.0.0.1:${node.httpPort}"`,
      `log_file: ${q(logFile(node.name))}`,
      `jetstream { store_dir: ${q(storeDir)} }`,
      'cluster {',
      `  name: ${q(CLUSTER_NAME)}`,
      `  listen: "127.0.0.1:${node.routePort}"`,
      ...(route ? [`  authorization { user: ${q(route.user)}, password: ${q(route.password)} }`] : []),
      `  routes: [${nodes.filter((n) => n !== node).map((n) => q(`nats-route://${routeAuth}127.0.0.1:${n.routePort}`)).join(', ')}]`,
      '}',
      opts.users ? natsAuthorizationConfig(opts.users) : '',
    ].join('\n');
    const path = join(dir, `${node.name}.conf`);
    writeFileSync(path, conf, { mode: 0o600 });
    return path;
  });

  const running: (LocalServer | undefined)[] = nodes.map(() => undefined);
  const start = async (i: number) => {
    const node = nodes[i]!;
    const child = spawn('nats-server', ['-c', configs[i]!], { stdio: 'ignore' });
    try {
      running[i] = await finishStart(child, node.port, `nats://127.0.0.1:${node.port}`, [], `nats-server ${node.name}`);
      await untilInCluster(running[i]!.process, node.httpPort, node.name);
    } catch (err) {
      // Why (a port taken by another process meanwhile, say) is in the server's log.
      const log = existsSync(logFile(node.name)) ? readFileSync(logFile(node.name), 'utf8').trimEnd().split('\n').slice(-5).join('\n') : '(no log)';
      throw new Error(`${err instanceof Error ? err.message : String(err)}; the end of its log:\n${log}`);
    }
  };
  const stopAll = async () => {
    await Promise.all(running.map((s) => s?.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(nodes.map((_, i) => start(i)));
  } catch (err) {
    await stopAll();
    throw err;
  }

  const admin = natsAdminUserinfo(opts.users);
  const at = (i: number) => {
    if (!nodes[i]) throw new Error(`no node ${i} in a cluster of ${count}`);
    return i;
  };
  return {
    url: nodes.map((n) => `nats://${admin}127.0.0.1:${n.port}`).join(','),
    ports: nodes.map((n) => n.port),
    names: nodes.map((n) => n.name),
    killNode: async (i) => {
      const server = running[at(i)];
      if (!server || server.process.exitCode !== null || server.process.signalCode !== null) return;
      const exited = new Promise((r) => server.process.once('exit', r));
      server.process.kill('SIGKILL');
      await exited;
      running[i] = undefined;
    },
    restartNode: async (i) => {
      if (running[at(i)]) throw new Error(`node ${i} is running`);
      await start(i);
    },
    stop: stopAll,
  };
}

/**
 * Until the node's monitoring endpoint (/jsz) reports a JetStream meta leader: the node has
 * joined the cluster and the cluster can create and place streams.
 */
async function untilInCluster(child: ChildProcess, httpPort: number, name: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nats-server ${name} exited before it joined the cluster`);
    const jsz = await fetch(`http://127.0.0.1:${httpPort}/jsz`)
      .then((r) => r.json() as Promise<{ meta_cluster?: { leader?: string } }>)
      .catch(() => undefined);
    if (jsz?.meta_cluster?.leader) return;
    if (Date.now() > deadline) throw new Error(`nats-server ${name} has no JetStream meta leader after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
