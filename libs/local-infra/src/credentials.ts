import { randomBytes } from 'node:crypto';
import { NATS_ADMIN_USER } from '@llmgw/events';
import { REDIS_ADMIN_USER, REDIS_USERS, type RedisUserName } from '@llmgw/redis';
import { SERVICE_NAMES, type ServiceName } from '@llmgw/runtime';
import type { NatsCluster } from './nats-cluster.js';
import { redisClusterUrl, type LocalRedisCluster } from './redis-cluster.js';
import { redisUrl, type NatsPasswords, type RedisPasswords } from './processes.js';

/** Fresh credentials for a local mesh: what the servers take, and what each service is given. */
export interface MeshCredentials {
  /** startRedisServer({ users }) */
  redisUsers: RedisPasswords;
  /** startNatsServer({ users }) */
  natsUsers: NatsPasswords;
  /**
   * Each service's environment (startServiceProcesses' serviceEnv): NATS_URL (without
   * credentials; every node of a cluster, comma-separated, and NATS_STREAM_REPLICAS = its
   * nodes), NATS_USER and NATS_PASSWORD, and, for the services that use Redis, REDIS_URL logging
   * in as its own user (when a Redis is given; every master of a cluster).
   */
  serviceEnv(servers: { nats: { port: number } | Pick<NatsCluster, 'ports'>; redis?: { port: number } | Pick<LocalRedisCluster, 'ports'> }): Record<ServiceName, Record<string, string>>;
  /** The Redis URL of a service's user on `port` (a proxy's, say). */
  redisUrlOf(service: RedisUserName, port: number): string;
}

/** A random password per user (separate ones for Redis and NATS), never written anywhere but the servers' files and the services' environment. */
export function meshCredentials(): MeshCredentials {
  const password = () => randomBytes(24).toString('base64url');
  const redisUsers = Object.fromEntries([...REDIS_USERS, REDIS_ADMIN_USER].map((u) => [u, password()])) as RedisPasswords;
  const natsUsers = Object.fromEntries([...SERVICE_NAMES, NATS_ADMIN_USER].map((u) => [u, password()])) as NatsPasswords;
  const redisUrlOf = (service: RedisUserName, port: number) => redisUrl(service, redisUsers[service], port);
  return {
    redisUsers,
    natsUsers,
    redisUrlOf,
    serviceEnv: ({ redis, nats }) =>
      Object.fromEntries(
        SERVICE_NAMES.map((service) => {
          const ports = 'ports' in nats ? nats.ports : [nats.port];
          const env: Record<string, string> = { NATS_URL: ports.map((p) => `nats://127.0.0.1:${p}`).join(','), NATS_USER: service, NATS_PASSWORD: natsUsers[service] };
          if ('ports' in nats) env.NATS_STREAM_REPLICAS = String(nats.ports.length);
          if (redis && isRedisUser(service)) env.REDIS_URL = 'ports' in redis ? redisClusterUrl(redis.ports, service, redisUsers[service]) : redisUrlOf(service, redis.port);
          return [service, env];
        }),
      ) as Record<ServiceName, Record<string, string>>,
  };
}

function isRedisUser(service: ServiceName): service is RedisUserName {
  return (REDIS_USERS as readonly string[]).includes(service);
}
