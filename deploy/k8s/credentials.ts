/**
 * The credentials of the mesh's NATS and Redis users, made once per cluster, and the server-side
 * halves that go with them (deploy/README.md, "NATS and Redis"):
 *   npx tsx deploy/k8s/credentials.ts --namespace llmgw --out .tmp/k8s
 * writes
 *  - secrets.yaml: Secret `llmgw-credentials-<service>` per service (its NATS and Redis users'
 *    passwords, what the rendered pods read), `llmgw-credentials-admin` (the admin users, for
 *    operators), and `llmgw-nats-auth` (key `auth.conf`: the nats-server `authorization` block,
 *    every user with its permissions from libs/events permissions.ts), for `kubectl apply -f`;
 *  - redis-users.conf: a `user` line per service and the admin (libs/redis acl.ts; passwords
 *    only as SHA-256), for the Redis chart's extra configuration.
 * Running it again makes new passwords: apply both halves together, then restart the services.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import { stringify } from 'yaml';
import { NATS_ADMIN_USER, natsAuthorizationConfig } from '@llmgw/events';
import { REDIS_ADMIN_USER, redisAclFile, REDIS_USERS, type RedisUserName } from '@llmgw/redis';
import { SERVICE_NAMES, type ServiceName } from '@llmgw/runtime';
import { credentialsSecretOf, USES_NATS, USES_REDIS } from './render.js';

export const ADMIN_CREDENTIALS_SECRET = 'llmgw-credentials-admin';
export const NATS_AUTH_SECRET = 'llmgw-nats-auth';

export interface Passwords {
  nats: Record<ServiceName | typeof NATS_ADMIN_USER, string>;
  redis: Record<RedisUserName | typeof REDIS_ADMIN_USER, string>;
}

/** Hex: safe inside REDIS_URL and the NATS config without escaping. */
const password = () => randomBytes(24).toString('hex');

export function newPasswords(): Passwords {
  return {
    nats: Object.fromEntries([...SERVICE_NAMES, NATS_ADMIN_USER].map((u) => [u, password()])) as Passwords['nats'],
    redis: Object.fromEntries([...REDIS_USERS, REDIS_ADMIN_USER].map((u) => [u, password()])) as Passwords['redis'],
  };
}

const isRedisUser = (s: string): s is RedisUserName => (REDIS_USERS as string[]).includes(s);

function secret(name: string, namespace: string, stringData: Record<string, string>): ISecret {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace, labels: { 'app.kubernetes.io/part-of': 'llm-gateway' } }, type: 'Opaque', stringData };
}

/** The Secrets: each service's passwords, the admins', and the NATS servers' authorization block. */
export function credentialSecrets(p: Passwords, namespace: string): ISecret[] {
  const perService = SERVICE_NAMES.filter((s) => USES_NATS.has(s) || USES_REDIS.has(s)).map((s) =>
    secret(credentialsSecretOf(s), namespace, {
      ...(USES_NATS.has(s) ? { 'nats-password': p.nats[s] } : {}),
      ...(USES_REDIS.has(s) && isRedisUser(s) ? { 'redis-password': p.redis[s] } : {}),
    }),
  );
  return [
    ...perService,
    secret(ADMIN_CREDENTIALS_SECRET, namespace, { 'nats-password': p.nats[NATS_ADMIN_USER], 'redis-password': p.redis[REDIS_ADMIN_USER] }),
    secret(NATS_AUTH_SECRET, namespace, { 'auth.conf': natsAuthorizationConfig(p.nats) }),
  ];
}

/**
 * The Redis users, as redis.conf `user` lines. The chart keeps its own `default` user (its
 * probes and replication authenticate with it, by the chart's password secret), so the aclfile's
 * line switching `default` off is left out; the services never use it.
 */
export function redisUsersConf(p: Passwords): string {
  return redisAclFile(p.redis)
    .split('\n')
    .filter((line) => !line.startsWith('user default '))
    .join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { namespace: { type: 'string', default: 'llmgw' }, out: { type: 'string', default: '.tmp/k8s' } } });
  const out = values.out ?? '.tmp/k8s';
  const p = newPasswords();
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const yaml = credentialSecrets(p, values.namespace ?? 'llmgw').map((s) => stringify(s)).join('---\n');
  writeFileSync(join(out, 'secrets.yaml'), yaml, { mode: 0o600 });
  writeFileSync(join(out, 'redis-users.conf'), redisUsersConf(p), { mode: 0o600 });
  process.stdout.write(`wrote ${join(out, 'secrets.yaml')} and ${join(out, 'redis-users.conf')}\n`);
}
