/**
 * What REDIS_URL names: one server, `redis://[user:password@]host:port[/db]` (or `rediss://` for
 * TLS), or a Redis Cluster, `redis-cluster://[user:password@]host1:port1,host2:port2,...`: the
 * seed nodes (one is enough, the client learns the others from it) and the credentials, written
 * once, that every node takes. User and password are percent-encoded as in any URL.
 */
export type RedisTarget =
  | { kind: 'single'; url: string }
  | { kind: 'cluster'; nodes: ClusterSeed[]; username?: string; password?: string };

export interface ClusterSeed {
  host: string;
  port: number;
}

export const CLUSTER_SCHEME = 'redis-cluster:';

const SINGLE_SCHEMES = ['redis:', 'rediss:'];

/** Throws an Error that never holds the password. */
export function parseRedisUrl(url: string): RedisTarget {
  if (!url.startsWith(`${CLUSTER_SCHEME}//`)) {
    let protocol: string;
    try {
      protocol = new URL(url).protocol;
    } catch {
      throw new Error('not a URL');
    }
    if (!SINGLE_SCHEMES.includes(protocol)) throw new Error(`unknown scheme ${protocol}`);
    return { kind: 'single', url };
  }
  const rest = url.slice(CLUSTER_SCHEME.length + 2).replace(/\/$/, '');
  const at = rest.lastIndexOf('@');
  const hosts = rest.slice(at + 1);
  if (hosts === '' || /[/?#@]/.test(hosts)) throw new Error('a redis-cluster URL lists host:port pairs, comma-separated, and nothing after them');
  const target: RedisTarget = { kind: 'cluster', nodes: hosts.split(',').map(parseSeed) };
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    const colon = userinfo.indexOf(':');
    const username = decode(colon < 0 ? userinfo : userinfo.slice(0, colon));
    const password = colon < 0 ? '' : decode(userinfo.slice(colon + 1));
    if (username !== '') target.username = username;
    if (password !== '') target.password = password;
  }
  return target;
}

/** `host:port`, `[v6 address]:port`, or a host alone (port 6379). */
function parseSeed(seed: string): ClusterSeed {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d+))?$/.exec(seed);
  const port = Number(m?.[2] ?? 6379);
  if (!m || port < 1 || port > 65_535) throw new Error(`bad cluster node ${JSON.stringify(seed)}: expected host:port`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new Error('bad percent-encoding in the user or password');
  }
}

/** The URL without its password, for logs and errors. */
export function safeRedisUrl(url: string): string {
  try {
    const target = parseRedisUrl(url);
    if (target.kind === 'cluster') {
      const user = encodeURIComponent(target.username ?? '');
      const auth = target.password === undefined ? (user ? `${user}@` : '') : `${user}:***@`;
      return `${CLUSTER_SCHEME}//${auth}${target.nodes.map((n) => `${n.host.includes(':') ? `[${n.host}]` : n.host}:${n.port}`).join(',')}`;
    }
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable redis url>';
  }
}
